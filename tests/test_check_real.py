"""netlab check against programs written as first-week students write them (tests/students/real/).

Unlike tests/students/, these take no port argument: each hard-codes 50000, as 24 of 25 real
submissions do, sets no SO_REUSEADDR (but one), prints for debugging, and has the one real
bug its docstring names. What these tests require (issue 18):

- each program checked alone gets the verdicts its bug deserves: the failing case ids, and
  the key words of their sentences (never whole sentences);
- a folder of them graded in any order, or in parallel, gives each submission exactly the
  case outcomes it gets checked alone (the TIME_WAIT one program leaves on port 50000 must
  not poison the next, or its own restart);
- nothing a checked program starts outlives its check (a daemon that setsid()s, a server
  that ignores SIGTERM);
- a dead server is reported as a death, a stuck one as stuck, fixed text as the bytes it is;
- real clients (logging on stderr as the course skeleton asks, printing in pieces, sending no
  newline) get the verdicts they deserve.

"Checked alone" means with nothing on port 50000 on this machine beforehand: `quiet_port`
waits (up to a TIME_WAIT's 60 s) for the host's port to clear. Once every program runs in a
network namespace of its own, nothing is ever left on the host's port and that wait is none.
Everything here uses port 50000, so the checks run one after another, never at once.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio

from netlab.check import CheckReport, CheckSettings, check_client, check_server, grade, select_cases
from netlab.check.run import submission_command

#: every test here starts a process (`make test-quick` leaves them out)
pytestmark = pytest.mark.process

REAL = Path(__file__).parent / "students" / "real"
PORT = 50000
TEMPLATE = f"{sys.executable} {{}}"
SETTINGS = CheckSettings(timeout=2.0, idle_window=0.5)
#: TIME_WAIT lasts 60 s on Linux: longer than that, and something else holds the port
QUIET_LIMIT = 70.0

#: the folder graded: server -> {case it must fail: words its sentence must hold}. Listed so
#: that reuse_server (SO_REUSEADDR) comes right after sum_server (none): Linux refused it the
#: port while sum_server's TIME_WAIT remained.
EXPECTED: dict[str, dict[str, str]] = {
    "sum_server": {"clients.concurrent": "one client at a time"},
    "reuse_server": {},
    "crashes_on_decimal": {"sum.decimal": "ValueError", "clients.concurrent": "one client at a time",
                           "survives.bad_input": "ValueError", "survives.disconnect": "ValueError"},
    "one_client": {"clients.sequential": "stopped accepting", "clients.concurrent": "",
                   "survives.bad_input": "one client", "survives.disconnect": "one client"},
    "stderr_logger": {"clients.concurrent": "one client at a time", "reach.interfaces": "loopback only"},
}
FOLDER = list(EXPECTED)


# -- the host's port 50000 and the processes a program left ---------------------------------------


def port_states(port: int = PORT) -> list[str]:
    """The TCP states (hex, as /proc/net/tcp writes them: 0A listen, 06 TIME_WAIT) of every
    socket on this machine's network namespace whose local port is `port`."""
    states = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and int(fields[1].rpartition(":")[2], 16) == port:
                states.append(fields[3])
    return states


async def quiet_port(port: int = PORT) -> None:
    """Wait until nothing on this machine uses `port` (a TIME_WAIT clears within 60 s); go on
    after `QUIET_LIMIT` whatever holds it (the test then says what went wrong)."""
    with trio.move_on_after(QUIET_LIMIT):
        while port_states(port):
            await trio.sleep(0.2)


def processes_running(path: Path) -> list[int]:
    """The pids of the processes whose command line names `path` (a PID namespace hides
    nothing from the host's /proc)."""
    found = []
    needle = str(path).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if needle in f.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


async def heartbeat_goes_on(marker: Path, within: float = 1.0) -> bool:
    """Whether a program still rewrites `marker` (it does every 0.1 s while it runs)."""
    def seen() -> tuple[float, bytes]:
        try:
            return marker.stat().st_mtime, marker.read_bytes()
        except OSError:
            return 0.0, b""

    first = seen()
    with trio.move_on_after(within):
        while seen() == first:
            await trio.sleep(0.05)
        return True
    return False


