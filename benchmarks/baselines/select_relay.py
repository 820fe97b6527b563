#!/usr/bin/env python3
"""Baseline: the simplest correct relay, one ``select()`` loop, the standard library only.

Datagrams: each client address gets its own upstream socket connected to the target (so
replies find their way back, as socat's fork mode does); a datagram from a client goes to
its upstream socket, a reply back to the client. Streams and seqpacket: each accepted
connection gets its own upstream connection; what one side sends is sent on to the
other (``sendall``, blocking: the receiver's pace holds the sender back), and a half-close
is passed on. No impairments, no limits, no statistics: the floor a relay in Python can
reach, for `netlab bench relay`.

    python benchmarks/baselines/select_relay.py LISTEN_ADDRESS TARGET_ADDRESS

Prints the bound listening address, then relays until killed.
"""

from __future__ import annotations

import select
import socket
import sys

from _address import parse, server_socket, tune_accepted

BUFFER = 256 * 1024  # room for the largest unix datagram or seqpacket message


def upstream_socket(target: str) -> socket.socket:
    _, family, kind, sockaddr = parse(target)
    sock = socket.socket(family, kind)
    if family == socket.AF_UNIX and kind == socket.SOCK_DGRAM:
        sock.bind("")  # Linux autobind: so that replies can reach us
    sock.connect(sockaddr)
    tune_accepted(sock)
    return sock


def relay_datagrams(front: socket.socket, target: str) -> None:
    buffer = bytearray(BUFFER)
    view = memoryview(buffer)
    upstreams: dict[object, socket.socket] = {}  # client address -> its upstream socket
    clients: dict[socket.socket, object] = {}  # upstream socket -> its client address
    while True:
        readable, _, _ = select.select([front, *clients], [], [])
        for sock in readable:
            try:
                if sock is front:
                    n, peer = front.recvfrom_into(buffer)
                    if not peer:
                        continue  # an unbound unix sender: no reply could reach it
                    if peer not in upstreams:
                        upstreams[peer] = up = upstream_socket(target)
                        clients[up] = peer
                    upstreams[peer].send(view[:n])
                else:
                    n = sock.recv_into(buffer)
                    front.sendto(view[:n], clients[sock])
            except OSError:
                pass  # a refused or unreachable peer: that datagram is lost


def relay_connections(listener: socket.socket, target: str, seqpacket: bool) -> None:
    buffer = bytearray(BUFFER)
    view = memoryview(buffer)
    other: dict[socket.socket, socket.socket] = {}  # each side -> the side its data goes to
    ended: set[socket.socket] = set()  # sides that sent their end of stream
    while True:
        readable, _, _ = select.select([listener, *(s for s in other if s not in ended)], [], [])
        for sock in readable:
            if sock is listener:
                conn, _ = listener.accept()
                tune_accepted(conn)
                try:
                    up = upstream_socket(target)
                except OSError:
                    conn.close()
                    continue
                other[conn], other[up] = up, conn
                continue
            dst = other.get(sock)
            if dst is None:
                continue  # closed earlier in this round
            try:
                n = sock.recv_into(buffer)
                if n:
                    if seqpacket:
                        dst.send(view[:n])
                    else:
                        dst.sendall(view[:n])
                    continue
                dst.shutdown(socket.SHUT_WR)  # end of stream: pass the half-close on
                ended.add(sock)
                if dst not in ended:
                    continue  # the other way stays open
            except OSError:
                pass
            for side in (sock, dst):  # both ways done, or one broke: close the pair
                other.pop(side, None)
                ended.discard(side)
                side.close()


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(f"usage: {sys.argv[0]} LISTEN_ADDRESS TARGET_ADDRESS\n\n{__doc__.splitlines()[0]}")
    sock, kind, bound, _ = server_socket(sys.argv[1])
    print(bound, flush=True)
    if kind == "datagram":
        relay_datagrams(sock, sys.argv[2])
    else:
        relay_connections(sock, sys.argv[2], kind == "seqpacket")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
