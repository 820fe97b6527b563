#!/usr/bin/env python3
"""Baseline: a blocking-socket echo (or discard) server, the standard library only.

One thread per connection, each a plain ``recv`` / ``sendall`` loop; datagrams are served
by one thread with ``recvfrom_into`` / ``sendto`` (a buffer large enough for any unix
datagram, reused). This is the lecture's echo server with a
thread per client, and the cost floor for blocking sockets in CPython. On tls each
connection's thread wraps it (``SSLContext.wrap_socket``, the handshake there, blocking).

    python benchmarks/baselines/threads_echo.py tcp:127.0.0.1:0 [--discard]

Prints the bound address, then serves until killed.
"""

from __future__ import annotations

import socket
import ssl
import sys
import threading

from _address import arguments, server_socket, tune_accepted

SIZE = 65536  # per read on a stream
#: per message: room for the largest unix datagram or unix-seq message (SO_SNDBUF less 32,
#: 212960 bytes by default), so none is cut short
MESSAGE_SIZE = 256 * 1024


def serve_connection(conn: socket.socket, discard: bool, context: ssl.SSLContext | None) -> None:
    try:
        if context is not None:
            conn = context.wrap_socket(conn, server_side=True)
        size = MESSAGE_SIZE if conn.type == socket.SOCK_SEQPACKET else SIZE
        while data := conn.recv(size):
            if not discard:
                conn.sendall(data)
    except OSError:
        pass  # reset by the peer (or a failed TLS handshake): this connection is over
    finally:
        conn.close()


def main() -> None:
    address, discard = arguments(sys.argv, __doc__.splitlines()[0])
    sock, kind, bound, context = server_socket(address)
    print(bound, flush=True)
    if kind == "datagram":
        buffer = bytearray(MESSAGE_SIZE)
        view = memoryview(buffer)
        while True:
            n, peer = sock.recvfrom_into(buffer)
            if not discard and peer:
                sock.sendto(view[:n], peer)
    while True:
        conn, _ = sock.accept()
        tune_accepted(conn)
        threading.Thread(target=serve_connection, args=(conn, discard, context), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
