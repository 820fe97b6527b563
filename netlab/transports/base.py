"""What a transport is: a socket kind, its declared properties, and the two contracts it hands out.

Every transport opens the same way, ``await transport.listen(address)`` for a server and
``await transport.connect(address)`` for a client, and what comes back honours one of two
connection contracts (after trio's ``abc`` and anyio's ``abc/_sockets.py``)::

    Connection = ByteStream | MessageChannel

    ByteStream       trio.abc.HalfCloseableStream: bytes in order, no message boundaries,
                     send_eof() half-closes.              tcp, tcp4, tcp6, unix, tls
    MessageChannel   whole messages with one peer: send(), try_send(), receive() -> Message
                     (None at end of stream, where the kind has one), max_message, aclose().
                       MessageStream      a seqpacket connection            unix-seq
                       ConnectedDatagram  a datagram socket connected to    udp, udp4, udp6,
                                          its peer (the client side)        unix-dgram

and what a server holds (a `Listening`: ``bound`` is what the kernel actually gave)::

    Listening
      Listeners          listen() of a connection kind: trio Listeners whose accept()
                         gives the kind's Connection             stream and seqpacket kinds
      DatagramEndpoint   listen() of a datagram kind: one unconnected socket; receive()
                         gives a Message with its peer, send_to(peer) answers it

``kind`` says which: ``"stream"`` (ByteStream connections), ``"seqpacket"`` (MessageStream
connections) or ``"datagram"`` (a DatagramEndpoint, and ConnectedDatagram clients). These are
the kernel's own distinctions: SOCK_STREAM, SOCK_SEQPACKET, SOCK_DGRAM. `open_pair` opens a
connected pair of any kind, for experiments and tests; `receive_data`, `send_data` and
`send_eof` move bytes or messages over either contract, for code that relays both.

Whether a transport is reliable, ordered and keeps message boundaries is *declared* here
as data, not implied by the class name: unix datagrams are reliable and ordered on Linux,
UDP is neither. Transports know nothing of services.

Every socket call a transport makes runs inside `netlab.errors.translate_os_errors`, so
callers only ever see netlab errors.
"""

from __future__ import annotations

import abc
import contextlib
import os
import select
import socket
import struct
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeAlias, TypeVar, cast

import trio

from ..errors import AddressError, MessageTooLargeError, translate_os_errors
from .addresses import Address, format_sockaddr, parse_address

#: the read buffer for datagrams: larger than any UDP datagram (65535), and than the
#: default unix datagram limit (SO_SNDBUF 212992 less 32). Anything larger is detected
#: with MSG_TRUNC and never served as if whole. Unix datagram servers read with a larger
#: buffer (`server_receive_buffer`), since a client may raise its SO_SNDBUF.
DATAGRAM_BUFFER = 256 * 1024

#: a message this small always fits a unix send buffer (SO_SNDBUF cannot go below about
#: 4.5 KB on Linux), so sending one needs no getsockopt() to check the limit first
ALWAYS_FITS = 2048

#: at most this many messages are taken from one socket per trip through trio's scheduler
#: (`receive_batch`): enough that a flood costs one trip per 64 datagrams instead of one per
#: datagram, few enough (~64 x 5 µs) that other tasks still run every fraction of a millisecond
BATCH = 64

#: Linux's SO_RXQ_OVFL (not in the socket module): with it set, every datagram received
#: carries the socket's count of datagrams dropped for a full receive queue
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)


#: how long a server looks again at a socket it just found empty before it sleeps in epoll
#: (seconds; 0: it sleeps at once). See `readable_soon`.
SPIN = float(os.environ.get("NETLAB_SPIN_US", "0")) / 1e6


def readable_soon(fd: int, budget: float) -> bool:
    """Busy-poll `fd` for up to `budget` seconds, giving the core away (sched_yield) between
    looks; True as soon as it is readable.

    Why: when the peer is on another core, the next message usually comes within a few tens
    of µs of the reply, and catching it awake saves the sleep and the wake-up, which across
    cores is most of a round trip. When the peer shares the core, sched_yield lets it run
    now (to read the reply and send the next request, or to fill the queue) instead of
    after an epoll sleep. It costs up to `budget` of CPU after each message that is not
    followed by another within it; a server with no traffic sleeps and costs nothing.
    """
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    end = time.perf_counter() + budget
    while True:
        os.sched_yield()
        if poller.poll(0):
            return True
        if time.perf_counter() >= end:
            return False


_M = TypeVar("_M")


