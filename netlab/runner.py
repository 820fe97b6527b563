"""Serve a service on a transport, and talk to it: the glue between the two.

Server side::

    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve, "sum", "tcp:127.0.0.1:0")
        print(server.bound[0])          # tcp:127.0.0.1:41234, the port the kernel gave

Client side::

    async with open_client("tcp:127.0.0.1:41234", service="sum") as client:
        assert await client.request(b"2 3") == b"5\\n"

The stream adapter feeds a service session every chunk it reads (``b""`` at end of
stream) and writes back what it returns; the datagram adapter answers each datagram
with one datagram. Neither lets a bad request or a vanished peer stop the server: a
datagram that was truncated, or came from a sender with no address, is counted and
logged, never served.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import struct
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import cast

import trio

from .errors import (
    AddressError, ConnectionResetError, NetlabError, ServiceOptionError, TimeoutError, TransportError, UsageError,
    translate_os_errors,
)
from .logs import RATE_LIMITED, summarise_accept_errors, summarised
from .services import Service, Session, get_service
from .services.base import REPLY_BUDGET
from .services.framing import DEFAULT_MAX_LINE, Framing
from .transports import (
    Address, ByteStream, Connection, DatagramEndpoint, Kind, Listeners, Listening, MessageChannel, Transport,
    parse_address, peer_identity, plain_socket, send_data, socket_of,
)
from .transports.base import SPIN, Message, Peer, readable_soon

log = summarised(logging.getLogger("netlab.server"))

#: bytes asked for per read on a stream
RECEIVE_SIZE = 64 * 1024
#: a stream server's reads: one buffer this size serves all its connections (asyncio reads
#: 256 KiB at a time too; fewer, larger reads carry a bulk transfer with less overhead)
SERVER_RECEIVE_SIZE = 256 * 1024
#: how long a datagram server waits to hand a reply to a peer that is not reading; a peer
#: that made it wait that long in vain gets its further replies only if they go at once
REPLY_TIMEOUT = 1.0
#: datagram replies held for one peer that cannot take them yet, and bytes of them held for
#: all peers together; beyond either, a reply is dropped and counted (`reply_queue_dropped`)
PEER_REPLY_QUEUE = 16
REPLY_QUEUE_BYTES = 4 * 1024 * 1024
#: seconds a request may wait unfinished (no newline yet) before the server logs, once for
#: that connection, what the client should do
HINT_AFTER = 1.0
#: bytes of the unfinished request the hint shows
HINT_SHOWS = 40
#: hints logged per second at most (bursts of as many); the others go to the debug log
HINTS_PER_S = 5.0


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
        streams = transport is None or transport.kind == "stream"
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


@dataclass
class Server:
    """What `serve` hands to ``nursery.start``: where it listens, and what it has seen.

    `drain` stops accepting and gives requests in flight ``limits.grace`` seconds; cancelling
    the task that runs `serve` stops everything at once. Either way listeners close and
    socket files are removed.
    """

    service: Service
    transport: Transport
    requested: Address
    bound: list[Address]
    limits: Limits = field(default_factory=Limits)
    stats: ServerStats = field(default_factory=ServerStats)
    _stop_accepting: trio.CancelScope = field(default_factory=trio.CancelScope, repr=False)
    _everything: trio.CancelScope | None = field(default=None, repr=False)
    _listening: Listening | None = field(default=None, repr=False)
    draining: bool = False
    #: open connections per peer (`peer_identity`), kept only with max_connections_per_peer
    _per_peer: dict[str, int] = field(default_factory=dict, repr=False)
    #: where stream connections read into: one buffer for all of them (each read is copied
    #: out before the next await, and the server's tasks all run in one thread)
    _read_buffer: memoryview = field(default_factory=lambda: memoryview(bytearray(SERVER_RECEIVE_SIZE)),
                                     repr=False)
    #: the budget of hint lines (HINTS_PER_S), so that many stuck clients cannot flood the log
    _hint_budget: _RateLimiter = field(default_factory=lambda: _RateLimiter(HINTS_PER_S), repr=False)

    @property
    def address(self) -> Address:
        """The first bound address (the only one, unless a name resolved to several)."""
        return self.bound[0]

    async def drain(self) -> None:
        """Stop accepting; wait up to ``limits.grace`` s for open connections, then close them."""
        self.draining = True
        self._stop_accepting.cancel()
        # refuse new connections from this moment, before any other task runs: left to the
        # serving task, the listeners would close a few scheduling rounds later, and a client
        # connecting meanwhile would be queued by the kernel, then reset (the serving task
        # still closes them properly, and removes socket files)
        if self._listening is not None:
            self._listening.refuse()
        with trio.move_on_after(self.limits.grace):
            while self.stats.active:
                await trio.sleep(0.01)
        if self._everything is not None:
            self._everything.cancel()


def _make_service(service: Service | str, limits: Limits) -> Service:
    if isinstance(service, Service):
        return service
    return get_service(service, max_line=limits.max_line)


async def serve(
    service: Service | str,
    address: Address | str,
    *,
    limits: Limits = Limits(),
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `service` on `address` until cancelled or drained. Use with ``nursery.start``.

    Raises (before ``started``): AddressError (e.g. allow-uid on a non-unix address),
    AddressInUseError, PermissionDeniedError, AddressUnavailableError, ResolveError.
    """
    address = parse_address(address)
    transport = address.transport
    if (limits.allow_uids is not None or limits.allow_gids is not None) and (
        transport.target != "unix" or not transport.connected
    ):
        raise AddressError(f"allow-uid/allow-gid check peer credentials (SO_PEERCRED), which only unix stream "
                           f"and unix-seq sockets have; {address.scheme}: has none")
    service = _make_service(service, limits)
    summarise_accept_errors()
    if transport.boundaries and service.framing not in (None, Framing()):
        raise ServiceOptionError(f"framing {service.framing} is for byte streams (tcp, tcp6, unix, tls); "
                                 f"on {address.scheme}: each message is one request already")
    listening = await transport.listen(address)
    server = Server(service, transport, address, listening.bound, limits, _listening=listening)
    try:
        await _DRIVERS[transport.kind].serve(server, listening, task_status)
    finally:
        await listening.aclose()


