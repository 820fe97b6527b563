"""netlab check runs each program in namespaces of its own: true verdicts whatever ran before,
nothing left running, and the restart case's TIME_WAIT lesson.

The servers here are written the way first-week students write them: port 50000 hard-coded,
no SO_REUSEADDR, one recv, a crash on bad input."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from netlab.check import CheckSettings, check_server, grade
from netlab.check.isolate import isolation

pytestmark = pytest.mark.skipif(not isolation().available,
                                reason=f"needs root or user namespaces ({isolation().detail})")
pytestmark = [pytestmark, pytest.mark.process]  # every test here starts a program

STUDENT = '''
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
{reuse}s.bind(('', 50000))
s.listen(1)
while True:
    conn, addr = s.accept()
    print('connected by', addr)
    data = conn.recv(1024)
    a, b = data.split()
    conn.sendall(str(int(a) + int(b)).encode() + b'\\n')
    conn.close()
'''
REUSE = "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
SETTINGS = CheckSettings(timeout=2.0, startup=10.0)


def _write(folder: Path, name: str, text: str) -> str:
    path = folder / name / "server.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return str(path)


def _outcomes(report) -> dict[str, str]:
    return {c.id: c.outcome for c in report.cases}


async def test_a_crash_costs_one_case_not_the_rest(tmp_path: Path) -> None:
    """No SO_REUSEADDR, closes first, dies on '0.1': on the host its restarts would fail on
    TIME_WAIT; isolated, each crash fails only the case it happened in."""
    report = await check_server(run=f"{sys.executable} {_write(tmp_path, 'a', STUDENT.format(reuse=''))}",
                                settings=SETTINGS)
    assert report.isolation.startswith("isolated")
    outcomes = _outcomes(report)
    assert outcomes["sum.decimal"] == "fail" and "ValueError" in next(
        c.detail for c in report.cases if c.id == "sum.decimal")
    assert "could not restart" not in " ".join(c.detail for c in report.cases)
    assert outcomes["sum.large"] == "pass" and outcomes["close.on_eof"] == "pass"
    assert outcomes["resources.idle_cpu"] == "pass"
    for case in report.cases:  # a death is told as a death, never as a closed listener
        assert "closed its listening socket" not in case.detail, case


async def test_restart_case_teaches_time_wait_and_so_reuseaddr(tmp_path: Path) -> None:
    only = CheckSettings(timeout=2.0, only=("connect", "restart.reuse"))
    without = await check_server(run=f"{sys.executable} {_write(tmp_path, 'a', STUDENT.format(reuse=''))}",
                                 settings=only)
    verdict = next(c for c in without.cases if c.id == "restart.reuse")
    assert verdict.outcome == "warn", verdict
    assert "TIME_WAIT" in verdict.detail and "SO_REUSEADDR" in verdict.detail
    assert "Address already in use" in verdict.detail
    strict = await check_server(run=f"{sys.executable} {_write(tmp_path, 'a', STUDENT.format(reuse=''))}",
                                settings=CheckSettings(timeout=2.0, only=("connect", "restart.reuse"),
                                                       profile="netlab"))
    assert strict.outcome("restart.reuse") == "fail"
    with_reuse = await check_server(run=f"{sys.executable} {_write(tmp_path, 'b', STUDENT.format(reuse=REUSE))}",
                                    settings=only)
    good = next(c for c in with_reuse.cases if c.id == "restart.reuse")
    assert good.outcome == "pass" and "SO_REUSEADDR" in good.detail, good


async def test_on_the_host_the_report_says_so_and_restart_is_skipped(tmp_path: Path) -> None:
    server = _write(tmp_path, "b", STUDENT.format(reuse=REUSE).replace("50000", "0"))
    report = await check_server(run=f"{sys.executable} {server}",
                                settings=CheckSettings(timeout=2.0, namespaces=False,
                                                       only=("connect", "sum.small", "restart.reuse")))
    assert report.isolation.startswith("not isolated")
    assert report.outcome("sum.small") == "pass"
    assert report.outcome("restart.reuse") == "skip"


ESCAPES = '''
import os, socket, sys, time
marker = sys.argv[1]
if os.fork() == 0:
    os.setsid()  # leaves the process group netlab stops
    while True:
        with open(marker, 'a') as f:
            f.write('x')
        time.sleep(0.05)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', 50000))
s.listen(5)
while True:
    conn, _ = s.accept()
    conn.sendall(b'5\\n')
    conn.close()
'''
IGNORES_TERM = '''
import signal, socket
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', 50000))
s.listen(5)
while True:
    conn, _ = s.accept()
    conn.sendall(b'5\\n')
    conn.close()
'''


def _stops_growing(marker: Path, window: float = 1.0) -> bool:
    size = marker.stat().st_size
    time.sleep(window)
    return marker.stat().st_size == size


async def test_a_program_that_escapes_its_group_is_cleaned_up_and_named(tmp_path: Path) -> None:
    marker = tmp_path / "alive"
    report = await check_server(run=f"{sys.executable} {_write(tmp_path, 'e', ESCAPES)} {marker}",
                                settings=CheckSettings(timeout=2.0, only=("connect", "sum.small")))
    assert report.outcome("sum.small") == "pass"
    assert marker.exists() and _stops_growing(marker)
    assert any("left the program's process group" in line for line in report.cleanup), report.cleanup


async def test_a_program_that_ignores_sigterm_is_killed_and_named(tmp_path: Path) -> None:
    report = await check_server(run=f"{sys.executable} {_write(tmp_path, 't', IGNORES_TERM)}",
                                settings=CheckSettings(timeout=2.0, only=("connect",)))
    assert report.outcome("connect") == "pass"
    assert any("after SIGTERM" in line for line in report.cleanup), report.cleanup


async def test_a_folder_in_parallel_gets_what_each_gets_alone(tmp_path: Path) -> None:
    """Two students on the same hard-coded port, checked at once, each as if alone."""
    first = _write(tmp_path, "alice", STUDENT.format(reuse=""))
    second = _write(tmp_path, "bob", STUDENT.format(reuse=REUSE))
    settings = CheckSettings(timeout=2.0, only=("connect", "sum", "close.on_eof", "restart.reuse"))
    alone = {path: _outcomes(await check_server(run=f"{sys.executable} {path}", settings=settings))
             for path in (first, second)}
    graded = await grade(f"{sys.executable} {{}}", [first, second], settings, jobs=2)
    assert [name for name, _ in graded] == [first, second]
    for name, report in graded:
        assert _outcomes(report) == alone[name], name
    reversed_ = await grade(f"{sys.executable} {{}}", [second, first], settings, jobs=1)
    for name, report in reversed_:
        assert _outcomes(report) == alone[name], name


def test_killing_netlab_leaves_nothing_running(tmp_path: Path) -> None:
    """SIGKILL to netlab check: the isolated child sees its stdin close and takes the
    namespace, and the daemon the program forked, with it."""
    marker = tmp_path / "alive"
    server = _write(tmp_path, "e", ESCAPES)
    netlab = [sys.executable, "-m", "netlab", "check", "--run", f"{sys.executable} {server} {marker}",
              "--timeout", "30", "--case", "resources.idle_cpu", "--idle-window", "30"]
    proc = subprocess.Popen(netlab, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (marker.exists() and marker.stat().st_size > 10):
            assert time.monotonic() < deadline, "the program never started"
            assert proc.poll() is None
            time.sleep(0.05)
    finally:
        proc.kill()  # netlab alone (SIGKILL), not its process group
        proc.wait()
    deadline = time.monotonic() + 10
    while not _stops_growing(marker, 0.5):
        assert time.monotonic() < deadline, "the program outlived netlab"


async def test_a_client_is_checked_even_where_the_students_server_left_time_wait(tmp_path: Path) -> None:
    """The reference server binds in the client's own namespace: a port busy on the host (a
    student's server still there, or its TIME_WAIT) does not stop it."""
    import socket

    from netlab.check import check_client

    students = Path(__file__).parent / "students"
    with socket.create_server(("127.0.0.1", 0)) as busy:  # the host's port is taken
        port = busy.getsockname()[1]
        report = await check_client(f"{sys.executable} {students / 'sum_client.py'} 127.0.0.1 {port} 2 3",
                                    f"tcp:127.0.0.1:{port}", CheckSettings(timeout=3.0, only=("client.plain",)))
    assert report.isolation.startswith("isolated")
    assert report.outcome("client.plain") == "pass", report.cases
