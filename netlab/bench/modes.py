"""The modes of `netlab bench`: one `Mode` object each, and the settings of a run.

A **mode** is what a user asks for (``netlab bench MODE``): the transport kinds it runs
on and why it does not run on the others, what it measures on each kind, whether it runs
at several concurrency levels, holds connections afterwards, or adds iperf3. A **measure**
is what one load generator run measures and how its figures are summed up and shown: its
headline metric, the load generator mode and knobs it runs with, the service its servers
serve, the facets of its details and the table that draws them. Most modes have one
measure of the same name; ``concurrency`` adds ``hold``, and ``relay`` measures datagrams
passed on a datagram kind and a bulk transfer on a connection kind.

Rows and runs carry their measure's name (``Run.mode``, ``Row.mode``), as the JSON does.
Adding a mode is one `Measure` (or several) and one `Mode` below, and one line in `REGISTRY`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..transports import COMPARE_SCHEMES, Kind, Transport
from . import details
from .contract import LoadKnobs, LoadMode, LoadResult, LoadSpec, TargetSpec
from .details import DetailsTable, Facet
from .figures import Row, decode, spread_cell
from .procfs import usable_cpus

#: the baseline servers, each a script in benchmarks/baselines/
BASELINES: dict[str, str] = {
    "trio": "trio_echo.py",
    "asyncio": "asyncio_echo.py",
    "threads": "threads_echo.py",
}
#: the baseline relays of ``relay`` mode: a script in benchmarks/baselines/, or a program
RELAY_BASELINES: dict[str, str] = {
    "select": "select_relay.py",
    "socat": "socat",
}
#: ``relay`` mode: the peer behind every relay (a baseline server: not netlab's)
RELAY_PEER = "threads"
#: the offered rate of ``relay`` mode on datagrams when --rate is not given
RELAY_RATE = 20_000.0
DEFAULT_RATE = 5000.0
BASELINE_TEXT = {
    "netlab": "netlab serve (the server under test)",
    "trio": "minimal trio server: serve_listeners + async for / send_all (the cost floor for trio)",
    "asyncio": "asyncio protocol callbacks (data_received -> write)",
    "threads": "blocking sockets, one thread per connection (standard library)",
    "iperf3": "iperf3 -s / -c (its own client; stream mode, TCP only)",
    "before": "netlab serve from another source tree (--before): the same command, older code",
    "select": "a minimal select() relay (benchmarks/baselines/select_relay.py): the floor for a relay in Python",
    "socat": "socat LISTEN,fork (Debian's package), one process per client",
}
PINS = ("same", "split", "none")

#: what a server serves to a measure's load: every message back, or nothing
Service = Literal["echo", "discard"]


@dataclass(frozen=True)
class Measure:
    """What one load generator run measures, and how its runs are summed up and shown."""

    name: str  # as rows and runs (and the JSON) name it
    metric: str  # the headline figure
    unit: str
    higher_is_better: bool
    loadgen: LoadMode  # the load generator mode that measures it
    service: Service
    headline: Callable[[LoadResult], float | None]  # one run's headline figure
    details: DetailsTable
    knobs: Callable[[BenchSettings, int | None], LoadKnobs] = lambda settings, level: {}
    facets: tuple[Facet, ...] = ()  # what its details add up, beyond the latency histogram
    #: server CPU time per message is meaningful (so it is shown, and compared in cost ratios)
    per_message: bool = True
    by_level: bool = False  # a row per concurrency level
    #: the headline table: its title (default: the metric, median of the repeats), its
    #: column per server and its cell (default: the median and spread)
    title: Callable[[BenchSettings], str] | None = None
    column: str = "{server} {unit}"
    cell: Callable[[Row | None], str] = spread_cell

    def spec(self, settings: BenchSettings, target: TargetSpec, server_pid: int | None,
             level: int | None) -> LoadSpec:
        """What the load generator is told for one run of this measure against `target`
        (`server_pid`: whose CPU time and memory it reads; `level`: connections, by level)."""
        return {**target, "mode": self.loadgen, "server_pid": server_pid, "size": settings.size,
                "warmup": settings.warmup, "duration": settings.duration, "timeout": settings.timeout,
                **self.knobs(settings, level)}


@dataclass(frozen=True)
class Mode:
    """One mode of ``netlab bench``: where it runs, what it measures there, what else it does."""

    name: str
    text: str  # one line, for the list of modes
    measure: Measure
    #: where it runs, by what a transport declares: only where there are connections
    #: (`Transport.connected`: stream and seqpacket), only where messages keep their
    #: boundaries (`Transport.boundaries`: datagram and seqpacket); both False: everywhere
    connections: bool = False
    messages: bool = False
    not_applicable: str | None = None  # why a transport it does not run on is not run
    by_kind: Mapping[Kind, Measure] = field(default_factory=dict)  # a kind's measure, when not `measure`
    refuses_encrypted: str | None = None  # why an encrypted transport is not run (None: it is)
    levels: bool = False  # runs once per concurrency level (--levels)
    hold: Measure | None = None  # then, on connection transports, each server holds --hold connections
    iperf3: bool = False  # on tcp and tcp6, iperf3 runs too (--iperf3, when installed)
    one_datagram: bool = False  # a message must fit one UDP datagram
    rate: float = DEFAULT_RATE  # --rate when not given
    baselines: Mapping[str, str] = field(default_factory=lambda: BASELINES)  # what --baselines may name
    relays: bool = False  # the "servers" are relays, to a baseline server (RELAY_PEER) behind them

    def why_not(self, transport: Transport) -> str | None:
        """Why this mode does not run on `transport` (None: it does)."""
        if (self.connections and not transport.connected) or (self.messages and not transport.boundaries):
            return self.not_applicable or f"{self.name} does not run on {transport.kind} transports"
        if transport.encrypted and self.refuses_encrypted:
            return self.refuses_encrypted
        return None

    def measure_on(self, transport: Transport) -> Measure:
        """What a run of this mode measures on `transport`."""
        return self.by_kind.get(transport.kind, self.measure)

    @property
    def measures(self) -> tuple[Measure, ...]:
        """Every measure of its runs, the mode's own first (``hold`` last)."""
        found = (self.measure, *self.by_kind.values()) + ((self.hold,) if self.hold else ())
        return tuple(dict.fromkeys(found))


