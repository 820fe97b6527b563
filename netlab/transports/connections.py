"""Working with either contract: code that relays or tests bytes and messages alike.

`open_pair` opens a connected pair of any kind, for experiments and tests; `receive_data`,
`send_data` and `send_eof` move bytes or messages over either contract; `socket_of`,
`peer_identity` and `plain_socket` reach the kernel socket under a connection;
`listen_connections`, `listen_datagrams` and `connect_channel` are `listen` and `connect`
for code that needs one shape and says so when the address is of another.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import trio

from ..errors import AddressError
from .addresses import Address
from .base import Connection, DatagramEndpoint, Listeners, Listening, Message, MessageChannel
from .registry import get_transport, parse_address


def socket_of(conn: Connection) -> trio.socket.SocketType:
    """The kernel socket under a connection (under TLS too), for getsockopt and the like."""
    if isinstance(conn, MessageChannel):
        return conn.socket
    under = getattr(conn, "transport_stream", None)  # a layer over a stream: trio.SSLStream, tls.TlsStream
    if under is not None:
        return socket_of(under)
    if isinstance(conn, trio.SocketStream):
        return conn.socket
    raise TypeError(f"no socket under {conn!r}")


def peer_identity(conn: Connection) -> str | None:
    """Who is at the other end, for a per-peer connection limit: ``uid N`` on a unix socket
    (SO_PEERCRED: one user's connections are one peer, whatever process opened them), the
    peer's IP address on inet (``127.0.0.1``; an IPv4-mapped IPv6 address as its IPv4
    form); None when the kernel does not say."""
    sock = socket_of(conn)
    try:
        if sock.family == socket.AF_UNIX:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            return f"uid {struct.unpack('3i', creds)[1]}"
        host = str(sock.getpeername()[0])
    except OSError:
        return None
    return host.removeprefix("::ffff:") if "." in host else host


def plain_socket(conn: Connection) -> trio.socket.SocketType | None:
    """The socket of a byte stream whose bytes are the stream's bytes (not under TLS), so a
    hot path may read and write its file descriptor directly; None otherwise."""
    return conn.socket if isinstance(conn, trio.SocketStream) else None


async def receive_message(conn: Connection, max_bytes: int = 65536) -> Message | None:
    """The next message, or the next chunk of a byte stream as one (whatever one read gave:
    a byte stream keeps no boundaries); None at end of stream."""
    if isinstance(conn, MessageChannel):
        return await conn.receive()
    data = await conn.receive_some(max_bytes)
    return Message(bytes(data), None) if data else None


async def receive_data(conn: Connection, max_bytes: int = 65536) -> bytes | None:
    """The next chunk of a byte stream, or the next message's bytes; None at end of stream."""
    message = await receive_message(conn, max_bytes)
    return None if message is None else message.data


async def send_data(conn: Connection, data: bytes) -> None:
    """All of `data` on a byte stream, or `data` as one message."""
    if isinstance(conn, MessageChannel):
        await conn.send(data)
    else:
        await conn.send_all(data)


async def send_eof(conn: Connection) -> None:
    """Half-close: no more data from this side, where the kind has an end of stream."""
    await conn.send_eof()


async def listen_connections(address: Address) -> Listeners[Connection]:
    """`Transport.listen` for code that needs connections (a relay of streams, a test).

    Raises: AddressError for a datagram kind, and what `listen` raises."""
    listening = await get_transport(address.scheme).listen(address)
    if not isinstance(listening, Listeners):
        await listening.aclose()
        raise AddressError(f"{address.scheme}: is a datagram transport: it has no connections to accept")
    return listening


async def listen_datagrams(address: Address) -> DatagramEndpoint:
    """`Transport.listen` for code that needs one datagram socket (a datagram relay, a test).

    Raises: AddressError for a connection kind, and what `listen` raises."""
    transport = get_transport(address.scheme)
    listening = await transport.listen(address)
    if not isinstance(listening, DatagramEndpoint):
        await listening.aclose()
        raise AddressError(f"{address.scheme}: is a {transport.kind} transport, not a datagram one")
    return listening


async def connect_channel(address: Address) -> MessageChannel:
    """`Transport.connect` for code that needs whole messages (a datagram relay, a test).

    Raises: AddressError for a byte-stream kind, and what `connect` raises."""
    conn = await get_transport(address.scheme).connect(address)
    if not isinstance(conn, MessageChannel):
        await conn.aclose()
        raise AddressError(f"{address.scheme}: is a byte stream, not a message transport")
    return conn


@dataclass
class Pair:
    """Two ends of one conversation, opened by `open_pair`: the client's connection and the
    server's (accepted, or for datagrams the server's socket connected back to the client)."""

    client: Connection
    server: Connection
    #: the address the server was bound to (the real port, the real name)
    address: Address


@contextlib.asynccontextmanager
async def open_pair(address: Address | str) -> AsyncIterator[Pair]:
    """Listen on `address`, connect to it, accept: a connected pair of any kind, closed on exit.

    For a datagram kind the server's socket is connected to the client's address, so both
    ends are `ConnectedDatagram` channels. A byte stream that sets itself up on first use
    (a TLS handshake) is set up before the pair is handed over. The listening socket is
    closed once the pair is made (a unix socket file goes with it).

    Raises: what `Transport.listen` and `Transport.connect` raise.
    """
    address = parse_address(address)
    transport = get_transport(address.scheme)
    listening: Listening | None = await transport.listen(address)
    assert listening is not None
    server: Connection | None = None
    client: Connection | None = None
    try:
        bound = listening.bound[0]
        client = await transport.connect(bound)
        if isinstance(listening, Listeners):
            server = await listening.listeners[0].accept()
            if not transport.boundaries:
                # a layered byte stream (TLS) sets itself up on first use, which needs both
                # ends at once: an empty send does that (and nothing at all on a plain socket)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(send_data, client, b"")
                    nursery.start_soon(send_data, server, b"")
        else:
            assert isinstance(listening, DatagramEndpoint) and isinstance(client, MessageChannel)
            server = listening.connect_back(client)
            listening = None
        yield Pair(client, server, bound)
    finally:
        with trio.CancelScope(shield=True):
            if listening is not None:
                await listening.aclose()
            for conn in (client, server):
                if conn is not None:
                    await conn.aclose()


__all__ = ["Pair", "connect_channel", "listen_connections", "listen_datagrams", "open_pair", "peer_identity",
           "plain_socket", "receive_data", "receive_message", "send_data", "send_eof", "socket_of"]
