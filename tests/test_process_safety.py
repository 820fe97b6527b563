"""Limits, access and signals, tested on the real `netlab serve` process with plain sockets
(helpers from ``test_process.py``: every blocking step has a deadline, every process is
killed in a ``finally``). Nothing here sends traffic anywhere but loopback and unix sockets.
"""

from __future__ import annotations

import os
import re
import resource
import select
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from test_process import (
    IO_TIMEOUT, NETLAB, ROOT, START_TIMEOUT, STOP_TIMEOUT, finish, inet, read_line, run, serving, tcp_connect,
)

#: every test here starts a process (`make test-quick` leaves them out)
pytestmark = pytest.mark.process


def read_stderr_until(proc: subprocess.Popen, pattern: str, timeout: float = START_TIMEOUT) -> str:
    """Read the process's stderr until `pattern` (a regex) appears; return what was read."""
    fd = proc.stderr.fileno()  # type: ignore[union-attr]
    data = b""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, data.decode(errors="replace")):
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"{pattern!r} not on stderr within {timeout} s (got {data!r})")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                pytest.fail(f"netlab closed stderr before {pattern!r} (got {data!r})")
            data += chunk
    return data.decode(errors="replace")


def connect_unix(path: Path, socktype: int = socket.SOCK_STREAM) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socktype)
    s.settimeout(IO_TIMEOUT)
    s.connect(str(path))
    return s


def read_until_closed(s: socket.socket, timeout: float) -> bytes:
    """Everything until EOF (or a reset, which a closed unix socket may report)."""
    s.settimeout(timeout)
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


# -- the startup line -------------------------------------------------------------------------


def test_startup_line_states_the_limits() -> None:
    """Each line shows the limits that apply to its transport (issue 14): connections only
    where there are connections, the datagram rate only on datagrams."""
    with serving("tcp:127.0.0.1:0", "sum") as served:
        assert served.line.endswith("  max-connections=1024 max-connections-per-peer=none idle-timeout=300s "
                                    "request-timeout=30s max-line=65536 reply-budget=65536 grace=1s")
    with serving("udp:127.0.0.1:0", "sum", "--max-connections", "5", "--idle-timeout", "2.5", "--max-line",
                 "100", "--rate-limit", "3", "--grace", "0.5") as served:
        assert served.line.endswith("  max-line=100 rate-limit=3/s grace=0.5s")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(IO_TIMEOUT)
            s.sendto(b"1" + b" " * 99 + b"2", inet(served.address))  # 101 bytes: over --max-line
            assert s.recv(200) == b"ERR request too long (limit 100 bytes)"


# -- all interfaces -------------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["tcp:0.0.0.0:0", "tcp:[::]:0", "tcp:*:0", "udp:0.0.0.0:0"])
def test_listening_on_all_interfaces_warns_in_one_line(address: str) -> None:
    """Only binds: no traffic is sent to it. ``*`` binds IPv4 and IPv6: still one line."""
    with serving(address, "echo") as served:
        code, err = served.stop()
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "all interfaces" in line]
    assert len(warnings) == 1, err
    assert warnings[0].startswith("netlab: warning:")


def test_loopback_does_not_warn() -> None:
    with serving("tcp:127.0.0.1:0", "echo") as served:
        _, err = served.stop()
    assert "all interfaces" not in err


# -- peer credentials ------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["unix", "unix-seq"])
def test_allow_uid_refuses_other_users(scheme: str, netlab_dir: Path) -> None:
    """As whoever runs the suite (root here): --allow-uid of another uid closes our plain
    client at once, unanswered, and says so in the log; --allow-uid of ours serves it."""
    socktype = socket.SOCK_STREAM if scheme == "unix" else socket.SOCK_SEQPACKET
    request = b"2 3\n" if scheme == "unix" else b"2 3"
    path = netlab_dir / "s.sock"
    with serving(f"{scheme}:{path}", "sum", "--allow-uid", str(os.getuid() + 12345)) as served:
        assert f"allow-uid={os.getuid() + 12345}" in served.line
        with connect_unix(path, socktype) as s:
            began = time.monotonic()
            try:
                s.sendall(request)
            except (BrokenPipeError, ConnectionResetError):
                pass  # closed already
            assert read_until_closed(s, IO_TIMEOUT) == b""
            assert time.monotonic() - began < 2.0
        code, err = served.stop()
    assert code == 0, err
    assert f"refused a connection from pid {os.getpid()}, uid {os.getuid()}" in err
    with serving(f"{scheme}:{path}", "sum", "--allow-uid", str(os.getuid())) as served:
        with connect_unix(path, socktype) as s:
            s.sendall(request)
            assert s.recv(100) == request.replace(b"2 3", b"5")


@pytest.mark.parametrize("address", ["tcp:127.0.0.1:0", "udp:127.0.0.1:0"])
def test_allow_uid_on_inet_is_a_usage_error(address: str) -> None:
    result = run(["serve", "--transport", address, "--allow-uid", "0"])
    assert result.returncode == 2, result
    assert "SO_PEERCRED" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to run a client as another user")
@pytest.mark.parametrize(("mode", "directory_mode", "allowed"), [
    ("", 0o755, False),  # the default: owner only
    ("?mode=0666", 0o755, True),  # widened by ?mode=
    ("?mode=0666", 0o700, False),  # the directory decides in the end
])
def test_socket_file_and_directory_permissions(mode: str, directory_mode: int, allowed: bool,
                                               netlab_dir: Path) -> None:
    """A user other than the server's connects only if both the socket file's mode and the
    directory's permissions let it: the directory is the real access control."""
    directory = netlab_dir / "d"
    directory.mkdir()
    os.chmod(netlab_dir, 0o755)
    os.chmod(directory, directory_mode)
    path = directory / "s.sock"
    with serving(f"unix:{path}{mode}", "sum"):
        assert _connect_as(12345, path) == (0 if allowed else 13)