def copy_in(folder: Path, name: str, as_name: str | None = None) -> Path:
    """tests/students/real/NAME.py copied to FOLDER/NAME/AS_NAME (a class folder: each
    student's file in a directory of its own, run from there)."""
    target = folder / name / (as_name or f"{name}.py")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REAL / f"{name}.py", target)
    return target


def outcomes(report: CheckReport) -> dict[str, str]:
    return {c.id: c.outcome for c in report.cases}


def shown(report: CheckReport) -> str:
    return "\n".join(f"  {c.id}: {c.outcome}: {c.detail}" for c in report.cases)


async def check_alone(path: Path, settings: CheckSettings = SETTINGS, **extra: Any) -> CheckReport:
    """`path` checked as ``--run TEMPLATE`` would check it in a folder, with the port quiet first."""
    await quiet_port()
    command, cwd = submission_command(TEMPLATE, str(path))
    return await check_server(run=command, cwd=cwd, settings=settings, **extra)


def mismatches(graded: Sequence[tuple[str, CheckReport]], alone: dict[str, CheckReport],
               names: dict[str, str]) -> list[str]:
    """Each graded submission's case outcomes that differ from checking it alone."""
    problems = []
    for submission, report in graded:
        name = names[submission]
        want, got = outcomes(alone[name]), outcomes(report)
        if got != want:
            details = {c.id: c.detail for c in report.cases}
            order = [c.id for c in alone[name].cases] + [c for c in got if c not in want]
            problems += [f"{name}: {case}: alone {want.get(case)}, graded {got.get(case)}: {details.get(case, '')}"
                         for case in order if want.get(case) != got.get(case)]
    return problems


# -- the folder, each server checked alone -----------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A class folder: each server as STUDENT/sum_server.py, as it was handed in."""
    root = tmp_path_factory.mktemp("class")
    return {name: copy_in(root, name, "sum_server.py") for name in FOLDER}


@pytest.fixture(scope="module")
def alone(folder: dict[str, Path]) -> dict[str, CheckReport]:
    """Each server of the folder checked alone, one after another."""
    reports: dict[str, CheckReport] = {}

    async def main() -> None:
        for name in FOLDER:
            reports[name] = await check_alone(folder[name])

    trio.run(main)
    return reports


@pytest.mark.parametrize("name", FOLDER)
def test_each_server_alone_gets_the_verdicts_its_bug_deserves(alone: dict[str, CheckReport], name: str) -> None:
    report = alone[name]
    wanted = EXPECTED[name]
    failed = {c.id: c.detail for c in report.cases if c.outcome == "fail"}
    assert set(failed) == set(wanted), shown(report)
    for case_id, words in wanted.items():
        assert words in failed[case_id], shown(report)


def test_a_dead_server_is_reported_as_a_death(alone: dict[str, CheckReport]) -> None:
    """crashes_on_decimal dies of ValueError (int('0.1')); it never closes its listening socket
    any other way, so no sentence may say it did."""
    report = alone["crashes_on_decimal"]
    decimal = next(c for c in report.cases if c.id == "sum.decimal")
    assert decimal.outcome == "fail" and "ValueError" in decimal.detail and "int()" in decimal.detail, shown(report)
    assert not [c.id for c in report.cases if "closed its listening socket" in c.detail], shown(report)


def test_restart_case_teaches_so_reuseaddr(alone: dict[str, CheckReport]) -> None:
    """The restart case (issue 18, item 2): a server without SO_REUSEADDR gets the lesson, as a
    warning; one with it passes."""
    (case_id,) = [c.id for c in select_cases("sum", "assignment") if "restart" in c.id]
    without = next(c for c in alone["sum_server"].cases if c.id == case_id)
    assert without.outcome == "warn", shown(alone["sum_server"])
    assert "TIME_WAIT" in without.detail and "SO_REUSEADDR" in without.detail, without.detail
    assert alone["reuse_server"].outcome(case_id) == "pass", shown(alone["reuse_server"])


