"""The load generator: one process, plain blocking or epoll sockets, no trio.

`netlab bench` runs it as a separate process (``python -m netlab.bench.loadgen SPEC``) so
that it shares no interpreter with the server it drives, and so that it can be pinned to
a core of its own (or the server's). It takes a JSON spec as its one argument and prints
one JSON object, the result, on stdout; on failure ``{"error": "..."}`` and exit status 1.

It is written to cost as little per message as CPython allows, so that the server, not
the client, sets the pace: a preallocated request and a reused receive buffer
(``recv_into``), a blocking socket when one connection suffices, one level-triggered epoll
loop otherwise, latencies appended to an ``array`` of nanoseconds during the run and put
into an HdrHistogram only after it. Its own CPU time (getrusage) and the server's
(``/proc/PID/stat``) are read at the edges of the measured window, so a result says which
side was busy.

Modes (``spec["mode"]``):

* ``pingpong``  closed loop: each connection sends one `size`-byte message and waits for
  its reply. A request carries its sequence number in its first 8 bytes, and a reply must
  be the request's exact twin. On datagrams a reply that does not come within `timeout`
  is counted lost and the next request goes out.
* ``rate``      open loop (wrk2): messages are due at ``t0 + i / rate`` across the
  connections in turn, woken by a timerfd; latency runs from when a message was *due*,
  not from when it was sent, so a stalled server is charged for every message it delayed
  (coordinated omission corrected). Datagrams not answered within `timeout` of the last
  send are lost.
* ``stream``    one connection writes `chunk`-byte blocks for `duration` s to a discard
  server, then half-closes and waits for the server to close: the clock stops when the
  server has read every byte. (A warm-up runs on a connection of its own before.)
* ``datagrams`` one socket sends `size`-byte datagrams flat out to a discard server. What
  the server took is what was sent less what its socket dropped: the kernel's per-socket
  drop counter (``/proc/net/udp`` ``drops``, the figure SO_RXQ_OVFL reports) read before
  and after; the clock stops when the server's receive queue is empty again.
* ``connect``   connect, a 1-byte echo, close, one connection after another. TCP closes
  with SO_LINGER 0 (a reset), so no TIME_WAIT piles up on the client's ephemeral ports.
* ``hold``      open `hold` connections in batches, each answering one echo; read the
  server's resident memory before and after; then every connection answers once more.

TLS (``spec["tls"]``: the CA file and the host name to verify the server against): every
connection is wrapped in an `ssl.SSLSocket` right after its TCP connect, and handshakes
there, blocking, before it counts as open, so ``connect`` times the handshake with the
rest. Every handshake is a full one (no session is resumed). Non-blocking reads may find
a record incomplete, or only a session ticket (`ssl.SSLWantReadError`: read again when
epoll says so), and a write may have to wait for room (`ssl.SSLWantWriteError`).
"""

from __future__ import annotations

import array
import collections
import ctypes
import errno
import json
import os
import resource
import select
import socket
import ssl
import struct
import sys
import time
from typing import Any

SEQ = struct.Struct("<Q")
_now = time.perf_counter_ns


class LoadError(Exception):
    """A failure the result reports as its error."""


#: a non-blocking socket, plain or TLS, has nothing to give or no room to take now
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
#: a blocking receive gave up at its SO_RCVTIMEO (EAGAIN; on TLS, OpenSSL wants to read)
_TIMED_OUT = (BlockingIOError, TimeoutError, ssl.SSLWantReadError)
#: a handshake that failed because the server went away (or did not answer within the
#: receive timeout), rather than because TLS refused it
_TLS_GONE = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError, ssl.SSLWantReadError)


# -- what the machine says ------------------------------------------------------------------


def raise_nofile() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return (soft, hard) now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def process_cpu(pid: int | None) -> float | None:
    """utime + stime of a process (all its threads, living and dead), in seconds."""
    parts = process_cpu_parts(pid)
    return None if parts is None else parts[0] + parts[1]


def process_cpu_parts(pid: int | None) -> tuple[float, float] | None:
    """(utime, stime) of a process (all its threads, living and dead), in seconds."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def process_rss(pid: int | None) -> int | None:
    """Resident memory of a process in bytes (VmRSS)."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def own_cpu() -> float:
    return sum(own_cpu_parts())