async def _serve_connections(server: Server, listening: Listening, task_status: trio.TaskStatus[Server]) -> None:
    assert isinstance(listening, Listeners)  # the table sends only connection kinds here
    handle = _DRIVERS[server.transport.kind].handle
    with trio.CancelScope() as everything:
        server._everything = everything
        async with trio.open_nursery() as handlers:
            with server._stop_accepting:
                async with trio.open_nursery() as acceptors:
                    await acceptors.start(partial(trio.serve_listeners, partial(_admit, server, handle),
                                                  listening.listeners, handler_nursery=handlers))
                    task_status.started(server)
            # draining: no more accepting; the listeners (and socket files) go now
            await listening.aclose()
            await trio.sleep_forever()  # until drain() or our caller cancels


def _peer_credentials(sock: trio.socket.SocketType) -> tuple[int, int, int] | None:
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    return struct.unpack("3i", raw)


async def _admit(server: Server, handle: Handler, conn: Connection) -> None:
    """Apply the per-connection limits, then hand the connection to its handler."""
    stats, limits = server.stats, server.limits
    stats.connections += 1
    stats.active += 1
    peer = None
    try:
        async with conn:
            if limits.allow_uids is not None or limits.allow_gids is not None:
                creds = _peer_credentials(socket_of(conn))
                uid_ok = creds is not None and limits.allow_uids is not None and creds[1] in limits.allow_uids
                gid_ok = creds is not None and limits.allow_gids is not None and creds[2] in limits.allow_gids
                if not (uid_ok or gid_ok):
                    stats.credentials_refused += 1
                    who = "unknown" if creds is None else f"pid {creds[0]}, uid {creds[1]}, gid {creds[2]}"
                    log.warning("refused a connection from %s: not in allow-uid/allow-gid", who)
                    return
            busy = stats.active > limits.max_connections
            if busy:
                stats.busy += 1
                log.warning("refused a connection: %d open already (max-connections)", limits.max_connections)
            elif limits.max_connections_per_peer is not None:
                peer = peer_identity(conn)
                if peer is not None:
                    server._per_peer[peer] = server._per_peer.get(peer, 0) + 1
                    if server._per_peer[peer] > limits.max_connections_per_peer:
                        busy = True
                        stats.peer_busy += 1
                        log.warning("refused a connection from %s: %d open from there already "
                                    "(max-connections-per-peer)", peer, limits.max_connections_per_peer)
            if busy:
                with trio.move_on_after(1.0), contextlib.suppress(NetlabError, trio.BrokenResourceError,
                                                                   trio.ClosedResourceError):
                    await send_data(conn, _DRIVERS[server.transport.kind].busy)
                return
            await handle(server, conn)
    except (trio.BrokenResourceError, trio.ClosedResourceError, TransportError) as exc:
        log.debug("connection ended abruptly: %s", exc.__cause__ or exc)
    except Exception:  # a bug in a service must cost one connection, not the server
        log.exception("connection failed")
    finally:
        stats.active -= 1
        if peer is not None:
            left = server._per_peer.pop(peer) - 1
            if left:
                server._per_peer[peer] = left


