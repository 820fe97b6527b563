#!/usr/bin/env python3
"""Baseline: a minimal hand-written trio echo (or discard) server, the cost floor for trio.

Streams: ``trio.serve_listeners`` and ``async for data in stream: await stream.send_all(data)``;
on tls the stream is a ``trio.SSLStream`` over the TCP one (handshaking at its first receive).
Datagrams: ``recvfrom_into`` / ``sendto`` on one trio socket. unix-seq: an accept loop and
``recv`` / ``send`` per connection. (Room for the largest unix datagram or message, so
none is cut short.) No limits, no timeouts, no statistics, no logging:
whatever netlab's server costs beyond this is the price of what it adds.

    python benchmarks/baselines/trio_echo.py tcp:127.0.0.1:0 [--discard]
"""

from __future__ import annotations

import sys

import trio

from _address import arguments, server_socket

#: per message: room for the largest unix datagram or unix-seq message (212960 bytes by
#: default), so none is cut short
MESSAGE_SIZE = 256 * 1024


async def main() -> None:
    address, discard = arguments(sys.argv, __doc__.splitlines()[0])
    raw, kind, bound, context = server_socket(address)
    sock = trio.socket.from_stdlib_socket(raw)
    print(bound, flush=True)

    if kind == "stream":
        async def handle(tcp: trio.SocketStream) -> None:
            stream = tcp if context is None else trio.SSLStream(tcp, context, server_side=True)
            try:
                async for data in stream:
                    if not discard:
                        await stream.send_all(data)
            except trio.BrokenResourceError:
                pass

        await trio.serve_listeners(handle, [trio.SocketListener(sock)])
    elif kind == "datagram":
        buffer = bytearray(MESSAGE_SIZE)
        view = memoryview(buffer)
        while True:
            n, peer = await sock.recvfrom_into(buffer)
            if not discard and peer:
                await sock.sendto(view[:n], peer)
    else:
        async def handle_messages(conn) -> None:
            with conn:
                try:
                    while data := await conn.recv(MESSAGE_SIZE):
                        if not discard:
                            await conn.send(data)
                except OSError:
                    pass

        async with trio.open_nursery() as nursery:
            while True:
                conn, _ = await sock.accept()
                nursery.start_soon(handle_messages, conn)


if __name__ == "__main__":
    try:
        trio.run(main)
    except KeyboardInterrupt:
        pass