# -- headline figures of one run --------------------------------------------------------------


def per_second(r: LoadResult) -> float | None:
    """Messages (or connections, datagrams) counted per second of the window."""
    return r["count"] / r["elapsed"] if r.get("elapsed") else None


def p99_latency_us(r: LoadResult) -> float | None:
    h = decode(r.get("histogram"))
    return None if h is None else h.get_value_at_percentile(99) / 1e3


def megabytes_per_second(r: LoadResult) -> float | None:
    return r["bytes"] / r["elapsed"] / 1e6 if r.get("elapsed") else None


def kib_per_connection(r: LoadResult) -> float | None:
    """Server memory per connection held, when every connection held answered."""
    per = r.get("rss_per_connection")
    return per / 1024 if per and r.get("answering") == r.get("held") else None


# -- the load generator's knobs, per measure --------------------------------------------------


def _rate(settings: BenchSettings) -> float:
    assert settings.rate is not None  # BenchSettings fills it in
    return settings.rate


def _level(level: int | None) -> int:
    assert level is not None  # a measure by level runs at each level
    return level


# -- the measures --------------------------------------------------------------------------

PINGPONG = Measure(
    "pingpong", "round trips/s", "rt/s", True, "pingpong", "echo", per_second,
    details.latency_table(details.LOST), knobs=lambda s, level: {"connections": s.connections},
    facets=(details.replies,))
CONCURRENCY = Measure(
    "concurrency", "round trips/s", "rt/s", True, "pingpong", "echo", per_second,
    details.latency_table(details.LOST, levels=True), knobs=lambda s, level: {"connections": _level(level)},
    facets=(details.replies,), by_level=True)
