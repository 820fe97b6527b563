"""netlab check under attack: hostile submissions (tests/hostile/) must never crash the
grading, fake a grade, touch another's files, outlive the check or reach the grader's secrets.

Each test is one attack from issue 21, made into a program (or, where the attacker is another
local user, done by the test itself), and what the report must say instead. Run as root and as
a normal user (``su nobody -s /bin/sh -c '... pytest tests/test_check_hostile.py'``): the tests
that need one or the other say so and skip otherwise. No assertion is about how fast anything
was; where the attack was a cost, the test measures what is kept, not the time.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import trio
from helpers import assert_no_traceback, invoke

from netlab.check import CheckSettings, check_client, check_server, grade, junit
from netlab.check.cases import KEEP, CaseContext, converse
from netlab.check.isolate import isolation
from netlab.check.judge import RequestFormat, printed_answer, sum_matches
from netlab.check.procnet import parse_unix_table, unix_diag, unix_listening
from netlab.transports import parse_address

HOSTILE = Path(__file__).parent / "hostile"
STUDENTS = Path(__file__).parent / "students"
PYTHON = sys.executable
ISOLATED = isolation().available
ROOT = os.geteuid() == 0


def hostile(name: str, *args: str) -> str:
    return " ".join([PYTHON, str(HOSTILE / f"{name}.py"), *args])


def student(name: str, *args: str) -> str:
    return " ".join([PYTHON, str(STUDENTS / f"{name}.py"), *args])


def detail(report, case_id: str) -> str:
    return next(c.detail for c in report.cases if c.id == case_id)


#: each attack on a program netlab starts is tried isolated (where this machine can) and on the host
MODES = [pytest.param(True, id="isolated", marks=pytest.mark.skipif(not ISOLATED, reason="no namespaces here")),
         pytest.param(False, id="host")]


# -- 1. a 10-byte reply crashed the checker ------------------------------------------------------


def test_a_number_beyond_any_exponent_is_judged_not_raised() -> None:
    for reply in (b"1e1000000\n", b"-1e999999999999999999\n", b"1" * 50_000 + b"\n", b"1e-1000000\n"):
        assert not sum_matches(reply, "2", "3")
        assert not sum_matches(reply, "0.1", "0.2")
        assert not printed_answer(reply, b"5\n", [b"2 3\n"], echo=False)
    assert printed_answer(b"1e1000000\n5\n", b"5\n", [b"2 3\n"], echo=False)


@pytest.mark.parametrize("isolated", MODES)
async def test_a_reply_of_1e1000000_fails_the_case_and_the_check_goes_on(isolated: bool) -> None:
    report = await check_server(run=hostile("overflow_reply", "0"),
                                settings=CheckSettings(timeout=2.0, namespaces=isolated,
                                                       only=("sum.small", "sum.decimal", "framing")))
    assert [c.outcome for c in report.cases] == ["fail"] * 4, report.cases
    assert "1e1000000" in detail(report, "sum.small")


async def test_a_client_printing_1e1000000_is_judged_not_raised() -> None:
    listen = "tcp:127.0.0.1:50000" if ISOLATED else f"tcp:127.0.0.1:{_free_port()}"
    port = listen.rpartition(":")[2]
    report = await check_client(hostile("overflow_client", "127.0.0.1", port, "2", "3"), listen,
                                CheckSettings(timeout=3.0, only=("client.plain",)))
    assert report.outcome("client.plain") == "fail", report.cases


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


# -- 2. /proc/net/unix: a name with a newline and a forged row -----------------------------------


def test_proc_net_unix_rows_forged_inside_a_name_are_dropped() -> None:
    real = "0000000000000000: 00000002 00000000 00010000 0001 01 777 /tmp/real.sock"
    forged = ["0000000000000000: 00000002 00000000 00000000 0001 01 555 @x",  # a name holding a newline...
              "0000000000000000: 00000002 00000000 00010000 0001 01 555 /tmp/victim.sock",  # ...and a row
              "0000: 00000002 00000000 zz 0001 01 x y", "not a row", "\udcff\udcfe"]
    found = parse_unix_table([real, *forged])
    assert [(s.inode, s.path) for s in found] == [(777, "/tmp/real.sock")]


def test_sock_diag_reads_a_name_with_a_newline_as_one_name() -> None:
    from hostile.unparsable_unix_row import NAME

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(NAME)
        sock.listen(1)
        inode = os.fstat(sock.fileno()).st_ino
        found = unix_diag()
        if found is None:
            pytest.skip("this kernel has no unix_diag (sock_diag for unix sockets)")
        mine = [s for s in found if s.inode == inode]
        assert len(mine) == 1 and mine[0].path == "@" + NAME[1:].decode("utf-8", "surrogateescape")
        assert all(s.path != "x y" for s in unix_listening())


async def test_any_local_user_binding_a_forged_name_crashes_no_check(netlab_server) -> None:
    """Another user's abstract socket, in the host's namespace, where an address check reads."""
    from hostile.unparsable_unix_row import NAME

    server = await netlab_server("sum", "tcp:127.0.0.1:0")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(NAME)
        sock.listen(1)
        report = await check_server(str(server.address), settings=CheckSettings(
            timeout=2.0, only=("connect", "sum.small", "reach.interfaces")))
        assert report.outcome("sum.small") == "pass", report.cases
        on_host = await check_server(run=student("sum_server", "0"), settings=CheckSettings(
            timeout=2.0, namespaces=False, only=("connect", "sum.small")))
        assert on_host.outcome("sum.small") == "pass", on_host.cases


@pytest.mark.parametrize("isolated", MODES)
async def test_a_forged_row_pointing_at_another_server_gets_no_pass(netlab_server, tmp_path: Path,
                                                                    isolated: bool) -> None:
    victim = Path(f"/tmp/netlab-victim-{os.getpid()}-{isolated:d}.sock")
    victim.unlink(missing_ok=True)
    await netlab_server("sum", f"unix:{victim}")
    try:
        report = await check_server(run=hostile("forged_unix_row", str(victim)), settings=CheckSettings(
            timeout=2.0, startup=2.0, namespaces=isolated, only=("connect", "sum.small")))
    finally:
        victim.unlink(missing_ok=True)
    assert report.outcome("connect") == "fail", report.cases
    assert report.outcome("sum.small") != "pass"
    assert str(victim) not in " ".join(c.detail for c in report.cases)


async def test_with_several_listeners_the_report_says_which_was_tested_and_why(tmp_path: Path) -> None:
    program = tmp_path / "two.py"
    program.write_text(
        "import socket, sys, threading\n"
        "u = socket.socket(socket.AF_UNIX); u.bind('\\0netlab-two-' + sys.argv[1]); u.listen(1)\n"
        "t = socket.create_server(('127.0.0.1', 0))\n"
        "while True:\n"
        "    c, _ = t.accept()\n"
        "    c.sendall(b'5\\n'); c.close()\n")
    report = await check_server(run=f"{PYTHON} {program} {os.getpid()}", settings=CheckSettings(
        timeout=2.0, namespaces=False, only=("connect",)))
    text = detail(report, "connect")
    assert "it listens on 2 sockets" in text and "tested tcp4 127.0.0.1:" in text, text
    assert "tcp, then unix" in text


# -- 3. program output in the report --------------------------------------------------------------


@pytest.mark.parametrize("isolated", MODES)
def test_markup_and_escape_sequences_in_stderr_reach_no_output_raw(tmp_path: Path, isolated: bool) -> None:
    xml, csv = tmp_path / "out.xml", tmp_path / "out.csv"
    args = ["check", "--run", hostile("markup_stderr", "0"), "--case", "sum.small", "--case", "connect",
            "--timeout", "2"] + ([] if isolated else ["--no-namespaces"])
    shown = invoke(args + ["--junit", str(xml), "--csv", str(csv)])
    assert_no_traceback(shown)
    assert shown.exit_code == 1, shown.output
    assert "\x1b" not in shown.output and "\x07" not in shown.output and "\u202e" not in shown.output
    assert "[/b]" in shown.output and "\\x1b]0;owned title" in shown.output, shown.output
    ET.parse(xml)  # parses
    as_json = invoke(args + ["--json"])
    assert_no_traceback(as_json)
    document = json.loads(as_json.output)
    text = json.dumps(document)
    assert "\\u001b" not in text and "\\\\x1b[2J" in text, text


def test_a_submission_path_with_markup_and_escapes_is_shown_as_written(tmp_path: Path) -> None:
    folder = tmp_path / "a[" / "b]\x1b[2J[bold]x"  # the path holds "[/b]", and an escape sequence
    folder.mkdir(parents=True)
    server = folder / "server.py"
    server.write_text((STUDENTS / "sum_server.py").read_text())
    xml = tmp_path / "grades.xml"
    shown = invoke(["check", "--run", f"{PYTHON} {{}} 0", str(server), "--case", "sum.small", "--timeout", "3",
                    "--junit", str(xml), "--no-namespaces"])
    assert_no_traceback(shown)
    assert shown.exit_code == 0, shown.output
    assert "\x1b" not in shown.output and "a[/b]\\x1b[2J[bold]x" in shown.output.replace("\n", ""), shown.output
    assert "\x1b" not in xml.read_text()
    ET.parse(xml)


def test_junit_of_a_folder_parses_whatever_one_submission_printed() -> None:
    from netlab.check import CaseResult, CheckReport

    evil = CheckReport("a\x1b[31m/\x00server.py", "sum", "assignment",
                       cases=[CaseResult("sum.small", "sum", "fail", "died: \x1b[31mred\x1b[0m \x0c \ud800 \x7f", 0.1)])
    good = CheckReport("b/server.py", "sum", "assignment", cases=[CaseResult("sum.small", "sum", "pass", "ok", 0.1)])
    root = ET.fromstring(junit([evil, good]))
    assert len(root.findall("testsuite")) == 2


# -- 4. judging is bounded -------------------------------------------------------------------------


@pytest.mark.parametrize("isolated", MODES)
async def test_endless_numbers_without_a_newline_cost_a_bounded_read(isolated: bool) -> None:
    report = await check_server(run=hostile("endless_zeros", "0"), settings=CheckSettings(
        timeout=2.0, namespaces=isolated, only=("sum.small", "sum.large")))
    for case in report.cases:
        assert case.outcome == "fail" and "without the right reply" in case.detail, case


async def test_a_conversation_keeps_at_most_its_bound(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        listener = (await nursery.start(trio.serve_tcp, _endless, 0, ))[0]
        port = listener.socket.getsockname()[1]
        ctx = CaseContext(parse_address(f"tcp:127.0.0.1:{port}"), CheckSettings(timeout=5.0),
                          RequestFormat("{a} {b}\n"))
        ctx.deadline = trio.current_time() + 30
        conv = await converse(ctx, [b"2 3\n"], lambda got: got.endswith(b"\n"))
        nursery.cancel_scope.cancel()
    assert conv.overflow and len(conv.received) == KEEP


async def _endless(stream: trio.SocketStream) -> None:
    try:
        while True:
            await stream.send_all(b"0 " * 65536)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
