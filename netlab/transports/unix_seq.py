"""AF_UNIX SOCK_SEQPACKET: ``unix-seq:/path`` and ``unix-seq:@abstract`` (Linux).

The best of both: connections (listen, accept, a peer that is known for the whole
conversation, end of stream) like a unix stream, and message boundaries like a datagram
socket. Reliable and ordered. Socket files follow the unix stream rules (stale files
replaced, live ones refused, non-sockets never touched, mode 0600 by default).

Two limits: a message must fit the sender's SO_SNDBUF (like unix datagrams), and an empty
message reads exactly like end of stream, so netlab refuses to send one.
"""

from __future__ import annotations

import mmap
import socket
from collections.abc import Callable, Sequence

import trio

from ._sockopts import apply_buffer_options
from .addresses import Address, bound_address
from .base import AnySocket, Listeners, OptionDefault, Plan, SeqpacketTransport, SockInfo
from .datagram import DATAGRAM_BUFFER, server_receive_buffer
from .oserrors import translate_os_errors
from .seqpacket import MessageStream
from .unix import listen_calls, listen_unix, unix_option_default, unix_plan

_OVERHEAD = 32  # as for unix datagrams: SO_SNDBUF less the kernel's bookkeeping


class SeqpacketListener(trio.abc.Listener[MessageStream]):
    def __init__(self, transport: UnixSeqpacketTransport, sock: trio.socket.SocketType, address: Address,
                 cleanup: Callable[[], None] | None, raw: socket.socket) -> None:
        self.transport = transport
        self.socket = sock
        self.address = address
        self._cleanup = cleanup
        self._raw = raw  # the listening socket `sock` wraps
        self._shared: memoryview | None = None  # every connection's read buffer (see MessageStream)

    async def accept(self) -> MessageStream:
        # accepted as a standard library socket and then wrapped (as trio's accept does), so
        # the connection keeps it for MessageStream.try_send; trio's protocol for a socket
        # call: try at once, wait only if nothing is there, yield (shielded) if something was
        await trio.lowlevel.checkpoint_if_cancelled()
        waited = False
        while True:
            try:
                conn, _peer = self._raw.accept()
                break
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self._raw)
                waited = True
        if self._shared is None:  # anonymous memory: pages cost RSS only once a message reaches them
            self._shared = memoryview(mmap.mmap(-1, server_receive_buffer()))
        stream = MessageStream(self.transport, trio.socket.from_stdlib_socket(conn), self.address, raw=conn,
                               shared=self._shared)
        if not waited:
            await trio.lowlevel.cancel_shielded_checkpoint()
        return stream

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
    protocol = 0
    options = frozenset({"backlog", "mode", "rcvbuf", "sndbuf"})
    summary = "AF_UNIX SOCK_SEQPACKET: connections that keep message boundaries; reliable, ordered"
    compare_address = "unix-seq:{dir}/q.sock"
    socat = ("UNIX-LISTEN", "UNIX-CONNECT", f"type={int(socket.SOCK_SEQPACKET)}")

    async def listen(self, address: Address) -> Listeners[MessageStream]:
        sock, cleanup = listen_unix(socket.SOCK_SEQPACKET, address)
        await trio.lowlevel.checkpoint()
        listener = SeqpacketListener(self, trio.socket.from_stdlib_socket(sock), address, cleanup, sock)
        return Listeners(self, address, [listener], [bound_address(address, sock.getsockname())])

    async def connect(self, address: Address) -> MessageStream:
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with translate_os_errors(address, "connect to", self):
                apply_buffer_options(sock, address)
                await sock.connect(address.unix_sockaddr())
            sndbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        except BaseException:
            sock.close()
            raise
        return MessageStream(self, sock, address, buffer_size=max(DATAGRAM_BUFFER, sndbuf + 1024))

    def max_message_for(self, sock: AnySocket) -> int:
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) - _OVERHEAD

    def limit_text(self, sock: AnySocket) -> str:
        sndbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        return (f"a unix-seq message must fit the sender's send buffer: SO_SNDBUF is {sndbuf} bytes here, "
                f"so at most {sndbuf - _OVERHEAD} bytes (raise it with ?sndbuf=)")

    def limit_summary(self, address: Address) -> str:
        return "a few hundred KiB"

    def option_default(self, name: str, address: Address) -> OptionDefault | None:
        return unix_option_default(self, name, address)

    def plan(self, address: Address, resolved: Sequence[SockInfo] | None) -> Plan:
        return unix_plan(self, address, serve=listen_calls(address),
                         use="send() / recvmsg(): one whole message each (an empty one would read as end of stream)")