RATE = Measure(
    "rate", "p99 latency", "µs", False, "rate", "echo", p99_latency_us, details.latency_table(details.OPEN_LOOP),
    knobs=lambda s, level: {"connections": s.connections, "rate": _rate(s)},
    facets=(details.replies, details.open_loop))
STREAM = Measure(
    "stream", "throughput", "MB/s", True, "stream", "discard", megabytes_per_second,
    details.bytes_table("stream: details", "server"), knobs=lambda s, level: {"chunk": s.chunk},
    facets=(details.moved_bytes,), per_message=False)
DATAGRAMS = Measure(
    "datagrams", "datagrams taken/s", "dgram/s", True, "datagrams", "discard", per_second,
    details.datagrams_table, facets=(details.datagrams_taken,))
CONNECT = Measure(
    "connect", "connections/s", "conn/s", True, "connect", "echo", per_second,
    details.latency_table(details.FAILURES), facets=(details.failures,))
HOLD = Measure(
    "hold", "server memory per connection held", "KiB", False, "hold", "echo", kib_per_connection,
    details.hold_table, knobs=lambda s, level: {"hold": s.hold}, facets=(details.held,), per_message=False,
    title=lambda s: f"hold: {s.hold:,} idle connections per server, then each answers an echo",
    column="{server} held/answering (RSS per conn)", cell=details.hold_cell)
RELAY_DATAGRAMS = Measure(
    "relay-datagrams", "datagrams passed/s", "dgram/s", True, "rate", "echo", per_second,
    details.relayed_datagrams_table, knobs=lambda s, level: {"connections": 1, "rate": _rate(s), "count_drops": True},
    facets=(details.replies, details.open_loop, details.kernel_drops))
RELAY_STREAM = Measure(
    "relay-stream", "throughput through the relay", "MB/s", True, "stream", "discard", megabytes_per_second,
    details.bytes_table("relay, streams: details", "relay"), knobs=lambda s, level: {"chunk": s.chunk},
    facets=(details.moved_bytes,), per_message=False)


# -- the modes -----------------------------------------------------------------------------

REGISTRY: dict[str, Mode] = {mode.name: mode for mode in (
    Mode("pingpong", "closed loop: each connection sends one message and waits for its reply", PINGPONG,
         one_datagram=True),
    Mode("rate", "open loop at a fixed rate; latency from each message's due time (coordinated omission corrected)",
         RATE, one_datagram=True),
    Mode("stream", "one-way bulk transfer into a discard server (connection transports)", STREAM,
         connections=True, not_applicable="no connection to stream over: see the datagrams mode", iperf3=True),
    Mode("datagrams", "datagrams a discard server takes per second, flat out, and where the rest went", DATAGRAMS,
         messages=True, not_applicable="a byte stream has no datagrams: see the stream mode",
         one_datagram=True),
    Mode("connect", "connections per second: connect, a 1-byte echo, close (connection transports)", CONNECT,
         connections=True, not_applicable="connectionless: nothing to accept"),
    Mode("concurrency",
         "ping-pong at 1, 10, 100, 1000 connections, and how many idle connections one server holds",
         CONCURRENCY, levels=True, hold=HOLD, one_datagram=True),
    Mode("relay", "through a relay to a plain peer, no impairment: datagrams passed at --rate (default 20,000/s) "
                  "and MB/s on connections; netlab relay against a minimal select relay and socat",
         RELAY_STREAM, by_kind={"datagram": RELAY_DATAGRAMS},
         refuses_encrypted="a relay of TLS is two TLS sessions (it decrypts and encrypts again): not measured",
         rate=RELAY_RATE, baselines=RELAY_BASELINES, relays=True),
)}
#: every measure, by the name rows and runs carry
MEASURES: dict[str, Measure] = {m.name: m for mode in REGISTRY.values() for m in mode.measures}
#: the modes and what each does, one line each
MODES: dict[str, str] = {name: mode.text for name, mode in REGISTRY.items()}


# -- the settings of a run ---------------------------------------------------------------------