async def receive_queued(raw: socket.socket, take: Callable[[], tuple[_M, bool]], limit: int,
                         pending: list[OSError], where: object) -> list[_M]:
    """Every message already queued on `raw`, up to `limit`, waiting only for the first: one
    trip through trio's scheduler for the lot, instead of one per message. `take` makes one
    non-blocking receive: (the message, whether it is the last: end of stream).

    Non-blocking receives until the kernel has no more (EAGAIN) or `limit` is reached: the
    bound keeps one busy socket from starving the other tasks. It keeps trio's protocol for
    a socket call: a cancelled task receives nothing, and a batch that did not have to wait
    still yields once (shielded), so a loop around it is a fair one. A batch is taken only
    when the first receive found the queue non-empty (the reader is behind: a flood); when
    it had to wait, the queue was empty a moment before, so the one message that woke it is
    returned at once, with no further try: a ping-pong peer gets its reply as soon as
    before, for the same system calls. An error met after some messages were taken is kept
    in `pending` and raised by the next call, so none of them is lost.
    """
    await trio.lowlevel.checkpoint_if_cancelled()
    if pending:
        with translate_os_errors(where, "receive from"):
            raise pending.pop()
    batch: list[_M] = []
    waited = False
    spin = SPIN
    while True:
        try:
            item, last = take()
        except BlockingIOError:
            if batch:
                break
            if spin and not waited and readable_soon(raw.fileno(), spin):
                spin = 0.0
                continue
            await trio.lowlevel.wait_readable(raw)
            waited = True
            continue
        except OSError as exc:
            if not batch:
                with translate_os_errors(where, "receive from"):
                    raise
            pending.append(exc)
            break
        batch.append(item)
        if last or waited or len(batch) >= limit:
            break
    if not waited:
        await trio.lowlevel.cancel_shielded_checkpoint()
    return batch


def server_receive_buffer() -> int:
    """Room for the largest unix datagram an unprivileged sender can make.

    SO_SNDBUF can be raised to twice ``net.core.wmem_max`` without CAP_NET_ADMIN.
    """
    try:
        with open("/proc/sys/net/core/wmem_max") as f:
            wmem_max = int(f.read())
    except (OSError, ValueError):
        return DATAGRAM_BUFFER
    return max(DATAGRAM_BUFFER, 2 * wmem_max + 1024)



Kind = Literal["stream", "seqpacket", "datagram"]

#: a socket as trio wraps it, or the standard library's (explain probes with the latter)
AnySocket: TypeAlias = "trio.socket.SocketType | socket.socket"

#: a peer's address as the kernel gives it: (host, port[, flow, scope]) for inet, a path
#: (str) or an abstract name (bytes starting with NUL) for unix
Peer: TypeAlias = "tuple[Any, ...] | str | bytes"

#: the byte-stream contract: trio's own (SocketStream for tcp and unix; for tls, tls.TlsStream,
#: a trio.SSLStream made half-closeable)
ByteStream: TypeAlias = trio.abc.HalfCloseableStream


@dataclass(frozen=True)
class Message:
    """One message as received: a datagram, or a seqpacket message."""

    data: bytes
    peer: Peer | None  # the kernel's address of the sender; None for an unbound unix sender or a connection
    truncated: bool = False  # it was larger than the read buffer (MSG_TRUNC): never serve it as whole


class MessageChannel(trio.abc.AsyncResource):
    """The message contract: whole messages, in both directions, with one peer.

    Each `send` arrives as exactly one `receive` (or not at all, where the kind is
    unreliable), never merged with another or split. Implemented by `MessageStream` (a
    seqpacket connection) and `ConnectedDatagram` (a datagram socket connected to its peer).

    Raises (every method): MessageTooLargeError (over `max_message`), ConnectionRefusedError,
    TransportError; `trio.ClosedResourceError` after `aclose`.
    """

    transport: MessageTransport
    #: the kernel socket, for getsockopt (SO_SNDBUF, SO_PEERCRED) and nothing else
    socket: trio.socket.SocketType
    #: the peer, for error texts
    remote: object
    #: the largest message `receive` can return whole
    buffer_size: int
    #: True where the kind has an end of stream (seqpacket): `receive` returns None then
    has_eof: ClassVar[bool]
    #: messages the kernel dropped on this socket's full receive queue, as of the last one
    #: received (SO_RXQ_OVFL); None unless `count_drops` said True
    kernel_drops: int | None = None

    def count_drops(self) -> bool:
        """Ask the kernel to report receive-queue overflows with each message (SO_RXQ_OVFL).

        Returns False where it does not offer it, or the kind never drops (a seqpacket
        connection holds its sender back instead)."""
        return False

    @property
    @abc.abstractmethod
    def max_message(self) -> int:
        """The largest message this channel can send."""

    @abc.abstractmethod
    async def send(self, data: bytes) -> None:
        """Send one whole message."""

    @abc.abstractmethod
    def try_send(self, data: bytes) -> bool:
        """`send` at once if the kernel takes the message now; False if it would have to wait
        (then call `send`). Not a checkpoint: a loop calls it between two receives, which are."""

    @abc.abstractmethod
    async def receive(self) -> Message | None:
        """The next message; None at end of stream (only where `has_eof`)."""

    async def receive_batch(self, limit: int = BATCH) -> Sequence[Message | None]:
        """The messages already queued, at least one and at most `limit`, in order, waiting
        only for the first; None, last, at end of stream. One trip through the scheduler for
        the lot (see `DatagramEndpoint.receive_batch`); here, one message per call."""
        return [await self.receive()]

    async def send_eof(self) -> None:
        """End of stream, where the kind has one; a datagram has none, so nothing is sent."""
        await trio.lowlevel.checkpoint()


