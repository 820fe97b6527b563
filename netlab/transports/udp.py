"""UDP over IPv4 and IPv6: ``udp:``, ``udp4:``, ``udp6:``. Unreliable, unordered, boundaries kept."""

from __future__ import annotations

import socket
from collections.abc import Sequence

import trio

from ._inet import (
    client_setup_calls, getaddrinfo_call, inet_option_default, prepare_socket, resolve, server_targets, setup_calls,
    socket_call,
)
from .addresses import Address, bound_address, format_sockaddr
from .base import AnySocket, DatagramTransport, OptionDefault, Plan, SockInfo
from .datagram import ConnectedDatagram, SocketDatagramEndpoint
from .oserrors import translate_os_errors

#: 65535 (IP total length) - 20 (IPv4 header) - 8 (UDP header)
UDP4_MAX = 65507
#: 65535 (IPv6 payload length, which excludes the IPv6 header) - 8 (UDP header)
UDP6_MAX = 65527

_WHICH = {None: "IPv4 or IPv6 (by host)", socket.AF_INET: "IPv4", socket.AF_INET6: "IPv6"}


class UdpTransport(DatagramTransport):
    target = "inet"
    socktype = socket.SOCK_DGRAM
    protocol = socket.IPPROTO_UDP
    reliable = False
    ordered = False
    options = frozenset({"v6only", "rcvbuf", "sndbuf"})
    refused_why = "port unreachable (ICMP): nothing is listening there"

    def __init__(self, scheme: str, family: socket.AddressFamily | None, *, compare: str | None = None) -> None:
        self.scheme = scheme
        self.family = family
        self.summary = f"UDP over {_WHICH[family]}: datagrams that may be lost, duplicated or reordered"
        self.compare_address = compare
        self.socat = ("UDP6-LISTEN", "UDP6", "") if family == socket.AF_INET6 else ("UDP4-LISTEN", "UDP4", "")

    async def listen(self, address: Address) -> SocketDatagramEndpoint:
        family, sockaddr = (await resolve(address, self, passive=True))[0]
        # a standard library socket, wrapped: the server's replies go out through it directly
        # when the kernel takes them at once (DatagramEndpoint.try_send_to)
        raw = socket.socket(family, socket.SOCK_DGRAM)
        try:
            with translate_os_errors(address, "bind", self):
                prepare_socket(raw, family, address, several=False, server=False)
                raw.bind(sockaddr)  # resolved already: nothing to wait for
            local = bound_address(address, raw.getsockname())
        except BaseException:
            raw.close()
            raise
        await trio.lowlevel.checkpoint()
        return SocketDatagramEndpoint(self, trio.socket.from_stdlib_socket(raw), local, requested=address, raw=raw)

    async def connect(self, address: Address) -> ConnectedDatagram:
        family, sockaddr = (await resolve(address, self, passive=False))[0]
        raw = socket.socket(family, socket.SOCK_DGRAM)
        sock = trio.socket.from_stdlib_socket(raw)
        try:
            with translate_os_errors(address, "connect to", self):
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

    def limit_summary(self, address: Address) -> str:
        if socket.AF_INET6 in (self.family, address.host_family):
            return f"{UDP6_MAX:,} bytes over UDP/IPv6"
        return f"{UDP4_MAX:,} bytes over UDP"

    def option_default(self, name: str, address: Address) -> OptionDefault | None:
        return inet_option_default(self, name, address)

    def plan(self, address: Address, resolved: Sequence[SockInfo] | None) -> Plan:
        server = [getaddrinfo_call(address, self, passive=True)]
        if resolved and len(resolved) > 1:
            server.append(f"  {len(resolved)} results; a UDP server binds the first one only "
                          f"({format_sockaddr(address.scheme, resolved[0][1])}); nothing listens on the others")
        family, sockaddr = server_targets(self, resolved)[0]
        server += [socket_call(family, self), *setup_calls(address, family, server=False, several=False),
                   f"bind({sockaddr!r})", "recvmsg_into() then sendto(reply, sender), per datagram"]
        if address.host == "*":
            return Plan(server, ["(none: '*' is for servers; a client needs a host to connect to)"])
        client = [getaddrinfo_call(address, self, passive=False), "the first result only:",
                  "socket(<family>, SOCK_DGRAM)", *client_setup_calls(address),
                  "connect(sockaddr)  # records the peer, so ICMP port unreachable comes back as ECONNREFUSED",
                  "send() / recvmsg_into()"]
        return Plan(server, client)