class _Deadline:
    """A connection's idle and stalled-writer timeouts: one cancel scope for its whole life.

    What it stands for is a fresh ``move_on_after(idle_timeout)`` around every receive and
    every send that waits. That costs two cancel scopes per message, and entering and
    leaving one costs trio several µs: measured, more than half of the rest of an echo's
    cost (see benchmarks/RESULTS.md). Instead, `arm` is called before each receive and
    before each send that has to wait: it leaves the deadline alone while it is at least
    ``idle_timeout`` away, and otherwise moves it ``idle_timeout + slack`` ahead. A busy
    connection moves it once every `slack` seconds rather than once per message. A
    connection is closed no sooner than ``idle_timeout`` after the wait began, as before, and
    at most `slack` (1/32 of ``idle_timeout``) later. `sending` says which wait it was.

    The request timeout shares the scope: `request` is told after each read whether a
    request is under way (begun, not ended); the first such read sets `request_due`
    ``request_timeout`` ahead, a read that ends a request clears it, and the scope's
    deadline is the sooner of the two. A byte now and then keeps a connection from being
    idle, but not a request from being due.
    """

    __slots__ = ("scope", "sending", "request_due", "_idle", "_slack", "_deadline", "_request_timeout")

    def __init__(self, idle_timeout: float, request_timeout: float = float("inf")) -> None:
        self._idle = idle_timeout
        self._slack = idle_timeout / 32
        self._deadline = trio.current_time() + idle_timeout + self._slack
        self._request_timeout = request_timeout
        self.scope = trio.CancelScope(deadline=self._deadline)
        self.sending = False
        self.request_due: float | None = None

    def arm(self) -> None:
        now = trio.current_time()
        if now + self._idle > self._deadline:
            self._deadline = now + self._idle + self._slack
            due = self.request_due
            self.scope.deadline = self._deadline if due is None or due > self._deadline else due

    def request(self, pending: bool, ended: bool) -> None:
        """After a read: `pending` says a request is under way, `ended` that one (at least)
        ended in this read, so a request still pending began in it."""
        if self.request_due is not None and (ended or not pending):
            self.request_due = None
            self.scope.deadline = self._deadline
        if pending and self.request_due is None:
            self.request_due = trio.current_time() + self._request_timeout
            self.scope.deadline = min(self._deadline, self.request_due)


def _timed_out(server: Server, deadline: _Deadline) -> None:
    """Count and log a connection `deadline` closed."""
    if deadline.request_due is not None and trio.current_time() >= deadline.request_due:
        server.stats.request_timeouts += 1
        log.info("closed a connection whose request was not complete %g s after its first byte (request-timeout)",
                 server.limits.request_timeout)
    elif deadline.sending:
        server.stats.stalled_closed += 1
        log.info("closed a connection that did not read its replies for %g s", server.limits.idle_timeout)
    else:
        server.stats.idle_closed += 1
        log.info("closed a connection that sent nothing for %g s (idle-timeout)", server.limits.idle_timeout)


def _broken(exc: OSError) -> trio.BrokenResourceError | trio.ClosedResourceError:
    """The error trio's SocketStream would raise for `exc` (what `_admit` expects)."""
    if exc.errno in (errno.EBADF, errno.ENOTSOCK):
        closed = trio.ClosedResourceError("this socket was already closed")
        closed.__suppress_context__ = True
        return closed
    broken = trio.BrokenResourceError(f"socket connection broken: {exc}")
    broken.__cause__ = exc
    return broken