#: what `Transport.connect` returns, and what a `Listeners` accepts
Connection: TypeAlias = "ByteStream | MessageChannel"


class Listening(trio.abc.AsyncResource):
    """What `Transport.listen` returns: a server's bound sockets. ``bound`` lists the addresses
    the kernel actually gave (the real port, the autobind name), one per socket."""

    requested: Address
    bound: list[Address]

    def refuse(self) -> None:
        """Refuse new connections at once, where the kind has connections."""


class Listeners(Listening):
    """A connection kind's listening sockets: ``listeners`` accept the kind's `Connection`."""

    def __init__(self, transport: Transport, requested: Address,
                 listeners: list[trio.abc.Listener[Connection]], bound: list[Address]) -> None:
        self.transport = transport
        self.requested = requested
        self.listeners = listeners
        self.bound = bound

    def refuse(self) -> None:
        """Refuse new connections from this moment: close the listening sockets at once,
        without waiting for a checkpoint (`aclose` still closes the listeners properly and
        removes socket files)."""
        for listener in self.listeners:
            sock: trio.socket.SocketType = getattr(listener, "socket")  # noqa: B009 - every netlab listener has one; trio's Listener ABC does not declare it
            sock.close()

    async def aclose(self) -> None:
        """Close every listener (unix socket files go with them)."""
        for listener in self.listeners:
            with trio.CancelScope(shield=True):
                await listener.aclose()


