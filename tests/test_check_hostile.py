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
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import trio
from helpers import assert_no_traceback, invoke

from netlab.check import CheckSettings, check_client, check_server, junit
from netlab.check.context import CaseContext
from netlab.check.conversation import KEEP, converse
from netlab.check.isolate import isolation
from netlab.check.judge import RequestFormat, printed_answer, sum_matches
from netlab.check.procnet import parse_unix_table, unix_diag, unix_listening
from netlab.errors import UsageError
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


@pytest.mark.process
@pytest.mark.parametrize("isolated", MODES)
async def test_a_reply_of_1e1000000_fails_the_case_and_the_check_goes_on(isolated: bool) -> None:
    report = await check_server(run=hostile("overflow_reply", "0"),
                                settings=CheckSettings(timeout=2.0, namespaces=isolated,
                                                       only=("sum.small", "sum.decimal", "framing")))
    assert [c.outcome for c in report.cases] == ["fail"] * 4, report.cases
    assert "1e1000000" in detail(report, "sum.small")


@pytest.mark.process
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


@pytest.mark.process
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


@pytest.mark.process
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


@pytest.mark.process
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


@pytest.mark.process
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


@pytest.mark.process
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


@pytest.mark.process
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


# -- 5. programs outlived the check -----------------------------------------------------------------


def _grows(marker: Path, netlab: subprocess.Popen[bytes], deadline: float = 120.0) -> None:
    """Wait until the program has written to `marker` (it runs)."""
    end = time.monotonic() + deadline
    while not (marker.exists() and marker.stat().st_size > 5):
        if netlab.poll() is not None:
            out, err = netlab.communicate()
            raise AssertionError(f"netlab ended first ({netlab.returncode}): {out!r} {err!r}")
        assert time.monotonic() < end, "the program never started"
        time.sleep(0.05)


def _stops(marker: Path, deadline: float = 20.0) -> None:
    """Wait until `marker` has stopped growing for half a second (the program is gone)."""
    end = time.monotonic() + deadline
    while True:
        size = marker.stat().st_size
        time.sleep(0.5)
        if marker.stat().st_size == size:
            return
        assert time.monotonic() < end, "the program outlived netlab"


@pytest.mark.process
@pytest.mark.parametrize("isolated", MODES)
@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "Ctrl-C twice", "SIGKILL"])
def test_netlab_stopped_by_a_signal_stops_the_program_first(tmp_path: Path, isolated: bool, how: str) -> None:
    if how == "SIGKILL" and not isolated:
        pytest.skip("on the host nothing outlives a SIGKILLed netlab to clean up (the README says so)")
    marker = tmp_path / "beat"
    program = hostile("heartbeat", "50000" if isolated else "0", str(marker), "stubborn")
    args = [PYTHON, "-m", "netlab", "check", "--run", program, "--case", "resources.idle_cpu", "--idle-window", "60",
            "--timeout", "60"] + ([] if isolated else ["--no-namespaces"])
    private = tmp_path / "tmp"  # netlab's temporary directory: the programs' private directories go there
    private.mkdir(mode=0o1777)
    private.chmod(0o1777)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            cwd=tmp_path, env=dict(os.environ, TMPDIR=str(private)))
    try:
        _grows(marker, proc)
        if how == "SIGKILL":
            proc.kill()  # netlab cannot clean up: its isolated child does
            proc.wait()
            _stops(marker)
            _empties(private)
            return
        if how == "Ctrl-C twice":
            proc.send_signal(signal.SIGINT)
            time.sleep(0.3)  # while netlab stops the program (it ignores SIGTERM: a second of grace)
            proc.send_signal(signal.SIGINT)
        else:
            proc.send_signal(getattr(signal, how))
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # the test failed on the way: stop netlab as gently (it stops the program)
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130, err
    if how != "Ctrl-C twice":
        assert f"stopped by {how}" in err.decode(), err
    assert b"Traceback" not in err, err
    _stops(marker)
    assert os.listdir(private) == []