class _Unfinished:
    """The clock a service does not have, for one connection's unfinished request.

    Before each wait for data the handler asks `wake_at` when to stop waiting if nothing
    comes: with quiet framing, ``framing.silence`` s from now (just after the last read);
    with a framing only the client can end (line, eof), `HINT_AFTER` s after the request
    began, once per connection; otherwise never (None). When that time came and a read
    finds nothing, `expired` ends the request (quiet: `Session.flush`, whose reply goes
    back) or logs the hint (`_hint`).
    """

    __slots__ = ("server", "conn", "session", "silence", "since", "hinted")

    def __init__(self, server: Server, conn: Connection, session: Session, framing: Framing) -> None:
        self.server, self.conn, self.session = server, conn, session
        self.silence = framing.silence
        self.since: float | None = None  # when the request began (its first unanswered byte was read)
        self.hinted = framing.advice is None  # a framing that ends requests itself needs no hint

    def wake_at(self) -> float | None:
        if not self.session.pending():
            self.since = None
            return None
        now = trio.current_time()
        if self.silence is not None:
            return now + self.silence
        if self.since is None:  # (the handler resets it when a reply goes: a request ended)
            self.since = now
        return None if self.hinted else self.since + HINT_AFTER

    def expired(self) -> bytes:
        if self.silence is not None:
            return self.session.flush()
        self.hinted = True
        _hint(self.server, self.conn, self.session)
        return b""


def _peer_name(server: Server, conn: Connection) -> str:
    """The peer's address; for a unix peer, which is usually unnamed, its pid and uid."""
    sock = socket_of(conn)
    scheme = server.transport.scheme
    try:
        name = server.transport.format_peer(sock.getpeername())
    except OSError:
        name = f"a {scheme} client"
    if sock.family == socket.AF_UNIX and (creds := _peer_credentials(sock)) is not None:
        who = f"pid {creds[0]}, uid {creds[1]}"
        name = f"{scheme} client ({who})" if name == "(unbound)" else f"{name} ({who})"
    return name


def _hint(server: Server, conn: Connection, session: Session) -> None:
    """Log, within the hint budget, that `conn`'s request has waited `HINT_AFTER` s unfinished."""
    framing = server.service.framing
    assert framing is not None and framing.advice is not None  # _Unfinished hints only then
    server.stats.hints += 1
    head, size = session.head(HINT_SHOWS), session.pending()
    shown = repr(head.decode("utf-8", "backslashreplace")) + ("..." if size > len(head) else "")
    level = logging.WARNING if server._hint_budget.allow("hint", trio.current_time()) else logging.DEBUG
    log.log(level, "%s began a request %g s ago and has not ended it: %d byte%s so far, %s. With framing=%s a "
            "request ends at %s. To get a reply: %s",
            _peer_name(server, conn), HINT_AFTER, size, "" if size == 1 else "s", shown, framing,
            framing.end, framing.advice, extra={RATE_LIMITED: True})  # by the hint budget: no summary


async def _readable_by(fd: int, when: float) -> bool:
    """Wait until `fd` is readable or it is `when`; False if the time came first."""
    with trio.move_on_at(when):
        await trio.lowlevel.wait_readable(fd)
        return True
    return False


