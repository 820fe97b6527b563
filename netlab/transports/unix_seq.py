"""AF_UNIX SOCK_SEQPACKET: ``unix-seq:/path`` and ``unix-seq:@abstract`` (Linux).

The best of both: connections (listen, accept, a peer that is known for the whole
conversation, end of stream) like a unix stream, and message boundaries like a datagram
socket. Reliable and ordered. Socket files follow the unix stream rules (stale files
replaced, live ones refused, non-sockets never touched, mode 0600 by default).

Two limits: a message must fit the sender's SO_SNDBUF (like unix datagrams), and an empty
message reads exactly like end of stream, so netlab refuses to send one.
"""

from __future__ import annotations

import socket

import trio

from ..errors import translate_os_errors
from .addresses import Address, bound_address
from .base import DATAGRAM_BUFFER, MessageStream, SeqpacketTransport, apply_buffer_options, server_receive_buffer
from .unix import listen_unix

_OVERHEAD = 32  # as for unix datagrams: SO_SNDBUF less the kernel's bookkeeping


class SeqpacketListener(trio.abc.Listener[MessageStream]):
    def __init__(self, transport: UnixSeqpacketTransport, sock: trio.socket.SocketType, address: Address,
                 cleanup) -> None:
        self.transport = transport
        self.socket = sock
        self.address = address
        self._cleanup = cleanup

    async def accept(self) -> MessageStream:
        conn, _peer = await self.socket.accept()
        return MessageStream(self.transport, conn, self.address, buffer_size=server_receive_buffer())

    async def aclose(self) -> None:
        if self._cleanup is not None:
            cleanup, self._cleanup = self._cleanup, None
            cleanup()
        self.socket.close()
        await trio.lowlevel.checkpoint()


class UnixSeqpacketTransport(SeqpacketTransport):
    scheme = "unix-seq"
    target = "unix"
    family = socket.AF_UNIX
    socktype = socket.SOCK_SEQPACKET
    options = frozenset({"backlog", "mode", "rcvbuf", "sndbuf"})
    summary = "AF_UNIX SOCK_SEQPACKET: connections that keep message boundaries; reliable, ordered"

    async def open_listeners(self, address: Address) -> list[trio.abc.Listener[MessageStream]]:
        sock, cleanup = listen_unix(socket.SOCK_SEQPACKET, address)
        await trio.lowlevel.checkpoint()
        return [SeqpacketListener(self, trio.socket.from_stdlib_socket(sock), address, cleanup)]

    def listener_address(self, listener: trio.abc.Listener[MessageStream], requested: Address) -> Address:
        return bound_address(requested, listener.socket.getsockname())  # type: ignore[attr-defined]

    async def connect(self, address: Address) -> MessageStream:
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with translate_os_errors(address, "connect to"):
                apply_buffer_options(sock, address)
                await sock.connect(address.unix_sockaddr())
            sndbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        except BaseException:
            sock.close()
            raise
        return MessageStream(self, sock, address, buffer_size=max(DATAGRAM_BUFFER, sndbuf + 1024))

    def max_message_for(self, sock: trio.socket.SocketType) -> int:
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) - _OVERHEAD

    def limit_text(self, sock: trio.socket.SocketType) -> str:
        sndbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        return (f"a unix-seq message must fit the sender's send buffer: SO_SNDBUF is {sndbuf} bytes here, "
                f"so at most {sndbuf - _OVERHEAD} bytes (raise it with ?sndbuf=)")