def _empties(folder: Path, deadline: float = 20.0) -> None:
    """Wait until `folder` is empty."""
    end = time.monotonic() + deadline
    while os.listdir(folder):
        assert time.monotonic() < end, os.listdir(folder)
        time.sleep(0.1)


@pytest.mark.process
@pytest.mark.parametrize("isolated", MODES)
async def test_the_checkers_own_defences_are_not_the_programs(isolated: bool) -> None:
    """The isolated checker is deaf to the program's signals; the program must not inherit
    that: a server that does not ignore SIGTERM stops on it, and nothing is to clean up."""
    report = await check_server(run=student("sum_server", "50000" if isolated else "0"), settings=CheckSettings(
        timeout=2.0, namespaces=isolated, only=("connect", "sum.small")))
    assert report.outcome("sum.small") == "pass" and report.cleanup == [], (report.cases, report.cleanup)


@pytest.mark.process
@pytest.mark.parametrize("isolated", MODES)
async def test_a_check_cut_short_leaves_no_private_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             isolated: bool) -> None:
    private = tmp_path / "tmp"
    private.mkdir()
    private.chmod(0o1777)
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    monkeypatch.setenv("TMPDIR", str(private))  # the isolated child's too
    with trio.CancelScope() as scope:

        def progress(what: str, done: int, total: int) -> None:
            if what == "sum.small":  # the program is up, in its private directories: stop here
                scope.cancel()

        await check_server(run=student("sum_server", "50000" if isolated else "0"), progress=progress,
                           settings=CheckSettings(timeout=3.0, namespaces=isolated, only=("connect", "sum.small")))
    assert scope.cancelled_caught
    assert os.listdir(private) == []


@pytest.mark.process
@pytest.mark.skipif(not ISOLATED, reason="only an isolated check ends what leaves the process group")
async def test_a_helper_in_namespaces_of_its_own_ends_with_the_check(tmp_path: Path) -> None:
    marker = tmp_path / "nested"
    report = await check_server(run=hostile("nested_namespace", "50000", str(marker)),
                                settings=CheckSettings(timeout=3.0, only=("connect", "sum.small")))
    assert report.outcome("sum.small") == "pass", report.cases
    if not marker.exists():
        pytest.skip("the program could not make a user namespace of its own here")
    _stops(marker)
    assert any("left the program's process group" in line for line in report.cleanup), report.cleanup


# -- 6. limits, named when hit -----------------------------------------------------------------------

LIMIT_WORDS = {"stdout": "64 MiB on stdout", "fork": "processes and threads", "memory": "out of memory",
               "files": "file descriptors"}


@pytest.mark.process
@pytest.mark.parametrize("isolated", MODES)
@pytest.mark.parametrize("mode", sorted(LIMIT_WORDS))
async def test_each_limit_a_program_hits_is_named_in_the_report(isolated: bool, mode: str) -> None:
    report = await check_server(run=hostile("limits", mode, "50000" if isolated else "0"), settings=CheckSettings(
        timeout=3.0, namespaces=isolated, only=("connect", "sum.small")))
    assert any(LIMIT_WORDS[mode] in line for line in report.limits), (report.limits, report.cases)
    assert report.as_json()["limits"] == report.limits
    if mode != "stdout":  # the others run on after their limit (stdout's is a SIGXFSZ)
        assert report.outcome("sum.small") == "pass", report.cases


# -- 7. submissions tampered with each other and with the report -------------------------------------


