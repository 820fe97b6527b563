"""The real `netlab serve` process, talked to with plain blocking sockets (no netlab code
on the client side), stopped with real signals.

Every blocking step has a timeout (socket.settimeout, select on the pipe, proc.wait), and
every process is killed in a ``finally`` if it is still running, so a failure never hangs
the suite.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

#: every test here starts a process (`make test-quick` leaves them out)
pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parents[1]
NETLAB = [sys.executable, "-m", "netlab"]

#: seconds to wait for a process to print its first line, or to finish
START_TIMEOUT = 15.0
STOP_TIMEOUT = 2.0
#: seconds a plain client waits for any reply
IO_TIMEOUT = 5.0


@dataclass
class Served:
    proc: subprocess.Popen
    line: str  # the first "listening ..." line
    address: str  # the bound address it names

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str]:
        """Send `signum`; return (exit code, stderr). Fails if it takes over STOP_TIMEOUT."""
        self.proc.send_signal(signum)
        try:
            _, err = self.proc.communicate(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"netlab serve did not exit within {STOP_TIMEOUT} s of {signal.Signals(signum).name}")
        return self.proc.returncode, err.decode()


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(NETLAB + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            cwd=ROOT)


def read_line(proc: subprocess.Popen, timeout: float = START_TIMEOUT) -> str:
    """The first stdout line, read from the raw pipe with a deadline."""
    fd = proc.stdout.fileno()  # type: ignore[union-attr]
    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"no line from netlab within {timeout} s (got {data!r})")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            proc.wait(timeout=STOP_TIMEOUT)
            err = proc.stderr.read().decode()  # type: ignore[union-attr]
            pytest.fail(f"netlab exited ({proc.returncode}) before printing a line: {err}")
        data += chunk
    return data.split(b"\n", 1)[0].decode()


def finish(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=STOP_TIMEOUT)


@contextlib.contextmanager
def serving(transport: str, service: str = "sum", *extra: str) -> Iterator[Served]:
    proc = start(["serve", "--transport", transport, "--service", service, *extra])
    try:
        line = read_line(proc)
        assert line.startswith("listening "), line
        yield Served(proc, line, line.split()[1])
    finally:
        finish(proc)


def run(args: list[str]) -> subprocess.CompletedProcess:
    """A netlab command that is expected to exit by itself."""
    try:
        return subprocess.run(NETLAB + args, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=ROOT,
                              timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"netlab {' '.join(args)} did not exit within {START_TIMEOUT} s")


def inet(address: str) -> tuple[str, int]:
    """("127.0.0.1", port) from "tcp:127.0.0.1:PORT"."""
    _, host, port = address.rsplit(":", 2)
    return host, int(port)


# -- plain clients ----------------------------------------------------------------------


def tcp_connect(address: str) -> socket.socket:
    s = socket.create_connection(inet(address), timeout=IO_TIMEOUT)
    s.settimeout(IO_TIMEOUT)
    return s


def recv_exactly(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def unix_dgram_client() -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("")  # Linux autobind: an abstract name, so the server can answer
    s.settimeout(IO_TIMEOUT)
    return s


# -- tcp ------------------------------------------------------------------------------


def test_tcp_port_0_prints_the_real_port() -> None:
    with serving("tcp:127.0.0.1:0") as served:
        host, port = inet(served.address)
        assert host == "127.0.0.1" and 0 < port < 65536
        assert "requested=tcp:127.0.0.1:0" in served.line
        assert "service=sum" in served.line
        with tcp_connect(served.address) as s:
            s.sendall(b"2 3\n")
            assert s.makefile("rb").readline() == b"5\n"
        code, err = served.stop()
    assert code == 0, err


def test_tcp_sum_with_a_plain_client() -> None:
    with serving("tcp:127.0.0.1:0", "sum") as served, tcp_connect(served.address) as s:
        lines = s.makefile("rb")
        s.sendall(b"2 3\n")
        assert lines.readline() == b"5\n"
        s.sendall(b"0.1 0.2\r\n")
        assert lines.readline() == b"0.3\r\n"
        s.sendall(b"two three\n")
        assert lines.readline().startswith(b"ERR ")
        s.sendall(b"1\n")
        assert lines.readline().startswith(b"ERR ")
        # a refused request costs nothing: the connection still works
        s.sendall(b"-1 1\n10 20\n")  # two requests in one segment, answered in order
        assert lines.readline() == b"0\n"
        assert lines.readline() == b"30\n"
        s.shutdown(socket.SHUT_WR)
        assert lines.readline() == b""  # the server closes after our EOF


def test_tcp_echo_with_a_plain_client() -> None:
    message = b"hello\x00world\xff" + bytes(range(256)) * 40
    with serving("tcp:127.0.0.1:0", "echo") as served, tcp_connect(served.address) as s:
        s.sendall(message)
        assert recv_exactly(s, len(message)) == message
        s.shutdown(socket.SHUT_WR)
        assert s.recv(1) == b""  # echo closes after our EOF


def test_tcp_port_in_use_exits_1() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run(["serve", "--transport", f"tcp:127.0.0.1:{port}"])
    assert result.returncode == 1, result
    assert "already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_error_exits_2_in_a_real_process() -> None:
    result = run(["serve", "--transport", "tcp:127.0.0.1:99999"])
    assert result.returncode == 2, result
    assert "out of range" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


# -- udp ------------------------------------------------------------------------------


def test_udp_sum_with_a_plain_client() -> None:
    with serving("udp:127.0.0.1:0", "sum") as served:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(IO_TIMEOUT)
            target = inet(served.address)
            s.sendto(b"2 3", target)
            assert s.recvfrom(100)[0] == b"5"
            s.sendto(b"2 3\n", target)
            assert s.recvfrom(100)[0] == b"5\n"
            s.sendto(b"nope", target)
            assert s.recvfrom(100)[0].startswith(b"ERR ")
        code, err = served.stop()
    assert code == 0, err


def test_udp_echo_with_a_plain_client() -> None:
    with serving("udp:127.0.0.1:0", "echo") as served:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(IO_TIMEOUT)
            for message in (b"x", b"hello world", bytes(range(256)) * 32):
                s.sendto(message, inet(served.address))
                assert s.recvfrom(65536)[0] == message


# -- unix stream ----------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_unix_stream_serves_then_stops_cleanly(signum: int, netlab_dir: Path) -> None:
    path = netlab_dir / "s.sock"
    with serving(f"unix:{path}", "sum") as served:
        assert served.address == f"unix:{path}"
        st = os.lstat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(IO_TIMEOUT)
            s.connect(str(path))
            s.sendall(b"2 3\n")
            assert s.makefile("rb").readline() == b"5\n"
        code, err = served.stop(signum)
    assert code == 0, err
    assert "Traceback" not in err
    assert not path.exists(), "the socket file outlived the server"


def test_unix_mode_option(netlab_dir: Path) -> None:
    path = netlab_dir / "s.sock"
    with serving(f"unix:{path}?mode=0660", "echo") as served:
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o660
        assert served.address == f"unix:{path}?mode=0660"


# -- unix datagrams ---------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_unix_dgram_serves_then_stops_cleanly(signum: int, netlab_dir: Path) -> None:
    path = netlab_dir / "d.sock"
    with serving(f"unix-dgram:{path}", "sum") as served:
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
        with unix_dgram_client() as s:
            s.sendto(b"2 3", str(path))
            assert s.recv(100) == b"5"
            s.sendto(b"0.1 0.2\n", str(path))
            assert s.recv(100) == b"0.3\n"
        code, err = served.stop(signum)
    assert code == 0, err
    assert not path.exists(), "the socket file outlived the server"


def test_unix_dgram_echo_with_a_temp_path_client(netlab_dir: Path) -> None:
    path = netlab_dir / "d.sock"
    with serving(f"unix-dgram:{path}", "echo"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.bind(str(netlab_dir / "client.sock"))
            s.settimeout(IO_TIMEOUT)
            s.sendto(b"boundaries kept", str(path))
            s.sendto(b"!", str(path))
            assert s.recv(100) == b"boundaries kept"
            assert s.recv(100) == b"!"


def test_unix_dgram_abstract_name() -> None:
    name = f"netlab-test-{os.getpid()}-{time.monotonic_ns()}"
    with serving(f"unix-dgram:@{name}", "sum") as served:
        assert served.address == f"unix-dgram:@{name}"
        with unix_dgram_client() as s:
            s.sendto(b"40 2", b"\0" + name.encode())
            assert s.recv(100) == b"42"


# -- socket files: live, stale, not a socket ---------------------------------------------

SOCKTYPES = {"unix": socket.SOCK_STREAM, "unix-dgram": socket.SOCK_DGRAM}


def _ask(scheme: str, path: Path) -> bytes:
    """One sum request to a unix server, with a plain client."""
    if scheme == "unix":
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(IO_TIMEOUT)
            s.connect(str(path))
            s.sendall(b"2 3\n")
            return s.makefile("rb").readline()
    with unix_dgram_client() as s:
        s.sendto(b"2 3\n", str(path))
        return s.recv(100)


@pytest.mark.parametrize("scheme", list(SOCKTYPES))
def test_second_server_on_a_live_path_is_refused(scheme: str, netlab_dir: Path) -> None:
    path = netlab_dir / "s.sock"
    with serving(f"{scheme}:{path}", "sum") as first:
        second = run(["serve", "--transport", f"{scheme}:{path}", "--service", "sum"])
        assert second.returncode == 1, second
        assert "already in use by a running server" in second.stderr
        assert "Traceback" not in second.stderr
        assert second.stdout == ""
        # the first server and its file are untouched
        assert first.proc.poll() is None
        assert _ask(scheme, path) == b"5\n"
        code, err = first.stop()
    assert code == 0, err


@pytest.mark.parametrize("scheme", list(SOCKTYPES))
def test_stale_socket_file_is_replaced(scheme: str, netlab_dir: Path) -> None:
    path = netlab_dir / "s.sock"
    stale = socket.socket(socket.AF_UNIX, SOCKTYPES[scheme])
    stale.bind(str(path))
    stale.close()  # the file stays, nobody answers it
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    with serving(f"{scheme}:{path}", "sum") as served:
        assert _ask(scheme, path) == b"5\n"
        code, err = served.stop()
    assert code == 0, err
    assert "stale" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("scheme", list(SOCKTYPES))
def test_regular_file_is_never_removed(scheme: str, netlab_dir: Path) -> None:
    path = netlab_dir / "s.sock"
    path.write_text("precious\n")
    result = run(["serve", "--transport", f"{scheme}:{path}"])
    assert result.returncode == 1, result
    assert "not a socket" in result.stderr
    assert "Traceback" not in result.stderr
    assert path.read_text() == "precious\n"