@dataclass(frozen=True)
class BenchSettings:
    mode: str
    transports: tuple[str, ...] = tuple(COMPARE_SCHEMES)
    baselines: tuple[str, ...] = tuple(BASELINES)
    duration: float = 2.0  # seconds measured per run
    warmup: float = 0.5  # seconds before each run, discarded
    repeats: int = 3
    size: int = 64  # message (or datagram) bytes
    connections: int = 1  # pingpong, rate
    rate: float | None = None  # rate: messages per second, in all (None: 5,000; relay mode 20,000)
    levels: tuple[int, ...] = (1, 10, 100, 1000)  # concurrency
    hold: int = 10_000  # concurrency: idle connections to hold (0: skip)
    chunk: int = 128 * 1024  # stream: bytes per write (iperf3's default for TCP)
    timeout: float = 0.2  # datagram reply timeout (pingpong, rate)
    pin: str = "same"
    iperf3: bool = True  # stream: run iperf3 too, when installed
    baselines_dir: str | None = None  # where the baseline scripts are (default: benchmarks/baselines)
    before: str | None = None  # another netlab source tree, run too as the server "before"

    def __post_init__(self) -> None:
        mode = REGISTRY.get(self.mode)
        if mode is None:
            raise ValueError(f"unknown mode {self.mode!r} (known: {', '.join(REGISTRY)})")
        if self.rate is None:
            object.__setattr__(self, "rate", mode.rate)
        known = mode.baselines
        if known is not BASELINES and self.baselines == tuple(BASELINES):  # the servers' default: the mode's
            object.__setattr__(self, "baselines", tuple(known))
        unknown = [t for t in self.transports if t not in COMPARE_SCHEMES]
        if unknown or not self.transports:
            raise ValueError(f"unknown transport {(unknown or [''])[0]!r} (known: {', '.join(COMPARE_SCHEMES)})")
        unknown = [b for b in self.baselines if b not in known]
        if unknown:
            raise ValueError(f"unknown baseline {unknown[0]!r} for {self.mode} (known: {', '.join(known)})")
        if self.pin not in PINS:
            raise ValueError(f"--pin must be one of {', '.join(PINS)}, not {self.pin!r}")
        if self.duration <= 0 or self.warmup < 0 or self.timeout <= 0:
            raise ValueError("duration and timeout must be positive, warm-up not negative")
        if self.repeats < 1 or self.connections < 1:
            raise ValueError("repeats and connections must be at least 1")
        if self.size < 8:
            raise ValueError("size must be at least 8 bytes (a message carries its sequence number)")
        if self.size > 65000 and mode.one_datagram:
            raise ValueError("size must be at most 65000 bytes (it must fit one UDP datagram)")
        if self.rate is None or self.rate <= 0:
            raise ValueError("rate must be positive")
        if not self.levels or min(self.levels) < 1:
            raise ValueError("concurrency levels must be at least 1")
        if self.hold < 0:
            raise ValueError("hold must not be negative")
        if self.chunk < 1 or self.chunk > 200_000:
            raise ValueError("chunk must be 1..200000 bytes (a unix-seq message must fit the send buffer)")
        if self.pin == "split" and len(usable_cpus()) < 2:
            raise ValueError("--pin split needs two cores; this process may use only one")
        if self.before is not None and not (Path(self.before) / "netlab" / "__main__.py").is_file():
            raise ValueError(f"--before {self.before}: not a netlab source tree (no netlab/__main__.py in it)")

    @property
    def bench_mode(self) -> Mode:
        """The `Mode` this run is of."""
        return REGISTRY[self.mode]

    @property
    def servers(self) -> tuple[str, ...]:
        return ("netlab", *self.baselines) + (("before",) if self.before else ())

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["servers"] = list(self.servers)
        return data


__all__ = ["BASELINES", "BASELINE_TEXT", "DEFAULT_RATE", "MEASURES", "MODES", "PINS", "REGISTRY", "RELAY_BASELINES",
           "RELAY_PEER", "RELAY_RATE", "BenchSettings", "Measure", "Mode", "Service"]
