"""UDP over IPv4 and IPv6: ``udp:``, ``udp4:``, ``udp6:``. Unreliable, unordered, boundaries kept."""

from __future__ import annotations

import socket

import trio

from ..errors import translate_os_errors
from ._inet import prepare_socket, resolve
from .addresses import Address, bound_address
from .base import AnySocket, ConnectedDatagram, DatagramEndpoint, DatagramTransport

#: 65535 (IP total length) - 20 (IPv4 header) - 8 (UDP header)
UDP4_MAX = 65507
#: 65535 (IPv6 payload length, which excludes the IPv6 header) - 8 (UDP header)
UDP6_MAX = 65527


class UdpTransport(DatagramTransport):
    target = "inet"
    socktype = socket.SOCK_DGRAM
    reliable = False
    ordered = False
    options = frozenset({"v6only", "rcvbuf", "sndbuf"})

    def __init__(self, scheme: str, family: socket.AddressFamily | None) -> None:
        self.scheme = scheme
        self.family = family
        which = {None: "IPv4 or IPv6 (by host)", socket.AF_INET: "IPv4", socket.AF_INET6: "IPv6"}[family]
        self.summary = f"UDP over {which}: datagrams that may be lost, duplicated or reordered"

    async def listen(self, address: Address) -> DatagramEndpoint:
        family, sockaddr = (await resolve(address, self.family, socket.SOCK_DGRAM, passive=True))[0]
        # a standard library socket, wrapped: the server's replies go out through it directly
        # when the kernel takes them at once (DatagramEndpoint.try_send_to)
        raw = socket.socket(family, socket.SOCK_DGRAM)
        try:
            with translate_os_errors(address, "bind"):
                prepare_socket(raw, family, address, several=False, server=False)
                raw.bind(sockaddr)  # resolved already: nothing to wait for
            local = bound_address(address, raw.getsockname())
        except BaseException:
            raw.close()
            raise
        await trio.lowlevel.checkpoint()
        return DatagramEndpoint(self, trio.socket.from_stdlib_socket(raw), local, requested=address, raw=raw)

    async def connect(self, address: Address) -> ConnectedDatagram:
        family, sockaddr = (await resolve(address, self.family, socket.SOCK_DGRAM, passive=False))[0]
        raw = socket.socket(family, socket.SOCK_DGRAM)
        sock = trio.socket.from_stdlib_socket(raw)
        try:
            with translate_os_errors(address, "connect to"):
                prepare_socket(sock, family, address, several=False, server=False)
                # connect() only records the peer; it also makes ICMP port-unreachable
                # come back to us as ECONNREFUSED, so a dead port is reported promptly.
                await sock.connect(sockaddr)
            local = bound_address(address, sock.getsockname())
        except BaseException:
            sock.close()
            raise
        return ConnectedDatagram(self, sock, local, address, raw=raw)

    def max_message_for(self, sock: AnySocket) -> int:
        return UDP6_MAX if sock.family == socket.AF_INET6 else UDP4_MAX

    def hard_limit(self, sock: AnySocket) -> int | None:
        return self.max_message_for(sock)

    def limit_text(self, sock: AnySocket) -> str:
        if sock.family == socket.AF_INET6:
            return f"UDP over IPv6 carries at most {UDP6_MAX} bytes (65535 less the 8-byte UDP header)"
        return f"UDP over IPv4 carries at most {UDP4_MAX} bytes (65535 less the 20-byte IPv4 and 8-byte UDP headers)"
