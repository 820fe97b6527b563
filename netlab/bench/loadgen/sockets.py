"""The load generator's sockets: the target it connects to (plain or TLS), the measured
window, the message every mode sends, and the latencies as an HdrHistogram."""

from __future__ import annotations

import array
import socket
import ssl
import struct
import time

from ..contract import LoadResult, TargetSpec, socket_address
from ..procfs import own_cpu_parts, process_cpu_parts, udp_socket_state

#: a request's first 8 bytes: its sequence number
SEQ = struct.Struct("<Q")
#: the clock of every measured interval, in ns
now = time.perf_counter_ns


class LoadError(Exception):
    """A failure the result reports as its error."""


#: a non-blocking socket, plain or TLS, has nothing to give or no room to take now
WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
#: a blocking receive gave up at its SO_RCVTIMEO (EAGAIN; on TLS, OpenSSL wants to read)
TIMED_OUT = (BlockingIOError, TimeoutError, ssl.SSLWantReadError)
#: a handshake that failed because the server went away (or did not answer within the
#: receive timeout), rather than because TLS refused it
_TLS_GONE = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError, ssl.SSLWantReadError)



class Target:
    """The server a run drives, and how to open, half-close and close connections to it."""

    def __init__(self, spec: TargetSpec) -> None:
        self.family = int(spec["family"])
        self.type = int(spec["type"])
        self.sockaddr = socket_address(spec["address"])
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

    def udp_state(self) -> tuple[int, int] | None:
        """(receive queue bytes, kernel drops) of the target's UDP socket; None if not UDP."""
        if not (self.inet and self.datagram) or isinstance(self.sockaddr, str):
            return None
        return udp_socket_state(self.family, self.sockaddr)

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


def make_message(size: int) -> bytearray:
    """`size` bytes of a recognisable pattern (a request writes its sequence number over the start)."""
    return bytearray((b"netlab-bench-" * (size // 13 + 1))[:size])


class Window:
    """The measured window: CPU of both sides at its edges (user and system apart, as
    iperf3's ``cpu_utilization_percent`` wants them), and its length."""

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
        self.start_ns = now()

    def close(self, end_ns: int | None = None) -> None:
        self.end_ns = end_ns or now()
        client1 = own_cpu_parts()
        self.client_parts = (client1[0] - self._client0[0], client1[1] - self._client0[1])
        self.client_cpu = sum(self.client_parts)
        server1 = process_cpu_parts(self.server_pid)
        self.server_parts = None if server1 is None or self._server0 is None else (
            server1[0] - self._server0[0], server1[1] - self._server0[1])
        self.server_cpu = None if self.server_parts is None else sum(self.server_parts)

    def result(self) -> LoadResult:
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


__all__ = ["SEQ", "TIMED_OUT", "WOULD_BLOCK", "LoadError", "Target", "Window", "encode_latencies",
           "make_message", "now", "set_receive_timeout"]