# -- the folder graded ---------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["listed", "reversed"])
async def test_grading_a_folder_in_any_order_gives_each_its_verdicts_alone(
        folder: dict[str, Path], alone: dict[str, CheckReport], order: str) -> None:
    names = FOLDER if order == "listed" else FOLDER[::-1]
    submissions = [str(folder[name]) for name in names]
    await quiet_port()
    graded = await grade(TEMPLATE, submissions, SETTINGS)
    assert [s for s, _ in graded] == submissions
    problems = mismatches(graded, alone, {str(folder[name]): name for name in names})
    assert not problems, "\n".join(problems)


async def test_grading_in_parallel_gives_each_its_verdicts_alone(folder: dict[str, Path],
                                                                 alone: dict[str, CheckReport]) -> None:
    submissions = [str(folder[name]) for name in FOLDER]
    await quiet_port()
    graded = await grade(TEMPLATE, submissions, SETTINGS, jobs=2)
    assert [s for s, _ in graded] == submissions  # rows in submission order, whoever finished first
    problems = mismatches(graded, alone, {str(folder[name]): name for name in FOLDER})
    assert not problems, "\n".join(problems)


# -- programs that outlive their check ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["daemonizes", "ignores_sigterm"])
async def test_nothing_a_program_starts_outlives_its_check(tmp_path: Path, name: str) -> None:
    """daemonizes forks, its parent exits and the child setsid()s away from the process group
    holding port 50000; ignores_sigterm prints on SIGTERM and runs on. Both rewrite
    server.alive every 0.1 s while they run."""
    path = copy_in(tmp_path, name)
    marker = path.parent / "server.alive"
    try:
        await check_alone(path, CheckSettings(timeout=2.0, only=("connect", "sum.small")))
        left = processes_running(path)
        beating = await heartbeat_goes_on(marker)
        listening = "0A" in port_states()
        assert (left, beating, listening) == ([], False, False), \
            f"after the check: processes {left}, heartbeat going on: {beating}, port {PORT} listening: {listening}"
    finally:
        for pid in processes_running(path):  # what the check left must not poison the next test
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# -- sentences that must not send a student the wrong way ----------------------------------------------


#: a server stuck spinning: its service, and the few cases it is checked with (each costs its
#: timeout, and a core); idle_cpu must fail with "busy loop", every other case that fails must
#: name the server stuck, and none suggest --request (a usage error for echo, no help for sum)
STUCK = {
    "spins_on_empty": ("sum", ("connect", "sum.small", "clients.sequential", "input.bad", "resources.idle_cpu")),
    "echo_spins": ("echo", ("connect", "echo.small", "echo.binary", "resources.idle_cpu")),
}


@pytest.mark.parametrize("name", list(STUCK))
async def test_a_stuck_server_is_named_stuck(tmp_path: Path, name: str) -> None:
    """Both spin on recv() == b'' after the checker's first connection, at 100 % CPU, and never
    accept again."""
    service, only = STUCK[name]
    report = await check_alone(copy_in(tmp_path, name), CheckSettings(service=service, timeout=2.0, idle_window=0.5,
                                                                    only=only))
    failed = {c.id: c.detail for c in report.cases if c.outcome == "fail"}
    assert set(failed) == set(only) - {"connect"}, shown(report)
    assert "busy loop" in failed.pop("resources.idle_cpu")
    assert all("stuck" in detail for detail in failed.values()), shown(report)
    assert not any("--request" in c.detail for c in report.cases), shown(report)


