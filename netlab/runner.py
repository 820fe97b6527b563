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
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import cast

import trio

from .errors import (
    AddressError, ConnectionResetError, NetlabError, TimeoutError, TransportError, translate_os_errors,
)
from .services import Service, get_service
from .services.framing import DEFAULT_MAX_LINE
from .transports import (
    Address, ByteStream, Connection, DatagramEndpoint, Kind, Listeners, Listening, MessageChannel, Transport,
    parse_address, plain_socket, send_data, socket_of,
)
from .transports.base import SPIN, Message, Peer, readable_soon

log = logging.getLogger("netlab.server")

#: bytes asked for per read on a stream
RECEIVE_SIZE = 64 * 1024
#: a stream server's reads: one buffer this size serves all its connections (asyncio reads
#: 256 KiB at a time too; fewer, larger reads carry a bulk transfer with less overhead)
SERVER_RECEIVE_SIZE = 256 * 1024
#: how long a datagram server waits to hand a reply to a peer that is not reading; a peer
#: that made it wait that long in vain gets its further replies only if they go at once
REPLY_TIMEOUT = 1.0


@dataclass(frozen=True)
class Limits:
    """What one server allows, so that no client can take more than its share.

    ``max_connections``  open connections at once (stream and seqpacket); the next one is
                         accepted, told ``ERR busy`` and closed, so it learns at once rather
                         than hanging in the listen backlog.
    ``idle_timeout``     seconds a connection may send nothing (slowloris), and seconds a
                         reply may wait for a client that does not read; then it is closed.
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
    max_line: int = DEFAULT_MAX_LINE
    rate_limit: float | None = None
    grace: float = 1.0
    allow_uids: frozenset[int] | None = None
    allow_gids: frozenset[int] | None = None
    amplification: int = 64

    def describe(self) -> str:
        rate = "none" if self.rate_limit is None else f"{self.rate_limit:g}/s"
        text = (f"max-connections={self.max_connections} idle-timeout={self.idle_timeout:g}s "
                f"max-line={self.max_line} rate-limit={rate} grace={self.grace:g}s")
        if self.allow_uids is not None:
            text += " allow-uid=" + ",".join(map(str, sorted(self.allow_uids)))
        if self.allow_gids is not None:
            text += " allow-gid=" + ",".join(map(str, sorted(self.allow_gids)))
        return text


@dataclass
class ServerStats:
    connections: int = 0  # connections accepted (stream and seqpacket)
    active: int = 0  # connections open now
    datagrams: int = 0  # datagrams (or seqpacket messages) received
    truncated: int = 0  # datagrams dropped because they did not fit the read buffer
    unanswerable: int = 0  # datagrams from a sender with no address (unbound unix-dgram)
    reply_failures: int = 0  # replies that could not be delivered
    busy: int = 0  # connections refused with ERR busy (max_connections)
    idle_closed: int = 0  # connections closed for sending nothing for idle_timeout
    stalled_closed: int = 0  # connections closed because a reply could not be written in time
    credentials_refused: int = 0  # unix peers whose uid/gid is not allowed
    rate_limited: int = 0  # datagram replies not sent: the peer was over rate_limit
    amplification_dropped: int = 0  # datagram replies not sent: too much larger than the request
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
    #: where stream connections read into: one buffer for all of them (each read is copied
    #: out before the next await, and the server's tasks all run in one thread)
    _read_buffer: memoryview = field(default_factory=lambda: memoryview(bytearray(SERVER_RECEIVE_SIZE)),
                                     repr=False)

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
            if stats.active > limits.max_connections:
                stats.busy += 1
                log.warning("refused a connection: %d open already (max-connections)", limits.max_connections)
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
    """

    __slots__ = ("scope", "sending", "_idle", "_slack", "_deadline")

    def __init__(self, idle_timeout: float) -> None:
        self._idle = idle_timeout
        self._slack = idle_timeout / 32
        self._deadline = trio.current_time() + idle_timeout + self._slack
        self.scope = trio.CancelScope(deadline=self._deadline)
        self.sending = False

    def arm(self) -> None:
        now = trio.current_time()
        if now + self._idle > self._deadline:
            self._deadline = now + self._idle + self._slack
            self.scope.deadline = self._deadline


def _timed_out(server: Server, deadline: _Deadline) -> None:
    """Count and log a connection `deadline` closed."""
    if deadline.sending:
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
    """
    stream = cast(ByteStream, conn)  # the driver table sends only byte streams here
    feed = server.service.new_session().receive_data
    sock = plain_socket(stream)
    if sock is None:  # bytes that pass through a layer (TLS): the stream's own calls
        await _handle_layered_stream(server, stream, feed)
        return
    fd = sock.fileno()
    buffer = server._read_buffer
    wait_readable, checkpoint, readv, write = (trio.lowlevel.wait_readable, trio.lowlevel.checkpoint,
                                               os.readv, os.write)
    deadline = _Deadline(server.limits.idle_timeout)
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
                        if spin and readable_soon(fd, spin):
                            spin = 0.0
                            continue
                        await wait_readable(fd)
                        waited = True
            except OSError as exc:
                raise _broken(exc)  # noqa: B904 - _broken sets the cause
            reply = feed(bytes(buffer[:n]))  # a copy: the buffer is reused at the next read
            if reply:
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
            if not n or server.draining:
                return
            if not waited:
                await checkpoint()
    _timed_out(server, deadline)


async def _handle_layered_stream(server: Server, stream: ByteStream, feed: Callable[[bytes], bytes]) -> None:
    """`_handle_stream` for a stream whose bytes pass through a layer (TLS): the same
    protocol, with the stream's own receive_some and send_all."""
    deadline = _Deadline(server.limits.idle_timeout)
    with deadline.scope:
        while True:
            deadline.arm()
            data = await stream.receive_some(SERVER_RECEIVE_SIZE)
            reply = feed(bytes(data))
            if reply:
                deadline.arm()
                deadline.sending = True
                await stream.send_all(reply)
                deadline.sending = False
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
        with server._stop_accepting:
            await _datagram_loop(server, listening)
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