def own_cpu_parts() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def snmp(protocol: str) -> dict[str, int]:
    """The counters of one protocol line pair in /proc/net/snmp (e.g. "Udp")."""
    try:
        with open("/proc/net/snmp") as f:
            lines = [line.split() for line in f if line.startswith(protocol + ":")]
    except OSError:
        return {}
    if len(lines) < 2:
        return {}
    return {name: int(value) for name, value in zip(lines[0][1:], lines[1][1:])}


def _proc_hex_address(family: int, host: str) -> str:
    packed = socket.inet_pton(family, host)
    # /proc/net/udp{,6} prints each 32-bit word in host (little-endian) byte order
    return "".join(packed[i:i + 4][::-1].hex().upper() for i in range(0, len(packed), 4))


def udp_socket_state(family: int, sockaddr: tuple[Any, ...]) -> tuple[int, int] | None:
    """(receive queue bytes, drops) of the UDP socket bound to `sockaddr`, from /proc/net/udp."""
    path = "/proc/net/udp6" if family == socket.AF_INET6 else "/proc/net/udp"
    want = f"{_proc_hex_address(family, sockaddr[0])}:{sockaddr[1]:04X}"
    try:
        with open(path) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[1] == want:
                    rx_queue = int(fields[4].split(":")[1], 16)
                    return rx_queue, int(fields[-1])
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return None


# -- sockets -----------------------------------------------------------------------------


class Target:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.family = int(spec["family"])
        self.type = int(spec["type"])
        address = spec["address"]
        self.sockaddr: Any = tuple(address) if isinstance(address, list) else address
        self.stream = self.type == socket.SOCK_STREAM
        self.datagram = self.type == socket.SOCK_DGRAM
        self.inet = self.family != socket.AF_UNIX
        tls = spec.get("tls")
        self.tls: ssl.SSLContext | None = None
        self.server_hostname: str | None = None
        if tls:
            self.tls = ssl.create_default_context(cafile=tls["ca"])
            # as netlab's own client: a FIN without close_notify is the end of the stream
            self.tls.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
            self.server_hostname = tls["server_hostname"]

    def connect(self, *, reply_timeout: float | None = None) -> socket.socket:
        """A connected socket; on TLS an `ssl.SSLSocket`, its handshake done. Raises
        OSError, or LoadError when TLS refuses the server (no retry can succeed)."""
        sock = socket.socket(self.family, self.type)
        try:
            if self.family == socket.AF_UNIX and self.datagram:
                sock.bind("")  # Linux autobind, so that replies can reach us
            sock.connect(self.sockaddr)
            if self.inet and self.stream:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if reply_timeout is not None:
                set_receive_timeout(sock, reply_timeout)
            if self.tls is not None:
                sock = self._handshake(sock)
        except BaseException:
            sock.close()
            raise
        return sock

    def _handshake(self, sock: socket.socket) -> ssl.SSLSocket:
        assert self.tls is not None
        try:
            return self.tls.wrap_socket(sock, server_hostname=self.server_hostname)
        except _TLS_GONE:
            raise  # a failed connection, as a reset is
        except ssl.SSLError as exc:
            why = (exc.reason or str(exc)).lower().replace("_", " ")  # CERTIFICATE_VERIFY_FAILED
            detail = getattr(exc, "verify_message", None)
            raise LoadError(f"TLS handshake with the server failed: {why}" + (f" ({detail})" if detail else "")
                            + ": does it speak TLS, with a certificate from the CA it printed?") from None

    def shutdown_write(self, sock: socket.socket) -> None:
        """Half-close (a FIN). On TLS without close_notify, as netlab's own ``send_eof``:
        `ssl.SSLSocket.shutdown` would drop the TLS layer, and what comes back after
        (the server's close) could no longer be read."""
        socket.socket.shutdown(sock, socket.SHUT_WR)

    def close(self, sock: socket.socket) -> None:
        """Close; TCP with a reset (SO_LINGER 0), so that no TIME_WAIT ties up a port."""
        if self.inet and self.stream:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        sock.close()


def set_receive_timeout(sock: socket.socket, seconds: float) -> None:
    """SO_RCVTIMEO: a blocking recv gives up with EAGAIN, without the poll() settimeout adds."""
    whole = int(seconds)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", whole, int((seconds - whole) * 1e6)))


