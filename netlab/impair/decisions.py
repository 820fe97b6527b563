"""Impairments: what a bad network does to traffic, decided by a seeded RNG, with no I/O.

The relay (`netlab.impair.relay`) asks a `DatagramImpairer` or `StreamImpairer`
what to do with each packet or chunk and when; this module only decides. Each decision
draws from the RNG in a fixed order, so the same seed and the same traffic give the same
decisions (queue drops under `rate` also depend on timing, and are the one exception).

Datagrams (netem-style), applied in this order to each packet:

==============  =====================================================================
``loss``        drop, independently, with probability P
``loss_burst``  Gilbert-Elliott: in the good state nothing is lost; a packet enters the
                bad state with probability p and leaves it with probability r; every
                packet sent in the bad state is lost. Long-run loss is p / (p + r),
                mean burst length 1 / r.
``corrupt``     flip one random bit of one random byte, with probability P
``duplicate``   send a second copy, with probability P
``reorder``     hold the packet back, with probability P, so the next packets pass it:
                it leaves after `REORDER_HOLD` s more than the others (or, with a
                delay, after twice the delay)
``delay``       every packet waits `delay` ± `jitter` s (uniform); as with netem, a
                jitter larger than the gap between packets reorders them too
``rate``        bytes per second; packets wait in a FIFO queue of at most
                ``queue`` bytes, and one that does not fit is dropped (tail drop)
==============  =====================================================================

Streams (Toxiproxy-style): ``delay``/``jitter`` (the order of bytes is kept: a chunk never
overtakes the one before), ``rate``, ``slice`` (re-chunk the bytes into writes of random
size between MIN and MAX: the receiver sees different reads, the same bytes),
``reset_after`` (after N bytes, abort with RST), ``close_after`` (after N bytes, close
cleanly).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import ImpairmentError

#: how long a reordered datagram is held back when there is no delay to scale from
REORDER_HOLD = 0.005


def _probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ImpairmentError(f"{name} is a probability: between 0 and 1, not {value:g}")


@dataclass(frozen=True)
class Impairments:
    """Settings for one direction. Times in seconds, rate in bytes per second."""

    loss: float = 0.0
    loss_burst: tuple[float, float] | None = None
    corrupt: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    rate: float | None = None
    queue: int = 256 * 1024
    slice: tuple[int, int] | None = None
    reset_after: int | None = None
    close_after: int | None = None

    def __post_init__(self) -> None:
        for name in ("loss", "corrupt", "duplicate", "reorder"):
            _probability(name, getattr(self, name))
        if self.loss_burst is not None:
            p, r = self.loss_burst
            _probability("loss-burst enter", p)
            _probability("loss-burst leave", r)
            if r == 0 and p > 0:
                raise ImpairmentError("loss-burst leave probability 0 would never leave a burst: use 0 < R <= 1")
        if self.delay < 0 or self.jitter < 0:
            raise ImpairmentError("delay and jitter cannot be negative")
        if self.jitter > 0 and self.jitter > self.delay:
            raise ImpairmentError(f"jitter ({self.jitter * 1e3:g} ms) cannot exceed delay ({self.delay * 1e3:g} ms)")
        if self.rate is not None and self.rate <= 0:
            raise ImpairmentError("rate must be positive (bytes per second)")
        if self.queue < 1:
            raise ImpairmentError("queue must hold at least one byte")
        if self.slice is not None:
            low, high = self.slice
            if not 1 <= low <= high:
                raise ImpairmentError(f"slice MIN:MAX needs 1 <= MIN <= MAX, not {low}:{high}")
        for name in ("reset_after", "close_after"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ImpairmentError(f"{name.replace('_', '-')} cannot be negative")

    @property
    def active(self) -> list[str]:
        """Names of the settings that differ from a perfect link."""
        default = Impairments()
        return [f.name for f in fields(self) if f.name != "queue" and getattr(self, f.name) != getattr(default, f.name)]

    @property
    def datagram_only(self) -> list[str]:
        return [n for n in self.active if n in ("loss", "loss_burst", "corrupt", "duplicate", "reorder")]

    @property
    def stream_only(self) -> list[str]:
        return [n for n in self.active if n in ("slice", "reset_after", "close_after")]

    def describe(self) -> str:
        parts = []
        for name in self.active:
            value = getattr(self, name)
            if name in ("delay", "jitter"):
                parts.append(f"{name} {value * 1e3:g} ms")
            elif name == "loss_burst":
                parts.append(f"loss-burst {value[0]:g}:{value[1]:g}")
            elif name == "slice":
                parts.append(f"slice {value[0]}:{value[1]}")
            else:
                parts.append(f"{name.replace('_', '-')} {value:g}")
        return ", ".join(parts) or "none"


@dataclass
class ImpairStats:
    """What one direction did. `passed` counts packets (or chunks) handed on."""

    received: int = 0
    passed: int = 0
    dropped: int = 0  # by loss / loss_burst
    queue_dropped: int = 0  # by rate's full queue
    corrupted: int = 0
    duplicated: int = 0
    reordered: int = 0
    bytes: int = 0
    resets: int = 0
    closes: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class DatagramImpairer:
    """Decides, for each datagram, whether and when it (and any copy) goes out."""

    settings: Impairments
    rng: random.Random
    stats: ImpairStats = field(default_factory=ImpairStats)
    _bad_state: bool = False
    _link_free_at: float = 0.0
    _queued: list[tuple[float, int]] = field(default_factory=list)  # (leave time, size)

    def __post_init__(self) -> None:
        #: no setting is active: every datagram passes at once, unchanged
        self.transparent = not self.settings.active

    def decide(self, data: bytes, now: float) -> list[tuple[float, bytes]]:
        """Return ``[(when, payload), ...]``: nothing for a drop, two for a duplicate."""
        s, rng = self.settings, self.rng
        self.stats.received += 1
        if self.transparent:  # nothing to decide, so no draw (the RNG serves this direction only)
            self.stats.passed += 1
            self.stats.bytes += len(data)
            return [(now, data)]
        # every draw happens for every packet, so decisions depend only on the seed and count
        lost_draw, burst_draw, corrupt_draw, dup_draw, reorder_draw = (rng.random() for _ in range(5))
        jitter_draws = (rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0))
        flip_at, flip_bit = rng.randrange(max(len(data), 1)), rng.randrange(8)
        if s.loss_burst is not None:
            p, r = s.loss_burst
            self._bad_state = (burst_draw >= r) if self._bad_state else (burst_draw < p)
        if lost_draw < s.loss or self._bad_state:
            self.stats.dropped += 1
            return []
        if corrupt_draw < s.corrupt and data:
            mutable = bytearray(data)
            mutable[flip_at] ^= 1 << flip_bit
            data = bytes(mutable)
            self.stats.corrupted += 1
        copies = 2 if dup_draw < s.duplicate else 1
        if copies == 2:
            self.stats.duplicated += 1
        hold = 0.0
        if reorder_draw < s.reorder:
            hold = max(2 * s.delay, REORDER_HOLD)
            self.stats.reordered += 1
        out = []
        for copy in range(copies):
            when = now + s.delay + s.jitter * jitter_draws[copy] + hold
            if s.rate is not None:
                shaped = self._shape(when, len(data))
                if shaped is None:
                    self.stats.queue_dropped += 1
                    continue
                when = shaped
            out.append((when, data))
        self.stats.passed += len(out)
        self.stats.bytes += len(data) * len(out)
        return out

    def _shape(self, ready: float, size: int) -> float | None:
        """Serialize at `rate` through a FIFO of `queue` bytes; None if the queue is full."""
        assert self.settings.rate is not None
        self._queued = [(t, n) for t, n in self._queued if t > ready]
        if sum(n for _, n in self._queued) + size > self.settings.queue:
            return None
        start = max(ready, self._link_free_at)
        self._link_free_at = start + size / self.settings.rate
        self._queued.append((self._link_free_at, size))
        return self._link_free_at


@dataclass
class StreamImpairer:
    """Decides how one connection's byte stream (one direction) is re-chunked and delayed,
    and when it is cut. Use one per connection and direction (as Toxiproxy does): the byte
    count behind ``reset_after``/``close_after``, the order of chunks and the rate belong to
    a connection. Several may share one `stats` (and one RNG)."""

    settings: Impairments
    rng: random.Random
    stats: ImpairStats = field(default_factory=ImpairStats)
    _last_at: float = 0.0
    _link_free_at: float = 0.0
    _bytes: int = 0  # passed on this connection, for reset_after / close_after

    @property
    def transparent(self) -> bool:
        """Nothing to impair: every chunk passes whole and at once, and no draw is made."""
        return not self.settings.active

    def passed_whole(self, size: int) -> None:
        """Count a `size`-byte chunk passed on whole and at once, as `decide` does when the
        impairer is `transparent` (which then needs neither the bytes nor the time)."""
        assert self.transparent
        self.stats.received += 1
        if size:
            self.stats.passed += 1
            self.stats.bytes += size
            self._bytes += size

    def decide(self, data: bytes, now: float) -> tuple[list[tuple[float, bytes]], str | None]:
        """Return the writes ``[(when, chunk)]`` for `data`, and ``"reset"``/``"close"``
        when the connection must be cut after them."""
        s, rng = self.settings, self.rng
        self.stats.received += 1
        cut: str | None = None
        limit = None
        for name, kind in ((s.reset_after, "reset"), (s.close_after, "close")):
            if name is not None and (limit is None or name < limit):
                limit, cut_kind = name, kind
        if limit is not None:
            room = limit - self._bytes
            if room <= len(data):
                data, cut = data[: max(room, 0)], cut_kind
        chunks: list[bytes] = []
        if s.slice is not None:
            low, high = s.slice
            start = 0
            while start < len(data):
                size = rng.randint(low, high)
                chunks.append(data[start : start + size])
                start += size
        elif data:
            chunks.append(data)
        out = []
        for chunk in chunks:
            when = now + s.delay + (s.jitter * rng.uniform(-1.0, 1.0) if s.jitter else 0.0)
            when = max(when, self._last_at)  # a chunk never overtakes the one before
            if s.rate is not None:
                start_at = max(when, self._link_free_at)
                self._link_free_at = start_at + len(chunk) / s.rate
                when = self._link_free_at
            self._last_at = when
            out.append((when, chunk))
        self.stats.passed += len(out)
        self.stats.bytes += len(data)
        self._bytes += len(data)
        if cut == "reset":
            self.stats.resets += 1
        elif cut == "close":
            self.stats.closes += 1
        return out, cut


# -- settings from text (the CLI's --loss 0.1, --delay 5/20, --rate 1M, ...) ----------------

#: option name -> (field, converter from one text value); values are "X" for both directions
#: or "FORWARD/BACKWARD" (forward: client to server, backward: the replies)
_UNITS = {"": 1, "k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6, "g": 1e9, "G": 1e9}


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ImpairmentError(f"{what} takes a number, not {text!r}") from None
    if not math.isfinite(value):  # a delay of inf waits for ever; nan compares false with everything
        raise ImpairmentError(f"{what} takes a finite number, not {text!r}")
    return value


def _rate(text: str) -> float:
    unit = text[-1:] if text[-1:] in _UNITS and text[-1:] else ""
    return _number(text[: len(text) - len(unit)], "rate") * _UNITS[unit]


def _pair(text: str, what: str) -> tuple[int, int] | tuple[float, float]:
    a, sep, b = text.partition(":")
    if not sep:
        raise ImpairmentError(f"{what} takes two values A:B, not {text!r}")
    if what == "slice":
        try:
            return int(a), int(b)
        except ValueError:
            raise ImpairmentError(f"slice takes whole byte counts MIN:MAX, not {text!r}") from None
    return _number(a, what), _number(b, what)


def _count(text: str, what: str) -> int:
    if not text.isdigit():
        raise ImpairmentError(f"{what} takes a whole number of bytes, not {text!r}")
    return int(text)


#: each impairment's option text -> its value (an `Impairments` field of that name)
CONVERTERS: dict[str, Callable[[str], Any]] = {
    "loss": lambda t: _number(t, "loss"),
    "loss_burst": lambda t: _pair(t, "loss-burst"),
    "duplicate": lambda t: _number(t, "duplicate"),
    "reorder": lambda t: _number(t, "reorder"),
    "corrupt": lambda t: _number(t, "corrupt"),
    "delay": lambda t: _number(t, "delay") / 1e3,  # given in ms
    "jitter": lambda t: _number(t, "jitter") / 1e3,
    "rate": _rate,
    "queue": lambda t: _count(t, "queue"),
    "slice": lambda t: _pair(t, "slice"),
    "reset_after": lambda t: _count(t, "reset-after"),
    "close_after": lambda t: _count(t, "close-after"),
}


def impairments_from_text(options: dict[str, str | None]) -> tuple[Impairments, Impairments]:
    """(forward, backward) from option texts; each text is ``X`` or ``FORWARD/BACKWARD``."""
    forward: dict[str, Any] = {}
    backward: dict[str, Any] = {}
    for name, text in options.items():
        if text is None:
            continue
        if name not in CONVERTERS:
            raise ImpairmentError(f"unknown impairment {name!r}")
        there, sep, back = text.partition("/")
        forward[name] = CONVERTERS[name](there) if there else None
        backward[name] = CONVERTERS[name](back if sep else there) if (back if sep else there) else None
    def clean(values: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in values.items() if v is not None}

    return Impairments(**clean(forward)), Impairments(**clean(backward))
