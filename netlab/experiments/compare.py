"""`netlab compare`: the same workload through every transport, every reply checked.

For each transport, an in-process server is started on an ephemeral port or a temporary
path, and one client sends `requests` numbered requests, closed loop (one outstanding at
a time), for each service:

* echo: ``"%08d "`` + filler up to `size` bytes; the reply must be byte-identical;
* sum: ``"<seq * 10**6> <r>"`` with a seeded ``r < 10**6``; the reply must be the exact sum,
  and ``reply // 10**6`` tells which request it answers.

Because every reply names its request, the client can tell a reply that is missing
(**lost**: no reply by the end), a reply that came twice (**duplicated**), and a reply that
came after the client had given up waiting and moved on (**out of order**). A reply that
names its request but has the wrong content counts as **corrupted**. A stream transport
that fails mid-run counts what is left as lost, and says why in `error`.
"""

from __future__ import annotations

import math
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import trio

from ..errors import NetlabError
from ..runner import open_client, serve
from ..services import get_service
from ..transports import COMPARE_SCHEMES, DatagramTransport, parse_address

SUM_SCALE = 10**6


@dataclass
class CompareRow:
    transport: str
    service: str
    address: str
    requests: int
    verified: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    corrupted: int = 0
    median_us: float | None = None
    p99_us: float | None = None
    error: str | None = None
    rtts_us: list[float] = field(default_factory=list, repr=False)

    def summary(self) -> dict[str, object]:
        data = asdict(self)
        del data["rtts_us"]
        return data


def make_request(service: str, seq: int, size: int, rng: random.Random) -> tuple[bytes, bytes]:
    """(request, expected reply body) for request number `seq`."""
    if service == "echo":
        head = b"%08d " % seq
        filler = bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=max(size - len(head), 0)))
        request = (head + filler)[: max(size, len(head))]
        return request, request
    r = rng.randrange(SUM_SCALE)
    return b"%d %d" % (seq * SUM_SCALE, r), b"%d" % (seq * SUM_SCALE + r)


def reply_seq(service: str, reply: bytes) -> int | None:
    """Which request a reply answers, or None if it cannot tell."""
    try:
        if service == "echo":
            return int(reply[:8])
        return int(reply.strip()) // SUM_SCALE
    except ValueError:
        return None


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    index = max(math.ceil(q * len(sorted_values)) - 1, 0)
    return sorted_values[index]


class _Tally:
    def __init__(self, row: CompareRow, service: str, expected: dict[int, bytes]) -> None:
        self.row, self.service, self.expected = row, service, expected
        self.answered: set[int] = set()

    def record(self, reply: bytes, current: int | None) -> int | None:
        """Count one reply; return the request it answers (None if unreadable)."""
        seq = reply_seq(self.service, reply)
        if seq is None or seq not in self.expected:
            self.row.corrupted += 1
            return None
        if seq in self.answered:
            self.row.duplicated += 1
            return seq
        self.answered.add(seq)
        if current is not None and seq != current:
            self.row.out_of_order += 1
        if reply.rstrip(b"\r\n") == self.expected[seq]:
            self.row.verified += 1
        else:
            self.row.corrupted += 1
        return seq


async def _stream_workload(row: CompareRow, address: str, service: str, requests: list[bytes],
                           tally: _Tally, timeout: float, tick: Callable[[], None]) -> None:
    async with open_client(address, service, timeout=timeout) as client:
        for seq, request in enumerate(requests):
            start = time.perf_counter()
            reply = await client.request(request, timeout=timeout)
            row.rtts_us.append((time.perf_counter() - start) * 1e6)
            tally.record(reply, seq)
            tick()


async def _datagram_workload(row: CompareRow, address: str, service: str, requests: list[bytes],
                             tally: _Tally, timeout: float, tick: Callable[[], None]) -> None:
    target = parse_address(address)
    transport = target.transport
    assert isinstance(transport, DatagramTransport)
    svc = get_service(service)
    async with await transport.connect(target) as sock:
        for seq, request in enumerate(requests):
            start = time.perf_counter()
            await sock.send(svc.encode_request(request, stream=False))
            with trio.move_on_after(timeout):
                while True:
                    datagram = await sock.receive()
                    if tally.record(datagram.data, seq) == seq:
                        row.rtts_us.append((time.perf_counter() - start) * 1e6)
                        break
            tick()
        # late replies and duplicates still in flight
        with trio.move_on_after(min(timeout, 0.2)):
            while True:
                tally.record((await sock.receive()).data, None)


async def compare_one(name: str, template: str, service: str, *, requests: int, size: int, timeout: float,
                      seed: int, tick: Callable[[], None] = lambda: None) -> CompareRow:
    """Run one service's workload over one transport; a failure is reported in the row."""
    tmp = tempfile.mkdtemp(prefix="nl-", dir="/tmp")
    try:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(serve, service, template.format(dir=tmp))
            address = str(server.address)
            row = CompareRow(name, service, address, requests)
            rng = random.Random(seed)
            pairs = [make_request(service, seq, size, rng) for seq in range(requests)]
            tally = _Tally(row, service, {seq: expected for seq, (_req, expected) in enumerate(pairs)})
            workload = _datagram_workload if isinstance(server.transport, DatagramTransport) else _stream_workload
            try:
                await workload(row, address, service, [req for req, _ in pairs], tally, timeout, tick)
            except NetlabError as exc:
                row.error = str(exc)
            nursery.cancel_scope.cancel()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    row.lost = requests - len(tally.answered)
    if row.rtts_us:
        ordered = sorted(row.rtts_us)
        row.median_us = statistics.median(ordered)
        row.p99_us = _percentile(ordered, 0.99)
    return row


async def run_compare(
    transports: Sequence[str] | None = None,
    services: Sequence[str] = ("echo", "sum"),
    *,
    requests: int = 1000,
    size: int = 64,
    timeout: float = 1.0,
    seed: int = 1,
    tick: Callable[[], None] = lambda: None,
) -> list[CompareRow]:
    """One row per (transport, service). `transports` are names from `COMPARE_SCHEMES`."""
    names = list(transports or COMPARE_SCHEMES)
    rows = []
    for name in names:
        for service in services:
            rows.append(await compare_one(name, COMPARE_SCHEMES[name], service, requests=requests,
                                          size=size, timeout=timeout, seed=seed, tick=tick))
    return rows
