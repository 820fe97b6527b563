"""TCP over IPv4 and IPv6: ``tcp:``, ``tcp4:``, ``tcp6:``."""

from __future__ import annotations

import socket

import trio

from ..errors import NetlabError, translate_os_errors
from ._inet import prepare_socket, resolve, with_port
from .addresses import Address, bound_address
from .base import Listeners, StreamTransport


class TcpTransport(StreamTransport):
    target = "inet"
    socktype = socket.SOCK_STREAM
    options = frozenset({"backlog", "v6only", "rcvbuf", "sndbuf"})

    def __init__(self, scheme: str, family: socket.AddressFamily | None) -> None:
        self.scheme = scheme
        self.family = family
        which = {None: "IPv4 or IPv6 (by host)", socket.AF_INET: "IPv4", socket.AF_INET6: "IPv6"}[family]
        self.summary = f"TCP over {which}: reliable, ordered byte stream"

    async def listen(self, address: Address) -> Listeners:
        infos = await resolve(address, self.family, socket.SOCK_STREAM, passive=True)
        backlog = address.int_option("backlog", socket.SOMAXCONN)
        socks: list[trio.socket.SocketType] = []
        port = address.port
        try:
            for family, sockaddr in infos:
                sock = trio.socket.socket(family, socket.SOCK_STREAM)
                socks.append(sock)
                with translate_os_errors(address, "bind"):
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
        infos = await resolve(address, self.family, socket.SOCK_STREAM, passive=False)
        first_error: NetlabError | None = None
        for family, sockaddr in infos:
            sock = trio.socket.socket(family, socket.SOCK_STREAM)
            try:
                with translate_os_errors(address, "connect to"):
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
