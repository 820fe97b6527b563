"""The server's limits (`netlab.runner.Limits`), each on every transport it applies to.

What a client sees when it hits one: ``ERR busy`` then end of stream (max_connections), end
of stream (idle_timeout, refused credentials), ``ERR request too long`` (max_line), or no
reply at all (a datagram reply over the amplification cap or the per-peer rate limit). The
server counts each in `ServerStats` and keeps serving everyone else.
"""

from __future__ import annotations

import logging
import os

import pytest
import trio
import trio.testing

from netlab import errors, logs
from netlab.runner import Limits, Server, open_client, serve
from netlab.transports import Address, Transport

from conftest import StartServer
from helpers import eventually, framed, message_channel, read_to_end, send_request

TIMEOUT = 10


# -- connections ---------------------------------------------------------------------------------


@pytest.mark.transports(kind=("stream", "seqpacket"))
async def test_max_connections_says_busy_and_keeps_serving_the_others(
    transport: Transport, start_server: StartServer
) -> None:
    server = await start_server("sum", limits=Limits(max_connections=2))
    async with open_client(server.address, "sum") as first, open_client(server.address, "sum") as second:
        for client in (first, second):  # both accepted and open
            assert await client.request(b"1 1", timeout=TIMEOUT) == framed(b"2", transport)
        extra = await transport.connect(server.address)
        async with extra:
            assert await read_to_end(extra) == framed(b"ERR busy", transport)
        assert server.stats.busy == 1
        for client in (first, second):  # the two are unaffected
            assert await client.request(b"2 2", timeout=TIMEOUT) == framed(b"4", transport)
    await eventually(lambda: not server.stats.active, timeout=TIMEOUT)
    async with open_client(server.address, "sum") as again:  # room again once they left
        assert await again.request(b"3 3", timeout=TIMEOUT) == framed(b"6", transport)
    assert server.stats.busy == 1


@pytest.mark.transports(kind=("stream", "seqpacket"), target="unix")  # one of each handler is enough
async def test_idle_timeout_counts_from_the_last_request(transport: Transport, start_server: StartServer) -> None:
    """A connection that keeps asking is never idle, however long it stays."""
    limits = Limits(idle_timeout=0.4)
    server = await start_server("sum", limits=limits)
    async with open_client(server.address, "sum") as client:
        began = trio.current_time()
        n = 0
        while trio.current_time() - began < 3 * limits.idle_timeout:
            assert await client.request(b"%d 1" % n, timeout=TIMEOUT) == framed(b"%d" % (n + 1), transport)
            n += 1
            await trio.sleep(limits.idle_timeout / 4)
    assert server.stats.idle_closed == 0


# -- requests -------------------------------------------------------------------------------------


async def test_max_line_from_limits(transport: Transport, start_server: StartServer) -> None:
    """Limits(max_line=) reaches the service on every transport (a line on a stream, a
    request in a datagram or message)."""
    server = await start_server("sum", limits=Limits(max_line=100))
    async with open_client(server.address, "sum") as client:
        assert await client.request(b"1" + b" " * 98 + b"2", timeout=TIMEOUT) == framed(b"3", transport)
        reply = await client.request(b"1" + b" " * 99 + b"2", timeout=TIMEOUT)
        assert reply == framed(b"ERR request too long (limit 100 bytes)", transport)
        assert await client.request(b"2 3", timeout=TIMEOUT) == framed(b"5", transport)


# -- datagrams ------------------------------------------------------------------------------------


@pytest.mark.transports(kind="datagram")
async def test_amplification_cap(start_server: StartServer) -> None:
    """A datagram reply may be at most `amplification` bytes longer than its request (a
    spoofed source could aim a larger one at someone else): "9eK 1" is 6 bytes and its exact
    sum K + 1 digits, so K = 69 is the most answered, and K = 70 or "9e9990 1" are not."""
    limits = Limits()
    server = await start_server("sum", limits=limits)
    exponent = next(k for k in range(1, 200) if k + 1 == len(b"9e%d 1" % k) + limits.amplification)
    async with open_client(server.address, "sum") as client:
        most = b"9e%d 1" % exponent
        reply = await client.request(most, timeout=TIMEOUT)
        assert reply == b"9" + b"0" * (exponent - 1) + b"1"
        assert len(reply) == len(most) + limits.amplification
        for request in (b"9e%d 1" % (exponent + 1), b"9e9990 1"):
            await message_channel(client).send(request)
        await eventually(lambda: server.stats.datagrams >= 3, timeout=TIMEOUT)
        assert server.stats.amplification_dropped == 2
        # the next reply is the next request's: nothing was sent for the dropped ones
        assert await client.request(b"2 3", timeout=TIMEOUT) == b"5"


@pytest.mark.transports(kind="datagram")
async def test_repeated_warnings_are_summarised(start_server: StartServer, caplog: pytest.LogCaptureFixture) -> None:
    """A flood of datagrams whose replies are over the amplification cap: every one is
    counted, one is logged (the next, 10 s later, would say how many were held back).
    Before, each was a WARNING line: ~20,000 lines in 10 s."""
    server = await start_server("sum")
    async with open_client(server.address, "sum") as client:
        for _ in range(50):
            await message_channel(client).send(b"9e9990 1")

        def all_dropped() -> bool:
            if server.stats.amplification_dropped >= 50:
                return True
            if not server.transport.reliable:  # udp may lose some of the 50: top up
                message_channel(client).try_send(b"9e9990 1")
            return False

        await eventually(all_dropped, timeout=TIMEOUT, interval=0.001)
    logged = [r for r in caplog.records if "amplification" in r.getMessage()]
    assert len(logged) == 1, [r.getMessage() for r in logged]