async def _handle_stream(server: Server, conn: Connection) -> None:
    """Feed a session every chunk the peer sends; write back what it returns.

    The hot path of every stream server, kept lean (benchmarks/RESULTS.md has the before
    and after). It reads with one system call into the server's one reused buffer (no
    64 KiB allocation per read) and copies out just what came; it writes the reply at once
    when the kernel takes it all, which is nearly always, and only a reply that does not
    fit goes through ``send_all`` and waits. It reads before waiting, as trio's own socket
    calls do, and yields to the other tasks once per message: by waiting for the next one,
    or, when it was already there, at a checkpoint. OS errors become the
    ``BrokenResourceError`` / ``ClosedResourceError`` that ``SocketStream`` would raise.
    While a request is unfinished, the wait has a deadline (`_Unfinished`); if it passes
    and a read still finds nothing, the session is told (n = -1 below).
    """
    stream = cast(ByteStream, conn)  # the driver table sends only byte streams here
    session = server.service.new_session()
    feed = session.receive_data
    framing = server.service.framing
    unfinished = None if framing is None else _Unfinished(server, conn, session, framing)
    sock = plain_socket(stream)
    if sock is None:  # bytes that pass through a layer (TLS): the stream's own calls
        await _handle_layered_stream(server, stream, session, unfinished)
        return
    fd = sock.fileno()
    buffer = server._read_buffer
    wait_readable, checkpoint, readv, write = (trio.lowlevel.wait_readable, trio.lowlevel.checkpoint,
                                               os.readv, os.write)
    deadline = _Deadline(server.limits.idle_timeout, server.limits.request_timeout)
    silent = False  # the unfinished request's deadline passed while waiting
    with deadline.scope:
        while True:
            deadline.arm()
            waited = False
            spin = SPIN
            try:
                while True:
                    try:
                        n = readv(fd, (buffer,))
                        break
                    except BlockingIOError:
                        if silent:
                            n = -1
                            break
                        if spin and readable_soon(fd, spin):
                            spin = 0.0
                            continue
                        wake = None if unfinished is None else unfinished.wake_at()
                        if wake is None:
                            await wait_readable(fd)
                        else:
                            silent = not await _readable_by(fd, wake)
                        waited = True
            except OSError as exc:
                raise _broken(exc)  # noqa: B904 - _broken sets the cause
            if n < 0:
                silent = False
                assert unfinished is not None
                reply = unfinished.expired()
            else:
                reply = feed(bytes(buffer[:n]))  # a copy: the buffer is reused at the next read
            ended = bool(reply)  # a request ended: one still pending began in this read
            if ended and unfinished is not None:
                unfinished.since = None
            while reply:
                try:
                    sent = write(fd, reply)
                except BlockingIOError:
                    sent = 0
                except OSError as exc:
                    raise _broken(exc)  # noqa: B904 - _broken sets the cause
                if sent < len(reply):
                    deadline.arm()
                    deadline.sending = True
                    await stream.send_all(memoryview(reply)[sent:])
                    deadline.sending = False
                    waited = True
                if len(reply) < REPLY_BUDGET:
                    break
                # the session stopped at its budget: the rest, once this has gone (it did,
                # or send_all waited for the client to read it); no reading meanwhile
                reply = session.resume()
                server.stats.budget_waits += bool(reply)
            pending = session.pending()
            if pending or deadline.request_due is not None:
                deadline.request(bool(pending), ended)
            if not n or server.draining:
                return
            if not waited:
                await checkpoint()
    _timed_out(server, deadline)


async def _handle_layered_stream(server: Server, stream: ByteStream, session: Session,
                                 unfinished: _Unfinished | None) -> None:
    """`_handle_stream` for a stream whose bytes pass through a layer (TLS): the same
    protocol, with the stream's own receive_some and send_all. A receive cancelled for an
    unfinished request's deadline loses nothing (trio's SSLStream keeps what it decrypted;
    only a cancelled handshake breaks it, and a request has begun only after one)."""
    feed = session.receive_data
    deadline = _Deadline(server.limits.idle_timeout, server.limits.request_timeout)
    with deadline.scope:
        while True:
            deadline.arm()
            wake = None if unfinished is None else unfinished.wake_at()
            if wake is None:
                data = await stream.receive_some(SERVER_RECEIVE_SIZE)
                reply = feed(bytes(data))
            else:
                received: bytes | bytearray | None = None
                with trio.move_on_at(wake):
                    received = await stream.receive_some(SERVER_RECEIVE_SIZE)
                if received is None:  # nothing came in time
                    assert unfinished is not None
                    data = b"-"  # (not the end of stream)
                    reply = unfinished.expired()
                else:
                    data = received
                    reply = feed(bytes(data))
            ended = bool(reply)  # a request ended: one still pending began in this read
            if ended and unfinished is not None:
                unfinished.since = None
            while reply:
                deadline.arm()
                deadline.sending = True
                await stream.send_all(reply)
                deadline.sending = False
                if len(reply) < REPLY_BUDGET:
                    break
                reply = session.resume()
                server.stats.budget_waits += bool(reply)
            deadline.request(bool(session.pending()), ended)
            if not data or server.draining:
                return
    _timed_out(server, deadline)