def _message(size: int) -> bytearray:
    return bytearray((b"netlab-bench-" * (size // 13 + 1))[:size])


class Window:
    """The measured window: CPU of both sides at its edges, and its length."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.start_ns = self.end_ns = 0
        self.client_cpu = 0.0
        self.server_cpu: float | None = 0.0
        self._server0: tuple[float, float] | None = None
        self._client0 = (0.0, 0.0)
        self.client_parts: tuple[float, float] | None = None
        self.server_parts: tuple[float, float] | None = None

    def open(self) -> None:
        self._client0 = own_cpu_parts()
        self._server0 = process_cpu_parts(self.server_pid)
        self.start_ns = _now()

    def close(self, end_ns: int | None = None) -> None:
        self.end_ns = end_ns or _now()
        client1 = own_cpu_parts()
        self.client_parts = (client1[0] - self._client0[0], client1[1] - self._client0[1])
        self.client_cpu = sum(self.client_parts)
        server1 = process_cpu_parts(self.server_pid)
        self.server_parts = None if server1 is None or self._server0 is None else (
            server1[0] - self._server0[0], server1[1] - self._server0[1])
        self.server_cpu = None if self.server_parts is None else sum(self.server_parts)

    def result(self) -> dict[str, Any]:
        elapsed = (self.end_ns - self.start_ns) / 1e9
        client, server = self.client_parts, self.server_parts
        return {"elapsed": elapsed, "client_cpu": self.client_cpu, "server_cpu": self.server_cpu,
                "client_cpu_user": client[0] if client else None, "client_cpu_system": client[1] if client else None,
                "server_cpu_user": server[0] if server else None, "server_cpu_system": server[1] if server else None}


def encode_latencies(latencies: array.array[int]) -> str | None:
    """The latencies (ns) as an encoded HdrHistogram (3 significant digits), or None if empty."""
    from hdrh.histogram import HdrHistogram

    if not latencies:
        return None
    histogram = HdrHistogram(1, 3_600_000_000_000, 3)
    record = histogram.record_value
    for value in latencies:
        record(value if value > 0 else 1)
    encoded = histogram.encode()
    return encoded.decode() if isinstance(encoded, bytes) else encoded


# -- pingpong (closed loop) ----------------------------------------------------------------


def pingpong(spec: dict[str, Any]) -> dict[str, Any]:
    target = Target(spec)
    connections = int(spec.get("connections", 1))
    if connections == 1:
        return _pingpong_blocking(target, spec)
    return _pingpong_epoll(target, spec, connections)


def _pingpong_blocking(target: Target, spec: dict[str, Any]) -> dict[str, Any]:
    size, timeout = int(spec["size"]), float(spec.get("timeout", 1.0))
    warmup_ns, duration_ns = int(spec["warmup"] * 1e9), int(spec["duration"] * 1e9)
    sock = target.connect(reply_timeout=None if target.stream else timeout)
    message, buffer = _message(size), bytearray(size)
    view = memoryview(buffer)
    latencies = array.array("q")
    record = latencies.append
    pack = SEQ.pack_into
    send, recv_into = sock.send if not target.stream else sock.sendall, sock.recv_into
    stream = target.stream
    lost = stale = mismatched = 0
    window = Window(spec.get("server_pid"))
    seq = 0
    measuring = False
    phase_end = _now() + warmup_ns
    try:
        while True:
            pack(message, 0, seq)
            t0 = _now()
            send(message)
            answered = True
            if stream:
                got = recv_into(view, size)
                while got < size:
                    if not got:
                        raise LoadError("the server closed the connection")
                    n = recv_into(view[got:], size - got)
                    if not n:
                        raise LoadError("the server closed the connection")
                    got += n
                if buffer != message:
                    mismatched += 1
            else:
                while True:
                    try:
                        n = recv_into(buffer)
                    except _TIMED_OUT:  # SO_RCVTIMEO: no reply within timeout
                        answered = False
                        lost += measuring
                        break
                    if n == size and buffer == message:
                        break
                    if n >= 8 and SEQ.unpack_from(buffer)[0] < seq:
                        stale += 1  # the late reply to a request already counted lost
                        continue
                    mismatched += 1
                    break
            t1 = _now()
            if measuring and answered:
                record(t1 - t0)
            seq += 1
            if t1 >= phase_end:
                if measuring:
                    window.close(t1)
                    break
                measuring = True
                window.open()
                phase_end = window.start_ns + duration_ns
    finally:
        target.close(sock)
    return {**window.result(), "count": len(latencies), "lost": lost, "stale": stale, "mismatched": mismatched,
            "histogram": encode_latencies(latencies), "client": "blocking", "connections": 1}


def _pingpong_epoll(target: Target, spec: dict[str, Any], connections: int) -> dict[str, Any]:
    size, timeout_ns = int(spec["size"]), int(float(spec.get("timeout", 1.0)) * 1e9)
    warmup_ns, duration_ns = int(spec["warmup"] * 1e9), int(spec["duration"] * 1e9)
    socks = []
    try:
        for _ in range(connections):
            socks.append(target.connect())
    except OSError as exc:
        for s in socks:
            target.close(s)
        raise LoadError(f"could not open connection {len(socks) + 1} of {connections}: {exc}") from None
    n_conn = len(socks)
    by_fd = {s.fileno(): i for i, s in enumerate(socks)}
    messages = [_message(size) for _ in range(n_conn)]
    buffers = [bytearray(size) for _ in range(n_conn)]
    views = [memoryview(b) for b in buffers]
    got = [0] * n_conn
    sent_at = [0] * n_conn
    seqs = list(range(0, n_conn * 1 << 32, 1 << 32))  # each connection its own sequence space
    stream = target.stream
    pack = SEQ.pack_into
    latencies = array.array("q")
    record = latencies.append
    lost = stale = mismatched = 0
    window = Window(spec.get("server_pid"))
    poller = select.epoll()
    for s in socks:
        s.setblocking(False)
        poller.register(s.fileno(), select.EPOLLIN)

    def send(i: int, now: int) -> None:
        pack(messages[i], 0, seqs[i])
        sent_at[i] = now
        got[i] = 0
        if stream:
            try:
                n = socks[i].send(messages[i])
            except _WOULD_BLOCK:
                n = 0
            if n < size:  # rare: the request did not fit the send buffer at once
                socks[i].setblocking(True)
                socks[i].sendall(memoryview(messages[i])[n:])
                socks[i].setblocking(False)
        else:
            try:
                socks[i].send(messages[i])
            except BlockingIOError:
                pass  # counted lost at its timeout

    poll = poller.poll
    # every connection answers once before the clock starts: the server has accepted them all
    now = _now()
    for i in range(n_conn):
        send(i, now)
    waiting = set(range(n_conn))
    give_up = now + 30_000_000_000
    while waiting and _now() < give_up:
        for fd, _event in poll(0.05):
            i = by_fd[fd]
            try:
                n = socks[i].recv_into(views[i][got[i]:])
            except _WOULD_BLOCK:
                continue
            if stream and not n:
                raise LoadError("the server closed a connection")
            got[i] += n if stream else size
            if got[i] >= size:
                waiting.discard(i)
        if not stream:
            now = _now()
            for i in waiting:
                if now - sent_at[i] > timeout_ns:
                    send(i, now)
    if waiting:
        raise LoadError(f"{len(waiting)} of {n_conn} connections got no first reply within 30 s")
    measuring = False
    now = _now()
    phase_end = now + warmup_ns
    next_scan = now + timeout_ns // 4
    for i in range(n_conn):
        seqs[i] += 1
        send(i, now)
    try:
        while True:
            events = poll(0.05)
            now = _now()
            for fd, _event in events:
                i = by_fd[fd]
                sock = socks[i]
                try:
                    if stream:
                        n = sock.recv_into(views[i][got[i]:])
                        if not n:
                            raise LoadError("the server closed a connection")
                        got[i] += n
                        if got[i] < size:
                            continue
                    else:
                        n = sock.recv_into(buffers[i])
                except _WOULD_BLOCK:
                    # TLS: a record not complete yet, or a session ticket and no data. No
                    # read here leaves plaintext in the TLS layer where epoll cannot see it
                    # (SSLSocket.pending()): it asks for the rest of one reply, which a
                    # record of a closed-loop echo never exceeds
                    continue
                if (not stream and n != size) or buffers[i] != messages[i]:
                    if not stream and n >= 8 and SEQ.unpack_from(buffers[i])[0] < seqs[i]:
                        stale += 1
                        continue
                    mismatched += 1
                if measuring:
                    record(now - sent_at[i])
                seqs[i] += 1
                send(i, now)
            if not stream and now >= next_scan:
                next_scan = now + timeout_ns // 4
                for i in range(n_conn):
                    if now - sent_at[i] > timeout_ns:
                        if measuring:
                            lost += 1
                        seqs[i] += 1
                        send(i, now)
            if now >= phase_end:
                if measuring:
                    window.close(now)
                    break
                measuring = True
                window.open()
                phase_end = window.start_ns + duration_ns
    finally:
        poller.close()
        for s in socks:
            target.close(s)
    return {**window.result(), "count": len(latencies), "lost": lost, "stale": stale, "mismatched": mismatched,
            "histogram": encode_latencies(latencies), "client": "epoll", "connections": n_conn}


# -- rate (open loop) ---------------------------------------------------------------------


class _Timer:
    """A one-shot CLOCK_MONOTONIC timerfd set to absolute times (through libc: Python 3.11
    has no os.timerfd_*), so the loop wakes exactly when the next message is due."""

    class _Itimerspec(ctypes.Structure):
        _fields_ = [("it_interval", ctypes.c_long * 2), ("it_value", ctypes.c_long * 2)]

    def __init__(self) -> None:
        self._libc = libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.timerfd_create(time.CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create")
        self._spec = self._Itimerspec()
        self._ref = ctypes.byref(self._spec)
        self._settime = libc.timerfd_settime
        try:  # epoll timeouts exact to the microsecond, not the default 50 µs of slack
            libc.prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK
        except Exception:
            pass

    def at(self, when_ns: int) -> None:
        """Fire once at `when_ns` on the CLOCK_MONOTONIC clock (time.monotonic_ns)."""
        value = self._spec.it_value
        value[0], value[1] = divmod(max(when_ns, 1), 1_000_000_000)
        if self._settime(self.fd, 1, self._ref, None) != 0:  # TFD_TIMER_ABSTIME
            raise OSError(ctypes.get_errno(), "timerfd_settime")

    def drain(self) -> None:
        try:
            os.read(self.fd, 8)
        except BlockingIOError:
            pass

    def close(self) -> None:
        os.close(self.fd)


def rate(spec: dict[str, Any]) -> dict[str, Any]:
    """Open loop: see the module docstring. Times are CLOCK_MONOTONIC, as the timer's."""
    now_ns = time.monotonic_ns
    target = Target(spec)
    size, per_second = int(spec["size"]), float(spec["rate"])
    timeout_ns = int(float(spec.get("timeout", 1.0)) * 1e9)
    warmup_ns, duration_ns = int(spec["warmup"] * 1e9), int(spec["duration"] * 1e9)
    connections = int(spec.get("connections", 1))
    socks = [target.connect() for _ in range(connections)]
    n_conn = len(socks)
    by_fd = {s.fileno(): i for i, s in enumerate(socks)}
    for s in socks:
        s.setblocking(False)
    interval = 1e9 / per_second
    # relay mode: what the kernel dropped on the way (the listening socket we send to, and
    # every UDP socket on the machine), read at the edges of the run
    udp = target.inet and target.datagram and spec.get("count_drops")
    front0 = udp_socket_state(target.family, target.sockaddr) if udp else None
    snmp0 = snmp("Udp") if udp else {}
    timer = _Timer()
    poller = select.epoll()
    poller.register(timer.fd, select.EPOLLIN)
    for s in socks:
        poller.register(s.fileno(), select.EPOLLIN)
    message = _message(size)
    buffers = [bytearray(max(size, 65536)) for _ in range(n_conn)]
    # what the kernel did not take yet: stream bytes, or whole datagrams (a full unix
    # receiver makes its senders wait: the wait is the server's, and counts as latency)
    pending_out: list[Any] = [bytearray() if target.stream else collections.deque() for _ in range(n_conn)]
    inbox = [bytearray() for _ in range(n_conn)]  # stream bytes of a reply not yet complete
    due_fifo: list[collections.deque[tuple[int, int]]] = [collections.deque() for _ in range(n_conn)]  # streams: (seq, due)
    due_by_seq: dict[int, int] = {}  # datagrams: seq -> due
    latencies = array.array("q")
    lags = array.array("q")  # how late each message went out: the client's own delay
    stream = target.stream
    pack = SEQ.pack_into
    window = Window(spec.get("server_pid"))
    t0 = now_ns() + 1_000_000
    measure_from = t0 + warmup_ns
    send_until = measure_from + duration_ns
    measured_sent = measured_answered = mismatched = stale = 0
    index = 0
    window_open = False

    def in_window(due: int) -> bool:
        return measure_from <= due < send_until

    def flush(i: int) -> None:
        data = pending_out[i]
        try:
            if stream:
                del data[:socks[i].send(data)]
            else:
                while data:
                    socks[i].send(data[0])
                    data.popleft()
        except _WOULD_BLOCK:
            pass
        except ConnectionRefusedError:
            data.clear()  # UDP: nobody there (ICMP): these count as lost
        poller.modify(socks[i].fileno(), select.EPOLLIN | (select.EPOLLOUT if data else 0))

    def receive(i: int, now: int) -> None:
        nonlocal measured_answered, mismatched, stale
        sock, buffer = socks[i], buffers[i]
        try:
            # TLS: one record at most, and the buffer holds any record whole, so no
            # plaintext stays behind in the TLS layer (SSLSocket.pending()) unseen by epoll
            n = sock.recv_into(buffer)
        except _WOULD_BLOCK:
            return
        except ConnectionRefusedError:
            return
        if stream:
            if not n:
                raise LoadError("the server closed a connection")
            box = inbox[i]
            box += memoryview(buffer)[:n]
            while len(box) >= size:
                seq, due = due_fifo[i].popleft()
                if SEQ.unpack_from(box)[0] != seq:
                    mismatched += 1
                del box[:size]
                if in_window(due):
                    measured_answered += 1
                    latencies.append(now - due)
            return
        if n != size:
            mismatched += 1
            return
        seq = SEQ.unpack_from(buffer)[0]
        was_due = due_by_seq.pop(seq, None)
        if was_due is None:
            stale += 1  # a duplicate, or the reply to a message already given up on
            return
        if in_window(was_due):
            measured_answered += 1
            latencies.append(now - was_due)

    try:
        while True:
            now = now_ns()
            if not window_open and now >= measure_from:
                window.open()
                window_open = True
            # every message due by now goes out, each stamped with when it was due
            while True:
                due = t0 + int(index * interval)
                if due > now or due >= send_until:
                    break
                i = index % n_conn
                pack(message, 0, index)
                if in_window(due):
                    measured_sent += 1
                    lags.append(now - due)
                if stream:
                    due_fifo[i].append((index, due))
                    if not pending_out[i]:
                        try:
                            n = socks[i].send(message)
                        except _WOULD_BLOCK:
                            n = 0
                        if n < size:
                            pending_out[i] += memoryview(message)[n:]
                            poller.modify(socks[i].fileno(), select.EPOLLIN | select.EPOLLOUT)
                    else:
                        pending_out[i] += message
                else:
                    due_by_seq[index] = due
                    if pending_out[i]:
                        pending_out[i].append(bytes(message))
                    else:
                        try:
                            socks[i].send(message)
                        except BlockingIOError:
                            pending_out[i].append(bytes(message))
                            poller.modify(socks[i].fileno(), select.EPOLLIN | select.EPOLLOUT)
                        except ConnectionRefusedError:
                            pass  # UDP: nobody there (ICMP): counts as lost
                index += 1
            next_due = t0 + int(index * interval)
            if next_due >= send_until:
                break
            timer.at(next_due)
            for fd, event in poller.poll(0.1):
                if fd == timer.fd:
                    timer.drain()
                    continue
                i = by_fd[fd]
                if event & select.EPOLLOUT:
                    flush(i)
                if event & (select.EPOLLIN | select.EPOLLERR):
                    receive(i, now_ns())
        # the last replies: until all are in, or `timeout` after the last send
        window.close()
        give_up = now_ns() + timeout_ns
        poller.unregister(timer.fd)
        while (due_by_seq if not stream else any(due_fifo)) and now_ns() < give_up:
            for fd, event in poller.poll(0.01):
                i = by_fd[fd]
                if event & select.EPOLLOUT:
                    flush(i)
                if event & (select.EPOLLIN | select.EPOLLERR):
                    receive(i, now_ns())
    finally:
        timer.close()
        poller.close()
        for s in socks:
            target.close(s)
    front1 = udp_socket_state(target.family, target.sockaddr) if udp else None
    drops = {"front_drops": front1[1] - front0[1] if front0 and front1 else None,
             "rcvbuf_errors": snmp("Udp").get("RcvbufErrors", 0) - snmp0.get("RcvbufErrors", 0) if udp else None}
    lags.append(0)
    lags_sorted = sorted(lags)
    return {**window.result(), **drops, "rate": per_second, "sent": measured_sent, "count": measured_answered,
            "lost": measured_sent - measured_answered, "stale": stale, "mismatched": mismatched,
            "histogram": encode_latencies(latencies), "connections": n_conn,
            "send_lag_p99_us": lags_sorted[int(0.99 * (len(lags_sorted) - 1))] / 1e3,
            "send_lag_max_us": lags_sorted[-1] / 1e3}


# -- stream (bulk, one way) ----------------------------------------------------------------


def stream(spec: dict[str, Any]) -> dict[str, Any]:
    target = Target(spec)
    chunk = memoryview(_message(int(spec["chunk"])))
    seqpacket = target.type == socket.SOCK_SEQPACKET

    def transfer(seconds: float, window: Window | None) -> int:
        sock = target.connect(reply_timeout=30.0)
        send = sock.send if seqpacket else sock.sendall
        sent = 0
        try:
            if window is not None:
                window.open()
            end = _now() + int(seconds * 1e9)
            while _now() < end:
                send(chunk)
                sent += len(chunk)
            target.shutdown_write(sock)
            try:  # the discard server closes once it has read everything
                if sock.recv(1):
                    raise LoadError("the sink sent data back: is it a discard server?")
            except _TIMED_OUT:
                raise LoadError("the server did not close within 30 s of the end of the transfer") from None
            except ConnectionResetError:
                pass
            if window is not None:
                window.close()
        finally:
            target.close(sock)
        return sent

    if spec["warmup"] > 0:
        transfer(spec["warmup"], None)
    window = Window(spec.get("server_pid"))
    sent = transfer(spec["duration"], window)
    result = window.result()
    return {**result, "bytes": sent, "count": sent // len(chunk), "chunk": len(chunk)}


# -- datagrams (flat out, one way) ---------------------------------------------------------


def datagrams(spec: dict[str, Any]) -> dict[str, Any]:
    target = Target(spec)
    size = int(spec["size"])
    message = _message(size)
    seqpacket = target.type == socket.SOCK_SEQPACKET
    udp = target.inet and target.datagram

    def state() -> tuple[int, int] | None:
        return udp_socket_state(target.family, target.sockaddr) if udp else None

    def wait_drained(limit_s: float = 3.0) -> None:
        give_up = _now() + int(limit_s * 1e9)
        while _now() < give_up:
            now_state = state()
            if now_state is None or now_state[0] == 0:
                return
            time.sleep(0.0005)

    def blast(sock: socket.socket, seconds: float) -> tuple[int, int]:
        send = sock.send
        sent = failed = 0
        end = _now() + int(seconds * 1e9)
        while True:
            for _ in range(64):
                try:
                    send(message)
                    sent += 1
                except (BlockingIOError, ConnectionRefusedError):
                    failed += 1
                except OSError as exc:
                    if exc.errno != errno.ENOBUFS:
                        raise
                    failed += 1
            if _now() >= end:
                return sent, failed

    sock = target.connect(reply_timeout=30.0)
    try:
        if spec["warmup"] > 0:
            blast(sock, spec["warmup"])
            wait_drained()
        if seqpacket:  # a connection: start the measured part on a fresh one
            target.close(sock)
            sock = target.connect(reply_timeout=30.0)
        window = Window(spec.get("server_pid"))
        before, snmp_before = state(), snmp("Udp")
        window.open()
        sent, failed = blast(sock, spec["duration"])
        sending_ns = _now() - window.start_ns
        if seqpacket:
            sock.shutdown(socket.SHUT_WR)
            try:
                sock.recv(1)  # the discard server closes once it has read everything
            except (BlockingIOError, TimeoutError):
                raise LoadError("the server did not close within 30 s of the end of the transfer") from None
        else:
            wait_drained()
        window.close()
        after, snmp_after = state(), snmp("Udp")
    finally:
        target.close(sock)
    dropped = after[1] - before[1] if before and after else 0
    counters = {name: snmp_after.get(name, 0) - snmp_before.get(name, 0)
                for name in ("RcvbufErrors", "SndbufErrors", "InErrors", "InDatagrams", "OutDatagrams")
                if name in snmp_after}
    return {**window.result(), "sent": sent, "send_failed": failed, "dropped": dropped,
            "count": sent - dropped, "sending_s": sending_ns / 1e9, "drop_counter": "socket" if udp else None,
            "udp_counters": counters if udp else None, "size": size}


# -- connect ----------------------------------------------------------------------------


def connect(spec: dict[str, Any]) -> dict[str, Any]:
    target = Target(spec)
    if target.datagram:
        raise LoadError("connect needs a connection transport")
    one = b"x"
    buffer = bytearray(1)
    latencies = array.array("q")
    window = Window(spec.get("server_pid"))
    warm_end = _now() + int(spec["warmup"] * 1e9)
    measuring = False
    end = 0
    failures = 0
    while True:
        t0 = _now()
        try:
            sock = target.connect(reply_timeout=5.0)
        except OSError as exc:
            if exc.errno in (errno.EADDRNOTAVAIL, errno.EMFILE, errno.ENFILE):
                raise LoadError(f"connect failed: {exc}") from None
            failures += 1
            continue
        try:
            sock.send(one)
            if sock.recv_into(buffer) != 1:
                failures += 1
        except OSError:
            failures += 1
        target.close(sock)
        t1 = _now()
        if measuring:
            latencies.append(t1 - t0)
            if t1 >= end:
                window.close(t1)
                break
        elif t1 >= warm_end:
            measuring = True
            window.open()
            end = window.start_ns + int(spec["duration"] * 1e9)
    return {**window.result(), "count": len(latencies), "failures": failures,
            "histogram": encode_latencies(latencies)}


# -- hold -------------------------------------------------------------------------------


def hold(spec: dict[str, Any]) -> dict[str, Any]:
    """Open `hold` connections, each answering an echo; report what it cost the server."""
    target = Target(spec)
    wanted, batch = int(spec["hold"]), int(spec.get("batch", 500))
    server_pid = spec.get("server_pid")
    nofile = raise_nofile()
    message = b"x" * 8
    buffer = bytearray(64)
    rss_before = process_rss(server_pid)
    socks: list[socket.socket] = []
    stopped_by: str | None = None
    t0 = _now()

    def answers(group: list[socket.socket]) -> int:
        for s in group:
            s.send(message)
        ok = 0
        for s in group:
            try:
                got = 0
                while got < len(message):
                    n = s.recv_into(memoryview(buffer)[got:], len(message) - got)
                    if not n:
                        break
                    got += n
                ok += got == len(message) and buffer[:got] == message
            except OSError:
                pass
        return ok

    try:
        while len(socks) < wanted and stopped_by is None:
            group = []
            for _ in range(min(batch, wanted - len(socks))):
                try:
                    group.append(target.connect(reply_timeout=5.0))
                except OSError as exc:
                    stopped_by = f"connection {len(socks) + len(group) + 1}: {exc.strerror or exc}"
                    break
            if group:
                try:
                    ok = answers(group)
                except OSError as exc:
                    ok, stopped_by = 0, f"connection {len(socks) + 1}..: {exc.strerror or exc}"
                if ok < len(group):
                    stopped_by = stopped_by or (f"{len(group) - ok} of connections {len(socks) + 1}.."
                                                f"{len(socks) + len(group)} did not answer (ERR busy or closed)")
                    socks.extend(group)
                    break
            socks.extend(group)
        opened_s = (_now() - t0) / 1e9
        time.sleep(0.2)  # let the server settle before reading its memory
        rss_held = process_rss(server_pid)
        t1 = _now()
        answering = answers(socks) if socks else 0
        check_s = (_now() - t1) / 1e9
    finally:
        for s in socks:
            target.close(s)
    held = len(socks)
    per_connection = (rss_held - rss_before) / held if held and rss_held and rss_before else None
    return {"wanted": wanted, "held": held, "answering": answering, "count": answering,
            "stopped_by": stopped_by, "opened_s": opened_s, "check_s": check_s,
            "server_rss_before": rss_before, "server_rss_held": rss_held, "rss_per_connection": per_connection,
            "client_nofile": list(nofile)}


MODES = {"pingpong": pingpong, "rate": rate, "stream": stream, "datagrams": datagrams, "connect": connect,
         "hold": hold}


def main(argv: list[str]) -> int:
    try:
        spec = json.loads(argv[1])
        raise_nofile()
        result = MODES[spec["mode"]](spec)
    except (LoadError, OSError, KeyError, ValueError, IndexError) as exc:
        what = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        print(json.dumps({"error": what}), flush=True)
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
