"""`netlab compare`: the same workload through every transport, every reply checked.

For each transport, an in-process server is started on an ephemeral port or a temporary
path. With impairments, a seeded relay (`netlab.impair.relay`) sits in front of it,
applying to each transport the settings it can take (streams cannot lose or reorder
bytes; datagrams cannot be re-sliced); the result says which settings did not apply.

Probes. Every message carries a sequence number:

* echo: ``NL <seq> <send time ns> <crc32> <filler>``, padded to `size` bytes. The CRC covers
  the sequence number, the timestamp and the filler, so a corrupted reply is recognised
  as such without keeping a copy;
* sum: ``<seq * 10**6> <r>`` with a seeded ``r < 10**6``; the reply must be the exact sum,
  and ``reply // 10**6`` names its request. (A corrupted sum reply can only be told by its
  value.)

What is counted, per transport and service:

* **sent**, **delivered** (requests with at least one intact reply; **verified**, its bytes
  checked, is the same count), **lost** (planned requests with no reply by the end: with a
  stream that breaks, what was not sent counts too),
* **duplicated** (a reply for a request already answered), **reordered** (a reply older than
  one already received on the same flow; with the largest displacement in sequence
  numbers), **corrupted** (every reply that is not exactly what was expected; it is not
  taken as a reply to the message it names, since the flipped bit may be in the sequence
  number: so sent = delivered + lost + corrupted, less any corrupted duplicates),
  **truncated** (the kernel said MSG_TRUNC),
* **boundaries**: N replies arrived as M reads. Datagram transports give M == N; a stream
  may merge or split messages, and only framing puts them back,
* latency from send to reply in µs (p50/p90/p99/p99.9/max, from an HdrHistogram),
  goodput (bytes of verified replies per second), and per-second intervals.

Closed loop (the default) keeps one message in flight per client; `rate` sends on a
schedule instead (open loop), which is where reordering and queueing show. With one
message in flight, a held-back packet has nothing to be reordered against: it just
arrives late.

This module runs the workloads. What a run is asked and what it finds (`CompareSettings`,
`TransportResult`) are plain data in `compare_types`; the JSON, the plot and the sentences
under the tables are `compare_report`'s; kernel mode (each run in a network namespace, the
kernel making the loss) is `netlab.experiments.kernel`. Their public names are importable
from here too.
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import tempfile
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import partial

import trio
from hdrh.histogram import HdrHistogram

from ..errors import NetlabError
from ..impair.decisions import Impairments
from ..impair.relay import run_relay
from ..results import latency_percentiles
from ..server import serve
from ..services import get_service
from ..transports import COMPARE_SCHEMES, Address, Connection, get_transport, parse_address, receive_message, send_data
from .compare_report import (
    SERVICE_STYLES,
    boundaries_cell,
    boundaries_note,
    conclusions,
    expectations,
    plot,
    report,
    series_style,
)
from .compare_types import CompareSettings, TransportResult, slowest_way

SUM_SCALE = 10**6
ECHO_HEADER = 48  # "NL " + 10-digit seq + " " + 20-digit ns + " " + 8 hex + " " = 45, rounded up
_DATAGRAM_ONLY = ("loss", "loss_burst", "corrupt", "duplicate", "reorder")
_STREAM_ONLY = ("slice", "reset_after", "close_after")


# -- probes ---------------------------------------------------------------------------------


def make_probe(service: str, seq: int, size: int, rng: random.Random) -> tuple[bytes, bytes]:
    """(request, expected reply body) for message number `seq`."""
    if service == "echo":
        filler = bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=max(size - ECHO_HEADER, 0)))
        stamp = time.time_ns()
        crc = zlib.crc32(b"%d %d " % (seq, stamp) + filler)
        head = b"NL %010d %020d %08x " % (seq, stamp, crc)
        request = head.ljust(ECHO_HEADER, b"-") + filler
        return request, request
    r = rng.randrange(SUM_SCALE)
    return b"%d %d" % (seq * SUM_SCALE, r), b"%d" % (seq * SUM_SCALE + r)


def read_probe(service: str, reply: bytes) -> tuple[int | None, bool]:
    """(the sequence number a reply names, whether it is intact by its own evidence)."""
    if service == "echo":
        parts = reply[:ECHO_HEADER].split(b" ")
        try:
            seq, stamp, crc = int(parts[1]), int(parts[2]), int(parts[3], 16)
        except (IndexError, ValueError):
            return None, False
        return seq, zlib.crc32(b"%d %d " % (seq, stamp) + reply[ECHO_HEADER:]) == crc
    try:
        return int(reply.strip()) // SUM_SCALE, True
    except ValueError:
        return None, False


def split_settings(settings: Impairments, kind: str) -> tuple[Impairments, list[str]]:
    """The part of `settings` a transport of `kind` can take, and the names it cannot."""
    cannot = {"stream": _DATAGRAM_ONLY, "datagram": _STREAM_ONLY, "seqpacket": _DATAGRAM_ONLY + _STREAM_ONLY}[kind]
    not_applied = [name for name in settings.active if name in cannot]
    defaults = Impairments()
    return replace(settings, **{name: getattr(defaults, name) for name in cannot}), not_applied


# -- one run --------------------------------------------------------------------------------


class _Tally:
    def __init__(self, result: TransportResult, service: str, expected: dict[int, bytes], start: float) -> None:
        self.result, self.service, self.expected, self.start = result, service, expected, start
        self.sent_at: dict[int, float] = {}
        self.answered: set[int] = set()
        self.unattributed = 0
        self.histogram = HdrHistogram(1, 60_000_000, 3)
        self.buckets: dict[int, list[float]] = {}

    def _bucket(self, now: float) -> list[float]:
        return self.buckets.setdefault(int(now - self.start), [0, 0, 0, 0])

    def sent(self, seq: int, now: float) -> None:
        self.sent_at[seq] = now
        self.result.sent += 1
        self._bucket(now)[0] += 1

    def wrote(self, now: float, size: int) -> None:
        self.result.sent_bytes += size
        self._bucket(now)[3] += size

    def received(self, flow: _Flow, reply: bytes, now: float) -> None:
        r = self.result
        r.replies += 1
        seq, intact = read_probe(self.service, reply)
        if seq is None or seq not in self.expected or not intact or reply.rstrip(b"\r\n") != self.expected[seq]:
            # a reply that is not exactly what was expected may name the wrong message (the
            # flipped bit may be in its sequence number): counted corrupted, never as a reply
            # to some message, so it makes no phantom duplicate and no phantom loss
            r.corrupted += 1
            self.unattributed += 1
            if flow.waiting is not None:
                flow.arrived.set()  # closed loop: the one message in flight was answered, badly
            return
        if seq in self.answered:
            r.duplicated += 1
            return
        self.answered.add(seq)
        r.delivered += 1
        flow.answered += 1
        if flow.answered == len(flow.seqs):
            flow.all_in.set()
        if seq < flow.max_seen:
            r.reordered += 1
            r.max_displacement = max(r.max_displacement, flow.max_seen - seq)
        flow.max_seen = max(flow.max_seen, seq)
        r.verified += 1
        bucket = self._bucket(now)
        bucket[1] += 1
        bucket[2] += len(reply)
        if seq in self.sent_at:
            latency = (now - self.sent_at[seq]) * 1e6
            r.latencies_us.append(latency)
            self.histogram.record_value(max(int(latency), 1))
        if flow.waiting == seq:
            flow.arrived.set()


@dataclass
class _Flow:
    seqs: range
    max_seen: int = -1
    waiting: int | None = None
    arrived: trio.Event = field(default_factory=trio.Event)
    answered: int = 0
    all_in: trio.Event = field(default_factory=trio.Event)


class _Conn:
    """One client's connection: send requests, receive replies (framed), count reads.

    Requests are framed by the service where the transport keeps no message boundaries,
    and go one per message where it does."""

    def __init__(self, service: str, conn: Connection, framed: bool) -> None:
        self.service = get_service(service)
        self.conn, self.framed = conn, framed
        self.reader = self.service.new_reply_reader()

    async def send(self, request: bytes) -> int:
        """Send one request; the bytes it took on the wire (framing included)."""
        wire = self.service.encode_request(request, stream=self.framed)
        if self.framed:
            self.reader.expect(wire)
        await send_data(self.conn, wire)
        return len(wire)

    async def receive(self) -> tuple[list[bytes], bool]:
        """(replies completed by one read, whether the kernel truncated it)."""
        message = await receive_message(self.conn)
        if message is None:
            raise NetlabError("the server closed the connection")
        if self.framed:
            return self.reader.feed(message.data), False
        return [message.data], message.truncated

    async def aclose(self) -> None:
        await self.conn.aclose()


async def _open_conn(address: Address, service: str) -> _Conn:
    transport = get_transport(address.scheme)
    return _Conn(service, await transport.connect(address), framed=not transport.boundaries)


async def _run_flow(flow: _Flow, conn: _Conn, tally: _Tally, requests: dict[int, bytes],
                    settings: CompareSettings, tick: Callable[[], None], start: float) -> None:
    per_flow_rate = settings.rate / settings.concurrency if settings.rate else None

    async def receive() -> None:
        while True:
            replies, truncated = await conn.receive()
            now = time.perf_counter()
            tally.result.reads += 1
            tally.result.truncated += truncated
            for reply in replies:
                tally.received(flow, reply, now)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive)
        for index, seq in enumerate(flow.seqs):
            if per_flow_rate:
                await trio.sleep_until(trio.current_time() + max(0.0, start + index / per_flow_rate - time.perf_counter()))
            flow.waiting, flow.arrived = seq, trio.Event()
            now = time.perf_counter()
            tally.sent(seq, now)
            tally.wrote(now, await conn.send(requests[seq]))
            tick()
            if not per_flow_rate:
                with trio.move_on_after(settings.reply_timeout):
                    await flow.arrived.wait()
        flow.waiting = None
        with trio.move_on_after(settings.reply_timeout):  # the last replies of an open loop
            await flow.all_in.wait()
        await trio.sleep(_drain_time(settings))  # duplicates still on their way
        nursery.cancel_scope.cancel()


def _drain_time(settings: CompareSettings) -> float:
    """How long to keep listening after the last reply, for late copies."""
    if not settings.impaired:
        return 0.0
    return min(settings.reply_timeout, 0.05 + 2 * max(slowest_way(settings.forward), slowest_way(settings.backward)))


def _finish(result: TransportResult, tally: _Tally, elapsed: float, cpu: tuple[float, float]) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result.cpu_user_s, result.cpu_system_s = usage.ru_utime - cpu[0], usage.ru_stime - cpu[1]
    result.lost = max(result.planned - len(tally.answered) - tally.unattributed, 0)
    result.elapsed_s = elapsed
    summary = latency_percentiles(tally.histogram)
    if summary["max_us"] is not None:
        result.p50_us, result.p90_us, result.p99_us, result.p999_us, result.max_us = (
            summary[k] for k in ("p50_us", "p90_us", "p99_us", "p999_us", "max_us"))
    verified_bytes = sum(b[2] for b in tally.buckets.values())
    result.goodput_bps = verified_bytes * 8 / elapsed if elapsed > 0 else 0.0
    result.intervals = [
        {"start": float(second), "end": min(float(second + 1), elapsed), "sent": b[0], "delivered": b[1],
         "bytes": b[2], "sent_bytes": b[3]}
        for second, b in sorted(tally.buckets.items())
    ]


async def compare_one(name: str, service: str, settings: CompareSettings,
                      tick: Callable[[], None] = lambda: None, *,
                      on_server: Callable[[Address], Awaitable[None]] | None = None) -> TransportResult:
    """Run one service's workload over one transport. A failure is reported in the result.

    `on_server(address)`, if given, is awaited once the server is bound and before any client
    starts (kernel mode uses it to install loss rules for the server's port)."""
    tmp = tempfile.mkdtemp(prefix="nl-", dir="/tmp")
    template = COMPARE_SCHEMES[name]
    try:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(serve, service, template.format(dir=tmp))
            result = TransportResult(name, service, str(server.address), planned=settings.messages)
            target = server.address
            kind = server.transport.kind
            forward, not_fwd = split_settings(settings.forward, kind)
            backward, not_back = split_settings(settings.backward, kind)
            result.not_applied = sorted(set(not_fwd) | set(not_back))
            relay = None
            if forward.active or backward.active:
                os.mkdir(os.path.join(tmp, "relay"))
                relay_at = template.format(dir=os.path.join(tmp, "relay"))
                relay = await nursery.start(partial(run_relay, relay_at, server.address, forward=forward,
                                                    backward=backward, seed=settings.seed))
                target = relay.address
                result.via = str(relay.address)
            if on_server is not None:  # hook for netlab.experiments.kernel
                await on_server(server.address)
            rng = random.Random(settings.seed)
            probes = {seq: make_probe(service, seq, settings.size, rng) for seq in range(settings.messages)}
            requests = {seq: req for seq, (req, _) in probes.items()}
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu = (usage.ru_utime, usage.ru_stime)
            result.started_at, start = time.time(), time.perf_counter()
            tally = _Tally(result, service, {seq: exp for seq, (_, exp) in probes.items()}, start)
            share = -(-settings.messages // settings.concurrency)
            flows = [_Flow(range(i, min(i + share, settings.messages))) for i in range(0, settings.messages, share)]
            try:
                conns = []
                try:
                    for _ in flows:
                        conns.append(await _open_conn(parse_address(str(target)), service))
                    async with trio.open_nursery() as clients:
                        for flow, conn in zip(flows, conns):
                            clients.start_soon(_run_flow, flow, conn, tally, requests, settings, tick, start)
                finally:
                    with trio.CancelScope(shield=True):
                        for conn in conns:
                            await conn.aclose()
            except* (NetlabError, trio.BrokenResourceError, trio.ClosedResourceError) as group:
                result.error = _describe(group.exceptions[0])
            _finish(result, tally, time.perf_counter() - start, cpu)
            if relay is not None:
                result.relay = relay.stats.as_dict()
            nursery.cancel_scope.cancel()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return _describe(exc.exceptions[0])
    if isinstance(exc, trio.BrokenResourceError) and exc.__cause__ is not None:
        return f"connection broken: {exc.__cause__}"
    return str(exc) or type(exc).__name__


async def run_compare(settings: CompareSettings = CompareSettings(),
                      tick: Callable[[], None] = lambda: None) -> list[TransportResult]:
    """One result per (transport, service): one after the other, or all at once when
    `settings.runs_in_parallel` (with impairments, waiting dominates and runs barely compete
    for the CPU; on a clean loopback they would, so there they run one at a time)."""
    return await for_each_pair(settings, lambda name, service: compare_one(name, service, settings, tick))


async def for_each_pair(settings: CompareSettings,
                        run_one: Callable[[str, str], Awaitable[TransportResult]]) -> list[TransportResult]:
    """``await run_one(transport, service)`` for every pair, in order; all at once when
    `settings.runs_in_parallel`. The results come back in the order of the pairs."""
    pairs = [(name, service) for name in settings.transports for service in settings.services]
    results: dict[int, TransportResult] = {}

    async def one(index: int) -> None:
        results[index] = await run_one(*pairs[index])

    if settings.runs_in_parallel:
        async with trio.open_nursery() as nursery:
            for index in range(len(pairs)):
                nursery.start_soon(one, index)
    else:
        for index in range(len(pairs)):
            await one(index)
    return [results[index] for index in range(len(pairs))]


__all__ = ["SERVICE_STYLES", "CompareSettings", "TransportResult", "boundaries_cell", "boundaries_note", "compare_one",
           "conclusions", "expectations", "for_each_pair", "plot", "report", "run_compare", "series_style"]
