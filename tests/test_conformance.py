"""The conformance suite: the same cases over every transport (after trio's
``testing/_check_streams.py``). Parametrization lives in conftest.py: every test here runs
once per socket variant in ``COMPARE_SCHEMES``, or per kind with ``@pytest.mark.transports``.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable

import pytest
import trio
import trio.testing

from netlab import errors
from netlab.runner import Server, open_client, serve
from netlab.services.sum import SumService
from netlab.testing import check_message_channel
from netlab.transports import (
    Address, DatagramTransport, MessageChannel, SeqpacketTransport, StreamTransport, Transport, listen_connections,
    open_pair,
)
from netlab.transports.udp import UDP4_MAX, UDP6_MAX

from conftest import StartServer
from helpers import LogWatch, eventually, framed, message_channel, payload, read_line, read_to_end
from sum_cases import BAD, BAD_IDS, GOOD

#: generous: only here so a lost UDP datagram fails the test instead of hanging it
TIMEOUT = 10


# -- echo -----------------------------------------------------------------------------------


@pytest.mark.transports(kind="stream")
@pytest.mark.parametrize("size", [0, 1, 1024, 64 * 1024, 1024 * 1024], ids=["0B", "1B", "1KiB", "64KiB", "1MiB"])
async def test_stream_echo_byte_exact(transport: StreamTransport, echo_server: Server, size: int) -> None:
    data = payload(size)
    received = bytearray()
    stream = await transport.connect(echo_server.address)
    async with stream:

        async def send() -> None:
            view = memoryview(data)
            for start in range(0, len(data), 50_000):  # several writes, not one
                await stream.send_all(view[start : start + 50_000])
            await stream.send_eof()

        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send)
                while chunk := await stream.receive_some():
                    received += chunk
    assert len(received) == size
    assert received == data


@pytest.mark.transports(kind="stream")
async def test_stream_echo_request_reply(echo_server: Server) -> None:
    async with open_client(echo_server.address, "echo") as client:
        for message in (b"a", b"hello\n", b"\x00\xff" * 100, b""):
            assert await client.request(message, timeout=TIMEOUT) == message


def expected_max_datagram(server: Server, client_socket: trio.socket.SocketType) -> int:
    if server.transport.target == "inet":
        return UDP6_MAX if server.address.host_family == socket.AF_INET6 else UDP4_MAX
    sndbuf: int = client_socket.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    return sndbuf - 32





@pytest.mark.transports(boundaries=True)
@pytest.mark.parametrize("size", [0, 1, 1024, "max"])
async def test_message_echo_byte_exact(transport: Transport, echo_server: Server, size: int | str) -> None:
    async with open_client(echo_server.address, "echo") as client:
        channel = message_channel(client)
        limit = channel.max_message
        assert limit == expected_max_datagram(echo_server, channel.socket)
        n = limit if size == "max" else size
        assert isinstance(n, int)
        data = payload(n)
        if n == 0 and transport.kind == "seqpacket":
            # an empty SOCK_SEQPACKET message reads exactly like end of stream: refused, clearly
            with pytest.raises(errors.MessageTooLargeError, match="empty message"):
                await client.request(data, timeout=TIMEOUT)
            return
        reply = await client.request(data, timeout=TIMEOUT)
        assert len(reply) == n
        assert reply == data


@pytest.mark.transports(boundaries=True)
async def test_message_one_byte_over_the_limit(echo_server: Server) -> None:
    async with open_client(echo_server.address, "echo") as client:
        limit = message_channel(client).max_message
        with pytest.raises(errors.MessageTooLargeError) as info:
            await client.request(b"x" * (limit + 1), timeout=TIMEOUT)
        assert str(limit) in str(info.value)
        # the socket is still good for a datagram that fits
        assert await client.request(b"fits", timeout=TIMEOUT) == b"fits"
    assert echo_server.stats.truncated == 0


@pytest.mark.transports(boundaries=True)
async def test_message_boundaries_kept(transport: Transport, echo_server: Server) -> None:
    async with open_client(echo_server.address, "echo") as client:
        sock = message_channel(client)
        messages = (b"one", b"two-two") + ((b"",) if transport.kind == "datagram" else ())
        for message in messages:
            await sock.send(message)
            with trio.fail_after(TIMEOUT):
                received = await sock.receive()
                assert received is not None and received.data == message


# -- sum --------------------------------------------------------------------------------------


async def test_sum_correct(transport: Transport, sum_server: Server) -> None:
    async with open_client(sum_server.address, "sum") as client:
        for request, reply in GOOD:
            assert await client.request(request, timeout=TIMEOUT) == framed(reply, transport)


async def test_sum_line_endings_mirrored(sum_server: Server) -> None:
    async with open_client(sum_server.address, "sum") as client:
        assert await client.request(b"2 3\n", timeout=TIMEOUT) == b"5\n"
        assert await client.request(b"2 3\r\n", timeout=TIMEOUT) == b"5\r\n"


@pytest.mark.parametrize("bad", [b for _, b in BAD], ids=BAD_IDS)
async def test_sum_bad_input_answered_and_connection_survives(
    transport: Transport, sum_server: Server, bad: bytes
) -> None:
    async with open_client(sum_server.address, "sum") as client:
        if bad == b"" and transport.kind == "seqpacket":
            with pytest.raises(errors.MessageTooLargeError, match="empty message"):
                await client.request(bad, timeout=TIMEOUT)
            return
        for _ in range(2):
            reply = await client.request(bad, timeout=TIMEOUT)
            assert reply.startswith(b"ERR "), reply
            assert reply.count(b"\n") == (1 if transport.kind == "stream" else 0)
            assert reply.endswith(b"\n") == (transport.kind == "stream")
            assert await client.request(b"2 3", timeout=TIMEOUT) == framed(b"5", transport)


async def test_sum_line_over_the_limit(transport: Transport, start_server: StartServer) -> None:
    server = await start_server(SumService(max_line=100))
    async with open_client(server.address, "sum") as client:
        assert await client.request(b"1" + b" " * 98 + b"2", timeout=TIMEOUT) == framed(b"3", transport)
        for size in (101, 5000):
            reply = await client.request(b"1" + b" " * (size - 2) + b"2", timeout=TIMEOUT)
            assert reply == framed(b"ERR request too long (limit 100 bytes)", transport)
            assert await client.request(b"2 3", timeout=TIMEOUT) == framed(b"5", transport)


@pytest.mark.transports(kind="stream")
async def test_sum_pipelined(sum_server: Server) -> None:
    lines = b"".join(b"%d %d\n" % (i, 1000 * i) for i in range(100))
    async with open_client(sum_server.address, "sum") as client:
        reply = await client.request(lines, timeout=TIMEOUT)  # one write, 100 replies
    assert reply == b"".join(b"%d\n" % (1001 * i) for i in range(100))


@pytest.mark.transports(kind="stream")
async def test_stream_request_split_over_writes(transport: StreamTransport, sum_server: Server) -> None:
    stream = await transport.connect(sum_server.address)
    async with stream:
        for piece in (b"1", b"2 3", b"4\r", b"\n5 ", b"6\n7 7"):
            await stream.send_all(piece)
            await trio.testing.wait_all_tasks_blocked()
        await stream.send_eof()
        received = b""
        with trio.fail_after(TIMEOUT):
            while chunk := await stream.receive_some():
                received += chunk
    assert received == b"46\r\n11\n14\n"


# -- framings (netlab as the reference server for students' clients) ------------------------------


@pytest.mark.transports(kind="stream")
async def test_framing_quiet_a_pause_ends_a_request(transport: StreamTransport, start_server: StartServer) -> None:
    server = await start_server(SumService(framing="quiet:100", accept="lenient"))
    assert server.stats.hints == 0
    stream = await transport.connect(server.address)
    async with stream:
        for request, reply in ((b"2 3", b"5\n"), (b"[6, 7]", b"13\n"), (b"4 5\n", b"9\n"), (b"2,-3\r\n", b"-1\r\n")):
            await stream.send_all(request)  # without a newline, the pause ends it
            assert await read_line(stream) == reply
        await stream.send_all(b"1 2\n3 4\n5")  # lines still end at their newline; the rest at the pause
        received = b""
        while received.count(b"\n") < 3:
            received += await read_line(stream)
        assert received == b"3\n7\nERR expected two numbers, found one: '5'\n"


@pytest.mark.transports(kind="stream")
async def test_framing_eof_the_half_close_ends_the_request(transport: StreamTransport,
                                                           start_server: StartServer) -> None:
    server = await start_server(SumService(framing="eof"))
    for pieces, reply in (([b"2", b" 3"], b"5\n"), ([b"2 3\r\n"], b"5\r\n"), ([b"1 2\n", b"3 4\n"],
                                                                                b"ERR expected two numbers, got 4\n")):
        stream = await transport.connect(server.address)
        async with stream:
            for piece in pieces:
                await stream.send_all(piece)
                await trio.testing.wait_all_tasks_blocked()
            await stream.send_eof()
            assert await read_to_end(stream) == reply  # one reply, then the server closes


@pytest.mark.transports(kind="stream")
async def test_framing_line_hint_for_an_unfinished_request(transport: StreamTransport, start_server: StartServer,
                                                           server_log: LogWatch) -> None:
    server = await start_server("sum")
    stream = await transport.connect(server.address)
    async with stream:
        await stream.send_all(b"2 3")
        [hint] = await server_log.wait_for("began a request")
        message = hint.getMessage()
        assert message.startswith(transport.scheme) and "3 bytes so far, '2 3'" in message  # the peer, the bytes
        assert "end the request with \\n, or serve with --framing quiet" in message
        assert server.stats.hints == 1
        await stream.send_all(b"\n")
        assert await read_line(stream) == b"5\n"


# -- many clients -------------------------------------------------------------------------------


async def test_fifty_concurrent_clients(transport: Transport, sum_server: Server) -> None:
    results: dict[int, list[bytes]] = {}

    async def client_task(n: int) -> None:
        async with open_client(sum_server.address, "sum", timeout=TIMEOUT) as client:
            results[n] = [await client.request(b"%d %d" % (n, k), timeout=TIMEOUT) for k in range(5)]

    async with trio.open_nursery() as nursery:
        for n in range(50):
            nursery.start_soon(client_task, n)
    assert len(results) == 50
    for n, replies in results.items():
        assert replies == [framed(b"%d" % (n + k), transport) for k in range(5)]
    if transport.kind == "stream":
        assert sum_server.stats.connections == 50
    else:
        assert sum_server.stats.datagrams == 250


async def test_server_survives_a_client_that_vanishes(transport: Transport, echo_server: Server) -> None:
    """A client that leaves mid-conversation costs one connection (or one reply), never
    the server: the next client is served."""
    if isinstance(transport, StreamTransport):
        stream = await transport.connect(echo_server.address)
        if stream.socket.family != socket.AF_UNIX:
            # close with a RST, not a FIN
            stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        await fill_stream(stream)  # the echo goes unread: write until every buffer is full
        await stream.aclose()
    elif isinstance(transport, SeqpacketTransport):
        conn = await transport.connect(echo_server.address)
        await conn.send(b"the reply has nowhere to go")
        await conn.aclose()
    else:
        # a plain socket that sends and closes without a checkpoint in between, so the
        # server handles the datagram only once its sender is gone
        address = echo_server.address
        family = transport.family or address.host_family or socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as gone:
            if address.is_unix:
                gone.bind("")  # autobind: the server sees an address, and replies to it
                gone.sendto(b"the reply has nowhere to go", address.unix_sockaddr())
            else:
                gone.bind((address.host, 0))
                gone.sendto(b"the reply has nowhere to go", (address.host, address.port))
    async with open_client(echo_server.address, "echo") as client:
        assert await client.request(b"still there?", timeout=TIMEOUT) == b"still there?"
    if transport.kind in ("stream", "seqpacket"):
        await eventually(lambda: not echo_server.stats.active)
        assert echo_server.stats.connections == 2
    elif transport.target == "unix":
        # unix datagrams are ordered: the vanished client's datagram was handled first,
        # and the reply to its autobound name (now gone) failed and was counted
        assert echo_server.stats.reply_failures == 1


# -- addresses ----------------------------------------------------------------------------------


async def test_bound_address_is_concrete(echo_server: Server) -> None:
    requested, bound = echo_server.requested, echo_server.address
    assert bound.scheme == requested.scheme
    if requested.is_unix:
        assert bound.path == requested.path
    else:
        assert requested.port == 0
        assert bound.port != 0
        assert bound.host == requested.host
    # the canonical text of what was bound is enough to reach the server
    async with open_client(str(bound), "echo") as client:
        assert await client.request(b"ping", timeout=TIMEOUT) == b"ping"


async def test_nothing_listening_is_connection_refused(make_address: Callable[[], Address]) -> None:
    """Where a server was and is no more (port closed, socket file removed), a client is
    told "connection refused" promptly, on every transport; for UDP that needs the client
    socket connected, so the ICMP port-unreachable comes back (never a TimeoutError)."""
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve, "echo", make_address())
        nursery.cancel_scope.cancel()
    address = server.address
    with pytest.raises(errors.ConnectionRefusedError) as info:
        async with open_client(address, "echo") as client:
            await client.request(b"anyone?", timeout=5)
    assert str(address) in str(info.value)


# -- trio's own stream conformance checks -----------------------------------------------------


async def fill_stream(stream: trio.SocketStream) -> None:
    """Write until the kernel buffers are full (trio's ``test_highlevel_socket.py``)."""

    async def sender() -> None:
        while True:
            await stream.send_all(b"x" * 10000)

    async def waiter(nursery: trio.Nursery) -> None:
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender)
        nursery.start_soon(waiter, nursery)