class _DatagramSocket:
    """What both sides of a datagram socket share: size checks, error texts, drop counts."""

    transport: MessageTransport

    def __init__(
        self,
        transport: MessageTransport,
        sock: trio.socket.SocketType,
        local: Address,
        cleanup: Callable[[], None] | None = None,
        buffer_size: int = DATAGRAM_BUFFER,
        raw: socket.socket | None = None,
    ) -> None:
        self.transport = transport
        self.socket = sock
        #: the address the kernel gave this socket
        self.local = local
        self._cleanup = cleanup  # run once on close
        self.buffer_size = buffer_size
        self._buffer = bytearray(buffer_size)
        self._view = memoryview(self._buffer)
        #: the standard library socket under `socket`, when the transport made it itself:
        #: `try_send_to` uses it to send without a trip through trio's scheduler
        self._raw = raw
        self._hard_limit = transport.hard_limit(sock)  # fixed for the socket's life (its family)
        self._ancbufsize = 0
        self._pending: list[OSError] = []  # met after a batch had datagrams: raised by the next
        #: datagrams the kernel dropped because this socket's receive queue was full, as of the
        #: last datagram received (SO_RXQ_OVFL); None unless `count_drops` was called
        self.kernel_drops: int | None = None

    def count_drops(self) -> bool:
        """Ask the kernel to report receive-queue overflows with each datagram (SO_RXQ_OVFL).

        Returns False where the kernel does not offer it for this socket."""
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
        except OSError:
            return False
        self._ancbufsize = socket.CMSG_SPACE(4)
        self.kernel_drops = 0  # the kernel adds the counter to a datagram only once it is not zero
        return True

    @property
    def max_message(self) -> int:
        """The largest datagram this socket can send."""
        return self.transport.max_message_for(self.socket)

    def _check_size(self, data: bytes, peer: object, *, formatted: bool = False) -> None:
        """Refuse a datagram over a limit known up front; `peer` is only formatted to say so."""
        limit = self._hard_limit
        if limit is not None and len(data) > limit:
            where = peer if formatted else self.transport.format_peer(peer)
            raise MessageTooLargeError(
                f"a {len(data)}-byte datagram is over the limit for {where}: "
                f"{self.transport.limit_text(self.socket)}"
            )

    async def _receive(self, where: object) -> Message:
        with translate_os_errors(where, "receive from"):
            nbytes, ancdata, flags, peer = await self.socket.recvmsg_into([self._buffer], self._ancbufsize)
        return self._message(nbytes, ancdata, flags, peer)

    def _message(self, nbytes: int, ancdata: list[tuple[int, int, bytes]], flags: int, peer: object) -> Message:
        """The datagram now in the buffer, copied out (the buffer is reused), and its drop count."""
        for level, kind, value in ancdata:
            if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(value) >= 4:
                self.kernel_drops = max(self.kernel_drops or 0, int.from_bytes(value[:4], sys.byteorder))
        sender = cast("Peer | None", peer or None)  # trio types recvmsg's address as object
        return Message(bytes(self._view[:nbytes]), sender, bool(flags & socket.MSG_TRUNC))

    async def _receive_batch(self, where: object, limit: int) -> list[Message]:
        """Every datagram already queued, up to `limit`: see `receive_queued`."""
        raw = self._raw
        if raw is None or limit <= 1:
            return [await self._receive(where)]
        recvmsg_into, buffers, ancbufsize, message = raw.recvmsg_into, [self._buffer], self._ancbufsize, self._message

        def take() -> tuple[Message, bool]:
            nbytes, ancdata, flags, peer = recvmsg_into(buffers, ancbufsize)
            return message(nbytes, ancdata, flags, peer), False

        return await receive_queued(raw, take, limit, self._pending, where)

    @contextlib.contextmanager
    def _translate(self, where: object, op: str) -> Iterator[None]:
        """Like `translate_os_errors`, but EMSGSIZE states this transport's limit."""
        try:
            with translate_os_errors(where, op):
                yield
        except MessageTooLargeError as err:
            raise MessageTooLargeError(
                f"datagram too large for {where}: {self.transport.limit_text(self.socket)}",
                errno=err.errno,
            ) from err

    def close(self) -> None:
        self.socket.close()
        if self._cleanup is not None:
            cleanup, self._cleanup = self._cleanup, None
            cleanup()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()


class DatagramEndpoint(_DatagramSocket, Listening):
    """A datagram server's socket: bound, not connected. `receive` gives each datagram with
    its sender, `send_to` answers a sender."""

    def __init__(self, transport: MessageTransport, sock: trio.socket.SocketType, local: Address, *,
                 requested: Address, cleanup: Callable[[], None] | None = None,
                 buffer_size: int = DATAGRAM_BUFFER, raw: socket.socket | None = None) -> None:
        super().__init__(transport, sock, local, cleanup, buffer_size, raw)
        self.requested = requested
        self.bound = [local]

    async def receive(self) -> Message:
        """Wait for one datagram. ``truncated`` is set when it did not fit the buffer."""
        return await self._receive(self.local)

    async def receive_batch(self, limit: int = BATCH) -> list[Message]:
        """The datagrams already queued, at least one and at most `limit`, in the order the
        kernel queued them (so each peer's are in the order it sent them); waits only for
        the first. A server loop serves them all, then calls again: one trip through the
        scheduler per batch, not per datagram, and at most `limit` between two."""
        return await self._receive_batch(self.local, limit)

    async def send_to(self, data: bytes, peer: Peer) -> None:
        """Send one datagram to a peer address as the kernel gave it (from `receive`).

        A reply larger than this socket's send limit raises the limit first, as far as
        the kernel allows, so a server can answer what a client was allowed to send.
        """
        self._check_size(data, peer)
        if len(data) > ALWAYS_FITS:
            self.transport.make_room(self.socket, len(data))
        with self._translate(_Peer(self.transport, peer), "send to"):
            if self._raw is not None and self._raw.family == socket.AF_UNIX:
                await self._send_to_polling(data, peer)
            else:
                await self.socket.sendto(data, peer)

    async def _send_to_polling(self, data: bytes, peer: Peer) -> None:
        """sendto for an unconnected AF_UNIX datagram socket whose receiver's queue is full.

        Linux reports such a socket writable all the same (it can wake only a *connected*
        sender when the receiver drains), so waiting for writability, as trio's sendto
        does, spins at 100% CPU. Try, and sleep between tries instead.
        """
        assert self._raw is not None
        await trio.lowlevel.checkpoint_if_cancelled()
        pause = 0.0005
        while True:
            try:
                self._raw.sendto(data, peer)
            except BlockingIOError:
                await trio.sleep(pause)
                pause = min(2 * pause, 0.01)
                continue
            await trio.lowlevel.cancel_shielded_checkpoint()
            return

    def try_send_to(self, data: bytes, peer: Peer) -> bool:
        """`send_to` at once if the kernel takes the datagram now; False if it would have to
        wait (then call `send_to`). Not a checkpoint: a server loop calls it between two
        receives, which are. Raises what `send_to` raises."""
        raw = self._raw
        if raw is None:
            return False
        self._check_size(data, peer)
        if len(data) > ALWAYS_FITS:
            self.transport.make_room(self.socket, len(data))
        try:
            raw.sendto(data, peer)
        except BlockingIOError:
            return False
        except OSError as exc:
            with self._translate(_Peer(self.transport, peer), "send to"):
                raise exc
        return True

    def connect_back(self, client: ConnectedDatagram) -> ConnectedDatagram:
        """This socket, connected to `client`'s address: the server's end of a datagram
        `Pair`. The endpoint is spent; closing the channel closes the socket (and removes a
        unix socket file)."""
        assert self._raw is not None, "every datagram transport makes its endpoint's socket itself"
        with translate_os_errors(client.local, "connect to"):
            self._raw.connect(client.socket.getsockname())  # a datagram connect() never waits
        channel = ConnectedDatagram(self.transport, self.socket, self.local, client.local,
                                    buffer_size=self.buffer_size, raw=self._raw, cleanup=self._cleanup)
        self._cleanup = None
        return channel


