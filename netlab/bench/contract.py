"""What `netlab bench` and its load generator say to each other: one definition each.

The parent process passes the load generator a `LoadSpec` as JSON (its one argument);
the load generator prints one JSON object on stdout: a `LoadResult`, or a `LoadFailure`
(and exit status 1). Both sides import these types, so a key renamed on one side is a
type error on the other. The load generator imports nothing heavy, so this module imports
only `typing`.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

#: what the load generator can do (``LoadSpec["mode"]``)
LoadMode = Literal["pingpong", "rate", "stream", "datagrams", "connect", "hold"]

#: a socket address as JSON carries it: a unix path (or ``\0``-led abstract name), or
#: ``[host, port]``
WireSockaddr = str | list[str | int]


class TlsSpec(TypedDict):
    """Encrypted transports: the CA that signed the server's certificate, and the name to
    verify it against."""

    ca: str
    server_hostname: str | None


class TargetSpec(TypedDict):
    """How to reach a server: address family, socket type, address (and TLS)."""

    family: int
    type: int
    address: WireSockaddr
    tls: NotRequired[TlsSpec]


class LoadKnobs(TypedDict, total=False):
    """What one mode of the load generator reads beyond what every mode reads."""

    connections: int  # pingpong, rate (default 1)
    rate: float  # rate: messages per second, in all
    count_drops: bool  # rate on UDP: read the kernel's drop counters at the edges
    chunk: int  # stream: bytes per write
    hold: int  # hold: connections to open
    batch: int  # hold: connections opened before each answers (default 500)


class LoadSpec(TargetSpec, LoadKnobs):
    """One run of the load generator: the target, the mode, and the knobs of that mode."""

    mode: LoadMode
    size: int  # message (or datagram) bytes
    warmup: float  # seconds, discarded
    duration: float  # seconds measured
    server_pid: NotRequired[int | None]  # whose CPU time and memory to read (None: nobody's)
    timeout: NotRequired[float]  # datagram reply timeout (default 1 s)


class LoadResult(TypedDict, total=False):
    """What one run measured. Each mode fills the keys that apply to it (and only those:
    the JSON report shows a run's result as it came); iperf3's runs, made by the parent,
    have the same shape."""

    # the measured window (every mode but hold)
    elapsed: float  # seconds
    client_cpu: float  # the load generator's CPU seconds in the window
    server_cpu: float | None  # the server's (None: not readable, or no server_pid)
    client_cpu_user: float | None  # the same, user and system time apart
    client_cpu_system: float | None
    server_cpu_user: float | None
    server_cpu_system: float | None
    # messages (or connections, chunks, datagrams) counted in the window
    count: int
    histogram: str | None  # latencies (ns) as an encoded HdrHistogram
    connections: int
    # pingpong and rate
    lost: int
    stale: int  # replies that came after their request was counted lost
    mismatched: int
    client: str  # pingpong: "blocking" (one connection) or "epoll"
    # rate
    rate: float
    sent: int
    send_lag_p99_us: float
    send_lag_max_us: float
    front_drops: int | None  # count_drops: the target socket's kernel drops
    rcvbuf_errors: int | None  # count_drops: machine-wide UDP RcvbufErrors
    # stream (and iperf3)
    bytes: int
    chunk: int
    bits_per_second: float  # iperf3
    iperf3_seconds: int  # iperf3
    # datagrams
    send_failed: int
    dropped: int
    sending_s: float
    drop_counter: str | None
    udp_counters: dict[str, int] | None
    size: int
    # connect
    failures: int
    # hold
    wanted: int
    held: int
    answering: int
    stopped_by: str | None
    opened_s: float
    check_s: float
    server_rss_before: int | None
    server_rss_held: int | None
    rss_per_connection: float | None
    client_nofile: list[int]
    # added by the parent: the cores the load generator was allowed to run on
    client_affinity: list[int] | None


class LoadFailure(TypedDict):
    """The load generator's one line when it could not measure."""

    error: str


def socket_address(address: WireSockaddr) -> str | tuple[str, int]:
    """The address as `socket.connect` takes it."""
    if isinstance(address, list):
        return str(address[0]), int(address[1])
    return address


__all__ = ["LoadFailure", "LoadKnobs", "LoadMode", "LoadResult", "LoadSpec", "TargetSpec", "TlsSpec", "WireSockaddr",
           "socket_address"]
