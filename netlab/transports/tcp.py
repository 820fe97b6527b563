"""TCP over IPv4 and IPv6: ``tcp:``, ``tcp4:``, ``tcp6:``."""

from __future__ import annotations

import socket
from collections.abc import Sequence

import trio

from ..errors import NetlabError
from ._inet import (
    client_setup_calls, getaddrinfo_call, inet_option_default, prepare_socket, resolve, server_targets, setup_calls,
    socket_call, with_port,
)
from .addresses import Address, bound_address
from .base import Listeners, OptionDefault, Plan, SockInfo, StreamTransport
from .oserrors import translate_os_errors

_WHICH = {None: "IPv4 or IPv6 (by host)", socket.AF_INET: "IPv4", socket.AF_INET6: "IPv6"}


class TcpTransport(StreamTransport):
    target = "inet"
    socktype = socket.SOCK_STREAM
    protocol = socket.IPPROTO_TCP
    options = frozenset({"backlog", "v6only", "rcvbuf", "sndbuf"})

    def __init__(self, scheme: str, family: socket.AddressFamily | None, *, compare: str | None = None) -> None:
        self.scheme = scheme
        self.family = family
        self.summary = f"TCP over {_WHICH[family]}: reliable, ordered byte stream"
        self.compare_address = compare
        six = family == socket.AF_INET6
        self.socat = ("TCP6-LISTEN", "TCP6", "") if six else ("TCP4-LISTEN", "TCP4", "")

    async def listen(self, address: Address) -> Listeners[trio.SocketStream]:
        infos = await resolve(address, self, passive=True)
        backlog = address.int_option("backlog", socket.SOMAXCONN)
        socks: list[trio.socket.SocketType] = []
        port = address.port
        try:
            for family, sockaddr in infos:
                sock = trio.socket.socket(family, socket.SOCK_STREAM)
                socks.append(sock)
                with translate_os_errors(address, "bind", self):
                    prepare_socket(sock, family, address, several=len(infos) > 1, server=True)
                    if port == 0 and len(socks) > 1:
                        # port 0 on a name with several addresses: one port for all of them
                        sockaddr = with_port(sockaddr, socks[0].getsockname()[1])
                    await sock.bind(sockaddr)
                    sock.listen(backlog)
        except BaseException:
            for sock in socks:
                sock.close()
            raise
        return Listeners(self, address, [trio.SocketListener(sock) for sock in socks],
                         [bound_address(address, sock.getsockname()) for sock in socks])

    async def connect(self, address: Address) -> trio.SocketStream:
        infos = await resolve(address, self, passive=False)
        first_error: NetlabError | None = None
        for family, sockaddr in infos:
            sock = trio.socket.socket(family, socket.SOCK_STREAM)
            try:
                with translate_os_errors(address, "connect to", self):
                    prepare_socket(sock, family, address, several=False, server=False)
                    await sock.connect(sockaddr)
            except NetlabError as exc:
                sock.close()
                first_error = first_error or exc
                continue
            except BaseException:
                sock.close()
                raise
            return trio.SocketStream(sock)
        assert first_error is not None
        raise first_error

    def option_default(self, name: str, address: Address) -> OptionDefault | None:
        return inet_option_default(self, name, address)

    def plan(self, address: Address, resolved: Sequence[SockInfo] | None) -> Plan:
        server, client = tcp_calls(self, address, resolved)
        server.append("accept() in a loop (trio.serve_listeners); each connection is served on its own")
        if address.host != "*":
            client.append("send_all() / receive_some(); shutdown(SHUT_WR) to half-close")
        return Plan(server, client)


def tcp_calls(transport: TcpTransport, address: Address,
              resolved: Sequence[SockInfo] | None) -> tuple[list[str], list[str]]:
    """What `listen` and `connect` call, up to the first byte: (server, client)."""
    server = [getaddrinfo_call(address, transport, passive=True)]
    targets = server_targets(transport, resolved)
    several = len(targets) > 1
    backlog = address.int_option("backlog", socket.SOMAXCONN)
    for i, (family, sockaddr) in enumerate(targets):
        server.append(socket_call(family, transport))
        server += setup_calls(address, family, server=True, several=several)
        where = repr(sockaddr)
        if address.port == 0 and several and i > 0:
            where += " with the port the first socket got (one port for every address)"
        server.append(f"bind({where})")
        server.append(f"listen({backlog})")
    if address.host == "*":
        return server, ["(none: '*' is for servers; a client needs a host to connect to)"]
    client = [getaddrinfo_call(address, transport, passive=False), "for each result until one connects:"]
    calls = ["socket(<family>, SOCK_STREAM)", *client_setup_calls(address), "connect(sockaddr)"]
    client += [f"  {call}" for call in calls]
    return server, client