class ConnectedDatagram(_DatagramSocket, MessageChannel):
    """A datagram socket connected to one peer (a client): the message contract over
    datagrams. `receive` never returns None: a datagram has no end of stream."""

    has_eof = False

    def __init__(self, transport: MessageTransport, sock: trio.socket.SocketType, local: Address,
                 remote: Address, *, buffer_size: int = DATAGRAM_BUFFER, raw: socket.socket | None = None,
                 cleanup: Callable[[], None] | None = None) -> None:
        super().__init__(transport, sock, local, cleanup, buffer_size, raw)
        self.remote = remote

    @property
    def max_message(self) -> int:
        return self.transport.max_message_for(self.socket)

    async def send(self, data: bytes) -> None:
        """Send one datagram to the connected peer."""
        self._check_size(data, self.remote, formatted=True)
        with self._translate(self.remote, "send to"):
            await self.socket.send(data)

    def try_send(self, data: bytes) -> bool:
        raw = self._raw
        if raw is None:
            return False
        self._check_size(data, self.remote, formatted=True)
        with self._translate(self.remote, "send to"):
            try:
                raw.send(data)
            except BlockingIOError:
                return False
        return True

    async def receive(self) -> Message:
        return await self._receive(self.remote)

    async def receive_batch(self, limit: int = BATCH) -> list[Message]:
        return await self._receive_batch(self.remote, limit)


class _Peer:
    """A peer's address, formatted only if an error message needs it (not once per datagram)."""

    __slots__ = ("transport", "peer")

    def __init__(self, transport: Transport, peer: object) -> None:
        self.transport = transport
        self.peer = peer

    def __str__(self) -> str:
        return self.transport.format_peer(self.peer)


