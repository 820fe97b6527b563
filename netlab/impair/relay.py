"""A seeded impairment relay between two netlab transports of the same kind.

::

    async with trio.open_nursery() as nursery:
        relay = await nursery.start(partial(run_relay, "udp:127.0.0.1:0", server_address,
                                            forward=Impairments(loss=0.1), seed=1))
        ...  # clients talk to relay.address; relay.stats says what it did

Streams: every accepted connection gets its own upstream connection; each direction is
a reader that asks the `StreamImpairer` what to write and when, and a writer that writes
it then. A channel between them, bounded in chunks and in bytes (`STREAM_BUFFER`), keeps
delay from cutting throughput while still pushing back on a fast sender: behind a client
that does not read, the relay stops reading from the server, it does not buffer. End of
stream (half-close) passes through in order. Whatever a client does (reset, vanish,
half-close), it ends that client's connection, never the relay; `max_connections` bounds
how many are open at once (more are closed at once, and counted).

Datagrams: each client address gets its own upstream socket (so replies find their way
back, as socat's UDP forking mode does); every packet in either direction goes through
that direction's `DatagramImpairer` (one per direction: rate and queue are the link's),
and that client's scheduler for the direction sends it when its time comes (so a unix-dgram
client that stops reading holds up its own replies, not everyone's). A scheduler holds at
most `PEER_QUEUE` datagrams; more are dropped and counted, and once a send has waited
`SEND_TIMEOUT` in vain, the ones queued behind it are given up too. The relay's sockets
report what the kernel dropped on their full receive queues (SO_RXQ_OVFL), so that what
was sent is what the relay received plus what the kernel dropped before it could read it.

The relay knows nothing of services: it moves bytes.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import socket
import struct
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import cast

import trio

from ..errors import AddressError, ImpairmentError, NetlabError, TransportError
from ..logs import summarise_accept_errors, summarised
from ..transports import (
    Address, ByteStream, Connection, MessageChannel, connect_channel, get_transport, listen_connections,
    listen_datagrams, parse_address, plain_socket, receive_data, send_data, send_eof, socket_of, translate_os_errors,
)
from ..transports.base import BATCH, Message, Peer
from .decisions import DatagramImpairer, Impairments, ImpairStats, StreamImpairer

log = summarised(logging.getLogger("netlab.relay"))

#: clients a datagram relay keeps an upstream socket for; the least recently heard is dropped
MAX_PEERS = 1024
#: stream connections open at once (`run_relay`'s default); more are closed at once
MAX_CONNECTIONS = 1024
#: chunks in flight per stream direction between reader and writer
STREAM_QUEUE = 64
#: bytes in flight per stream direction between reader and writer: past them the reader
#: stops reading until the writer has written (backpressure, not memory)
STREAM_BUFFER = 256 * 1024
#: datagrams waiting in one client's scheduler, per direction; more are dropped and counted
PEER_QUEUE = 256
#: a stream direction with nothing to impair reads this much at a time, into one buffer
#: per direction (a bulk transfer through the relay then costs few system calls per MB)
PASS_BUFFER = 256 * 1024
#: how long a datagram send may block (a unix-dgram peer that is not reading) before the
#: datagram is given up and counted in `RelayStats.send_failures` (as the server's REPLY_TIMEOUT)
SEND_TIMEOUT = 1.0


@dataclass
class RelayStats:
    forward: ImpairStats = field(default_factory=ImpairStats)  # client -> server
    backward: ImpairStats = field(default_factory=ImpairStats)  # server -> client
    connections: int = 0
    upstream_failures: int = 0
    unanswerable: int = 0
    send_failures: int = 0  # datagrams passed on that could not be sent (error, or SEND_TIMEOUT)
    refused: int = 0  # connections closed at once: max_connections were open
    broken: int = 0  # connections that ended with an error (a reset, a vanished peer)
    queue_full: int = 0  # datagrams dropped: their client's scheduler held PEER_QUEUE already
    #: datagrams the kernel dropped on the relay's full receive queues before it read them
    #: (SO_RXQ_OVFL): from clients on the listening socket (forward), from the server on
    #: the upstream sockets (backward); None where the kind does not count them (streams)
    kernel_dropped_forward: int | None = None
    kernel_dropped_backward: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {"forward": self.forward.as_dict(), "backward": self.backward.as_dict(),
                "connections": self.connections, "upstream_failures": self.upstream_failures,
                "unanswerable": self.unanswerable, "send_failures": self.send_failures,
                "refused": self.refused, "broken": self.broken, "queue_full": self.queue_full,
                "kernel_dropped_forward": self.kernel_dropped_forward,
                "kernel_dropped_backward": self.kernel_dropped_backward}


@dataclass
class Relay:
    """What `run_relay` hands to ``nursery.start``."""

    bound: list[Address]
    to: Address
    forward: Impairments
    backward: Impairments
    seed: int
    stats: RelayStats = field(default_factory=RelayStats)
    max_connections: int = MAX_CONNECTIONS
    active: int = 0  # stream connections open now

    def limits(self) -> dict[str, int]:
        """The relay's limits, named as on its startup line."""
        return {"max-connections": self.max_connections, "buffer": STREAM_BUFFER, "max-peers": MAX_PEERS,
                "peer-queue": PEER_QUEUE}

    def describe(self) -> str:
        """The relay's limits, for its startup line."""
        return " ".join(f"{name}={value}" for name, value in self.limits().items())

    @property
    def address(self) -> Address:
        return self.bound[0]


