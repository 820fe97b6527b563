"""Datagram sockets: a server's unconnected endpoint, and a client's connected channel.

`SocketDatagramEndpoint` is the `DatagramEndpoint` every datagram transport's ``listen``
returns (udp, unix-dgram); `ConnectedDatagram` is the `MessageChannel` their ``connect``
returns, a socket connected to its one peer. Both check sizes against the transport's
limit before the kernel does (so the error states the limit), read with ``recvmsg_into``
into one reused buffer (a datagram larger than it is reported ``truncated``: MSG_TRUNC,
never served as whole), count the kernel's drops on request (SO_RXQ_OVFL), and receive in
batches (`batch.receive_queued`).
"""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Callable, Iterator
from typing import cast

import trio

from ..errors import MessageTooLargeError
from .addresses import Address
from .base import BATCH, DatagramEndpoint, Message, MessageChannel, MessageTransport, Peer, Transport
from .batch import SO_RXQ_OVFL, receive_queued
from .oserrors import translate_os_errors

#: the read buffer for datagrams: larger than any UDP datagram (65535), and than the
#: default unix datagram limit (SO_SNDBUF 212992 less 32). Anything larger is detected
#: with MSG_TRUNC and never served as if whole. Unix datagram servers read with a larger
#: buffer (`server_receive_buffer`), since a client may raise its SO_SNDBUF.
DATAGRAM_BUFFER = 256 * 1024

#: a message this small always fits a unix send buffer (SO_SNDBUF cannot go below about
#: 4.5 KB on Linux), so sending one needs no getsockopt() to check the limit first
ALWAYS_FITS = 2048


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
        with translate_os_errors(where, "receive from", self.transport):
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

        return await receive_queued(raw, take, limit, self._pending, where, self.transport)

    @contextlib.contextmanager
    def _translate(self, where: object, op: str) -> Iterator[None]:
        """Like `translate_os_errors`, but EMSGSIZE states this transport's limit."""
        try:
            with translate_os_errors(where, op, self.transport):
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


class SocketDatagramEndpoint(_DatagramSocket, DatagramEndpoint):
    """The `DatagramEndpoint` of every datagram transport: a server's socket, bound, not
    connected. `receive` gives each datagram with its sender, `send_to` answers a sender."""

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

    def connect_back(self, client: MessageChannel) -> ConnectedDatagram:
        assert self._raw is not None, "every datagram transport makes its endpoint's socket itself"
        assert isinstance(client, ConnectedDatagram), "a datagram transport's clients are connected datagram sockets"
        with translate_os_errors(client.local, "connect to", self.transport):
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




__all__ = ["ALWAYS_FITS", "DATAGRAM_BUFFER", "ConnectedDatagram", "SocketDatagramEndpoint", "server_receive_buffer"]