class MessageStream(MessageChannel):
    """A seqpacket connection: each `send` arrives as exactly one `receive`, reliably and in
    order, and the connection has an end of stream.

    An empty message cannot be told apart from end of stream (both read as zero bytes), so
    `send` refuses it.

    `raw`, when given, is the standard library socket under `sock` (the server side: the
    listener made it). Then `receive` copies a message out before it yields, so the read
    buffer can be `shared` by every connection of one listener
    instead of each holding its own (a server reads into one large enough for any message
    a client may send: 8 MiB with the default wmem_max, which per connection would make
    10,000 connections cost 80 GiB), and `try_send` can send without a trip through trio's
    scheduler.
    """

    has_eof = True

    def __init__(self, transport: SeqpacketTransport, sock: trio.socket.SocketType, remote: object,
                 buffer_size: int = DATAGRAM_BUFFER, raw: socket.socket | None = None,
                 shared: memoryview | None = None) -> None:
        self.transport = transport
        self.socket = sock
        self.remote = remote
        if shared is not None and raw is not None:
            self._view = shared
        else:
            self._view = memoryview(bytearray(buffer_size))
        self.buffer_size = len(self._view)
        self._raw = raw
        self._pending: list[OSError] = []  # met after a batch had messages: raised by the next

    @property
    def max_message(self) -> int:
        return self.transport.max_message_for(self.socket)

    def _check(self, data: bytes) -> None:
        if not data:
            raise MessageTooLargeError(
                f"{self.transport.scheme}: cannot send an empty message: the receiver could not tell it "
                f"from end of stream (both read as zero bytes)"
            )
        if len(data) > ALWAYS_FITS and len(data) > self.transport.max_message_for(self.socket):
            raise MessageTooLargeError(f"a {len(data)}-byte message is over the limit for {self.remote}: "
                                       f"{self.transport.limit_text(self.socket)}")

    async def send(self, data: bytes) -> None:
        self._check(data)
        with translate_os_errors(self.remote, "send to"):
            await self.socket.send(data)

    def try_send(self, data: bytes) -> bool:
        raw = self._raw
        if raw is None:
            return False
        self._check(data)
        with translate_os_errors(self.remote, "send to"):
            try:
                raw.send(data)
            except BlockingIOError:
                return False
        return True

    async def receive(self) -> Message | None:
        raw = self._raw
        if raw is None:
            with translate_os_errors(self.remote, "receive from"):
                nbytes, _anc, flags, _peer = await self.socket.recvmsg_into([self._view])
            if nbytes == 0 and not flags & socket.MSG_TRUNC:
                return None
            return Message(bytes(self._view[:nbytes]), None, bool(flags & socket.MSG_TRUNC))
        # trio's protocol for a socket call (a cancelled task reads nothing; a read that
        # succeeds at once still yields, shielded), with the copy out of the shared buffer
        # made before anything else can run
        await trio.lowlevel.checkpoint_if_cancelled()
        waited = False
        with translate_os_errors(self.remote, "receive from"):
            while True:
                try:
                    nbytes, _anc, flags, _peer = raw.recvmsg_into([self._view])
                    break
                except BlockingIOError:
                    await trio.lowlevel.wait_readable(raw)
                    waited = True
        message = None if nbytes == 0 and not flags & socket.MSG_TRUNC else \
            Message(bytes(self._view[:nbytes]), None, bool(flags & socket.MSG_TRUNC))
        if not waited:
            await trio.lowlevel.cancel_shielded_checkpoint()
        return message

    async def receive_batch(self, limit: int = BATCH) -> list[Message | None]:
        """`receive`, for every message already queued (up to `limit`), in one trip through
        the scheduler: see `receive_queued`. None, last, at end of stream."""
        raw = self._raw
        if raw is None or limit <= 1:
            return [await self.receive()]
        view = self._view
        recvmsg_into, buffers = raw.recvmsg_into, [view]

        def take() -> tuple[Message | None, bool]:
            nbytes, _anc, flags, _peer = recvmsg_into(buffers)
            if nbytes == 0 and not flags & socket.MSG_TRUNC:
                return None, True  # end of stream: nothing can follow it
            return Message(bytes(view[:nbytes]), None, bool(flags & socket.MSG_TRUNC)), False

        return await receive_queued(raw, take, limit, self._pending, self.remote)

    async def send_eof(self) -> None:
        with translate_os_errors(self.remote, "shut down"):
            self.socket.shutdown(socket.SHUT_WR)
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self.socket.close()
        await trio.lowlevel.checkpoint()


# -- transports ----------------------------------------------------------------------------


