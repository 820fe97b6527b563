"""AF_UNIX datagram sockets: ``unix-dgram:/path`` and ``unix-dgram:@abstract``.

On Linux these are reliable and ordered: a sender whose receiver's queue is full blocks
instead of losing. Message boundaries are kept. Two things trip people up:

* A client that never binds has no address, so the server sees its peer as ``None`` and
  cannot answer. `connect` therefore binds the client first, with Linux autobind
  (``bind("")`` gives a unique abstract name such as ``@0f3a1``: no temp file to clean up).
* The largest datagram is set by the sender's SO_SNDBUF (212992 bytes by default, so
  212960 bytes of payload), not by a protocol header.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

import trio

from ._sockopts import apply_buffer_options
from .addresses import Address, bound_address
from .base import AnySocket, DatagramTransport, OptionDefault, Plan, SockInfo
from .datagram import DATAGRAM_BUFFER, ConnectedDatagram, SocketDatagramEndpoint, server_receive_buffer
from .oserrors import translate_os_errors
from .unix import bind_unix, unix_option_default, unix_plan

#: what the kernel keeps back from SO_SNDBUF for a unix datagram's own bookkeeping
_UNIX_DGRAM_OVERHEAD = 32
#: SO_SNDBUF a unix-dgram server asks for (the kernel caps it at net.core.wmem_max, then doubles)
SERVER_SNDBUF = 64 * 1024 * 1024


class UnixDatagramTransport(DatagramTransport):
    scheme = "unix-dgram"
    target = "unix"
    family = socket.AF_UNIX
    socktype = socket.SOCK_DGRAM
    protocol = 0
    reliable = True
    ordered = True
    options = frozenset({"mode", "rcvbuf", "sndbuf"})
    summary = "AF_UNIX datagrams: boundaries kept; on Linux reliable and ordered (senders block)"
    compare_address = "unix-dgram:{dir}/d.sock"

    async def listen(self, address: Address) -> SocketDatagramEndpoint:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            if address.int_option("sndbuf") is None:
                # the kernel charges a reply to the server's send buffer until its receiver
                # reads it: up to net.unix.max_dgram_qlen of them wait in each peer that does
                # not read, and with the default 208 KiB a few dozen such peers would leave no
                # room to answer anyone. The most the kernel allows (2 * net.core.wmem_max).
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SERVER_SNDBUF)
            cleanup = bind_unix(sock, address)
            local = bound_address(address, sock.getsockname())
        except BaseException:
            sock.close()
            raise
        await trio.lowlevel.checkpoint()
        return SocketDatagramEndpoint(self, trio.socket.from_stdlib_socket(sock), local, requested=address,
                                      cleanup=cleanup, buffer_size=server_receive_buffer(), raw=sock)

    async def connect(self, address: Address) -> ConnectedDatagram:
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock = trio.socket.from_stdlib_socket(raw)
        try:
            with translate_os_errors(address, "connect to", self):
                raw.bind("")  # Linux autobind: a fresh abstract name, so replies can reach us
                apply_buffer_options(raw, address)
                await sock.connect(address.unix_sockaddr())
            local = bound_address(Address(scheme=self.scheme, abstract="?"), sock.getsockname())
        except BaseException:
            sock.close()
            raise
        # a client that raised its send buffer may get replies as large as its requests
        sndbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        return ConnectedDatagram(self, sock, local, address, buffer_size=max(DATAGRAM_BUFFER, sndbuf + 1024),
                                 raw=raw)

    def max_message_for(self, sock: AnySocket) -> int:
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) - _UNIX_DGRAM_OVERHEAD

    def make_room(self, sock: AnySocket, size: int) -> None:
        if size > self.max_message_for(sock):
            try:  # the kernel doubles the value and caps it at 2 * net.core.wmem_max
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, (size + _UNIX_DGRAM_OVERHEAD + 1) // 2 + 1)
            except OSError:
                pass

    def limit_text(self, sock: AnySocket) -> str:
        sndbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        return (
            f"a unix datagram must fit the sender's send buffer: SO_SNDBUF is {sndbuf} bytes here, "
            f"so at most {sndbuf - _UNIX_DGRAM_OVERHEAD} bytes (raise it with ?sndbuf=, up to twice "
            f"net.core.wmem_max)"
        )

    def limit_summary(self, address: Address) -> str:
        return "a few hundred KiB"

    def option_default(self, name: str, address: Address) -> OptionDefault | None:
        if name == "sndbuf":
            return None, f"not set: the kernel default (a server asks for {SERVER_SNDBUF})"
        return unix_option_default(self, name, address)

    def plan(self, address: Address, resolved: Sequence[SockInfo] | None) -> Plan:
        room = [] if address.int_option("sndbuf") is not None else [
            f"setsockopt(SOL_SOCKET, SO_SNDBUF, {SERVER_SNDBUF})  # room to answer peers that do not read yet; "
            f"the kernel caps it at 2 * net.core.wmem_max"]
        return unix_plan(self, address, server_setup=room,
                         serve=["recvmsg_into() then sendto(reply, sender), per datagram"],
                         client_setup=["bind('')  # Linux autobind: a fresh abstract name, so replies can reach us"],
                         use="send() / recv()")
