"""netlab check tells the truth about real-style programs (issue 18, item 5): clients that
log on stderr, print the reply in pieces or echo their own request in their log; a client
whose request has no end; servers that are stuck, reply fixed text, read lines of echo, or
want ``{a} + {b}``. Each program under tests/students/ names the real bug it reproduces.

As in test_check.py, every program is checked at once in one trio run shared by the module
(the fixtures), and each test reads its report. Timeouts are per case and generous; nothing
asserts on speed.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
import trio

from netlab.check import CheckReport, CheckSettings, check_client, check_server
from netlab.check.cases import CaseContext, select_cases
from netlab.check.registry import evaluate_skip
from netlab.check import judge
from netlab.check.judge import AUTO_FORMATS, RequestFormat
from netlab.transports import parse_address

STUDENTS = Path(__file__).parent / "students"
PYTHON = sys.executable
MESSAGE = "this is my test message"  # longer than the skeleton's 16-byte chunks


def student(name: str, *args: str) -> str:
    return " ".join([PYTHON, str(STUDENTS / f"{name}.py"), *args])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def detail(report: CheckReport, case_id: str) -> str:
    return next(c.detail for c in report.cases if c.id == case_id)


def outcome(report: CheckReport, case_id: str) -> str:
    return next(c.outcome for c in report.cases if c.id == case_id)


def shown(report: CheckReport) -> str:
    return "\n".join(f"{c.id}: {c.outcome}: {c.detail}" for c in report.cases)


# -- judging a client's output, without sockets ------------------------------------------------


@pytest.mark.parametrize("output", [
    b"42\n",
    b"The sum is 42\n",
    b"sending b'12 30\\n'\nreceived b'42\\n'\n",
    b"b'4'\nb'2'\nb'\\n'\n",  # recv() pieces printed as reprs, a line each
    b"4\n2\n\n",  # the same printed as text
    b"received: 4\nreceived: 2\n",
    b"sent '12 30', got '42'\n",
    b"Server sent: 42\n",
])
def test_sum_answer_found(output: bytes) -> None:
    assert judge.printed_answer(output, b"42\n", [b"12 30\n"], echo=False)


@pytest.mark.parametrize("output", [
    b"sending b'12 30\\n'\n",
    b"sending 12 30\nreceived b''\n",
    b"4\n",  # one piece of 42: read once
    b"Sent 42 bytes\n",  # a log line of the sending: not the reply
])
def test_sum_answer_not_found(output: bytes) -> None:
    assert not judge.printed_answer(output, b"42\n", [b"12 30\n"], echo=False)


@pytest.mark.parametrize("output", [
    b'connecting to 127.0.0.1 port 1\nsending "hello"\nreceived "hello"\nclosing socket\n',
    b'sending "this is my test message"\nreceived "this is my test "\nreceived "message"\n',
    b"received \"b'this is my test '\"\nreceived \"b'message'\"\n",  # a Python 2 port: bytes in a format
    b"sent 'hello', received 'hello'\n",
    b"hello\n",
    b'received "I sent it"\n',  # the echo holds a word of sending: it is still the echo
    b"sending hello\nServer sent back: hello\n",
])
def test_echo_found(output: bytes) -> None:
    request = b"this is my test message" if b"this is" in output else (
        b"I sent it" if b"I sent" in output else b"hello")
    assert judge.printed_answer(output, request, [request], echo=True)


@pytest.mark.parametrize("output", [
    b'connecting to 127.0.0.1 port 1\nsending "hello"\nreceived ""\nclosing socket\n',
    b"Sending: hello\n",
    b"sent 'hello', received ''\n",
    b'received "" after sending "hello"\n',
])
def test_echo_of_the_request_is_not_the_reply(output: bytes) -> None:
    assert not judge.printed_answer(output, b"hello", [b"hello"], echo=True)


def test_kernel_tables_tell_accepted_from_queued() -> None:
    """/proc/net/tcp: a connection waiting in the accept queue has inode 0; a listener's
    rx_queue is how many wait. (IPv4-mapped IPv6 rows are matched as IPv4.)"""
    from netlab.check.procnet import parse_accept_queue, parse_accepted

    rows = ["   0: 0100007F:C350 00000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 4242 1",
            "   1: 0100007F:C350 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4243 1",
            "   2: 0100007F:C350 0100007F:9C41 01 00000000:00000000 00:00000000 00000000     0        0 0 1",
            "   3: 0100007F:9C42 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 4244 1"]
    six = ["   0: 0000000000000000FFFF00000100007F:C350 0000000000000000FFFF00000100007F:9C43 01 "
           "00000000:00000000 00:00000000 00000000 0 0 0 1"]
    assert parse_accepted(rows, 50000, ("127.0.0.1", 40000)) is True
    assert parse_accepted(rows, 50000, ("127.0.0.1", 40001)) is False
    assert parse_accepted(rows, 50000, ("127.0.0.1", 40002)) is None  # only our own end is listed
    assert parse_accepted(six, 50000, ("127.0.0.1", 40003)) is False
    assert parse_accept_queue(rows, 4242) == 2 and parse_accept_queue(rows, 4243) is None


def test_auto_knows_plus() -> None:
    assert "{a} + {b}\n" in AUTO_FORMATS and "{a} + {b}" in AUTO_FORMATS
    assert AUTO_FORMATS[0] == "{a} {b}\n"


@pytest.mark.process
async def test_udp6_states_the_ipv6_limit() -> None:
    """echo.large on udp6 is skipped with UDP's IPv6 limit (65,527 bytes), not IPv4's."""
    (large,) = select_cases("echo", "assignment", ["echo.large"])
    for address, limit in (("udp6:[::1]:9", "65,527"), ("udp4:127.0.0.1:9", "65,507"), ("udp:[::1]:9", "65,527")):
        ctx = CaseContext(parse_address(address), CheckSettings(service="echo"), RequestFormat("{a} {b}\n"))
        # nothing is sent: where the case applies is decided before it runs (as the runner does)
        skip = evaluate_skip(large, ctx)
        result, text = ("skip", skip) if skip is not None else await large.run(ctx)
        assert result == "skip" and limit in text, text


# -- clients -----------------------------------------------------------------------------------

#: client -> (service, its arguments after HOST PORT)
CLIENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "client_skeleton_stderr": ("echo", (repr(MESSAGE),)),
    "client_skeleton_todo": ("echo", (repr(MESSAGE),)),
    "client_skeleton_short_chunk": ("echo", (repr(MESSAGE),)),
    "client_sum_logs": ("sum", ("12", "30")),
    "client_prints_pieces": ("sum", ("12", "30")),
    "client_no_newline": ("sum", ("12", "30")),
    "client_shutdown": ("sum", ("12", "30")),
    "client_reads_once": ("sum", ("12", "30")),
    "sum_client": ("sum", ("12", "30")),
}


@pytest.fixture(scope="module")
def clients() -> dict[str, CheckReport]:
    reports: dict[str, CheckReport] = {}

    async def one(name: str, service: str, args: tuple[str, ...]) -> None:
        port = _free_port()
        command = student(name, "127.0.0.1", str(port), *args)
        reports[name] = await check_client(command, f"tcp:127.0.0.1:{port}",
                                           CheckSettings(service=service, timeout=4.0))

    async def main() -> None:
        limit = trio.CapacityLimiter(5)

        async def limited(name: str, service: str, args: tuple[str, ...]) -> None:
            async with limit:
                await one(name, service, args)

        async with trio.open_nursery() as nursery:
            for name, (service, args) in CLIENTS.items():
                nursery.start_soon(limited, name, service, args)

    trio.run(main)
    return reports


@pytest.mark.process
def test_skeleton_client_logging_on_stderr_passes(clients) -> None:
    report = clients["client_skeleton_stderr"]
    assert report.failed == [], shown(report)
    for case_id in ("client.plain", "client.split_reply", "client.slow_reply"):
        assert outcome(report, case_id) == "pass", shown(report)


@pytest.mark.process
def test_skeleton_left_undone_fails_although_it_logged_the_message(clients) -> None:
    report = clients["client_skeleton_todo"]
    assert {"client.plain", "client.split_reply", "client.slow_reply"} <= set(report.failed), shown(report)
    assert "does not count as the reply" in detail(report, "client.plain"), shown(report)


@pytest.mark.process
def test_short_chunk_loop_reads_a_whole_reply_but_stops_at_a_piece(clients) -> None:
    report = clients["client_skeleton_short_chunk"]
    assert report.failed == ["client.split_reply"], shown(report)
    assert "stopped reading" in detail(report, "client.split_reply")


@pytest.mark.process
def test_sum_client_logging_its_request_passes(clients) -> None:
    report = clients["client_sum_logs"]
    assert report.failed == [], shown(report)


@pytest.mark.process
def test_client_printing_pieces_passes(clients) -> None:
    report = clients["client_prints_pieces"]
    assert report.failed == [], shown(report)
    assert outcome(report, "client.split_reply") == "pass"


@pytest.mark.process
def test_reads_once_only_when_it_stopped_reading(clients) -> None:
    report = clients["client_reads_once"]
    assert report.failed == ["client.split_reply"], shown(report)
    text = detail(report, "client.split_reply")
    assert "stopped reading" in text and "of 3 bytes" in text, text


@pytest.mark.process
def test_client_without_an_end_to_its_request_is_warned(clients) -> None:
    report = clients["client_no_newline"]
    assert report.failed == [], shown(report)
    assert outcome(report, "client.request_end") == "warn", shown(report)
    text = detail(report, "client.request_end")
    for words in ("no newline", "waits for ever", "netlab serve", "\\n", "shutdown(socket.SHUT_WR)",
                  "--framing quiet"):
        assert words in text, (words, text)


@pytest.mark.parametrize("name", ["client_shutdown", "sum_client"])
@pytest.mark.process
def test_client_ending_its_request_passes_request_end(clients, name: str) -> None:
    report = clients[name]
    assert outcome(report, "client.request_end") == "pass", shown(report)
    assert report.failed == [], shown(report)


@pytest.mark.process
def test_echo_clients_have_no_request_end_case(clients) -> None:
    assert "client.request_end" not in {c.id for c in clients["client_skeleton_stderr"].cases}


# -- servers -----------------------------------------------------------------------------------

#: name -> (program, settings)
SERVERS: dict[str, tuple[str, CheckSettings]] = {
    "stuck": ("stuck_on_first_client", CheckSettings(timeout=2.0, only=("connect", "sum.small", "framing"))),
    "stuck_no_newline": ("stuck_on_first_client", CheckSettings(timeout=2.0, request="{a} {b}",
                                                                only=("connect", "sum.small", "sum.negative"))),
    "never_accepts": ("never_accepts", CheckSettings(timeout=1.5, only=("connect", "sum", "clients"))),
    "full_backlog": ("full_backlog", CheckSettings(timeout=1.5, only=("connect", "sum"))),
    "fixed": ("echo_fixed_reply", CheckSettings(service="echo", timeout=3.0, only=("echo.small", "echo.binary"))),
    "echo_lines": ("echo_lines", CheckSettings(service="echo", timeout=2.0,
                                               only=("echo.small", "framing.long"))),
    "decodes": ("echo_decodes", CheckSettings(service="echo", timeout=3.0, only=("echo.binary",))),
    "plus": ("sum_plus", CheckSettings(timeout=2.0, request="auto", only=("sum.small",))),
}


@pytest.fixture(scope="module")
def servers() -> dict[str, CheckReport]:
    reports: dict[str, CheckReport] = {}

    async def one(key: str, name: str, settings: CheckSettings) -> None:
        reports[key] = await check_server(run=student(name, "0"), settings=settings)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for key, (name, settings) in SERVERS.items():
                nursery.start_soon(one, key, name, settings)

    trio.run(main)
    return reports


@pytest.mark.parametrize("key", ["stuck", "stuck_no_newline"])
@pytest.mark.process
def test_stuck_server_is_named_stuck(servers, key: str) -> None:
    report = servers[key]
    assert report.outcome("connect") == "pass"
    for case in report.cases[1:]:
        if case.outcome == "skip":
            continue
        assert case.outcome == "fail", shown(report)
        assert "stuck" in case.detail and "never accepted" in case.detail, shown(report)
        assert "--request" not in case.detail and "no newline" not in case.detail, shown(report)
        assert "accepted it" not in case.detail, shown(report)


@pytest.mark.process
def test_stuck_spinning_server_is_said_to_spin(servers) -> None:
    text = detail(servers["stuck"], "sum.small")
    assert "spin" in text and "of a core" in text, text


@pytest.mark.process
def test_server_that_never_accepts_is_stuck_not_spinning(servers) -> None:
    report = servers["never_accepts"]
    text = detail(report, "sum.small")
    assert "stuck" in text and "never accepted" in text and "spin" not in text, shown(report)
    concurrent = detail(report, "clients.concurrent")
    assert "stuck" in concurrent and "one client at a time" not in concurrent, shown(report)


@pytest.mark.process
def test_full_accept_queue_is_named(servers) -> None:
    """Connecting times out once the queue is full: the sentence says why."""
    report = servers["full_backlog"]
    timed_out = [c for c in report.cases if "took longer than the deadline" in c.detail]
    assert timed_out, shown(report)
    for case in timed_out:
        assert "stuck" in case.detail and "accept queue is full" in case.detail, shown(report)


@pytest.mark.process
def test_fixed_text_reply_is_shown_as_the_bytes(servers) -> None:
    report = servers["fixed"]
    for case_id in ("echo.small", "echo.binary"):
        text = detail(report, case_id)
        assert "b'YES, received'" in text and "decod" not in text, shown(report)


@pytest.mark.process
def test_decoding_server_is_told_so(servers) -> None:
    text = detail(servers["decodes"], "echo.binary")
    assert "decod" in text, text


@pytest.mark.process
def test_echo_never_suggests_request(servers) -> None:
    report = servers["echo_lines"]
    assert report.outcome("echo.small") == "pass", shown(report)
    text = detail(report, "framing.long")
    assert report.outcome("framing.long") == "fail"
    assert "--request" not in text and "newline" in text, text


@pytest.mark.process
def test_auto_finds_plus(servers) -> None:
    report = servers["plus"]
    assert report.request == repr("{a} + {b}\n") or report.request == repr("{a} + {b}"), shown(report)
    assert report.outcome("sum.small") == "pass", shown(report)