def test_repeat_summary_says_how_many_it_held_back() -> None:
    clock = trio.testing.MockClock()  # outside trio.run: time moves only by jump()
    clock.jump(1000)
    summary = logs.RepeatSummary(window=10, clock=clock.current_time)

    def record(text: str, *args: object) -> logging.LogRecord:
        return logging.LogRecord("netlab.server", logging.WARNING, __file__, 1, text, args, None)

    assert summary.filter(record("dropped a reply to %s", "a"))
    for peer in "bcd":
        assert not summary.filter(record("dropped a reply to %s", peer))
        clock.jump(1)
    assert summary.filter(record("something else"))  # another kind: its own count
    clock.jump(8)
    later = record("dropped a reply to %s", "e")
    assert summary.filter(later)
    assert later.getMessage() == "dropped a reply to e (and 3 more like this in the last 11 s)"
    again = record("dropped a reply to %s", "f")
    assert not summary.filter(again)


@pytest.mark.transports(kind="datagram")
async def test_rate_limit_per_peer(start_server: StartServer) -> None:
    """rate_limit=5: a peer gets a burst of 5 replies, then 5 a second; the rest are not
    answered, and counted. Another peer has its own allowance."""
    server = await start_server("sum", limits=Limits(rate_limit=5))
    replies = 0
    async with open_client(server.address, "sum") as greedy:
        sock = message_channel(greedy)
        began = trio.current_time()
        for i in range(20):
            await sock.send(b"%d 0" % i)
        with trio.move_on_after(0.3):
            while True:
                await sock.receive()
                replies += 1
        elapsed = trio.current_time() - began
        async with open_client(server.address, "sum") as other:
            assert await other.request(b"1 1", timeout=TIMEOUT) == b"2"
    assert 5 <= replies <= 5 + int(5 * elapsed) + 1, (replies, elapsed)
    assert server.stats.rate_limited == 20 - replies


@pytest.mark.transports(kind="datagram", target="unix")
async def test_rate_limit_below_one_a_second_still_answers(start_server: StartServer) -> None:
    """Half a reply a second means one now, the next in two seconds, not none ever."""
    server = await start_server("sum", limits=Limits(rate_limit=0.5))
    async with open_client(server.address, "sum") as client:
        assert await client.request(b"1 1", timeout=TIMEOUT) == b"2"
        await message_channel(client).send(b"2 2")
        await eventually(lambda: server.stats.datagrams >= 2, timeout=TIMEOUT)
    assert server.stats.rate_limited == 1


# -- peer credentials -------------------------------------------------------------------------------


@pytest.mark.transports(target="unix", kind=("stream", "seqpacket"))
async def test_allow_uid_and_gid(transport: Transport, start_server: StartServer) -> None:
    """Peers are checked with SO_PEERCRED: an unlisted uid is closed at once, unanswered."""
    other = frozenset({os.getuid() + 12345})
    refusing = await start_server("sum", limits=Limits(allow_uids=other))
    conn = await transport.connect(refusing.address)
    async with conn:
        await send_request(conn, transport, b"2 3")
        try:
            assert await read_to_end(conn) == b""
        except (trio.BrokenResourceError, errors.ConnectionResetError):
            pass  # closed with our request unread: a unix socket reports that as a reset
    assert refusing.stats.credentials_refused == 1
    for limits in (Limits(allow_uids=frozenset({os.getuid()})), Limits(allow_uids=other,
                                                                       allow_gids=frozenset({os.getgid()}))):
        allowing = await start_server("sum", limits=limits)
        async with open_client(allowing.address, "sum") as client:
            assert await client.request(b"2 3", timeout=TIMEOUT) == framed(b"5", transport)
        assert allowing.stats.credentials_refused == 0


@pytest.mark.transports(kind="datagram")
async def test_allow_uid_needs_a_connection_with_credentials(make_address) -> None:  # type: ignore[no-untyped-def]
    await _refused_before_binding(make_address())


@pytest.mark.transports(target="inet", kind="stream")
async def test_allow_uid_on_tcp_is_an_address_error(make_address) -> None:  # type: ignore[no-untyped-def]
    await _refused_before_binding(make_address())


async def _refused_before_binding(address: Address) -> None:
    with pytest.raises(errors.AddressError, match="SO_PEERCRED"):
        await serve("sum", address, limits=Limits(allow_uids=frozenset({0})))


# -- what serve reports -------------------------------------------------------------------------------


def test_limits_describe_themselves() -> None:
    assert Limits().describe() == ("max-connections=1024 max-connections-per-peer=none idle-timeout=300s "
                                   "request-timeout=30s max-line=65536 reply-budget=65536 rate-limit=none grace=1s")
    assert "max-connections-per-peer=4 " in Limits(max_connections_per_peer=4).describe()
    assert Limits(rate_limit=2.5, allow_uids=frozenset({7, 0}), allow_gids=frozenset({5})).describe().endswith(
        "rate-limit=2.5/s grace=1s allow-uid=0,7 allow-gid=5")


@pytest.mark.transports(kind=("stream", "seqpacket"))
async def test_drain_stops_accepting_and_lets_requests_finish(start_server: StartServer, transport: Transport) -> None:
    """Server.drain(): the address stops answering at once; a conversation under way gets
    the reply to its request; everything is closed within the grace period."""
    server: Server = await start_server("sum", limits=Limits(grace=0.5))
    async with open_client(server.address, "sum") as client:
        assert await client.request(b"1 1", timeout=TIMEOUT) == framed(b"2", transport)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.drain)
            assert await client.request(b"40 2", timeout=TIMEOUT) == framed(b"42", transport)
        assert server.draining
    with pytest.raises(errors.ConnectionRefusedError):
        async with open_client(server.address, "sum") as late:
            await late.request(b"1 1", timeout=TIMEOUT)
