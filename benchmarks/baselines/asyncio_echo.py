#!/usr/bin/env python3
"""Baseline: an asyncio echo (or discard) server, the standard library only.

Streams and datagrams use asyncio's protocol callbacks (``data_received`` writes straight
back; ``datagram_received`` answers with ``sendto``), the fastest way asyncio offers; on
tls the same protocol sits on asyncio's own TLS (``create_server(ssl=context)``).
asyncio has no SOCK_SEQPACKET server, so unix-seq uses ``loop.sock_accept`` /
``sock_recv`` / ``sock_sendall``. (asyncio's own datagram transport reads up to
256 KiB per datagram, enough for any unix datagram.)

    python benchmarks/baselines/asyncio_echo.py tcp:127.0.0.1:0 [--discard]
"""

from __future__ import annotations

import asyncio
import socket
import sys

from _address import arguments, server_socket

#: unix-seq: room for the largest message (212960 bytes by default), so none is cut short
MESSAGE_SIZE = 256 * 1024


class Echo(asyncio.Protocol):
    def __init__(self, discard: bool) -> None:
        self.discard = discard

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.discard:
            self.transport.write(data)


class DatagramEcho(asyncio.DatagramProtocol):
    def __init__(self, discard: bool) -> None:
        self.discard = discard

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, peer) -> None:
        if not self.discard and peer:
            self.transport.sendto(data, peer)


async def main() -> None:
    address, discard = arguments(sys.argv, __doc__.splitlines()[0])
    sock, kind, bound, context = server_socket(address)
    loop = asyncio.get_running_loop()
    if kind == "stream":
        create = loop.create_unix_server if sock.family == socket.AF_UNIX else loop.create_server
        # the same accept backlog as every other server (asyncio's default is 100)
        server = await create(lambda: Echo(discard), sock=sock, backlog=socket.SOMAXCONN, ssl=context)
        print(bound, flush=True)
        await server.serve_forever()
    elif kind == "datagram":
        await loop.create_datagram_endpoint(lambda: DatagramEcho(discard), sock=sock)
        print(bound, flush=True)
        await asyncio.Event().wait()
    else:
        sock.setblocking(False)
        print(bound, flush=True)

        async def handle(conn: socket.socket) -> None:
            with conn:
                try:
                    while data := await loop.sock_recv(conn, MESSAGE_SIZE):
                        if not discard:
                            await loop.sock_sendall(conn, data)
                except OSError:
                    pass

        tasks = set()
        while True:
            conn, _ = await loop.sock_accept(sock)
            task = asyncio.create_task(handle(conn))
            tasks.add(task)
            task.add_done_callback(tasks.discard)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