async def _reply(server: Server, sock: DatagramEndpoint, reply: bytes, peer: Peer,
                 stalled: OrderedDict[Peer, None]) -> None:
    """Send one datagram reply that could not go at once, without letting a peer that does
    not read stall the server.

    It is retried for up to REPLY_TIMEOUT s, polling with short sleeps: an unconnected unix
    datagram socket polls writable even when the peer's queue is full, so waiting for
    writability would spin. A peer that made us wait that long in vain is remembered, and
    until it takes a reply again, its replies are sent only if they go at once, and dropped
    otherwise: one client that never reads costs the others one wait, not one per datagram.
    """
    stats = server.stats
    try:
        if peer not in stalled:
            delay = 0.0005
            with trio.move_on_after(REPLY_TIMEOUT):
                while True:
                    await trio.sleep(delay)
                    delay = min(2 * delay, 0.02)
                    if sock.try_send_to(reply, peer):
                        return
            stalled[peer] = None
            if len(stalled) > _RateLimiter.MAX_PEERS:
                stalled.popitem(last=False)
            log.warning("dropped a reply to %s: it is not reading (its further replies go only if they "
                        "can at once)", server.transport.format_peer(peer))
        else:
            log.debug("dropped a reply to %s: it is still not reading", server.transport.format_peer(peer))
        stats.reply_failures += 1
    except TransportError as exc:
        stats.reply_failures += 1
        log.info("could not reply: %s", exc)


async def _datagram_loop(server: Server, sock: DatagramEndpoint) -> None:
    stats, limits = server.stats, server.limits
    limiter = _RateLimiter(limits.rate_limit) if limits.rate_limit else None
    stalled: OrderedDict[Peer, None] = OrderedDict()
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
        try:  # at once, if the kernel takes it: no cancel scope, no trip through the scheduler
            if sock.try_send_to(reply, datagram.peer):
                stalled.pop(datagram.peer, None)
                continue
        except TransportError as exc:
            stats.reply_failures += 1
            log.info("could not reply: %s", exc)
            continue
        await _reply(server, sock, reply, datagram.peer, stalled)


# -- clients --------------------------------------------------------------------------


class Client:
    """A connection to a server, speaking `service`'s framing. Use `open_client`.

    ``connection`` is the transport's connection under it (a `ByteStream` or a
    `MessageChannel`), for tests and experiments that look below the service."""

    connection: Connection

    def __init__(self, address: Address, service: Service) -> None:
        self.address = address
        self.service = service

    async def request(self, message: bytes, *, timeout: float | None = None) -> bytes:
        """Send one request; return its complete reply (for line services, with the line ending).

        Raises:
            TimeoutError: no complete reply within `timeout` seconds.
            ConnectionRefusedError, ConnectionResetError, MessageTooLargeError, TransportError
        """
        try:
            with trio.fail_after(timeout if timeout is not None else float("inf")):
                return await self._request(message)
        except trio.TooSlowError:
            raise TimeoutError(f"no reply from {self.address} within {timeout:g} s") from None

    async def _request(self, message: bytes) -> bytes:
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

    async def _request(self, message: bytes) -> bytes:
        wire = self.service.encode_request(message, stream=True)
        wanted = self._reader.expect(wire)
        self._ready.extend(self._reader.feed(b""))
        await self.send(wire)
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

    async def _request(self, message: bytes) -> bytes:
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
) -> None:
    """The lab's interactive client: send each line, hand whatever comes back to `write`.

    On a stream, lines go out as they are (with a ``\n`` added to a last line without
    one); after the last, the client half-closes and prints until the server closes, or
    `timeout` s pass. On datagrams, each line (without its ending) is one datagram, and
    each reply is written as a line; after the last, it waits up to `timeout` s for the
    missing replies.

    Raises:
        TimeoutError: datagrams whose reply never came. ConnectionRefusedError, TransportError.
    """
    address = parse_address(address)
    transport = address.transport
    connection = await transport.connect(address)
    async with connection:
        await _DRIVERS[transport.kind].chat(address, connection, lines, write, timeout)


async def _chat_stream(address: Address, connection: Connection, lines: AsyncIterator[bytes],
                       write: Callable[[bytes], None], timeout: float) -> None:
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
                await stream.send_all(line if line.endswith(b"\n") else line + b"\n")
            await stream.send_eof()
        await trio.sleep(timeout)  # the server did not close after our EOF: stop waiting
        nursery.cancel_scope.cancel()


async def _chat_messages(address: Address, connection: Connection, lines: AsyncIterator[bytes],
                         write: Callable[[bytes], None], timeout: float) -> None:
    conn = cast(MessageChannel, connection)  # the driver table sends only message channels here
    # datagrams carry the line without its ending; a message on a channel with an end of
    # stream keeps it, since an empty message would read as end of stream
    keep_ending = conn.has_eof
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
Chat = Callable[[Address, Connection, AsyncIterator[bytes], Callable[[bytes], None], float], Awaitable[None]]


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


__all__ = ["Limits", "Client", "run_chat", "NetlabError", "Server", "ServerStats", "open_client", "serve"]
