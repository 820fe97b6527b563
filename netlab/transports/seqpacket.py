"""Seqpacket connections: the message contract over SOCK_SEQPACKET (``unix-seq``).

Each `send` arrives as exactly one `receive`, reliably and in order, and the connection has
an end of stream; `MessageStream` is the `MessageChannel` a seqpacket listener accepts and
a seqpacket ``connect`` returns.
"""

from __future__ import annotations

import socket

import trio

from ..errors import MessageTooLargeError
from .base import BATCH, Message, MessageChannel, SeqpacketTransport
from .batch import receive_queued
from .datagram import ALWAYS_FITS, DATAGRAM_BUFFER
from .oserrors import translate_os_errors


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
        with translate_os_errors(self.remote, "send to", self.transport):
            await self.socket.send(data)

    def try_send(self, data: bytes) -> bool:
        raw = self._raw
        if raw is None:
            return False
        self._check(data)
        with translate_os_errors(self.remote, "send to", self.transport):
            try:
                raw.send(data)
            except BlockingIOError:
                return False
        return True

    async def receive(self) -> Message | None:
        raw = self._raw
        if raw is None:
            with translate_os_errors(self.remote, "receive from", self.transport):
                nbytes, _anc, flags, _peer = await self.socket.recvmsg_into([self._view])
            if nbytes == 0 and not flags & socket.MSG_TRUNC:
                return None
            return Message(bytes(self._view[:nbytes]), None, bool(flags & socket.MSG_TRUNC))
        # trio's protocol for a socket call (a cancelled task reads nothing; a read that
        # succeeds at once still yields, shielded), with the copy out of the shared buffer
        # made before anything else can run
        await trio.lowlevel.checkpoint_if_cancelled()
        waited = False
        with translate_os_errors(self.remote, "receive from", self.transport):
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

        return await receive_queued(raw, take, limit, self._pending, self.remote, self.transport)

    async def send_eof(self) -> None:
        with translate_os_errors(self.remote, "shut down", self.transport):
            self.socket.shutdown(socket.SHUT_WR)
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self.socket.close()
        await trio.lowlevel.checkpoint()


__all__ = ["MessageStream"]
