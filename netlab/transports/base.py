"""What a transport is: a socket kind, its declared properties, and how to open it.

Two kinds (after anyio's ``abc/_sockets.py``):

* `StreamTransport` hands out ``trio.SocketStream`` objects (a
  ``trio.abc.HalfCloseableStream``): `open_listeners` for servers (served with
  ``trio.serve_listeners``), `connect` for clients. Bytes arrive in order, with no
  message boundaries.
* `DatagramTransport` carries whole messages: `bind` for servers and `connect` for
  clients both return a `DatagramSocket`, which sends and receives ``(bytes, peer)``.

Whether a transport is reliable, ordered and keeps message boundaries is *declared* here
as data, not implied by the class name: unix datagrams are reliable and ordered on Linux,
UDP is neither. Transports know nothing of services.

Every socket call a transport makes runs inside `netlab.errors.translate_os_errors`, so
callers only ever see netlab errors.
"""

from __future__ import annotations

import abc
import contextlib
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, Literal

import trio

from ..errors import MessageTooLargeError, translate_os_errors
from .addresses import Address, format_sockaddr, parse_address

#: the read buffer for datagrams: larger than any UDP datagram (65535), and than the
#: default unix datagram limit (SO_SNDBUF 212992 less 32). Anything larger is detected
#: with MSG_TRUNC and never served as if whole. Unix datagram servers read with a larger
#: buffer (`server_receive_buffer`), since a client may raise its SO_SNDBUF.
DATAGRAM_BUFFER = 256 * 1024

#: a message this small always fits a unix send buffer (SO_SNDBUF cannot go below about
#: 4.5 KB on Linux), so sending one needs no getsockopt() to check the limit first
ALWAYS_FITS = 2048

#: Linux's SO_RXQ_OVFL (not in the socket module): with it set, every datagram received
#: carries the socket's count of datagrams dropped for a full receive queue
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)


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


class Transport(abc.ABC):
    """One socket kind, reachable by one scheme name."""

    scheme: ClassVar[str]
    kind: ClassVar[Literal["stream", "datagram"]]
    target: ClassVar[Literal["inet", "unix"]]
    #: AF_INET, AF_INET6, AF_UNIX; None for "tcp"/"udp", which follow the host
    family: socket.AddressFamily | None
    socktype: ClassVar[socket.SocketKind]
    reliable: ClassVar[bool]
    ordered: ClassVar[bool]
    boundaries: ClassVar[bool]
    options: ClassVar[frozenset[str]]
    summary: ClassVar[str]

    @property
    def family_name(self) -> str:
        if self.family is None:
            return "AF_INET/6"
        return self.family.name

    def format_peer(self, sockaddr: object) -> str:
        return format_sockaddr(self.scheme, sockaddr)

    def address(self, text: str | Address) -> Address:
        address = parse_address(text)
        if address.scheme != self.scheme:
            raise ValueError(f"{address} is not a {self.scheme}: address")
        return address


class StreamTransport(Transport):
    kind = "stream"
    reliable = True
    ordered = True
    boundaries = False

    @abc.abstractmethod
    async def open_listeners(self, address: Address) -> list[trio.abc.Listener[trio.SocketStream]]:
        """Bind and listen. Returns one listener per bound socket.

        Raises:
            AddressInUseError, PermissionDeniedError, AddressUnavailableError, ResolveError
        """

    @abc.abstractmethod
    def listener_address(self, listener: trio.abc.Listener[trio.SocketStream], requested: Address) -> Address:
        """The address the kernel actually gave (real port, real abstract name)."""

    @abc.abstractmethod
    async def connect(self, address: Address) -> trio.SocketStream:
        """Open a connection.

        Raises:
            ConnectionRefusedError, ResolveError, TransportError
        """


@dataclass(frozen=True)
class Datagram:
    data: bytes
    peer: object  # the kernel's address of the sender; None for an unbound unix sender
    truncated: bool = False  # the datagram was larger than the read buffer (MSG_TRUNC)


class DatagramSocket:
    """A bound datagram socket: the server side, or a connected client.

    ``local`` is the address the kernel gave; ``remote`` is the connected peer (clients).
    """

    def __init__(
        self,
        transport: DatagramTransport,
        sock: trio.socket.SocketType,
        local: Address,
        remote: Address | None = None,
        cleanup: object = None,
        buffer_size: int = DATAGRAM_BUFFER,
        raw: socket.socket | None = None,
    ) -> None:
        self.transport = transport
        self.socket = sock
        self.local = local
        self.remote = remote
        self._cleanup = cleanup  # Callable[[], None] | None, run once on close
        self.buffer_size = buffer_size
        self._buffer = bytearray(buffer_size)
        self._view = memoryview(self._buffer)
        #: the standard library socket under `socket`, when the transport made it itself:
        #: `try_send_to` uses it to send without a trip through trio's scheduler
        self._raw = raw
        self._hard_limit = transport.hard_limit(sock)  # fixed for the socket's life (its family)
        self._ancbufsize = 0
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
    def max_datagram(self) -> int:
        return self.transport.max_datagram_for(self.socket)

    #: the same, under the name message transports share (see `MessageStream`)
    max_message = max_datagram

    def _check_size(self, data: bytes, peer: object, *, formatted: bool = False) -> None:
        """Refuse a datagram over a limit known up front; `peer` is only formatted to say so."""
        limit = self._hard_limit
        if limit is not None and len(data) > limit:
            where = peer if formatted else self.transport.format_peer(peer)
            raise MessageTooLargeError(
                f"a {len(data)}-byte datagram is over the limit for {where}: "
                f"{self.transport.limit_text(self.socket)}"
            )

    async def send(self, data: bytes) -> None:
        """Send one datagram to the connected peer."""
        assert self.remote is not None, "send() needs a connected socket; use send_to()"
        self._check_size(data, self.remote, formatted=True)
        with self._translate(self.remote, "send to"):
            await self.socket.send(data)

    async def send_to(self, data: bytes, peer: object) -> None:
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

    async def _send_to_polling(self, data: bytes, peer: object) -> None:
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

    def try_send_to(self, data: bytes, peer: object) -> bool:
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

    async def receive(self) -> Datagram:
        """Wait for one datagram. ``truncated`` is set when it did not fit the buffer."""
        where = self.remote if self.remote is not None else self.local
        with translate_os_errors(where, "receive from"):
            nbytes, ancdata, flags, peer = await self.socket.recvmsg_into([self._buffer], self._ancbufsize)
        for level, kind, value in ancdata:
            if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(value) >= 4:
                self.kernel_drops = max(self.kernel_drops or 0, int.from_bytes(value[:4], sys.byteorder))
        return Datagram(bytes(self._view[:nbytes]), peer or None, bool(flags & socket.MSG_TRUNC))

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
            cleanup()  # type: ignore[operator]

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> DatagramSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class _Peer:
    """A peer's address, formatted only if an error message needs it (not once per datagram)."""

    __slots__ = ("transport", "peer")

    def __init__(self, transport: Transport, peer: object) -> None:
        self.transport = transport
        self.peer = peer

    def __str__(self) -> str:
        return self.transport.format_peer(self.peer)