class Transport(abc.ABC):
    """One socket kind, reachable by one scheme name. `listen` and `connect` open it."""

    scheme: str
    kind: ClassVar[Kind]
    target: ClassVar[Literal["inet", "unix"]]
    #: AF_INET, AF_INET6, AF_UNIX; None for "tcp"/"udp", which follow the host
    family: socket.AddressFamily | None
    socktype: ClassVar[socket.SocketKind]
    reliable: ClassVar[bool]
    ordered: ClassVar[bool]
    boundaries: ClassVar[bool]
    options: ClassVar[frozenset[str]]
    summary: str
    #: a listener accepts connections (stream and seqpacket), rather than one socket
    #: receiving from every peer (datagram)
    connected: ClassVar[bool]
    #: the bytes are encrypted (TLS): a client needs the server's CA (``?ca=FILE``) and a
    #: handshake before the first byte, a server a certificate (``?cert=FILE&key=FILE``)
    encrypted: ClassVar[bool] = False

    @property
    def family_name(self) -> str:
        if self.family is None:
            return "AF_INET/6"
        return self.family.name

    def format_peer(self, sockaddr: object) -> str:
        return format_sockaddr(self.scheme, sockaddr)

    def message_limit(self, sock: AnySocket) -> tuple[int, str] | None:
        """The largest message `sock` can send and that limit in words, where the kind
        carries messages; None for a byte stream."""
        return None

    @abc.abstractmethod
    async def listen(self, address: Address) -> Listening:
        """Bind (and listen, for a connection kind): what a server serves from.

        Raises:
            AddressInUseError, PermissionDeniedError, AddressUnavailableError, ResolveError
        """

    @abc.abstractmethod
    async def connect(self, address: Address) -> Connection:
        """Open a client connection: a `ByteStream` for the stream kind, a `MessageChannel`
        for the others (a datagram client is bound, so replies can reach it).

        Raises:
            ConnectionRefusedError, ResolveError, TransportError
        """


class StreamTransport(Transport):
    """SOCK_STREAM: `Listeners` that accept `ByteStream` connections."""

    kind = "stream"
    connected = True
    reliable = True
    ordered = True
    boundaries = False

    @abc.abstractmethod
    async def listen(self, address: Address) -> Listeners: ...

    @abc.abstractmethod
    async def connect(self, address: Address) -> ByteStream: ...


class MessageTransport(Transport):
    """A kind whose connections carry whole messages, and the limit on their size."""

    boundaries = True

    @abc.abstractmethod
    async def connect(self, address: Address) -> MessageChannel: ...

    def make_room(self, sock: AnySocket, size: int) -> None:
        """Raise the socket's send limit so a message of `size` bytes fits, if needed."""

    def hard_limit(self, sock: AnySocket) -> int | None:
        """A limit known before sending (checked up front), or None to let the kernel say."""
        return None

    @abc.abstractmethod
    def max_message_for(self, sock: AnySocket) -> int:
        """The largest message this socket can send."""

    @abc.abstractmethod
    def limit_text(self, sock: AnySocket) -> str:
        """The limit, stated for an error message."""

    def message_limit(self, sock: AnySocket) -> tuple[int, str]:
        return self.max_message_for(sock), self.limit_text(sock)


class SeqpacketTransport(MessageTransport):
    """SOCK_SEQPACKET: `Listeners` that accept `MessageStream` connections; reliable, ordered."""

    kind = "seqpacket"
    connected = True
    reliable = True
    ordered = True

    @abc.abstractmethod
    async def listen(self, address: Address) -> Listeners: ...

    @abc.abstractmethod
    async def connect(self, address: Address) -> MessageStream: ...


class DatagramTransport(MessageTransport):
    """SOCK_DGRAM: a `DatagramEndpoint` for servers, `ConnectedDatagram` clients."""

    kind = "datagram"
    connected = False

    @abc.abstractmethod
    async def listen(self, address: Address) -> DatagramEndpoint: ...

    @abc.abstractmethod
    async def connect(self, address: Address) -> ConnectedDatagram: ...


def apply_buffer_options(sock: trio.socket.SocketType | socket.socket, address: Address) -> None:
    """Set SO_RCVBUF / SO_SNDBUF from ``?rcvbuf=`` / ``?sndbuf=``."""
    rcvbuf = address.int_option("rcvbuf")
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sndbuf = address.int_option("sndbuf")
    if sndbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)


# -- working with either contract ----------------------------------------------------------


def socket_of(conn: Connection) -> trio.socket.SocketType:
    """The kernel socket under a connection (under TLS too), for getsockopt and the like."""
    if isinstance(conn, MessageChannel):
        return conn.socket
    under = getattr(conn, "transport_stream", None)  # a layer over a stream: trio.SSLStream, tls.TlsStream
    if under is not None:
        return socket_of(under)
    if isinstance(conn, trio.SocketStream):
        return conn.socket
    raise TypeError(f"no socket under {conn!r}")


def peer_identity(conn: Connection) -> str | None:
    """Who is at the other end, for a per-peer connection limit: ``uid N`` on a unix socket
    (SO_PEERCRED: one user's connections are one peer, whatever process opened them), the
    peer's IP address on inet (``127.0.0.1``; an IPv4-mapped IPv6 address as its IPv4
    form); None when the kernel does not say."""
    sock = socket_of(conn)
    try:
        if sock.family == socket.AF_UNIX:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            return f"uid {struct.unpack('3i', creds)[1]}"
        host = str(sock.getpeername()[0])
    except OSError:
        return None
    return host.removeprefix("::ffff:") if "." in host else host