async def _handle_messages(server: Server, connection: Connection) -> None:
    """A seqpacket connection: each message is answered like a datagram, in order."""
    conn = cast(MessageChannel, connection)  # the driver table sends only message channels here
    stats, handle = server.stats, server.service.handle_datagram
    deadline = _Deadline(server.limits.idle_timeout)
    queued: list[Message | None] = []  # the rest of the last batch, last first
    with deadline.scope:
        while True:
            if not queued:
                deadline.arm()
                queued = list(await conn.receive_batch())  # what is queued, one trip through the scheduler
                queued.reverse()
            message = queued.pop()
            if message is None:  # end of stream
                return
            stats.datagrams += 1
            if message.truncated:
                stats.truncated += 1
                log.warning("dropped a %d+-byte message: larger than the read buffer (truncated)",
                            len(message.data))
                continue
            reply = handle(message.data)
            # an empty reply cannot be sent: it would read as end of stream
            if reply and not conn.try_send(reply):
                deadline.arm()
                deadline.sending = True
                await conn.send(reply)
                deadline.sending = False
            if server.draining:
                return
    _timed_out(server, deadline)


async def _serve_datagrams(server: Server, listening: Listening, task_status: trio.TaskStatus[Server]) -> None:
    assert isinstance(listening, DatagramEndpoint)  # the table sends only datagram kinds here
    with trio.CancelScope() as everything:
        server._everything = everything
        task_status.started(server)
        async with trio.open_nursery() as nursery:
            pending = _PendingReplies(server, listening)
            nursery.start_soon(pending.run)
            with server._stop_accepting:
                await _datagram_loop(server, listening, pending)
            nursery.cancel_scope.cancel()
        # draining: a datagram server has no requests in flight between datagrams


class _RateLimiter:
    """A token bucket per peer: `rate` replies per second, bursts up to `rate` (at least one)."""

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


class _PendingReplies:
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

    def __init__(self, server: Server, sock: DatagramEndpoint) -> None:
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
        if len(self.stalled) > _RateLimiter.MAX_PEERS:
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


async def _datagram_loop(server: Server, sock: DatagramEndpoint, pending: _PendingReplies) -> None:
    stats, limits = server.stats, server.limits
    limiter = _RateLimiter(limits.rate_limit) if limits.rate_limit else None
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


# -- clients --------------------------------------------------------------------------


#: how long `Client.request` waits for a reply unless told otherwise
REQUEST_TIMEOUT = 10.0


class Client:
    """A connection to a server, speaking `service`'s framing. Use `open_client`.

    ``connection`` is the transport's connection under it (a `ByteStream` or a
    `MessageChannel`), for tests and experiments that look below the service."""

    connection: Connection

    def __init__(self, address: Address, service: Service) -> None:
        self.address = address
        self.service = service

    async def request(self, message: bytes, *, timeout: float | None = REQUEST_TIMEOUT, newline: bool = True,
                      half_close: bool = False) -> bytes:
        """Send one request; return its complete reply (for line services, with the line ending).
        A reply that does not come within `timeout` seconds (default `REQUEST_TIMEOUT`, 10 s:
        a test through a lossy relay fails instead of hanging) raises TimeoutError; ``None``
        waits for ever.

        To behave like clients written without framing in mind: ``newline=False`` sends the
        message as it is, without the line ending a line service wants on a stream;
        ``half_close=True`` half-closes the stream after it (``shutdown(SHUT_WR)``), which
        ends the request on a server with eof framing, and the connection's last line on
        any line server. Then no further request can go on this client.

        Raises:
            TimeoutError: no complete reply within `timeout` seconds.
            UsageError: `half_close` on a connection that is not a byte stream.
            ConnectionRefusedError, ConnectionResetError, MessageTooLargeError, TransportError
        """
        try:
            with trio.fail_after(timeout if timeout is not None else float("inf")):
                return await self._request(message, newline, half_close)
        except trio.TooSlowError:
            why = ""
            if not newline and not half_close and self.service.encode_request(message, stream=True) != message:
                why = (" (the request went without a line ending and the write side stayed open: a server "
                       "that reads lines is still waiting for the end of it)")
            raise TimeoutError(f"no reply from {self.address} within {timeout:g} s{why}") from None

    async def _request(self, message: bytes, newline: bool = True, half_close: bool = False) -> bytes:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError


