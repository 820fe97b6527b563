"""Shared by the TCP, UDP and TLS transports: name resolution and socket options for inet,
and the same two things said as the socket calls `Transport.plan` lists."""

from __future__ import annotations

import socket
from collections.abc import Sequence

import trio

from ..errors import AddressError, TransportError
from ._sockopts import apply_buffer_options, buffer_calls
from .addresses import Address
from .base import OptionDefault, Peer, SockInfo, Transport
from .oserrors import translate_os_errors

__all__ = ["SockInfo", "client_setup_calls", "getaddrinfo_call", "inet_option_default", "prepare_socket",
           "resolve", "server_targets", "setup_calls", "with_port"]


async def resolve(address: Address, transport: Transport, *, passive: bool) -> list[SockInfo]:
    """getaddrinfo for an address, restricted to the transport's family and type, deduplicated."""
    host: str | None = address.host
    if host == "*":
        if not passive:
            raise AddressError(f"{address}: '*' means every interface; a client needs a host to connect to")
        host = None
    flags = socket.AI_PASSIVE if passive else 0
    with translate_os_errors(address, "resolve", transport):
        infos = await trio.socket.getaddrinfo(host, address.port, transport.family or 0, transport.socktype, 0, flags)
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


def inet_option_default(transport: Transport, name: str, address: Address) -> OptionDefault | None:
    """`Transport.option_default` for inet: v6only as `prepare_socket` leaves it."""
    if name == "v6only":
        if socket.AF_INET in (address.host_family, transport.family):
            return None  # IPv4 only: the option does not apply
        return None, "not set: net.ipv6.bindv6only (a server on several addresses sets 1)"
    return Transport.option_default(transport, name, address)


# -- the same, said ----------------------------------------------------------------------


def getaddrinfo_call(address: Address, transport: Transport, *, passive: bool) -> str:
    """The getaddrinfo call `resolve` makes."""
    host = None if address.host == "*" else address.host
    family = transport.family.name if transport.family is not None else "AF_UNSPEC"
    return (f"getaddrinfo({host!r}, {address.port}, {family}, {transport.socktype.name}, 0, "
            f"{'AI_PASSIVE' if passive else 0})")


def setup_calls(address: Address, family: int, *, server: bool, several: bool) -> list[str]:
    """The setsockopt calls `prepare_socket` makes, in its order."""
    calls: list[str] = []
    if server:
        calls.append("setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)")
    if family == socket.AF_INET6:
        v6only = address.bool_option("v6only")
        if v6only is None and several:
            v6only = True
        if v6only is not None:
            calls.append(f"setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, {int(bool(v6only))})")
    return calls + buffer_calls(address)


def client_setup_calls(address: Address) -> list[str]:
    """The setsockopt calls `prepare_socket` makes on a client, whatever family it resolves to."""
    calls = []
    v6only = address.bool_option("v6only")
    if v6only is not None:
        calls.append(f"setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, {int(v6only)})  # IPv6 results only")
    return calls + buffer_calls(address)


def server_targets(transport: Transport, resolved: Sequence[SockInfo] | None) -> list[tuple[int, object]]:
    """What a server binds, one per socket: what getaddrinfo gave, or a placeholder."""
    if resolved:
        return list(resolved)
    return [(transport.family or socket.AF_UNSPEC, "<each address>")]


def socket_call(family: int, transport: Transport) -> str:
    fam = socket.AddressFamily(family).name if family else "AF_?"
    return f"socket({fam}, {transport.socktype.name})"
