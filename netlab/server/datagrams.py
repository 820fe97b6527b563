"""Datagram servers (udp, udp6, unix-dgram): one socket answers every peer, each datagram
with one datagram, and no peer can stall the rest.

A reply the kernel will not take at once waits in its peer's queue (`PendingReplies`),
sent by a task of its own, while the receive loop goes on. A datagram that was truncated,
or came from a sender with no address, is counted and logged, never served; a reply too
much larger than its request (amplification), or to a peer over its rate, is not sent.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque

import trio

from ..errors import TransportError
from ..transports import DatagramEndpoint, Message
from ..transports.base import Peer
from .context import Serving, log
from .limits import RateLimiter

#: how long a datagram server waits to hand a reply to a peer that is not reading; a peer
#: that made it wait that long in vain gets its further replies only if they go at once
REPLY_TIMEOUT = 1.0
#: datagram replies held for one peer that cannot take them yet, and bytes of them held for
#: all peers together; beyond either, a reply is dropped and counted (`reply_queue_dropped`)
PEER_REPLY_QUEUE = 16
REPLY_QUEUE_BYTES = 4 * 1024 * 1024


class PendingReplies:
    """Datagram replies that could not go at once, sent by a task of their own, so that no
    peer, and no stream of new peers, can stall the receive loop.

    The loop hands a reply here when the kernel would not take it (a unix-dgram peer whose
    receive queue is full; rarely, a full send buffer) and goes on at once. `run` retries
    every peer's queue in order, polling with short sleeps (an unconnected unix datagram
    socket polls writable even when the peer's queue is full, so waiting for writability
    would spin). Bounded: `PEER_REPLY_QUEUE` replies per peer and `REPLY_QUEUE_BYTES` for all
    of them; past either, a reply is dropped and counted. A peer whose oldest reply has
    waited REPLY_TIMEOUT in vain is not reading: its queue is dropped, and until it takes a
    reply again its replies go only if they can at once.
    """

    def __init__(self, server: Serving, sock: DatagramEndpoint) -> None:
        self._server = server
        self._sock = sock
        self._queues: OrderedDict[Peer, deque[tuple[float, bytes]]] = OrderedDict()
        self._bytes = 0
        self.stalled: OrderedDict[Peer, None] = OrderedDict()
        self._wakeup = trio.Event()

    def __len__(self) -> int:
        return len(self._queues)

    def __contains__(self, peer: Peer) -> bool:
        return peer in self._queues

    def add(self, reply: bytes, peer: Peer) -> None:
        """Queue a reply the kernel would not take at once (or a reply to a peer with
        replies queued already, so that they keep their order). Never waits."""
        stats = self._server.stats
        if peer in self.stalled:
            stats.reply_failures += 1
            log.debug("dropped a reply to %s: it is still not reading", self._server.transport.format_peer(peer))
            return
        queue = self._queues.get(peer)
        if queue is None:
            queue = self._queues[peer] = deque()
        if len(queue) >= PEER_REPLY_QUEUE or self._bytes + len(reply) > REPLY_QUEUE_BYTES:
            stats.reply_queue_dropped += 1
            log.warning("dropped a reply to %s: its queue is full (%d replies; %d bytes held for all peers)",
                        self._server.transport.format_peer(peer), len(queue), self._bytes)
            if not queue:
                del self._queues[peer]
            return
        queue.append((trio.current_time(), reply))
        self._bytes += len(reply)
        stats.replies_queued += 1
        self._wakeup.set()

    def _give_up(self, peer: Peer, queue: deque[tuple[float, bytes]]) -> None:
        self._server.stats.reply_failures += len(queue)
        self._server.stats.replies_queued -= len(queue)
        self._bytes -= sum(len(reply) for _, reply in queue)
        queue.clear()
        self.stalled[peer] = None
        if len(self.stalled) > RateLimiter.MAX_PEERS:
            self.stalled.popitem(last=False)
        log.warning("dropped replies to %s: it is not reading (its further replies go only if they can at once)",
                    self._server.transport.format_peer(peer))

    async def run(self) -> None:
        pause = 0.0005
        while True:
            if not self._queues:
                self._wakeup = trio.Event()
                await self._wakeup.wait()
                pause = 0.0005
            await trio.sleep(pause)
            moved = False
            now = trio.current_time()
            for peer, queue in list(self._queues.items()):
                while queue:
                    when, reply = queue[0]
                    try:
                        if not self._sock.try_send_to(reply, peer):
                            break
                        moved = True
                        self.stalled.pop(peer, None)
                    except TransportError as exc:
                        self._server.stats.reply_failures += 1
                        log.info("could not reply: %s", exc)
                    queue.popleft()
                    self._bytes -= len(reply)
                    self._server.stats.replies_queued -= 1
                if queue and now - queue[0][0] >= REPLY_TIMEOUT:
                    self._give_up(peer, queue)
                if not queue:
                    del self._queues[peer]
            pause = 0.0005 if moved else min(2 * pause, 0.02)


async def serve_datagrams(server: Serving, endpoint: DatagramEndpoint) -> None:
    """Answer the datagrams that come to `endpoint` until cancelled; replies that cannot go
    at once are sent by a task of their own."""
    async with trio.open_nursery() as nursery:
        pending = PendingReplies(server, endpoint)
        nursery.start_soon(pending.run)
        await _receive(server, endpoint, pending)


async def _receive(server: Serving, sock: DatagramEndpoint, pending: PendingReplies) -> None:
    """The receive loop: serve each datagram, and send its reply at once or queue it."""
    stats, limits = server.stats, server.limits
    limiter = RateLimiter(limits.rate_limit) if limits.rate_limit else None
    counting = sock.count_drops()
    queued: list[Message] = []  # the rest of the last batch, last first
    while True:
        if not queued:
            try:  # what is queued, in one trip through the scheduler (at most BATCH: fair to the rest)
                queued = await sock.receive_batch()
            except TransportError as exc:
                log.warning("receive failed: %s", exc)
                continue
            queued.reverse()
            if counting:
                stats.kernel_drops = sock.kernel_drops
        datagram = queued.pop()
        stats.datagrams += 1
        if datagram.truncated:
            stats.truncated += 1
            log.warning(
                "dropped a datagram from %s: larger than the %d-byte read buffer (truncated)",
                server.transport.format_peer(datagram.peer), len(datagram.data),
            )
            continue
        if datagram.peer is None:
            stats.unanswerable += 1
            level = logging.WARNING if stats.unanswerable == 1 else logging.DEBUG
            log.log(level, "a %d-byte datagram came from an unbound sender: it has no address, so no "
                    "reply can reach it (the client must bind; netlab clients autobind)", len(datagram.data))
            continue
        try:
            reply = server.service.handle_datagram(datagram.data)
        except Exception:
            log.exception("service %s failed on a datagram", server.service.name)
            continue
        if reply is None:
            continue
        if len(reply) > len(datagram.data) + limits.amplification:
            stats.amplification_dropped += 1
            log.warning("dropped a %d-byte reply to a %d-byte datagram: more than %d bytes larger (amplification)",
                        len(reply), len(datagram.data), limits.amplification)
            continue
        if limiter is not None and not limiter.allow(datagram.peer, trio.current_time()):
            stats.rate_limited += 1
            continue
        if pending and datagram.peer in pending:  # behind its queued replies, in order
            pending.add(reply, datagram.peer)
            continue
        try:  # at once, if the kernel takes it: no cancel scope, no trip through the scheduler
            if sock.try_send_to(reply, datagram.peer):
                if pending.stalled:
                    pending.stalled.pop(datagram.peer, None)
                continue
        except TransportError as exc:
            stats.reply_failures += 1
            log.info("could not reply: %s", exc)
            continue
        pending.add(reply, datagram.peer)  # never awaited here: the receive loop goes on
