"""Soak: many clients on every transport at once, some of them killed mid-stream; then count
what was lost and what leaked.

    python -m netlab.experiments.soak                           # 40 clients x 100 messages
    python -m netlab.experiments.soak --clients 200 --messages 1000 --json soak.json

One server per transport and service (echo and sum, on loopback and unix sockets only),
all in this process. Clients are spread round-robin over the servers; each sends its
messages in batches of 1 to 4 (one write on a stream, back to back on the others) and
checks every reply byte for byte. A fraction of the clients (10 % by default, chosen with
the seed) are killed at a random message: a stream client writes half a batch and closes
(with a RST on TCP: SO_LINGER 0); a seqpacket or datagram client sends a request and closes
before the reply.

Afterwards it checks, and prints:

* **reliable transports** (those that declare it: tcp, tcp6, unix, unix-seq, and unix-dgram
  on Linux): every message a surviving client sent was answered, byte-exact, and so was
  every message a killed client sent before the batch it was killed in. Lost must be 0.
* **UDP**: messages that never got a reply, set against the datagrams the kernel says it
  dropped on a full receive queue (SO_RXQ_OVFL, on the server's socket and on each
  client's, read after a last probe so the counters are current); every loss must be one
  of those. ``/proc/net/snmp`` RcvbufErrors is shown too, but it counts the whole host.
* **leaks**: open file descriptors of this process (``/proc/self/fd``) and the tasks under
  the servers' nursery, before the clients and after they are done (with every server
  connection closed): they must be equal.
* every server then answers a fresh client.

The figures are exact counts; none depends on the machine's speed, only the duration does.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import trio

from ..errors import NetlabError
from ..client import MessageClient, StreamClient, open_client
from ..server import Limits, Server, serve
from ..services import get_service
from ..transports import COMPARE_SCHEMES, ByteStream, MessageChannel, get_transport, socket_of

SERVICES = ("echo", "sum")
SUM_SCALE = 10**6
#: seconds a reliable transport may take to answer before the message counts as lost
RELIABLE_TIMEOUT = 30.0
LINGER_0 = struct.pack("ii", 1, 0)


@dataclass(frozen=True)
class SoakSettings:
    clients: int = 40
    messages: int = 100
    kill: float = 0.1  # the fraction of clients killed mid-stream
    seed: int = 1
    transports: tuple[str, ...] = field(default_factory=lambda: tuple(COMPARE_SCHEMES))  # every one registered
    timeout: float = 1.0  # seconds a datagram client waits for a reply before counting it lost
    udp_rcvbuf: int | None = None  # SO_RCVBUF of the servers that may lose (UDP): small makes the kernel drop

    def __post_init__(self) -> None:
        if self.clients < 1 or self.messages < 1:
            raise ValueError("clients and messages must be at least 1")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if not 0 <= self.kill <= 1:
            raise ValueError("kill is a fraction, 0 to 1")
        unknown = [t for t in self.transports if t not in COMPARE_SCHEMES]
        if unknown:
            raise ValueError(f"unknown transport {unknown[0]!r} (known: {', '.join(COMPARE_SCHEMES)})")


@dataclass
class TransportFigures:
    transport: str
    reliable: bool
    clients: int = 0
    killed: int = 0
    connections: int = 0  # the servers' count (stream and seqpacket)
    sent: int = 0  # messages sent, the one in flight at a kill excluded
    answered: int = 0  # replies that came back byte-exact
    late: int = 0  # datagram replies that came after their timeout (answered, but late)
    lost: int = 0  # sent and never answered
    mismatched: int = 0  # a reply that was not the one expected
    errors: list[str] = field(default_factory=list)  # clients that failed (not a kill)
    kernel_drops_server: int | None = None  # SO_RXQ_OVFL on the servers' sockets, during the run
    kernel_drops_clients: int | None = None  # SO_RXQ_OVFL on the clients' sockets


@dataclass
class SoakResult:
    settings: dict[str, Any]
    transports: list[TransportFigures]
    faults: dict[str, int]
    fds_before: int
    fds_after: int
    tasks_before: int
    tasks_after: int
    fresh_clients: dict[str, bool]
    snmp_rcvbuf_errors: dict[str, int] | None
    duration: float

    @property
    def reliable_lost(self) -> int:
        return sum(t.lost + t.mismatched for t in self.transports if t.reliable)

    @property
    def unexplained_udp_losses(self) -> int:
        total = 0
        for t in self.transports:
            if not t.reliable:
                drops = (t.kernel_drops_server or 0) + (t.kernel_drops_clients or 0)
                total += max(0, t.lost - drops)
        return total

    @property
    def leaks(self) -> list[str]:
        found = []
        if self.fds_after != self.fds_before:
            found.append(f"file descriptors {self.fds_before} -> {self.fds_after}")
        if self.tasks_after != self.tasks_before:
            found.append(f"server tasks {self.tasks_before} -> {self.tasks_after}")
        return found

    @property
    def ok(self) -> bool:
        return (not self.reliable_lost and not self.unexplained_udp_losses and not self.leaks
                and all(self.fresh_clients.values()) and not any(t.errors for t in self.transports)
                and not any(t.mismatched for t in self.transports))

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(reliable_lost=self.reliable_lost, unexplained_udp_losses=self.unexplained_udp_losses,
                    leaks=self.leaks, ok=self.ok)
        return data


# -- what is sent, and what must come back ---------------------------------------------------------


@dataclass
class _Message:
    request: bytes  # as it goes on the wire
    reply: bytes  # exactly what must come back


def _message(service: str, client: int, seq: int, rng: random.Random, *, stream: bool) -> _Message:
    if service == "echo":
        payload = b"c%dm%d:" % (client, seq) + rng.randbytes(rng.randrange(1, 512))
        return _Message(payload, payload)
    # sum: the reply names its request (reply // SUM_SCALE) and checks the addend
    a, b = (client * 10**7 + seq) * SUM_SCALE, rng.randrange(SUM_SCALE)
    ending = rng.choice([b"\n", b"\r\n"]) if stream else b""
    return _Message(b"%d %d" % (a, b) + ending, b"%d" % (a + b) + ending)


# -- clients ---------------------------------------------------------------------------------------


@dataclass
class _Plan:
    index: int
    transport: str
    service: str
    kill_at: int | None  # the message at which this client is killed, or None


class _Killed(Exception):
    pass


async def _stream_client(plan: _Plan, server: Server, stream: ByteStream, figures: TransportFigures,
                         settings: SoakSettings, rng: random.Random, faults: Counter[str]) -> None:
    """A byte-stream client: batches of requests in one write, replies reassembled."""
    reader = get_service(plan.service).new_reply_reader()
    seq = 0
    while seq < settings.messages:
        batch = [_message(plan.service, plan.index, s, rng, stream=True)
                 for s in range(seq, min(seq + rng.randint(1, 4), settings.messages))]
        wire = b"".join(m.request for m in batch)
        if plan.kill_at is not None and seq <= plan.kill_at < seq + len(batch):
            await stream.send_all(wire[: max(1, len(wire) // 2)])  # half a batch: mid-request
            if server.address.is_unix:
                faults["stream closed mid-request"] += 1
            else:
                socket_of(stream).setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
                faults["stream reset (RST) mid-request"] += 1
            raise _Killed
        expected = sum(reader.expect(m.request) for m in batch)
        assert expected == len(batch)
        await stream.send_all(wire)
        figures.sent += len(batch)
        replies: list[bytes] = []
        with trio.move_on_after(RELIABLE_TIMEOUT):
            while len(replies) < len(batch):
                data = await stream.receive_some(65536)
                if not data:
                    break
                replies += reader.feed(bytes(data))
        for message, reply in zip(batch, replies):
            if reply == message.reply:
                figures.answered += 1
            else:
                figures.mismatched += 1
        if len(replies) < len(batch):
            figures.lost += len(batch) - len(replies)
            raise NetlabError(f"client {plan.index}: the server stopped answering after {seq + len(replies)}")
        seq += len(batch)


async def _message_client(plan: _Plan, conn: MessageChannel, figures: TransportFigures, settings: SoakSettings,
                          rng: random.Random, faults: Counter[str]) -> None:
    """Seqpacket and datagram clients: one message per request, replies matched by content."""
    datagram = not conn.has_eof  # no connection to end: a datagram client
    conn.count_drops()
    outstanding: dict[bytes, int] = {}  # expected reply -> seq, for requests with no reply yet
    overdue: set[bytes] = set()  # of those, the ones whose timeout passed
    seq = 0

    def take(reply: bytes) -> None:
        if reply in outstanding:
            del outstanding[reply]
            figures.answered += 1
            if reply in overdue:
                overdue.discard(reply)
                figures.late += 1
        elif reply not in (b"probe", b"-1"):
            figures.mismatched += 1

    try:
        while seq < settings.messages:
            batch = [_message(plan.service, plan.index, s, rng, stream=False)
                     for s in range(seq, min(seq + rng.randint(1, 4), settings.messages))]
            if plan.kill_at is not None and seq <= plan.kill_at < seq + len(batch):
                await conn.send(batch[0].request)
                faults["datagram sender gone before its reply" if datagram else "seqpacket closed mid-request"] += 1
                raise _Killed  # closed below, before the reply can come
            for message in batch:
                outstanding[message.reply] = seq
                await conn.send(message.request)
            figures.sent += len(batch)
            waiting = {m.reply for m in batch}
            with trio.move_on_after(settings.timeout if datagram else RELIABLE_TIMEOUT):
                while waiting & outstanding.keys():
                    got = await conn.receive()
                    if got is None:
                        break
                    take(got.data)
            overdue.update(waiting & outstanding.keys())
            if not datagram and waiting & outstanding.keys():
                raise NetlabError(f"client {plan.index}: the server stopped answering")
            seq += len(batch)
        if datagram:
            await _probe(plan, conn, take, settings)
    finally:
        # the caller's open_client closes the channel at once, with no checkpoint after a kill's send
        figures.lost += len(outstanding)
        if conn.kernel_drops:
            figures.kernel_drops_clients = (figures.kernel_drops_clients or 0) + conn.kernel_drops


async def _probe(plan: _Plan, sock: MessageChannel, take: Callable[[bytes], None], settings: SoakSettings) -> None:
    """A last request (retried) whose reply brings the socket's drop counter up to date, and
    lets replies still on their way arrive."""
    request = b"probe" if plan.service == "echo" else b"-1 0"
    reply = b"probe" if plan.service == "echo" else b"-1"
    for _ in range(5):
        await sock.send(request)
        with trio.move_on_after(settings.timeout):
            while True:
                message = await sock.receive()
                if message is None:  # never, on a datagram: it has no end of stream
                    return
                take(message.data)
                if message.data == reply:
                    return


# -- the run ---------------------------------------------------------------------------------------


def count_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def count_tasks(nursery: trio.Nursery) -> int:
    return sum(1 + sum(count_tasks(child) for child in task.child_nurseries) for task in nursery.child_tasks)


def snmp_rcvbuf_errors() -> dict[str, int] | None:
    """Host-wide UDP receive-buffer drops (/proc/net/snmp Udp, /proc/net/snmp6 Udp6)."""
    try:
        with open("/proc/net/snmp") as f:
            lines = [line.split() for line in f if line.startswith("Udp:")]
        udp = dict(zip(lines[0][1:], map(int, lines[1][1:])))
        with open("/proc/net/snmp6") as f:
            udp6 = {k: int(v) for k, v in (line.split() for line in f if line.strip())}
        return {"udp": udp["RcvbufErrors"], "udp6": udp6.get("Udp6RcvbufErrors", 0)}
    except (OSError, KeyError, IndexError, ValueError):
        return None


async def _fresh_client(server: Server) -> bool:
    service = server.service.name
    request, reply = (b"40 2", b"42") if service == "sum" else (b"fresh", b"fresh")
    if not server.transport.boundaries and service == "sum":  # a line, on a byte stream
        reply += b"\n"
    for _ in range(3):
        try:
            async with open_client(server.address, service, timeout=5) as client:
                if await client.request(request, timeout=2) == reply:
                    return True
        except NetlabError:
            continue
    return False


async def run_soak(settings: SoakSettings = SoakSettings()) -> SoakResult:
    began = time.perf_counter()
    rng = random.Random(settings.seed)
    pairs = [(t, s) for t in settings.transports for s in SERVICES]
    killed = set(rng.sample(range(settings.clients), round(settings.kill * settings.clients)))
    plans = [_Plan(i, *pairs[i % len(pairs)], rng.randrange(settings.messages) if i in killed else None)
             for i in range(settings.clients)]
    figures = {t: TransportFigures(t, get_transport(t).reliable)
               for t in settings.transports}
    faults: Counter[str] = Counter()
    directory = tempfile.mkdtemp(prefix="nl-soak-", dir="/tmp")
    limits = Limits(max_connections=max(1024, settings.clients))
    try:
        async with trio.open_nursery() as outer:
            servers_nursery: trio.Nursery | None = None
            servers: dict[tuple[str, str], Server] = {}
            ready = trio.Event()

            async def host_servers() -> None:
                nonlocal servers_nursery
                async with trio.open_nursery() as nursery:
                    servers_nursery = nursery
                    for index, (name, service) in enumerate(pairs):
                        address = COMPARE_SCHEMES[name].format(dir=tempfile.mkdtemp(prefix=f"{index}-", dir=directory))
                        if settings.udp_rcvbuf and not get_transport(name).reliable:  # UDP: a full buffer drops
                            address += f"?rcvbuf={settings.udp_rcvbuf}"
                        servers[name, service] = await nursery.start(partial(serve, service, address, limits=limits))
                    ready.set()

            outer.start_soon(host_servers)
            await ready.wait()
            assert servers_nursery is not None
            for server in servers.values():  # warm-up: one-time allocations and descriptors
                await _fresh_client(server)
            await _settle(servers.values())
            fds_before, tasks_before = count_fds(), count_tasks(servers_nursery)
            drops_before = {key: server.stats.kernel_drops or 0 for key, server in servers.items()}
            snmp_before = snmp_rcvbuf_errors()

            async def client(plan: _Plan) -> None:
                server = servers[plan.transport, plan.service]
                fig = figures[plan.transport]
                fig.clients += 1
                client_rng = random.Random(f"{settings.seed}-{plan.index}")
                try:
                    async with open_client(server.address, plan.service) as conn:
                        if isinstance(conn, StreamClient):
                            await _stream_client(plan, server, conn.stream, fig, settings, client_rng, faults)
                        else:
                            assert isinstance(conn, MessageClient)
                            await _message_client(plan, conn.channel, fig, settings, client_rng, faults)
                except _Killed:
                    fig.killed += 1
                except (NetlabError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    fig.errors.append(f"client {plan.index}: {exc}")

            async with trio.open_nursery() as clients:
                for plan in plans:
                    clients.start_soon(client, plan)
            await _settle(servers.values())
            fresh = {f"{name}/{service}": await _fresh_client(server) for (name, service), server in servers.items()}
            await _settle(servers.values())
            fds_after, tasks_after = count_fds(), count_tasks(servers_nursery)
            snmp_after = snmp_rcvbuf_errors()
            for (name, service), server in servers.items():
                fig = figures[name]
                fig.connections += server.stats.connections
                if server.stats.kernel_drops is not None:
                    fig.kernel_drops_server = ((fig.kernel_drops_server or 0)
                                               + server.stats.kernel_drops - drops_before[name, service])
            outer.cancel_scope.cancel()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    snmp = None
    if snmp_before is not None and snmp_after is not None:
        snmp = {k: snmp_after[k] - snmp_before[k] for k in snmp_before}
    return SoakResult(asdict(settings), list(figures.values()), dict(faults), fds_before, fds_after, tasks_before,
                      tasks_after, fresh, snmp, time.perf_counter() - began)


async def _settle(servers: Iterable[Server]) -> None:
    """Wait until no server has a connection open (the last clients' are closing)."""
    with trio.move_on_after(10):
        while any(server.stats.active for server in servers):
            await trio.sleep(0.01)
    await trio.sleep(0.05)


# -- the report ------------------------------------------------------------------------------------


def render(result: SoakResult) -> str:
    s = result.settings
    killed = sum(t.killed for t in result.transports)
    lines = [f"netlab soak: {s['clients']} clients x {s['messages']} messages over {len(result.transports)} "
             f"transports (echo and sum servers on each), {killed} clients killed mid-stream, seed {s['seed']}", ""]
    header = ("transport", "clients", "killed", "connections", "sent", "answered", "late", "lost", "mismatched",
              "kernel drops (server+clients)")
    rows: list[tuple[object, ...]] = [header]
    for t in result.transports:
        drops = "-" if t.kernel_drops_server is None else f"{t.kernel_drops_server}+{t.kernel_drops_clients or 0}"
        rows.append((t.transport + ("" if t.reliable else " (unreliable)"), t.clients, t.killed, t.connections,
                     t.sent, t.answered, t.late, t.lost, t.mismatched, drops))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    for row in rows:
        lines.append("  ".join(str(cell).rjust(w) if i else str(cell).ljust(w) for i, (cell, w) in
                               enumerate(zip(row, widths))))
    lines.append("")
    total_sent = sum(t.sent for t in result.transports)
    connections = sum(t.connections for t in result.transports)
    lines.append(f"connections: {connections}; messages: {total_sent} sent, "
                 f"{sum(t.answered for t in result.transports)} answered byte-exact")
    lines.append("faults injected: " + (", ".join(f"{n} {kind}" for kind, n in sorted(result.faults.items()))
                                        or "none") + f" ({sum(result.faults.values())} in all)")
    lines.append(f"messages lost on reliable transports: {result.reliable_lost} (must be 0)")
    udp = [t for t in result.transports if not t.reliable]
    if udp:
        snmp = result.snmp_rcvbuf_errors
        host = (f"; /proc/net/snmp RcvbufErrors +{snmp['udp']} (udp) +{snmp['udp6']} (udp6), host-wide"
                if snmp else "")
        lines.append(f"UDP: {sum(t.lost for t in udp)} lost, "
                     f"{sum((t.kernel_drops_server or 0) + (t.kernel_drops_clients or 0) for t in udp)} dropped on a "
                     f"full receive queue by the kernel's count (SO_RXQ_OVFL){host}; losses not explained by "
                     f"those: {result.unexplained_udp_losses} (must be 0)")
    lines.append(f"leaks: {', '.join(result.leaks) or 'none'} (file descriptors {result.fds_before} -> "
                 f"{result.fds_after}, server tasks {result.tasks_before} -> {result.tasks_after})")
    failed = [name for name, ok in result.fresh_clients.items() if not ok]
    lines.append(f"fresh client answered afterwards: {len(result.fresh_clients) - len(failed)} of "
                 f"{len(result.fresh_clients)} servers" + (f" (not: {', '.join(failed)})" if failed else ""))
    for t in result.transports:
        for error in t.errors[:5]:
            lines.append(f"error ({t.transport}): {error}")
    lines.append(f"duration {result.duration:.1f} s: {'OK' if result.ok else 'FAILED'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m netlab.experiments.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=SoakSettings.clients)
    parser.add_argument("--messages", type=int, default=SoakSettings.messages, help="messages per client")
    parser.add_argument("--kill", type=float, default=SoakSettings.kill, help="fraction of clients killed")
    parser.add_argument("--seed", type=int, default=SoakSettings.seed)
    parser.add_argument("--transports", default=",".join(COMPARE_SCHEMES), help="comma-separated subset")
    parser.add_argument("--timeout", type=float, default=SoakSettings.timeout,
                        help="seconds a datagram client waits for a reply")
    parser.add_argument("--udp-rcvbuf", type=int, help="the UDP servers' SO_RCVBUF: small makes real loss")
    parser.add_argument("--json", dest="json_file", help="also write the figures to this file")
    args = parser.parse_args(argv)
    try:
        settings = SoakSettings(args.clients, args.messages, args.kill, args.seed,
                                tuple(t.strip() for t in args.transports.split(",") if t.strip()), args.timeout,
                                args.udp_rcvbuf)
    except ValueError as exc:
        parser.error(str(exc))
    result = trio.run(run_soak, settings)
    print(render(result), flush=True)
    if args.json_file:
        with open(args.json_file, "w") as f:
            json.dump(result.as_json(), f, indent=2)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["SoakSettings", "SoakResult", "TransportFigures", "run_soak", "render", "main"]