def _class(tmp_path: Path) -> tuple[Path, Path, Path, Path, Path, Path]:
    """A class folder (alice: tamper.py, bob: a good server), a drop box the attacker may
    write, an output folder anyone may write (like /tmp: sticky), and a victim file."""
    klass = tmp_path / "class"
    (klass / "alice").mkdir(parents=True)
    (klass / "bob").mkdir()
    alice, bob = klass / "alice" / "server.py", klass / "bob" / "server.py"
    alice.write_text((HOSTILE / "tamper.py").read_text())
    bob.write_text((STUDENTS / "sum_server.py").read_text())
    drop, out = tmp_path / "drop", tmp_path / "out"
    drop.mkdir(mode=0o777)
    drop.chmod(0o777)
    out.mkdir()
    out.chmod(0o1777)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    return klass, alice, bob, drop, out, victim


@pytest.mark.process
@pytest.mark.parametrize("isolated", MODES)
def test_a_submission_cannot_touch_another_nor_the_report(tmp_path: Path, isolated: bool) -> None:
    klass, alice, bob, drop, out, victim = _class(tmp_path)
    original = bob.read_bytes()
    port = "50000" if isolated else "0"
    shown = invoke(["check", "--run", f"{PYTHON} {{}} {port} {drop} {klass} {out} {victim}", str(alice), str(bob),
                    "--case", "connect", "--case", "sum.small", "--timeout", "3", "--json",
                    "--junit", str(out / "grades.xml"), "--csv", str(out / "grades.csv")]
                   + ([] if isolated else ["--no-namespaces"]))
    assert_no_traceback(shown)
    tried = json.loads((drop / "tamper.json").read_text())
    document = json.loads(shown.stdout)  # nothing but netlab's JSON on its stdout
    assert tried["sibling"] != "ok", tried  # a private copy: there is no ../bob beside it
    if ROOT:  # as a normal user the program runs as you, and can write your files (the README says so)
        assert tried["class"] != "ok", tried
        assert bob.read_bytes() == original
        assert [s["summary"]["pass"] for s in document["submissions"]] == [2, 2], document
    assert victim.read_text() == "precious\n" and not (out / "grades.csv").is_symlink()
    assert (out / "grades.csv").read_text().startswith("submission,")
    assert ET.parse(out / "grades.xml").getroot().tag == "testsuites"
    opened = [key for key, value in tried.items() if key.startswith("/proc/") and value == "ok"]
    assert not opened, tried
    assert tried["environ"] != "ok" and tried["mem"] != "ok", tried


def test_outputs_are_written_by_rename_never_through_a_planted_link(tmp_path: Path) -> None:
    from netlab.output import write_text

    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    target = tmp_path / "grades.xml"
    target.symlink_to(victim)
    write_text(target, "<testsuites/>\n")
    assert victim.read_text() == "precious\n"
    assert not target.is_symlink() and target.read_text() == "<testsuites/>\n"


# -- 8. root, and the grader's secrets -----------------------------------------------------------------