async def test_fixed_text_is_shown_as_the_bytes_that_came_back(tmp_path: Path) -> None:
    """fixed_text answers every message with b'YES, received'."""
    report = await check_alone(copy_in(tmp_path, "fixed_text"), CheckSettings(service="echo", timeout=2.0,
                                                                            idle_window=0.5))
    small = next(c for c in report.cases if c.id == "echo.small")
    assert small.outcome == "fail" and "YES, received" in small.detail, shown(report)
    assert not any("decoding" in c.detail for c in report.cases), shown(report)
    assert not any("--request" in c.detail for c in report.cases), shown(report)


async def test_a_server_reading_stdin_without_input_is_told_so(tmp_path: Path) -> None:
    report = await check_alone(copy_in(tmp_path, "asks_host"), CheckSettings(timeout=2.0, only=("connect",)))
    assert report.failed == ["connect"]
    assert "EOFError" in report.cases[0].detail, shown(report)


async def test_a_server_reading_stdin_is_checked_with_the_input_given(tmp_path: Path) -> None:
    settings = CheckSettings(timeout=2.0, only=("connect", "sum.small", "clients.sequential"))
    report = await check_alone(copy_in(tmp_path, "asks_host"), settings, stdin=b"0.0.0.0\n")
    assert report.failed == [], shown(report)


# -- clients ----------------------------------------------------------------------------------------


MESSAGE = "hello netlab, a message of some length"
#: client -> (service, arguments, the cases it must fail)
CLIENTS: dict[str, tuple[str, list[str], set[str]]] = {
    "echo_client_stderr": ("echo", [MESSAGE], {"client.no_reply"}),  # no timeout, like the skeleton
    "echo_client_pieces": ("echo", [MESSAGE], set()),
    "echo_client_never_reads": ("echo", [MESSAGE], {"client.plain", "client.split_reply", "client.slow_reply"}),
    "sum_client_no_newline": ("sum", ["12", "30"], set()),
}


@pytest.fixture(scope="module")
def client_reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, CheckReport]]:
    root = tmp_path_factory.mktemp("clients")
    reports: dict[str, CheckReport] = {}

    async def main() -> None:
        for name, (service, args, _) in CLIENTS.items():
            path = copy_in(root, name)
            command = " ".join([sys.executable, str(path), *(f"'{a}'" for a in args)])
            await quiet_port()
            reports[name] = await check_client(command, f"tcp:127.0.0.1:{PORT}",
                                               CheckSettings(service=service, timeout=3.0), cwd=str(path.parent))

    trio.run(main)
    yield reports


@pytest.mark.parametrize("name", list(CLIENTS))
def test_each_client_gets_the_verdicts_it_deserves(client_reports: dict[str, CheckReport], name: str) -> None:
    report = client_reports[name]
    assert set(report.failed) == CLIENTS[name][2], shown(report)


def test_a_client_without_timeout_is_named(client_reports: dict[str, CheckReport]) -> None:
    report = client_reports["echo_client_stderr"]
    assert "no timeout" in next(c.detail for c in report.cases if c.id == "client.no_reply"), shown(report)


def test_a_client_sending_no_newline_is_warned(client_reports: dict[str, CheckReport]) -> None:
    """It passes with netlab's lenient reference, but a line-framed server (netlab's own, most
    students') waits for ever for the end of its request: some case must say so."""
    report = client_reports["sum_client_no_newline"]
    assert any(c.outcome in ("warn", "fail") and "newline" in c.detail for c in report.cases), shown(report)


async def test_a_client_is_checked_on_the_port_a_server_just_used(tmp_path: Path) -> None:
    """A student's server, then the student's client against netlab's reference on the same
    port 50000: the server's TIME_WAIT must not keep the reference from listening."""
    await check_alone(copy_in(tmp_path, "sum_server"), CheckSettings(timeout=2.0, only=("sum",)))
    client = copy_in(tmp_path, "sum_client_no_newline")
    report = await check_client(f"{sys.executable} {client} 12 30", f"tcp:127.0.0.1:{PORT}",
                                CheckSettings(timeout=3.0, only=("client.plain",)), cwd=str(tmp_path))
    assert report.outcome("client.plain") == "pass", shown(report)
