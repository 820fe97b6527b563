"""The `netlab` command, driven through typer's CliRunner.

These are plain sync tests: every command calls ``trio.run`` itself, which cannot run
inside a trio test. Servers the commands talk to run in a background thread with their
own ``trio.run`` (one trio run per thread is allowed), and are cancelled when the test
ends. Fixtures are local to this file on purpose.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from rich.console import Console

import netlab.cli.common
from netlab.runner import serve
from netlab.services.sum import SumService
from netlab.transports import COMPARE_SCHEMES, TRANSPORTS

from helpers import INT_COLUMNS, assert_no_traceback, invoke, table_rows

COMMANDS = ["serve", "send", "chat", "transports", "compare", "relay"]

#: how long any test waits for a server thread to start or stop
THREAD_TIMEOUT = 10.0


@pytest.fixture(autouse=True)
def piped_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Render tables as for a pipe, which is what CliRunner's stdout is. netlab.cli picks
    its console width when imported, from the real stdout: under ``pytest -s`` in a narrow
    terminal that would squeeze (and ellipsize) the tables these tests read."""
    monkeypatch.setattr(netlab.cli.common, "out", Console(width=160))


@pytest.fixture(autouse=True)
def root_logging_restored() -> Iterator[None]:
    """`netlab serve` points the root logger at its stderr (basicConfig force=True); under
    CliRunner that stderr is closed when the command returns, and a later log line from a
    server thread (a hint) would fail on it. Put the root logger back after each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def flat(text: str) -> str:
    """Output with rich's box drawing removed and white space collapsed, so a message that
    rich wrapped across lines of an error panel can be matched as one string."""
    text = re.sub(r"[\u2500-\u257f]", " ", text)
    return " ".join(text.split())


def free_port(socktype: int) -> int:
    """A loopback port nothing listens on (bound, read, closed)."""
    with socket.socket(socket.AF_INET, socktype) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server_thread(service: str, address: str) -> Iterator[str]:
    """Serve `service` on `address` in a background thread; yield the bound address text."""
    started: queue.Queue = queue.Queue()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(serve, service, address)
            started.put((str(server.address), trio.lowlevel.current_trio_token(), nursery.cancel_scope))

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as exc:  # handed to the test thread
            started.put(exc)

    thread = threading.Thread(target=run, name=f"netlab-{service}-server", daemon=True)
    thread.start()
    item = started.get(timeout=THREAD_TIMEOUT)
    if isinstance(item, BaseException):
        raise item
    bound, token, scope = item
    try:
        yield bound
    finally:
        token.run_sync_soon(scope.cancel)
        thread.join(timeout=THREAD_TIMEOUT)
        assert not thread.is_alive(), "the server thread did not stop"
        if not started.empty():  # the server crashed while the test ran
            raise started.get_nowait()


LIVE_TEMPLATES = {
    "tcp": "tcp:127.0.0.1:0",
    "udp": "udp:127.0.0.1:0",
    "unix": "unix:{dir}/s.sock",
    "unix-dgram": "unix-dgram:{dir}/d.sock",
}


@pytest.fixture(params=list(LIVE_TEMPLATES))
def live(request, netlab_dir: Path):
    """A function starting a server of a given service on the scheme under test."""
    template = LIVE_TEMPLATES[request.param]

    def start(service: str):
        return server_thread(service, template.format(dir=netlab_dir))

    return start


# -- help -----------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_help_exits_0_and_shows_an_example(command: str) -> None:
    result = invoke([command, "--help"])
    assert result.exit_code == 0, result.output
    assert re.search(rf"^\s*Example: .*netlab {command}\b", result.output, re.MULTILINE), result.output


def test_no_arguments_shows_help_listing_every_command() -> None:
    result = invoke([])
    for command in COMMANDS:
        assert command in result.output
    assert_no_traceback(result)


# -- usage errors: exit 2, name the problem, no traceback -----------------------------

USAGE_ERRORS = {
    "framing for echo": (["serve", "-t", "tcp:127.0.0.1:0", "-s", "echo", "--framing", "quiet"],
                         ["echo takes no --framing, only sum does"]),
    "accept for echo": (["serve", "-t", "tcp:127.0.0.1:0", "--accept", "lenient"], ["echo takes no --accept"]),
    "bad framing": (["serve", "-t", "tcp:127.0.0.1:0", "-s", "sum", "--framing", "quiet:x"],
                    ["quiet:MS takes milliseconds"]),
    "unknown framing": (["serve", "-t", "tcp:127.0.0.1:0", "-s", "sum", "--framing", "lines"],
                        ["unknown framing 'lines'"]),
    "bad accept": (["serve", "-t", "tcp:127.0.0.1:0", "-s", "sum", "--accept", "loose"], ["use strict or lenient"]),
    "framing on datagrams": (["serve", "-t", "udp:127.0.0.1:0", "-s", "sum", "--framing", "quiet"],
                             ["framing quiet:200 is for byte streams", "each message is one request already"]),
    "half-close on datagrams": (["send", "-t", "udp:127.0.0.1:9", "--half-close", "2 3"],
                                ["half-close ends a request on a byte stream"]),
    "unknown scheme": (["send", "-t", "foo:127.0.0.1:7000", "2 3"], ["unknown scheme 'foo'"]),
    "bad port": (["send", "-t", "tcp:127.0.0.1:99999", "2 3"], ["port 99999 is out of range"]),
    "port not a number": (["send", "-t", "tcp:127.0.0.1:http", "2 3"], ["port must be a number"]),
    "IPv6 without brackets": (["send", "-t", "tcp:::1:7000", "2 3"], ["IPv6 addresses need brackets"]),
    "path too long": (["send", "-t", "unix:/" + "a" * 120, "2 3"], ["121 bytes", "at most 107"]),
    "option not for scheme": (["send", "-t", "tcp:127.0.0.1:0?mode=0600", "2 3"],
                              ["option 'mode' does not apply to tcp"]),
    "unknown service": (["send", "-t", "tcp:127.0.0.1:7000", "--service", "nope", "2 3"],
                        ["unknown service 'nope'"]),
    "unknown service (serve)": (["serve", "-t", "tcp:127.0.0.1:0", "--service", "nope"],
                                ["unknown service 'nope'"]),
    "bad address (serve)": (["serve", "-t", "unix:"], ["missing path"]),
    "bad address (chat)": (["chat", "-t", "udp:127.0.0.1"], ["missing port", "udp:127.0.0.1:PORT"]),
    "unknown compare transport": (["compare", "--transports", "nope"], ["unknown transport 'nope'"]),
    "unknown compare service": (["compare", "--services", "nope", "-n", "1"], ["'nope'"]),
    "missing transport": (["send", "2 3"], ["--transport"]),
}
_HUGE = "1" * 4301  # int() refuses strings over 4300 digits with a ValueError of its own
for _args in (["serve", "-t", f"tcp:127.0.0.1:{_HUGE}"], ["send", "-t", f"udp:127.0.0.1:0?rcvbuf={_HUGE}", "2 3"],
              ["chat", "-t", f"tcp:127.0.0.1:0?backlog={_HUGE}"], ["raw", f"unix-dgram:@x?sndbuf={_HUGE}"],
              ["raw", "--listen", f"tcp:{_HUGE}"], ["addr", "explain", f"tcp6:[::1]:{_HUGE}"],
              ["relay", "--listen", f"udp:127.0.0.1:{_HUGE}", "--to", "udp:127.0.0.1:7000"],
              ["relay", "--listen", "tcp:127.0.0.1:0", "--to", f"tcp:127.0.0.1:0?sndbuf={_HUGE}"]):
    USAGE_ERRORS[f"4301-digit integer ({' '.join(_args[:2])})"] = (_args, ["out of range"])


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_usage_error_exits_2_naming_the_problem(case: str) -> None:
    args, wanted = USAGE_ERRORS[case]
    result = invoke(args)
    assert result.exit_code == 2, result.output
    assert_no_traceback(result)
    text = flat(result.output)
    for piece in wanted:
        assert piece in text, text
    assert "Exceeds the limit" not in text


# -- transports -----------------------------------------------------------------------


def test_transports_table_lists_every_scheme() -> None:
    result = invoke(["transports"])
    assert result.exit_code == 0, result.output
    first_cells = {line.split()[1] for line in result.output.splitlines() if line.startswith("│")}
    assert set(TRANSPORTS) <= first_cells
    assert len(TRANSPORTS) == 10  # tcp tcp4 tcp6 tls udp udp4 udp6 unix unix-dgram unix-seq


def test_transports_json_declares_delivery_properties() -> None:
    result = invoke(["transports", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["scheme"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"tcp", "tcp4", "tcp6", "tls", "udp", "udp4", "udp6", "unix", "unix-dgram", "unix-seq"}
    assert rows["unix-seq"]["type"] == "SOCK_SEQPACKET"
    assert rows["unix-seq"]["reliable"] and rows["unix-seq"]["ordered"] and rows["unix-seq"]["boundaries"]
    assert rows["udp"]["reliable"] is False
    assert rows["udp"]["boundaries"] is True
    assert rows["unix-dgram"]["reliable"] is True
    assert rows["unix-dgram"]["boundaries"] is True
    assert rows["tcp"]["boundaries"] is False
    assert rows["tcp"]["reliable"] is True
    assert "mode" in rows["unix"]["options"] and "mode" not in rows["tcp"]["options"]


# -- send to nothing: exit 1, one clear line ------------------------------------------


def test_send_tcp_refused() -> None:
    result = invoke(["send", "-t", f"tcp:127.0.0.1:{free_port(socket.SOCK_STREAM)}", "2 3"])
    assert result.exit_code == 1, result.output
    assert "refused" in result.output
    assert result.stdout == ""
    assert_no_traceback(result)


def test_send_udp_refused_by_icmp_port_unreachable() -> None:
    result = invoke(["send", "-t", f"udp:127.0.0.1:{free_port(socket.SOCK_DGRAM)}", "--timeout", "3", "2 3"])
    assert result.exit_code == 1, result.output
    assert "refused" in result.output
    assert_no_traceback(result)


@pytest.mark.parametrize("scheme", ["unix", "unix-dgram"])
def test_send_unix_missing_path(scheme: str, netlab_dir: Path) -> None:
    result = invoke(["send", "-t", f"{scheme}:{netlab_dir}/nobody.sock", "2 3"])
    assert result.exit_code == 1, result.output
    assert "no such socket file" in result.output
    assert result.output.startswith("netlab: error:")
    assert_no_traceback(result)


def test_chat_tcp_refused() -> None:
    result = invoke(["chat", "-t", f"tcp:127.0.0.1:{free_port(socket.SOCK_STREAM)}"], input="1 2\n")
    assert result.exit_code == 1, result.output
    assert "refused" in result.output
    assert_no_traceback(result)


# -- timeouts -------------------------------------------------------------------------


def test_send_udp_timeout_when_nobody_replies() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        result = invoke(["send", "--timeout", "0.5", "-t", f"udp:127.0.0.1:{port}", "2 3"])
        silent.settimeout(1)
        assert silent.recvfrom(100)[0] == b"2 3"  # the request did arrive
    assert result.exit_code == 1, result.output
    assert "no reply" in result.output and "0.5 s" in result.output
    assert_no_traceback(result)


def test_chat_datagram_exits_1_when_replies_are_missing() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        result = invoke(["chat", "--timeout", "0.3", "-t", f"udp:127.0.0.1:{port}"], input="1 2\n3 4\n")
    assert result.exit_code == 1, result.output
    assert "2 of 2 datagrams got no reply" in flat(result.output)
    assert_no_traceback(result)


def test_send_tcp_timeout_when_server_accepts_but_never_replies() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the handshake; nobody ever reads
        port = silent.getsockname()[1]
        result = invoke(["send", "--timeout", "0.5", "-t", f"tcp:127.0.0.1:{port}", "2 3"])
    assert result.exit_code == 1, result.output
    assert "no reply" in result.output
    assert_no_traceback(result)


# -- send and chat against a live server ----------------------------------------------


def test_send_sum(live) -> None:
    with live("sum") as address:
        result = invoke(["send", "-t", address, "2 3"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "5\n"


def test_send_sum_refusal_is_printed_and_exits_1(live) -> None:
    """Issue 14: a script must tell bad input from success; the reply is still printed."""
    with live("sum") as address:
        result = invoke(["send", "-t", address, "two three"])
        as_json = invoke(["send", "-t", address, "two three", "--json"])
        echoed = invoke(["send", "-t", address, "2 3", "--json"])
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith("ERR ")
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["error"] is True
    document = json.loads(echoed.stdout)
    assert echoed.exit_code == 0 and document["reply"].rstrip("\n") == "5" and document["error"] is False


def test_send_echo_of_err_is_not_a_refusal(live) -> None:
    """echo's replies are the requests: one that starts with ERR is no refusal."""
    with live("echo") as address:
        result = invoke(["send", "-t", address, "--service", "echo", "ERR not really"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "ERR not really\n"


def test_send_echo_replies_the_message(live) -> None:
    message = "hello, echo: 1 2 3"
    with live("echo") as address:
        result = invoke(["send", "-t", address, "--service", "echo", message])
    assert result.exit_code == 0, result.output
    assert result.stdout == message + "\n"


def test_chat_sum(live) -> None:
    with live("sum") as address:
        result = invoke(["chat", "-t", address, "--timeout", "3"], input="1 2\n3 4\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == "3\n7\n"
    assert_no_traceback(result)


def test_chat_last_line_without_newline(live) -> None:
    with live("sum") as address:
        result = invoke(["chat", "-t", address, "--timeout", "3"], input="1 2\n3 4")
    assert result.exit_code == 0, result.output
    assert result.stdout == "3\n7\n"


def test_send_abstract_unix_dgram() -> None:
    name = f"netlab-test-{os.getpid()}-{time.monotonic_ns()}"
    with server_thread("sum", f"unix-dgram:@{name}") as address:
        assert address == f"unix-dgram:@{name}"
        result = invoke(["send", "-t", address, "40 2"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "42\n"


# -- compare (table parsing in helpers.py; relay-backed runs in test_compare.py) ----------


def test_compare_json_matches_table(netlab_dir: Path) -> None:
    json_file = netlab_dir / "compare.json"
    result = invoke(["compare", "-n", "20", "--json-file", str(json_file)])
    assert result.exit_code == 0, result.output
    assert_no_traceback(result)
    document = json.loads(json_file.read_text())
    assert set(document) == {"start", "intervals", "end"}  # iperf3 -J's shape ("error" only on failure)
    assert document["start"]["settings"]["messages"] == 20
    results = document["end"]["results"]
    assert len(results) == 2 * len(COMPARE_SCHEMES)
    assert {(r["transport"], r["service"]) for r in results} == {
        (t, s) for t in COMPARE_SCHEMES for s in ("echo", "sum")
    }
    for r in results:
        assert r["planned"] == r["sent"] == r["delivered"] == r["verified"] == 20, r
        assert r["lost"] == r["duplicated"] == r["reordered"] == r["corrupted"] == 0, r
        assert r["boundaries_kept"] is True
        assert r["error"] is None, r
    table = table_rows(result.stdout)
    assert table == {(r["transport"], r["service"]): {c: r[c] for c in INT_COLUMNS} for r in results}
    assert sum(s["netlab"]["sent"] for i in document["intervals"] for s in i["streams"]) == \
        2 * len(COMPARE_SCHEMES) * 20
    assert f"wrote {json_file}" in result.output


def test_compare_subset() -> None:
    result = invoke(["compare", "--transports", "tcp,udp", "-n", "10"])
    assert result.exit_code == 0, result.output
    table = table_rows(result.stdout)
    assert set(table) == {("tcp", "echo"), ("tcp", "sum"), ("udp", "echo"), ("udp", "sum")}
    for row in table.values():
        assert row["sent"] == row["delivered"] == 10


def test_compare_unwritable_json_file_exits_1(netlab_dir: Path) -> None:
    result = invoke(["compare", "--transports", "tcp", "--services", "sum", "-n", "1",
                     "--json-file", str(netlab_dir / "no-such-dir" / "c.json")])
    assert result.exit_code == 1, result.output
    assert "cannot write" in result.output
    assert_no_traceback(result)


# -- behaving like students' clients, against the framings ----------------------------


def test_send_without_newline_times_out_saying_why() -> None:
    with server_thread("sum", "tcp:127.0.0.1:0") as address:
        result = invoke(["send", "-t", address, "--no-newline", "--timeout", "3", "2 3"])
    assert result.exit_code == 1, result.output
    assert_no_traceback(result)
    assert "no reply" in result.output and "without a line ending" in flat(result.output)


def test_send_without_newline_half_closed_gets_its_reply() -> None:
    with server_thread(SumService(framing="eof"), "tcp:127.0.0.1:0") as address:  # type: ignore[arg-type]
        result = invoke(["send", "-t", address, "--no-newline", "--half-close", "2 3"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "5\n"


def test_send_without_newline_to_quiet_framing() -> None:
    with server_thread(SumService(framing="quiet", accept="lenient"), "tcp:127.0.0.1:0") as address:  # type: ignore[arg-type]
        result = invoke(["send", "-t", address, "--no-newline", "2,3"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "5\n"


def test_chat_without_newlines_merges_the_lines() -> None:
    """Each line without its newline: the server reads one request, '1 23 4' (at end of stream)."""
    with server_thread("sum", "tcp:127.0.0.1:0") as address:
        result = invoke(["chat", "-t", address, "--no-newline", "--timeout", "3"], input="1 2\n3 4\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == "ERR expected two numbers, got 3\n"


def test_chat_without_half_close_waits_its_timeout() -> None:
    with server_thread("sum", "tcp:127.0.0.1:0") as address:
        result = invoke(["chat", "-t", address, "--no-half-close", "--timeout", "0.5"], input="1 2\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == "3\n"


@pytest.mark.process
def test_serve_states_the_framing_and_hints(netlab_process) -> None:
    """The real process: the startup line names the framing; a plain socket client that
    sends no newline waits, and the server's stderr says why."""
    server = netlab_process("serve", "-t", "tcp:127.0.0.1:0", "-s", "sum")
    assert "service=sum  framing=line accept=strict  requested=" in server.first_line
    host, port = server.listening.removeprefix("tcp:").rsplit(":", 1)
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"2 3")
        line = read_stderr_line(server.proc, timeout=10)
        assert f"tcp:127.0.0.1:{sock.getsockname()[1]} began a request" in line, line
        assert "end the request with \\n, or serve with --framing quiet" in line
        sock.sendall(b"\n")
        sock.settimeout(10)
        assert sock.recv(100) == b"5\n"
    quiet = netlab_process("serve", "-t", "tcp:127.0.0.1:0", "-s", "sum", "--framing", "quiet:150",
                           "--accept", "lenient")
    assert "framing=quiet:150 accept=lenient" in quiet.first_line
    host, port = quiet.listening.removeprefix("tcp:").rsplit(":", 1)
    with socket.create_connection((host, int(port))) as sock:
        sock.settimeout(10)
        sock.sendall(b'["2", "3"]')
        assert sock.recv(100) == b"5\n"
    udp = netlab_process("serve", "-t", "udp:127.0.0.1:0", "-s", "sum", "--accept", "lenient")
    assert "service=sum  accept=lenient  requested=" in udp.first_line  # no framing on datagrams


def read_stderr_line(proc, timeout: float) -> str:
    """The next line the process writes to stderr, waiting at most `timeout` s."""
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(proc.stderr, selectors.EVENT_READ)
        assert selector.select(timeout), f"nothing on stderr within {timeout} s"
    return proc.stderr.readline()