def _connect_as(uid: int, path: Path) -> int:
    """In a child process running as `uid`: 0 if it connects and is answered, 13 on EACCES."""
    pid = os.fork()
    if pid == 0:  # the child: no Python-level cleanup, no pytest, just an exit code
        code = 2
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(IO_TIMEOUT)
                try:
                    s.connect(str(path))
                except PermissionError:
                    code = 13
                else:
                    s.sendall(b"2 3\n")
                    code = 0 if s.recv(10) == b"5\n" else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


# -- EMFILE -----------------------------------------------------------------------------------------

#: the server's file descriptor limit: what Python and trio need, plus a dozen connections
FD_LIMIT = 32


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


@pytest.mark.parametrize("scheme", ["tcp", "unix-seq"])
def test_server_survives_running_out_of_file_descriptors(scheme: str, netlab_dir: Path) -> None:
    """With RLIMIT_NOFILE low, connect until the server cannot accept (EMFILE): it logs and
    retries (trio's serve_listeners), keeps serving those it has, and once they close,
    accepts and answers again."""
    if scheme == "tcp":
        address = "tcp:127.0.0.1:0"
        family, socktype, request, reply = socket.AF_INET, socket.SOCK_STREAM, b"2 3\n", b"5\n"
    else:
        address = f"unix-seq:{netlab_dir / 'q.sock'}"
        family, socktype, request, reply = socket.AF_UNIX, socket.SOCK_SEQPACKET, b"2 3", b"5"
    proc = subprocess.Popen(NETLAB + ["serve", "--transport", address, "--service", "sum"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=ROOT, preexec_fn=_low_fd_limit)
    clients: list[socket.socket] = []
    try:
        bound = read_line(proc).split()[1]
        target = inet(bound) if scheme == "tcp" else bound.split(":", 1)[1]

        def client() -> socket.socket:
            s = socket.socket(family, socktype)
            s.settimeout(IO_TIMEOUT)
            s.connect(target)
            return s

        for _ in range(2 * FD_LIMIT):  # more than it can hold: the rest wait in the listen backlog
            s = client()
            s.sendall(request)
            clients.append(s)
        answered = set()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and len(answered) < len(clients):
            ready, _, _ = select.select([s for s in clients if s not in answered], [], [], 0.2)
            for s in ready:
                assert s.recv(100) == reply
                answered.add(s)
        assert 0 < len(answered) < len(clients), f"{len(answered)} of {len(clients)} answered"
        assert proc.poll() is None, "the server died"
        for s in clients:
            s.close()
        clients.clear()
        with client() as fresh:  # it accepts again once descriptors are free
            fresh.settimeout(10.0)
            fresh.sendall(request)
            assert fresh.recv(100) == reply
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10.0)
        assert proc.returncode == 0, err
        text = err.decode()
        assert "Too many open files" in text
        # one line for the episode, not a traceback for every retry (ten a second)
        assert "Traceback" not in text, text
        assert 1 <= text.count("out of file descriptors") <= 2, text
    finally:
        for s in clients:
            s.close()
        finish(proc)


# -- signals -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["tcp", "unix"])
def test_sigterm_drains(scheme: str, netlab_dir: Path) -> None:
    """SIGTERM: the request sent just before it is answered, then that connection closes
    within the grace period; new connections are refused; exit 0, socket file removed."""
    grace = 1.0
    path = netlab_dir / "s.sock"
    address = "tcp:127.0.0.1:0" if scheme == "tcp" else f"unix:{path}"
    with serving(address, "sum", "--grace", str(grace)) as served:
        s = tcp_connect(served.address) if scheme == "tcp" else connect_unix(path)
        with s:
            s.sendall(b"1 1\n")
            assert s.recv(100) == b"2\n"  # mid-conversation
            s.sendall(b"40 2\n")
            served.proc.send_signal(signal.SIGTERM)
            sent_at = time.monotonic()
            assert read_until_closed(s, grace + IO_TIMEOUT) == b"42\n"
            assert time.monotonic() - sent_at < grace + 1.0
        with pytest.raises((ConnectionRefusedError, FileNotFoundError)):
            late = tcp_connect(served.address) if scheme == "tcp" else connect_unix(path)
            late.close()
        try:
            _, err = served.proc.communicate(timeout=grace + STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail("netlab serve did not exit after draining")
        assert served.proc.returncode == 0, err
        assert "draining" in err.decode()
    assert not path.exists()


def test_second_ctrl_c_stops_at_once(netlab_dir: Path) -> None:
    """Ctrl-C drains; a second one does not wait for the grace period: exit 130 at once,
    and the socket file is still removed."""
    path = netlab_dir / "s.sock"
    with serving(f"unix:{path}", "sum", "--grace", "30") as served, connect_unix(path) as idle:
        idle.sendall(b"1 1\n")
        assert idle.recv(100) == b"2\n"  # an open connection: the drain would wait 30 s for it
        served.proc.send_signal(signal.SIGINT)
        read_stderr_until(served.proc, "draining")
        assert served.proc.poll() is None
        served.proc.send_signal(signal.SIGINT)
        began = time.monotonic()
        try:
            served.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail("a second Ctrl-C did not stop netlab serve at once")
        assert time.monotonic() - began < STOP_TIMEOUT
        assert served.proc.returncode == 130
        assert read_until_closed(idle, IO_TIMEOUT) == b""
    assert not path.exists()
