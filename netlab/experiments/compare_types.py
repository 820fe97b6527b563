"""What `netlab compare` is asked and what it finds: `CompareSettings` (the workload, the
impairments each way, how long to wait) and `TransportResult` (one (transport, service)
run's figures). Plain data, shared by the run (`netlab.experiments.compare`), its report
(`netlab.experiments.compare_report`) and kernel mode (`netlab.experiments.kernel`), none
of which this module imports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..impair.decisions import REORDER_HOLD, Impairments
from ..transports import COMPARE_SCHEMES


@dataclass(frozen=True)
class CompareSettings:
    transports: tuple[str, ...] = field(default_factory=lambda: tuple(COMPARE_SCHEMES))  # every one registered
    services: tuple[str, ...] = ("echo", "sum")
    messages: int = 1000
    size: int = 64
    rate: float | None = None  # messages per second in all, open loop; None: closed loop
    concurrency: int = 1
    timeout: float | None = None  # per reply; None: 1 s, or scaled to the impairments
    forward: Impairments = Impairments()
    backward: Impairments = Impairments()
    seed: int = 1
    parallel: bool | None = None  # run transports at once; None: only when impaired

    def __post_init__(self) -> None:
        if self.messages < 1 or self.concurrency < 1:
            raise ValueError("messages and concurrency must be at least 1")
        if self.concurrency > self.messages:
            raise ValueError("concurrency cannot exceed the number of messages")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be positive")

    @property
    def impaired(self) -> bool:
        return bool(self.forward.active or self.backward.active)

    @property
    def reply_timeout(self) -> float:
        """How long to wait for a reply before counting it lost (closed loop)."""
        if self.timeout is not None:
            return self.timeout
        if not self.impaired:
            return 1.0
        return max(0.1, 2 * (slowest_way(self.forward) + slowest_way(self.backward)))

    @property
    def runs_in_parallel(self) -> bool:
        return self.impaired if self.parallel is None else self.parallel

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["reply_timeout"] = self.reply_timeout
        data["parallel"] = self.runs_in_parallel
        data["forward"] = {"text": self.forward.describe(), **asdict(self.forward)}
        data["backward"] = {"text": self.backward.describe(), **asdict(self.backward)}
        return data


@dataclass
class TransportResult:
    transport: str
    service: str
    address: str  # the server
    via: str | None = None  # the relay in front of it, if any
    planned: int = 0
    sent: int = 0
    delivered: int = 0
    verified: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    max_displacement: int = 0
    corrupted: int = 0
    truncated: int = 0
    replies: int = 0  # replies read, whatever they were (for boundaries: replies -> reads)
    reads: int = 0
    p50_us: float | None = None
    p90_us: float | None = None
    p99_us: float | None = None
    p999_us: float | None = None
    max_us: float | None = None
    goodput_bps: float = 0.0
    elapsed_s: float = 0.0
    sent_bytes: int = 0  # request bytes handed to the socket (framing included)
    started_at: float = 0.0  # when the workload began (seconds since the epoch)
    cpu_user_s: float = 0.0  # this process's CPU time during the run (client and server both)
    cpu_system_s: float = 0.0
    not_applied: list[str] = field(default_factory=list)
    relay: dict[str, object] | None = None
    kernel: dict[str, object] | None = None  # kernel mode: loss rule and /proc/net/snmp figures
    intervals: list[dict[str, float]] = field(default_factory=list)
    latencies_us: list[float] = field(default_factory=list, repr=False)
    error: str | None = None

    @property
    def boundaries_kept(self) -> bool:
        return self.reads == self.replies

    def summary(self) -> dict[str, object]:
        data = asdict(self)
        del data["latencies_us"]
        data["boundaries_kept"] = self.boundaries_kept
        return data


def slowest_way(s: Impairments) -> float:
    """The longest one direction may hold a packet: delay, jitter, reordering, a full queue."""
    hold = max(2 * s.delay, REORDER_HOLD) if s.reorder else 0.0
    queue = s.queue / s.rate if s.rate else 0.0
    return s.delay + s.jitter + hold + queue


__all__ = ["CompareSettings", "TransportResult", "slowest_way"]
