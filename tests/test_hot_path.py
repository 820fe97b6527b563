"""The server's per-connection limits and the lean hot path that carries them.

The stream and seqpacket handlers keep one cancel scope per connection for the idle and
stalled-writer timeouts (not one per receive and per send), read into one buffer shared
by every connection of a server, and write replies without waiting when the kernel takes
them. These tests pin down that the behaviour is what a fresh ``move_on_after`` around
every wait would give: closed no sooner than the timeout, counted as idle or stalled, and
a flood on one connection cannot starve another.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from functools import partial

import pytest
import trio

import netlab.server.datagrams as datagrams
from netlab.runner import Limits, Server, open_client, serve
from netlab.transports import Address, Connection, DatagramEndpoint, DatagramTransport, Transport, socket_of

from helpers import eventually, read_to_end

IDLE = 0.3


async def start(nursery: trio.Nursery, address: Address, service: str = "echo", **limits: object) -> Server:
    return await nursery.start(partial(serve, service, address, limits=Limits(**limits)))  # type: ignore[arg-type]


async def connect(transport: Transport, address: Address) -> Connection:
    return await transport.connect(address)


async def wait_closed(conn: Connection, timeout: float = 5.0) -> float:
    """Read until the server closes the connection; return how long that took."""
    began = trio.current_time()
    await read_to_end(conn, timeout)
    return trio.current_time() - began


@pytest.mark.transports(kind="stream")
async def test_idle_stream_connection_is_closed_after_the_timeout(
        nursery: trio.Nursery, transport: Transport, make_address: Callable[[], Address]) -> None:
    server = await start(nursery, make_address(), idle_timeout=IDLE)
    conn = await connect(transport, server.address)
    async with conn:
        took = await wait_closed(conn)
    assert IDLE * 0.95 <= took < IDLE + 1.0
    assert server.stats.idle_closed == 1 and server.stats.stalled_closed == 0


@pytest.mark.transports(kind="seqpacket")
async def test_idle_seqpacket_connection_is_closed_after_the_timeout(
        nursery: trio.Nursery, transport: Transport, make_address: Callable[[], Address]) -> None:
    server = await start(nursery, make_address(), idle_timeout=IDLE)
    conn = await connect(transport, server.address)
    async with conn:
        took = await wait_closed(conn)
    assert IDLE * 0.95 <= took < IDLE + 1.0
    assert server.stats.idle_closed == 1


@pytest.mark.transports(kind="stream")
async def test_a_connection_that_keeps_talking_is_never_idle(
        nursery: trio.Nursery, transport: Transport, make_address: Callable[[], Address]) -> None:
    """Requests spaced under the timeout keep the connection open well past it."""
    server = await start(nursery, make_address(), idle_timeout=IDLE)
    async with open_client(server.address, "echo") as client:
        for n in range(8):  # 8 x 0.6 IDLE = 1.6 s, over five times the timeout
            await trio.sleep(IDLE * 0.6)
            assert await client.request(b"%d" % n, timeout=2) == b"%d" % n
    assert server.stats.idle_closed == 0


@pytest.mark.transports(kind="seqpacket")
async def test_a_seqpacket_connection_that_keeps_talking_is_never_idle(
        nursery: trio.Nursery, make_address: Callable[[], Address]) -> None:
    server = await start(nursery, make_address(), idle_timeout=IDLE)
    async with open_client(server.address, "echo") as client:
        for n in range(6):
            await trio.sleep(IDLE * 0.6)
            assert await client.request(b"%d" % n, timeout=2) == b"%d" % n
    assert server.stats.idle_closed == 0


@pytest.mark.transports(kind="stream")
async def test_a_client_that_does_not_read_its_replies_is_closed_as_stalled(
        nursery: trio.Nursery, transport: Transport, make_address: Callable[[], Address]) -> None:
    server = await start(nursery, make_address(), idle_timeout=IDLE)
    stream = await connect(transport, server.address)
    socket_of(stream).setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    async with stream:
        with trio.move_on_after(5):  # write echo requests and never read: the server's writes stall
            try:
                while True:
                    await stream.send_all(b"x" * 65536)
            except trio.BrokenResourceError:
                pass
        await eventually(lambda: server.stats.stalled_closed, timeout=5)
    assert server.stats.stalled_closed == 1 and server.stats.idle_closed == 0


@pytest.mark.transports(kind="stream")
async def test_big_replies_that_do_not_fit_at_once_arrive_whole(
        nursery: trio.Nursery, transport: Transport, make_address: Callable[[], Address]) -> None:
    """A reply larger than the socket buffer takes the waiting path; every byte comes back in order."""
    server = await start(nursery, make_address())
    payload = bytes(range(256)) * (4 * 4096)  # 4 MiB
    stream = await connect(transport, server.address)
    received = bytearray()
    async with stream, trio.open_nursery() as inner:
        async def send() -> None:
            for start_at in range(0, len(payload), 300_000):
                await stream.send_all(payload[start_at:start_at + 300_000])

        inner.start_soon(send)
        with trio.fail_after(20):
            while len(received) < len(payload):
                received += await stream.receive_some(1 << 20)
    assert bytes(received) == payload


@pytest.mark.transports(kind="stream")
async def test_connections_sharing_the_read_buffer_do_not_mix(
        nursery: trio.Nursery, transport: Transport, make_address: Callable[[], Address]) -> None:
    server = await start(nursery, make_address())
    streams = [await connect(transport, server.address) for _ in range(20)]
    try:
        for round_ in range(20):
            for n, stream in enumerate(streams):
                await stream.send_all(b"%02d-%02d;" % (n, round_) * 50)
        for n, stream in enumerate(streams):
            want = b"".join(b"%02d-%02d;" % (n, r) * 50 for r in range(20))
            got = bytearray()
            with trio.fail_after(5):
                while len(got) < len(want):
                    got += await stream.receive_some(65536)
            assert bytes(got) == want
    finally:
        for stream in streams:
            await stream.aclose()


@pytest.mark.transports(kind="stream")
async def test_a_flooding_client_does_not_starve_another(
        nursery: trio.Nursery, transport: Transport, make_address: Callable[[], Address]) -> None:
    """Reads that find data at once still yield to the other connections once per message."""
    server = await start(nursery, make_address(), "discard")
    flood = await connect(transport, server.address)
    other = await connect(transport, server.address)
    stop = trio.Event()
    flooded = 0

    async def flooding() -> None:
        nonlocal flooded
        while not stop.is_set():
            await flood.send_all(b"z" * 65536)
            flooded += 1

    async with flood, other, trio.open_nursery() as inner:
        inner.start_soon(flooding)
        await eventually(lambda: flooded >= 16)  # the flood is under way: 1 MiB sent
        # the discard server reads this one too, promptly, while the flood goes on: it closes
        # our half-closed connection once it has read our end of stream
        await other.send_eof()
        with trio.fail_after(2):
            assert await other.receive_some(10) == b""
        stop.set()
    assert server.stats.connections == 2


@pytest.mark.transports(kind="datagram", target="unix")
async def test_a_reply_the_peer_cannot_take_is_dropped_after_the_reply_timeout(
        nursery: trio.Nursery, transport: DatagramTransport, make_address: Callable[[], Address],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A unix datagram reply that cannot be sent waits REPLY_TIMEOUT in the server's queue
    for its peer, then is dropped and counted. Here the peer is connected to the server,
    which spares it the kernel's per-receiver queue limit (net.unix.max_dgram_qlen): its
    unread replies pile up until they fill the server's send buffer, which they are
    charged to, and the next must wait."""
    monkeypatch.setattr(datagrams, "REPLY_TIMEOUT", 0.2)
    server = await start(nursery, make_address())
    assert isinstance(server._listening, DatagramEndpoint)
    sndbuf = server._listening.socket.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    silent = await transport.connect(server.address)
    async with silent:
        for _ in range(sndbuf // 150_000 + 3):
            await silent.send(b"r" * 150_000)
        began = trio.current_time()
        await eventually(lambda: server.stats.reply_failures, timeout=10)
        assert trio.current_time() - began >= 0.2 * 0.95 - 0.05
    # (while the silent client lives, its unread replies keep the server's send buffer
    # full, and no reply can go to anyone: closing it frees them)
    async with open_client(server.address, "echo") as client:
        assert await client.request(b"and me?", timeout=5) == b"and me?"


async def test_discard_client_request_returns_at_once_on_every_transport(
        nursery: trio.Nursery, transport: Transport, make_address: Callable[[], Address]) -> None:
    server = await start(nursery, make_address(), "discard")
    async with open_client(server.address, "discard") as client:
        for _ in range(3):
            assert await client.request(b"into the void", timeout=2) == b""
    if transport.boundaries:  # each was read as one message, none answered
        await eventually(lambda: server.stats.datagrams >= 3, timeout=2)
        assert server.stats.datagrams == 3 and server.stats.reply_failures == 0