def check_applicable(settings: Impairments, kind: str) -> None:
    """Refuse settings a relay of this kind cannot apply, saying why."""
    if kind == "stream" and settings.datagram_only:
        names = ", ".join(n.replace("_", "-") for n in settings.datagram_only)
        raise ImpairmentError(
            f"{names}: a stream relay cannot lose, duplicate, reorder or corrupt bytes "
            f"(the byte stream would just be broken; a real network's losses are repaired by TCP "
            f"below the relay). Use them on datagram transports"
        )
    if kind == "datagram" and settings.stream_only:
        names = ", ".join(n.replace("_", "-") for n in settings.stream_only)
        raise ImpairmentError(f"{names}: these apply to stream transports only")
    if kind == "seqpacket" and (settings.datagram_only or settings.slice):
        names = ", ".join(n.replace("_", "-") for n in settings.datagram_only + (["slice"] if settings.slice else []))
        raise ImpairmentError(f"{names}: a seqpacket connection is reliable and keeps message boundaries; "
                              f"it takes delay, jitter, rate, reset-after and close-after")


async def run_relay(
    listen: Address | str,
    to: Address | str,
    *,
    forward: Impairments = Impairments(),
    backward: Impairments | None = None,
    seed: int | None = None,
    max_connections: int = MAX_CONNECTIONS,
    task_status: trio.TaskStatus[Relay] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Relay from `listen` to `to` until cancelled. `backward` defaults to `forward`;
    `max_connections` bounds the stream connections open at once.

    Raises (before ``started``): AddressError (kinds differ), ImpairmentError (a setting
    the kind cannot apply), and the bind errors of the listening transport.
    """
    listen, to = parse_address(listen), parse_address(to)
    backward = forward if backward is None else backward
    kind = get_transport(listen.scheme).kind
    if get_transport(to.scheme).kind != kind:
        raise AddressError(
            f"a relay joins transports of the same kind: {listen.scheme} is a {kind} transport, "
            f"{to.scheme} is a {get_transport(to.scheme).kind} transport"
        )
    check_applicable(forward, kind)
    check_applicable(backward, kind)
    if seed is None:
        seed = random.SystemRandom().randrange(2**32)
    # one RNG per direction, so the decisions of one do not shift those of the other
    fwd_rng, back_rng = random.Random(f"{seed}:forward"), random.Random(f"{seed}:backward")
    relay = partial(Relay, to=to, forward=forward, backward=backward, seed=seed, max_connections=max_connections)
    if get_transport(listen.scheme).connected:
        await _relay_stream(listen, to, relay, fwd_rng, back_rng, task_status)
    else:
        await _relay_datagram(listen, to, relay, fwd_rng, back_rng, task_status)


# -- streams ------------------------------------------------------------------------------


def _abort(conn: Connection) -> None:
    """Close with RST (SO_LINGER 0) where the protocol has one."""
    sock = socket_of(conn)
    try:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class _InFlight:
    """Bytes read and not yet written, for one stream direction: `take` waits while they are
    at STREAM_BUFFER or more (so at most one read more is held), `give` frees them."""

    def __init__(self) -> None:
        self.held = 0
        self._freed = trio.Event()

    async def take(self, n: int) -> None:
        while self.held >= STREAM_BUFFER:
            self._freed = trio.Event()
            await self._freed.wait()
        self.held += n

    def give(self, n: int) -> None:
        self.held -= n
        self._freed.set()


async def _pump(src: Connection, dst: Connection, impairer: StreamImpairer,
                cut_connection: Callable[[str], None]) -> None:
    sock = plain_socket(src)
    if impairer.transparent and sock is not None and plain_socket(dst) is not None:
        await _pass_through(sock, src, cast(ByteStream, dst), impairer)  # plain sockets: byte streams
        return
    send_channel, receive_channel = trio.open_memory_channel[tuple[float, bytes | str]](STREAM_QUEUE)
    in_flight = _InFlight()

    async def reader() -> None:
        async with send_channel:
            while True:
                data = await receive_data(src)
                if data is None:
                    await send_channel.send((trio.current_time(), "eof"))
                    return
                await in_flight.take(len(data))
                writes, cut = impairer.decide(data, trio.current_time())
                for when, chunk in writes:
                    await send_channel.send((when, chunk))
                if cut is not None:
                    await send_channel.send((writes[-1][0] if writes else trio.current_time(), cut))
                    return

    async def writer() -> None:
        async with receive_channel:
            async for when, item in receive_channel:
                await trio.sleep_until(when)
                if isinstance(item, bytes):
                    await send_data(dst, item)
                    in_flight.give(len(item))
                elif item == "eof":
                    await send_eof(dst)
                    return
                else:  # "reset" or "close"
                    cut_connection(item)
                    return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        nursery.start_soon(writer)


async def _pass_through(sock: trio.socket.SocketType, src: Connection, dst: ByteStream,
                        impairer: StreamImpairer) -> None:
    """`_pump` for a direction with nothing to impair, on a plain socket: each read, into one
    large buffer reused for the connection's life, is written on before the next (the
    receiver's pace holds the sender back, as the kernel's would), with no queue and no
    second task between them."""
    buffer = bytearray(PASS_BUFFER)
    view = memoryview(buffer)
    where = getattr(src, "remote", None) or "the relayed connection"
    while True:
        with translate_os_errors(where, "receive from"):
            n = await sock.recv_into(buffer)
        if not n:
            await dst.send_eof()
            return
        impairer.passed_whole(n)
        await dst.send_all(view[:n])


async def _relay_stream(listen: Address, to: Address, make_relay: Callable[..., Relay],
                        fwd_rng: random.Random, back_rng: random.Random,
                        task_status: trio.TaskStatus[Relay]) -> None:
    to_transport = get_transport(to.scheme)
    summarise_accept_errors()
    listening = await listen_connections(listen)
    relay = make_relay(listening.bound)
    stats = relay.stats

    async def connection(client: Connection) -> None:
        # per connection: --reset-after N cuts each connection after N bytes, not the relay
        # after N bytes in all; one connection's chunks do not wait behind another's
        fwd = StreamImpairer(relay.forward, fwd_rng, stats.forward)
        back = StreamImpairer(relay.backward, back_rng, stats.backward)
        try:
            upstream = await to_transport.connect(to)
        except (NetlabError, OSError) as exc:  # OSError: no descriptor for the socket (EMFILE)
            stats.upstream_failures += 1
            log.warning("cannot reach %s for a new client: %s", to, exc)
            _abort(client)
            return
        async with client, upstream, trio.open_nursery() as nursery:

            def cut(how: str) -> None:
                if how == "reset":
                    _abort(client)
                    _abort(upstream)
                else:
                    socket_of(client).close()
                    socket_of(upstream).close()
                nursery.cancel_scope.cancel()

            async def guarded(src: Connection, dst: Connection, impairer: StreamImpairer) -> None:
                try:
                    await _pump(src, dst, impairer, cut)
                # except*: _pump's reader and writer raise from a nursery, as an exception group
                except* (trio.BrokenResourceError, trio.ClosedResourceError, TransportError):
                    nursery.cancel_scope.cancel()  # one side broke (a reset): so does the relay of it
                    _abort(client)  # the other side learns at once, as it would without a relay
                    _abort(upstream)
                    stats.broken += 1

            nursery.start_soon(guarded, client, upstream, fwd)
            nursery.start_soon(guarded, upstream, client, back)

    async def handle(client: Connection) -> None:
        """One client, whatever it does: its faults end its connection, never the relay."""
        stats.connections += 1
        relay.active += 1
        try:
            if relay.active > relay.max_connections:
                stats.refused += 1
                log.warning("refused a connection: %d open already (max-connections)", relay.max_connections)
                _abort(client)
                return
            await connection(client)
        except (trio.BrokenResourceError, trio.ClosedResourceError, NetlabError) as exc:
            stats.broken += 1  # closing a connection that broke (a TLS close_notify to a reset peer)
            log.debug("relayed connection ended abruptly: %s", exc)
        except Exception:  # a bug must cost one connection, not the relay
            stats.broken += 1
            log.exception("relayed connection failed")
        finally:
            relay.active -= 1

    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, handle, listening.listeners)
            task_status.started(relay)
    finally:
        await listening.aclose()


# -- datagrams ----------------------------------------------------------------------------


class _Scheduler:
    """Sends one flow's datagrams (one peer, one direction) at their time; datagrams due at
    the same time keep their order. Holds at most PEER_QUEUE of them (more are dropped and
    counted in `queue_full`); one that waits SEND_TIMEOUT in vain (its receiver is not
    reading) is given up with those that were due behind it, which would wait as long.

    A datagram due now, with nothing queued or in flight ahead of it, goes out at once if
    the kernel takes it (`try_send`): no heap, no trip through the scheduler, which is what
    keeps a relay with no delay as fast as a plain one. Anything else waits in the heap for
    `run`, which also tries at once first, and only for a send that would block waits (up to
    SEND_TIMEOUT) with `send`.
    """

    def __init__(self, stats: RelayStats, try_send: Callable[[bytes], bool],
                 send: Callable[[bytes], Awaitable[None]]) -> None:
        self._stats = stats
        self._try_send = try_send
        self._send = send
        self._heap: list[tuple[float, int, bytes]] = []
        self._counter = itertools.count()
        self._wakeup = trio.Event()
        self._busy = False  # `run` is waiting on a send: nothing may overtake it

    def at(self, when: float, data: bytes) -> None:
        if not self._heap and not self._busy and when <= trio.current_time() and self._sent_at_once(data):
            return
        if len(self._heap) >= PEER_QUEUE:
            self._stats.queue_full += 1
            log.warning("relay dropped a datagram: %d are queued for one client already", PEER_QUEUE)
            return
        heapq.heappush(self._heap, (when, next(self._counter), data))
        self._wakeup.set()

    def _sent_at_once(self, data: bytes) -> bool:
        """Send now if the kernel takes it; True if it is done with (sent, or failed and counted)."""
        try:
            return self._try_send(data)
        except TransportError as exc:
            self._stats.send_failures += 1
            log.info("relay send failed: %s", exc)
            return True

    async def run(self) -> None:
        sent = 0
        while True:
            if not self._heap:
                self._wakeup = trio.Event()
                await self._wakeup.wait()
                continue
            when = self._heap[0][0]
            if when > trio.current_time():
                self._wakeup = trio.Event()
                with trio.move_on_at(when):
                    await self._wakeup.wait()
                continue
            _, _, data = heapq.heappop(self._heap)
            if self._sent_at_once(data):
                sent += 1
                if sent % BATCH == 0:  # many due at once: let the other tasks run now and then
                    await trio.lowlevel.checkpoint()
                continue
            self._busy = True
            try:
                with trio.move_on_after(SEND_TIMEOUT) as scope:
                    try:
                        await self._send(data)
                    except TransportError as exc:
                        self._stats.send_failures += 1
                        log.info("relay send failed: %s", exc)
            finally:
                self._busy = False
            if scope.cancelled_caught:
                now = trio.current_time()
                given_up = 1
                while self._heap and self._heap[0][0] <= now:
                    heapq.heappop(self._heap)
                    given_up += 1
                self._stats.send_failures += given_up
                log.warning("relay gave up %d datagram(s) after %g s: their receiver is not reading",
                            given_up, SEND_TIMEOUT)


async def _relay_datagram(listen: Address, to: Address, make_relay: Callable[..., Relay],
                          fwd_rng: random.Random, back_rng: random.Random,
                          task_status: trio.TaskStatus[Relay]) -> None:
    listen_transport = get_transport(listen.scheme)
    front = await listen_datagrams(listen)
    relay = make_relay([front.local])
    stats = relay.stats
    fwd = DatagramImpairer(relay.forward, fwd_rng, stats.forward)
    back = DatagramImpairer(relay.backward, back_rng, stats.backward)
    upstreams: OrderedDict[Peer, tuple[MessageChannel, trio.CancelScope, _Scheduler]] = OrderedDict()
    if front.count_drops():
        stats.kernel_dropped_forward = 0
    #: what the kernel dropped on upstream sockets now closed (a closed socket counts no more)
    dropped_by_closed = 0

    def count_backward_drops() -> None:
        if stats.kernel_dropped_backward is not None:
            stats.kernel_dropped_backward = dropped_by_closed + sum(
                channel.kernel_drops or 0 for channel, _, _ in upstreams.values())

    async def peer_flow(peer: Peer, upstream: MessageChannel,
                        task_status: trio.TaskStatus[tuple[trio.CancelScope, _Scheduler]] = trio.TASK_STATUS_IGNORED
                        ) -> None:
        """One client's flow: its upstream socket, the replies coming back on it, and a
        scheduler per direction, so a peer that is not reading delays only its own datagrams."""
        there = _Scheduler(stats, upstream.try_send, upstream.send)
        back_again = _Scheduler(stats, partial(front.try_send_to, peer=peer), partial(front.send_to, peer=peer))
        with trio.CancelScope() as scope:
            async with upstream, trio.open_nursery() as flow:
                flow.start_soon(there.run)
                flow.start_soon(back_again.run)
                task_status.started((scope, there))
                while True:
                    try:  # what is queued, in one trip through the scheduler
                        replies = await upstream.receive_batch()
                    except TransportError as exc:
                        stats.upstream_failures += 1
                        log.info("upstream for %s: %s", listen_transport.format_peer(peer), exc)
                        continue
                    if upstream.kernel_drops:
                        count_backward_drops()
                    for reply in replies:
                        if reply is None:  # a datagram channel never ends; nothing more can come
                            return
                        for when, data in back.decide(reply.data, trio.current_time()):
                            back_again.at(when, data)

    async with front, trio.open_nursery() as nursery:
        task_status.started(relay)
        queued: list[Message] = []  # the rest of the last batch, last first
        while True:
            if not queued:  # what is queued, in one trip through the scheduler
                queued = await front.receive_batch()
                queued.reverse()
                if front.kernel_drops is not None:
                    stats.kernel_dropped_forward = front.kernel_drops
            datagram = queued.pop()
            if datagram.peer is None:
                stats.unanswerable += 1
                continue
            if datagram.truncated:
                stats.forward.dropped += 1
                continue
            entry = upstreams.get(datagram.peer)
            if entry is None:
                try:
                    upstream = await connect_channel(to)
                except NetlabError as exc:
                    stats.upstream_failures += 1
                    log.warning("cannot reach %s: %s", to, exc)
                    continue
                if upstream.count_drops() and stats.kernel_dropped_backward is None:
                    stats.kernel_dropped_backward = 0
                scope, there = await nursery.start(peer_flow, datagram.peer, upstream)
                entry = upstreams[datagram.peer] = (upstream, scope, there)
                if len(upstreams) > MAX_PEERS:
                    _, (oldest, oldest_scope, _) = upstreams.popitem(last=False)
                    dropped_by_closed += oldest.kernel_drops or 0
                    oldest_scope.cancel()
            upstreams.move_to_end(datagram.peer)
            upstream, _, there = entry
            for when, data in fwd.decide(datagram.data, trio.current_time()):
                there.at(when, data)