@pytest.mark.transports(kind="stream")
async def test_check_half_closeable_stream(
    transport: StreamTransport, make_address: Callable[[], Address]
) -> None:
    async def stream_maker() -> tuple[trio.abc.HalfCloseableStream, trio.abc.HalfCloseableStream]:
        listening = await listen_connections(make_address())
        try:
            client = await transport.connect(listening.bound[0])
            server = await listening.listeners[0].accept()
        finally:
            await listening.aclose()
        assert isinstance(server, trio.abc.HalfCloseableStream)
        # a stream may need both ends running before it carries bytes (a TLS handshake):
        # an empty send on each at once; on a plain socket it sends nothing
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.send_all, b"")
            nursery.start_soon(server.send_all, b"")
        return client, server

    async def clogged_stream_maker() -> tuple[trio.abc.HalfCloseableStream, trio.abc.HalfCloseableStream]:
        left, right = await stream_maker()
        await fill_stream(left)
        await fill_stream(right)
        return left, right

    await trio.testing.check_half_closeable_stream(stream_maker, clogged_stream_maker)


@pytest.mark.transports(boundaries=True)
async def test_check_message_channel(make_address: Callable[[], Address]) -> None:
    """netlab's own conformance check for message channels (`netlab.testing`), on every
    message transport: both ends of a pair, as `open_pair` makes them (a datagram client
    and the server's socket connected back; a seqpacket client and the accepted one)."""
    async with contextlib.AsyncExitStack() as stack:

        async def channel_maker() -> tuple[MessageChannel, MessageChannel]:
            pair = await stack.enter_async_context(open_pair(make_address()))
            assert isinstance(pair.client, MessageChannel) and isinstance(pair.server, MessageChannel)
            return pair.client, pair.server

        await check_message_channel(channel_maker)


async def test_transport_declares_its_properties(transport: Transport) -> None:
    kinds = {"stream": StreamTransport, "datagram": DatagramTransport, "seqpacket": SeqpacketTransport}
    assert isinstance(transport, kinds[transport.kind])
    if transport.kind == "stream":
        assert transport.reliable and transport.ordered and not transport.boundaries
    elif transport.kind == "seqpacket":
        assert transport.reliable and transport.ordered and transport.boundaries
    else:
        assert transport.boundaries
    assert transport.summary