class StreamClient(Client):
    """A client over a byte stream: requests framed by the service, replies reassembled."""

    def __init__(self, address: Address, service: Service, connection: Connection) -> None:
        super().__init__(address, service)
        self.stream = cast(ByteStream, connection)  # the driver table sends only byte streams here
        self.connection: Connection = connection
        self._reader = service.new_reply_reader()
        self._ready: list[bytes] = []

    async def send(self, data: bytes) -> None:
        with translate_os_errors(self.address, "send to"):
            await self.stream.send_all(data)

    async def _request(self, message: bytes, newline: bool = True, half_close: bool = False) -> bytes:
        wire = self.service.encode_request(message, stream=True) if newline else message
        wanted = self._reader.expect(wire)
        self._ready.extend(self._reader.feed(b""))
        await self.send(wire)
        if half_close:
            with translate_os_errors(self.address, "half-close"):
                await self.stream.send_eof()
        while len(self._ready) < wanted:
            with translate_os_errors(self.address, "receive from"):
                data = await self.stream.receive_some(RECEIVE_SIZE)
            if not data:
                raise ConnectionResetError(f"{self.address} closed the connection before replying")
            self._ready.extend(self._reader.feed(bytes(data)))
        replies, self._ready = self._ready[:wanted], self._ready[wanted:]
        return b"".join(replies)

    async def aclose(self) -> None:
        await self.stream.aclose()


class MessageClient(Client):
    """A client over a message channel (datagrams, seqpacket): one message per request, one
    per reply."""

    def __init__(self, address: Address, service: Service, connection: Connection) -> None:
        super().__init__(address, service)
        self.channel = cast(MessageChannel, connection)  # the driver table sends only message channels here
        self.connection: Connection = connection

    async def _request(self, message: bytes, newline: bool = True, half_close: bool = False) -> bytes:
        if half_close:
            raise UsageError(f"half-close ends a request on a byte stream; on {self.address.scheme}: each "
                             f"message is a whole request already")
        await self.channel.send(self.service.encode_request(message, stream=False))
        if not self.service.replies:  # a sink (discard): nothing will come back
            return b""
        reply = await self.channel.receive()
        if reply is None:
            raise ConnectionResetError(f"{self.address} closed the connection before replying")
        if reply.truncated:
            raise TransportError(
                f"the reply from {self.address} was larger than the {self.channel.buffer_size}-byte "
                f"receive buffer and was cut short (MSG_TRUNC)"
            )
        return reply.data

    async def aclose(self) -> None:
        await self.channel.aclose()


@contextlib.asynccontextmanager
async def open_client(
    address: Address | str, service: Service | str = "sum", *, timeout: float | None = None
) -> AsyncIterator[Client]:
    """Connect to `address`. `service` picks the framing (default: one line per request).

    Raises:
        ConnectionRefusedError, ResolveError, TimeoutError (connecting took over `timeout`)
    """
    address = parse_address(address)
    svc = get_service(service)
    transport = address.transport
    try:
        with trio.fail_after(timeout if timeout is not None else float("inf")):
            client = _DRIVERS[transport.kind].client(address, svc, await transport.connect(address))
    except trio.TooSlowError:
        raise TimeoutError(f"could not connect to {address} within {timeout:g} s") from None
    try:
        yield client
    finally:
        with trio.CancelScope(shield=True):
            await client.aclose()


async def run_chat(
    address: Address | str,
    lines: AsyncIterator[bytes],
    write: Callable[[bytes], None],
    *,
    timeout: float = 5.0,
    newline: bool = True,
    half_close: bool = True,
) -> None:
    """The lab's interactive client: send each line, hand whatever comes back to `write`.

    On a stream, lines go out as they are (with a ``\n`` added to a last line without
    one); after the last, the client half-closes and prints until the server closes, or
    `timeout` s pass. On datagrams, each line (without its ending) is one datagram, and
    each reply is written as a line; after the last, it waits up to `timeout` s for the
    missing replies.

    Like a client written without framing in mind: ``newline=False`` sends each line
    without its line ending; ``half_close=False`` keeps the write side open after the last
    line (so the client waits the whole `timeout` for replies). Both are for streams.

    Raises:
        TimeoutError: datagrams whose reply never came. ConnectionRefusedError, TransportError.
    """
    address = parse_address(address)
    transport = address.transport
    connection = await transport.connect(address)
    async with connection:
        await _DRIVERS[transport.kind].chat(address, connection, lines, write, timeout, newline, half_close)