def plain_socket(conn: Connection) -> trio.socket.SocketType | None:
    """The socket of a byte stream whose bytes are the stream's bytes (not under TLS), so a
    hot path may read and write its file descriptor directly; None otherwise."""
    return conn.socket if isinstance(conn, trio.SocketStream) else None


async def receive_message(conn: Connection, max_bytes: int = 65536) -> Message | None:
    """The next message, or the next chunk of a byte stream as one (whatever one read gave:
    a byte stream keeps no boundaries); None at end of stream."""
    if isinstance(conn, MessageChannel):
        return await conn.receive()
    data = await conn.receive_some(max_bytes)
    return Message(bytes(data), None) if data else None


async def receive_data(conn: Connection, max_bytes: int = 65536) -> bytes | None:
    """The next chunk of a byte stream, or the next message's bytes; None at end of stream."""
    message = await receive_message(conn, max_bytes)
    return None if message is None else message.data


async def send_data(conn: Connection, data: bytes) -> None:
    """All of `data` on a byte stream, or `data` as one message."""
    if isinstance(conn, MessageChannel):
        await conn.send(data)
    else:
        await conn.send_all(data)


async def send_eof(conn: Connection) -> None:
    """Half-close: no more data from this side, where the kind has an end of stream."""
    await conn.send_eof()


async def listen_connections(address: Address) -> Listeners:
    """`Transport.listen` for code that needs connections (a relay of streams, a test).

    Raises: AddressError for a datagram kind, and what `listen` raises."""
    listening = await address.transport.listen(address)
    if not isinstance(listening, Listeners):
        await listening.aclose()
        raise AddressError(f"{address.scheme}: is a datagram transport: it has no connections to accept")
    return listening


async def listen_datagrams(address: Address) -> DatagramEndpoint:
    """`Transport.listen` for code that needs one datagram socket (a datagram relay, a test).

    Raises: AddressError for a connection kind, and what `listen` raises."""
    listening = await address.transport.listen(address)
    if not isinstance(listening, DatagramEndpoint):
        await listening.aclose()
        raise AddressError(f"{address.scheme}: is a {address.transport.kind} transport, not a datagram one")
    return listening


async def connect_channel(address: Address) -> MessageChannel:
    """`Transport.connect` for code that needs whole messages (a datagram relay, a test).

    Raises: AddressError for a byte-stream kind, and what `connect` raises."""
    conn = await address.transport.connect(address)
    if not isinstance(conn, MessageChannel):
        await conn.aclose()
        raise AddressError(f"{address.scheme}: is a byte stream, not a message transport")
    return conn


@dataclass
class Pair:
    """Two ends of one conversation, opened by `open_pair`: the client's connection and the
    server's (accepted, or for datagrams the server's socket connected back to the client)."""

    client: Connection
    server: Connection
    #: the address the server was bound to (the real port, the real name)
    address: Address


@contextlib.asynccontextmanager
async def open_pair(address: Address | str) -> AsyncIterator[Pair]:
    """Listen on `address`, connect to it, accept: a connected pair of any kind, closed on exit.

    For a datagram kind the server's socket is connected to the client's address, so both
    ends are `ConnectedDatagram` channels. A byte stream that sets itself up on first use
    (a TLS handshake) is set up before the pair is handed over. The listening socket is
    closed once the pair is made (a unix socket file goes with it).

    Raises: what `Transport.listen` and `Transport.connect` raise.
    """
    address = parse_address(address)
    transport = address.transport
    listening: Listening | None = await transport.listen(address)
    assert listening is not None
    server: Connection | None = None
    client: Connection | None = None
    try:
        bound = listening.bound[0]
        client = await transport.connect(bound)
        if isinstance(listening, Listeners):
            server = await listening.listeners[0].accept()
            if not transport.boundaries:
                # a layered byte stream (TLS) sets itself up on first use, which needs both
                # ends at once: an empty send does that (and nothing at all on a plain socket)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(send_data, client, b"")
                    nursery.start_soon(send_data, server, b"")
        else:
            assert isinstance(listening, DatagramEndpoint) and isinstance(client, ConnectedDatagram)
            server = listening.connect_back(client)
            listening = None
        yield Pair(client, server, bound)
    finally:
        with trio.CancelScope(shield=True):
            if listening is not None:
                await listening.aclose()
            for conn in (client, server):
                if conn is not None:
                    await conn.aclose()
