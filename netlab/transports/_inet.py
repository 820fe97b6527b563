"""Shared by the TCP and UDP transports: name resolution and socket options for inet."""

from __future__ import annotations

import socket

import trio

from ..errors import AddressError, TransportError, translate_os_errors
from .addresses import Address
from .base import Peer, apply_buffer_options

SockInfo = tuple[socket.AddressFamily, Peer]  # (family, sockaddr)


async def resolve(address: Address, family: socket.AddressFamily | None, socktype: int, *, passive: bool) -> list[SockInfo]:
    """getaddrinfo for an address, restricted to the transport's family, deduplicated."""
    host: str | None = address.host
    if host == "*":
        if not passive:
            raise AddressError(f"{address}: '*' means every interface; a client needs a host to connect to")
        host = None
    flags = socket.AI_PASSIVE if passive else 0
    with translate_os_errors(address, "resolve"):
        infos = await trio.socket.getaddrinfo(host, address.port, family or 0, socktype, 0, flags)
    result: list[SockInfo] = []
    for fam, _type, _proto, _canon, sockaddr in infos:
        family_found = socket.AddressFamily(fam)
        if family_found not in (socket.AF_INET, socket.AF_INET6):  # getaddrinfo may offer others
            continue
        item = (family_found, sockaddr)
        if item not in result:
            result.append(item)
    if not result:
        raise TransportError(f"{address}: the host resolved to no usable address")
    if address.host == "*":
        result.sort(key=lambda info: info[0] != socket.AF_INET)  # IPv4 first for '*'
    return result


def prepare_socket(sock: trio.socket.SocketType | socket.socket, family: int, address: Address, *, several: bool, server: bool) -> None:
    """Options before bind/connect: SO_REUSEADDR (servers), IPV6_V6ONLY, buffers."""
    if server:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        v6only = address.bool_option("v6only")
        if v6only is None and several:
            v6only = True  # binding [::] next to 0.0.0.0 on the same port needs it
        if v6only is not None:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(bool(v6only)))
    apply_buffer_options(sock, address)


def with_port(sockaddr: Peer, port: int) -> Peer:
    assert isinstance(sockaddr, tuple)
    return (sockaddr[0], port, *sockaddr[2:])