async def _chat_stream(address: Address, connection: Connection, lines: AsyncIterator[bytes],
                       write: Callable[[bytes], None], timeout: float, newline: bool = True,
                       half_close: bool = True) -> None:
    stream = cast(ByteStream, connection)  # the driver table sends only byte streams here
    async with trio.open_nursery() as nursery:

        async def receive() -> None:
            with translate_os_errors(address, "receive from"):
                while data := await stream.receive_some(RECEIVE_SIZE):
                    write(bytes(data))
            nursery.cancel_scope.cancel()  # the server closed: we are done

        nursery.start_soon(receive)
        with translate_os_errors(address, "send to"):
            async for line in lines:
                if not newline:
                    await stream.send_all(line.rstrip(b"\r\n"))
                else:
                    await stream.send_all(line if line.endswith(b"\n") else line + b"\n")
            if half_close:
                await stream.send_eof()
        await trio.sleep(timeout)  # the server did not close after our EOF: stop waiting
        nursery.cancel_scope.cancel()


async def _chat_messages(address: Address, connection: Connection, lines: AsyncIterator[bytes],
                         write: Callable[[bytes], None], timeout: float, newline: bool = True,
                         half_close: bool = True) -> None:
    conn = cast(MessageChannel, connection)  # the driver table sends only message channels here
    # datagrams carry the line without its ending; a message on a channel with an end of
    # stream keeps it, since an empty message would read as end of stream
    keep_ending = conn.has_eof and newline
    sent = received = 0
    done = trio.Event()
    async with trio.open_nursery() as nursery:

        async def receive_messages() -> None:
            nonlocal received
            while (message := await conn.receive()) is not None:
                data = message.data
                write(data if data.endswith(b"\n") else data + b"\n")
                received += 1
                if done.is_set() and received >= sent:
                    break
            nursery.cancel_scope.cancel()

        nursery.start_soon(receive_messages)
        async for line in lines:
            await conn.send(line if keep_ending else line.rstrip(b"\r\n"))
            sent += 1
        done.set()
        if received >= sent:
            nursery.cancel_scope.cancel()
        await trio.sleep(timeout)
        nursery.cancel_scope.cancel()
    if received < sent:
        raise TimeoutError(f"{sent - received} of {sent} datagrams got no reply within {timeout:g} s "
                           f"of the last one")


# -- one driver per connection shape ------------------------------------------------------

Handler = Callable[[Server, Connection], Awaitable[None]]
Chat = Callable[[Address, Connection, AsyncIterator[bytes], Callable[[bytes], None], float, bool, bool],
               Awaitable[None]]


@dataclass(frozen=True)
class _Driver:
    """How the runner works one kind: `serve` its `Listening`, `handle` each connection
    (connection kinds), answer ``busy`` when full, and the `client` and `chat` over it."""

    serve: Callable[[Server, Listening, trio.TaskStatus[Server]], Awaitable[None]]
    handle: Handler
    busy: bytes
    client: Callable[[Address, Service, Connection], Client]
    chat: Chat


async def _no_connections(server: Server, connection: Connection) -> None:
    raise AssertionError("a datagram kind has no connections to handle")


#: chosen once per server or client, by the transport's kind
_DRIVERS: dict[Kind, _Driver] = {
    "stream": _Driver(_serve_connections, _handle_stream, b"ERR busy\n", StreamClient, _chat_stream),
    "seqpacket": _Driver(_serve_connections, _handle_messages, b"ERR busy", MessageClient, _chat_messages),
    "datagram": _Driver(_serve_datagrams, _no_connections, b"", MessageClient, _chat_messages),
}


__all__ = ["Limits", "Client", "REQUEST_TIMEOUT", "run_chat", "NetlabError", "Server", "ServerStats", "open_client",
           "serve"]