@pytest.mark.process
@pytest.mark.parametrize("isolated", MODES)
async def test_a_program_gets_no_secret_and_as_root_no_root(tmp_path: Path, isolated: bool,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETLAB_TEST_TOKEN", "hunter2")
    monkeypatch.setenv("NETLAB_TEST_PASSED", "given")
    drop = tmp_path / "drop"
    drop.mkdir()
    drop.chmod(0o777)
    report = await check_server(run=hostile("reads_secrets", "50000" if isolated else "0", str(drop)),
                                settings=CheckSettings(timeout=3.0, namespaces=isolated, env=("NETLAB_TEST_PASSED",),
                                                       only=("connect", "sum.small")))
    assert report.outcome("sum.small") == "pass", report.cases
    seen = json.loads((drop / "secrets.json").read_text())
    assert "hunter2" not in json.dumps(seen["env"]), seen["env"]
    assert set(seen["env"]) <= {"PATH", "HOME", "LANG", "TERM", "PYTHONUNBUFFERED", "NETLAB_TEST_PASSED"}, seen
    assert seen["env"]["NETLAB_TEST_PASSED"] == "given"
    assert seen["env"]["HOME"] != os.environ.get("HOME")
    if ROOT:
        assert seen["uid"] != 0 and seen["euid"] != 0 and seen["shadow"] is None, seen
        assert "ran as uid" in report.isolation, report.isolation


def test_who_a_program_runs_as(monkeypatch: pytest.MonkeyPatch) -> None:
    from netlab.check.sandbox import RunAs, for_submission, resolve_user

    monkeypatch.setenv("SUDO_UID", "4242")
    monkeypatch.setenv("SUDO_GID", "4343")
    monkeypatch.setenv("SUDO_USER", "alice")
    if ROOT:
        assert resolve_user(None, isolation_mode="root", folder=False) == RunAs(4242, 4343, "alice (who ran sudo)")
        assert resolve_user(None, isolation_mode="root", folder=True) is None  # an unused uid per submission
        taken: set[int] = set()
        first, second = for_submission(None, taken), for_submission(None, taken)
        assert first.uid != second.uid and first.uid not in (None, 0) and len(taken) == 2
        assert resolve_user("nobody", isolation_mode="root", folder=True).name.startswith("nobody")
        assert resolve_user("root", isolation_mode="root", folder=False).uid is None
        with pytest.raises(UsageError, match="no such user"):
            resolve_user("no-such-user-here", isolation_mode="root", folder=False)
    else:
        assert resolve_user(None, isolation_mode="user", folder=True) == RunAs(drop_caps=True)
        with pytest.raises(UsageError, match="needs root"):
            resolve_user("nobody", isolation_mode="user", folder=False)
    env = RunAs(env=("EXTRA",)).environment("/home/x", {"PATH": "/bin", "TOKEN": "s3cret", "EXTRA": "1", "HOME": "/r"})
    assert env == {"PATH": "/bin", "LANG": "C.UTF-8", "TERM": "dumb", "EXTRA": "1", "HOME": "/home/x",
                   "PYTHONUNBUFFERED": "1"}


# -- 9. templates ---------------------------------------------------------------------------------------


def test_a_template_is_split_without_a_shell_and_a_path_is_one_word() -> None:
    from netlab.check.command import Command

    path = "/subs/$(touch X) `id`;rm -rf ~/.py"
    assert Command.parse('python3 "{}"', path).argv == ("python3", path)
    assert Command.parse("python3 {} 0", path).argv == ("python3", path, "0")
    assert Command.parse("python3 -m x --file={}", path).argv == ("python3", "-m", "x", "--file=" + path)
    shell = Command.parse("cd /tmp && python3 '{}' 0 | tee log", path)
    assert shell.argv == ("/bin/sh", "-c", 'cd /tmp && python3 "$1" 0 | tee log', "sh", path)
    assert Command.parse("exec python3 {}", path).argv == ("/bin/sh", "-c", 'exec python3 "$1"', "sh", path)
    for code in ("sh -c 'python3 {}'", "python3 -c \"exec(open('{}').read())\"", 'cd x && sh -c "python3 {}"',
                 'python3 "{}'):
        with pytest.raises(UsageError, match="inside the word"):
            Command.parse(code, path)
    with pytest.raises(UsageError, match="into words"):
        Command.parse('python3 "x', path)


@pytest.mark.process
def test_a_shell_template_passes_the_path_as_data(tmp_path: Path) -> None:
    from netlab.check.command import Command

    path = str(tmp_path / "$(touch INJECTED)`touch INJECTED2`.py")
    argv = Command.parse('echo {} > out.txt && echo "{}" >> out.txt', path).argv
    subprocess.run(argv, cwd=tmp_path, check=True)
    assert (tmp_path / "out.txt").read_text() == f"{path}\n{path}\n"
    assert not (tmp_path / "INJECTED").exists() and not (tmp_path / "INJECTED2").exists()


@pytest.mark.process
@pytest.mark.parametrize("template", ['{python} "{{}}" {port}', "{python} {{}} {port}", "exec {python} {{}} {port}"])
def test_a_file_named_like_a_command_is_checked_not_run(tmp_path: Path, template: str) -> None:
    folder = tmp_path / "sub"
    folder.mkdir()
    server = folder / "$(touch INJECTED).py"
    server.write_text((STUDENTS / "sum_server.py").read_text())
    shown = invoke(["check", "--run", template.format(python=PYTHON, port="50000" if ISOLATED else "0"), str(server),
                    "--case", "sum.small", "--timeout", "3"] + ([] if ISOLATED else ["--no-namespaces"]))
    assert_no_traceback(shown)
    assert shown.exit_code == 0, shown.output
    assert not (folder / "INJECTED").exists() and not (Path.cwd() / "INJECTED").exists()


# -- 10. clients judged on the connection that carried the request -------------------------------------


@pytest.mark.process
async def test_a_client_that_probes_first_is_judged_on_its_request() -> None:
    listen = "tcp:127.0.0.1:50000" if ISOLATED else f"tcp:127.0.0.1:{_free_port()}"
    port = listen.rpartition(":")[2]
    report = await check_client(hostile("probing_client", "127.0.0.1", port, "12", "30"), listen,
                                CheckSettings(timeout=3.0, only=("client.plain", "client.split_reply",
                                                                 "client.slow_reply", "client.request_end")))
    assert [c.outcome for c in report.cases] == ["pass"] * 4, report.cases


# -- 11. smaller ones ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["check", "--run", "x", "--timeout", "inf"],
                                  ["check", "--run", "x", "--startup", "inf"],
                                  ["check", "--run", "x", "--idle-window", "nan"],
                                  ["send", "tcp:127.0.0.1:9", "x", "--timeout", "inf"],
                                  ["relay", "--listen", "tcp:127.0.0.1:0", "--to", "tcp:127.0.0.1:9", "--delay", "inf"],
                                  ["relay", "--listen", "tcp:127.0.0.1:0", "--to", "tcp:127.0.0.1:9", "--delay", "nan"],
                                  ["relay", "--listen", "tcp:127.0.0.1:0", "--to", "tcp:127.0.0.1:9", "--jitter", "inf"]])
