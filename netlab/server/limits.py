"""What one server allows (`Limits`), what it counts (`ServerStats`), and the token bucket
(`RateLimiter`) that holds a datagram peer, or the hint log, to a rate."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from ..services.base import REPLY_BUDGET
from ..services.framing import DEFAULT_MAX_LINE
from ..transports import Transport

@dataclass(frozen=True)
class Limits:
    """What one server allows, so that no client can take more than its share.

    ``max_connections``  open connections at once (stream and seqpacket); the next one is
                         accepted, told ``ERR busy`` and closed, so it learns at once rather
                         than hanging in the listen backlog.
    ``idle_timeout``     seconds a connection may send nothing, and seconds a reply may
                         wait for a client that does not read; then it is closed.
    ``request_timeout``  seconds from the first byte of a request to its end (slowloris: a
                         byte now and then resets the idle timeout, not this one); then the
                         connection is closed.
    ``max_connections_per_peer``  open connections from one peer: one IP address, or one
                         uid on a unix socket (None: no limit but ``max_connections``); the
                         next one gets ``ERR busy`` like the rest.
    ``max_line``         bytes in one request line (line services); more gets ``ERR request
                         too long`` and is not buffered.
    ``rate_limit``       replies per second to one datagram peer (None: no limit).
    ``grace``            seconds a draining server (SIGTERM) gives requests in flight.
    ``allow_uids`` / ``allow_gids``  unix sockets only: peers whose SO_PEERCRED uid or gid
                         is not listed are closed at once (None: anyone who may open the file).
    ``amplification``    a datagram reply may be at most this many bytes longer than its
                         request, so a spoofed source cannot use the server to amplify.
    """

    max_connections: int = 1024
    idle_timeout: float = 300.0
    request_timeout: float = 30.0
    max_connections_per_peer: int | None = None
    max_line: int = DEFAULT_MAX_LINE
    rate_limit: float | None = None
    grace: float = 1.0
    allow_uids: frozenset[int] | None = None
    allow_gids: frozenset[int] | None = None
    amplification: int = 64

    def applying_to(self, transport: Transport | None = None) -> dict[str, object]:
        """The limits in force on `transport` (None: every limit), named as serve's options:
        connection limits only where there are connections, the request timeout and the
        reply budget only on byte streams, the datagram rate only on datagrams, peer
        credentials only when asked for."""
        connected = transport is None or transport.connected
        streams = transport is None or not transport.boundaries  # a request may span reads
        datagrams = transport is None or not transport.connected
        limits: dict[str, object] = {}
        if connected:
            limits.update({"max-connections": self.max_connections,
                           "max-connections-per-peer": self.max_connections_per_peer,
                           "idle-timeout": self.idle_timeout})
        if streams:
            limits["request-timeout"] = self.request_timeout
        limits["max-line"] = self.max_line
        if streams:
            limits["reply-budget"] = REPLY_BUDGET
        if datagrams:
            limits["rate-limit"] = self.rate_limit
        limits["grace"] = self.grace
        if self.allow_uids is not None:
            limits["allow-uid"] = sorted(self.allow_uids)
        if self.allow_gids is not None:
            limits["allow-gid"] = sorted(self.allow_gids)
        return limits

    def describe(self, transport: Transport | None = None) -> str:
        """The limits in force on `transport` as serve's startup line shows them."""
        units = {"idle-timeout": "s", "request-timeout": "s", "grace": "s", "rate-limit": "/s"}

        def shown(name: str, value: object) -> str:
            if value is None:
                return "none"
            if isinstance(value, list):
                return ",".join(map(str, value))
            return (f"{value:g}" if isinstance(value, float) else str(value)) + units.get(name, "")

        return " ".join(f"{name}={shown(name, value)}" for name, value in self.applying_to(transport).items())


@dataclass
class ServerStats:
    """What a server has seen: counters a test or the serve command reads while it runs."""

    connections: int = 0  # connections accepted (stream and seqpacket)
    active: int = 0  # connections open now
    datagrams: int = 0  # datagrams (or seqpacket messages) received
    truncated: int = 0  # datagrams dropped because they did not fit the read buffer
    unanswerable: int = 0  # datagrams from a sender with no address (unbound unix-dgram)
    reply_failures: int = 0  # replies that could not be delivered
    busy: int = 0  # connections refused with ERR busy (max_connections)
    peer_busy: int = 0  # connections refused with ERR busy (max_connections_per_peer)
    idle_closed: int = 0  # connections closed for sending nothing for idle_timeout
    request_timeouts: int = 0  # connections closed: a request begun was not finished in request_timeout
    budget_waits: int = 0  # times a stream's replies reached REPLY_BUDGET and reading waited for them to go
    stalled_closed: int = 0  # connections closed because a reply could not be written in time
    credentials_refused: int = 0  # unix peers whose uid/gid is not allowed
    rate_limited: int = 0  # datagram replies not sent: the peer was over rate_limit
    amplification_dropped: int = 0  # datagram replies not sent: too much larger than the request
    reply_queue_dropped: int = 0  # datagram replies not sent: the peer's queue (or all queues) full
    replies_queued: int = 0  # datagram replies waiting now for peers that could not take them at once
    hints: int = 0  # connections whose request waited unfinished for HINT_AFTER s (each got one hint)
    kernel_drops: int | None = None  # datagrams the kernel dropped on a full receive queue (SO_RXQ_OVFL)


class RateLimiter:
    """A token bucket per peer: `rate` replies per second, bursts up to `rate` (at least one)."""

    #: peers remembered at most (the least recently seen are forgotten first)
    MAX_PEERS = 4096

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = max(rate, 1.0)  # below 1/s a bucket of `rate` tokens would never hold a whole one
        self._buckets: OrderedDict[object, tuple[float, float]] = OrderedDict()

    def allow(self, peer: object, now: float) -> bool:
        tokens, last = self._buckets.pop(peer, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[peer] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > self.MAX_PEERS:
            self._buckets.popitem(last=False)
        return allowed