class DatagramTransport(Transport):
    kind = "datagram"
    boundaries = True

    @abc.abstractmethod
    async def bind(self, address: Address) -> DatagramSocket:
        """Bind a server socket.

        Raises:
            AddressInUseError, PermissionDeniedError, AddressUnavailableError, ResolveError
        """

    @abc.abstractmethod
    async def connect(self, address: Address) -> DatagramSocket:
        """A client socket connected to `address` and bound, so replies can reach it.

        Raises:
            ConnectionRefusedError, ResolveError, TransportError
        """

    @abc.abstractmethod
    def max_datagram_for(self, sock: trio.socket.SocketType) -> int:
        """The largest datagram this socket can send."""

    def make_room(self, sock: trio.socket.SocketType, size: int) -> None:
        """Raise the socket's send limit so a datagram of `size` bytes fits, if needed."""

    def hard_limit(self, sock: trio.socket.SocketType) -> int | None:
        """A limit known before sending (checked up front), or None to let the kernel say."""
        return None

    @abc.abstractmethod
    def limit_text(self, sock: trio.socket.SocketType) -> str:
        """The limit, stated for an error message."""


def apply_buffer_options(sock: trio.socket.SocketType | socket.socket, address: Address) -> None:
    """Set SO_RCVBUF / SO_SNDBUF from ``?rcvbuf=`` / ``?sndbuf=``."""
    rcvbuf = address.option("rcvbuf")
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sndbuf = address.option("sndbuf")
    if sndbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)


class MessageStream(trio.abc.AsyncResource):
    """A connection that keeps message boundaries (SOCK_SEQPACKET): each `send` arrives as
    exactly one `receive`, reliably and in order.

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

    def __init__(self, transport: SeqpacketTransport, sock: trio.socket.SocketType, remote: object,
                 buffer_size: int = DATAGRAM_BUFFER, raw: socket.socket | None = None,
                 shared: memoryview | None = None) -> None:
        self.transport = transport
        self.socket = sock
        self.remote = remote  # what the messages are about, for error texts
        if shared is not None and raw is not None:
            self._view = shared
        else:
            self._view = memoryview(bytearray(buffer_size))
        self.buffer_size = len(self._view)
        self._raw = raw

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
        """`send` at once if the kernel takes the message now; False if it would have to wait
        (then call `send`). Not a checkpoint: a server calls it between two receives, which
        are. Raises what `send` raises."""
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

    async def receive(self) -> Datagram | None:
        """The next message, or None at end of stream."""
        raw = self._raw
        if raw is None:
            with translate_os_errors(self.remote, "receive from"):
                nbytes, _anc, flags, _peer = await self.socket.recvmsg_into([self._view])
            if nbytes == 0 and not flags & socket.MSG_TRUNC:
                return None
            return Datagram(bytes(self._view[:nbytes]), None, bool(flags & socket.MSG_TRUNC))
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
            Datagram(bytes(self._view[:nbytes]), None, bool(flags & socket.MSG_TRUNC))
        if not waited:
            await trio.lowlevel.cancel_shielded_checkpoint()
        return message

    async def send_eof(self) -> None:
        with translate_os_errors(self.remote, "shut down"):
            self.socket.shutdown(socket.SHUT_WR)
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self.socket.close()
        await trio.lowlevel.checkpoint()


class SeqpacketTransport(Transport):
    """Connection-oriented, reliable, ordered, and message boundaries kept."""

    kind = "seqpacket"
    reliable = True
    ordered = True
    boundaries = True

    @abc.abstractmethod
    async def open_listeners(self, address: Address) -> list[trio.abc.Listener[MessageStream]]:
        """Bind and listen. Raises: AddressInUseError, PermissionDeniedError."""

    @abc.abstractmethod
    def listener_address(self, listener: trio.abc.Listener[MessageStream], requested: Address) -> Address:
        """The address the kernel actually gave."""

    @abc.abstractmethod
    async def connect(self, address: Address) -> MessageStream:
        """Open a connection. Raises: ConnectionRefusedError, TransportError."""

    @abc.abstractmethod
    def max_message_for(self, sock: trio.socket.SocketType) -> int:
        """The largest message this socket can send."""

    @abc.abstractmethod
    def limit_text(self, sock: trio.socket.SocketType) -> str:
        """The limit, stated for an error message."""