def test_infinite_and_nan_durations_are_usage_errors(args: list[str]) -> None:
    shown = invoke(args)
    assert_no_traceback(shown)
    assert shown.exit_code == 2, shown.output
    assert "finite" in shown.output or "greater than" in shown.output, shown.output


def test_check_settings_refuse_what_never_ends() -> None:
    for bad in (float("inf"), float("nan"), 0.0, -1.0):
        with pytest.raises(UsageError, match="finite"):
            CheckSettings(timeout=bad)
        with pytest.raises(UsageError, match="finite"):
            CheckSettings(startup=bad)


async def test_a_plain_tcp_client_at_a_tls_port_is_told_at_once(netlab_server) -> None:
    server = await netlab_server("sum", "tls:127.0.0.1:0")
    port = server.address.port
    with socket.create_connection(("127.0.0.1", port), timeout=30) as plain:
        plain.sendall(b"2 3\n")
        reply = await trio.to_thread.run_sync(plain.recv, 1024)
    assert reply.startswith(b"ERR") and b"TLS" in reply, reply


async def test_a_request_through_a_relay_that_loses_everything_times_out(netlab_server, netlab_relay,
                                                                         autojump_clock) -> None:
    from netlab.errors import TimeoutError as NetlabTimeout
    from netlab.runner import REQUEST_TIMEOUT, open_client

    server = await netlab_server("sum", "udp:127.0.0.1:0")
    relay = await netlab_relay(server, loss=1.0)
    async with open_client(relay.address, "sum") as client:
        started = trio.current_time()
        with pytest.raises(NetlabTimeout):
            await client.request(b"2 3")
    assert trio.current_time() - started == pytest.approx(REQUEST_TIMEOUT, abs=1.0)
