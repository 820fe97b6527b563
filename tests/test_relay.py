"""The impairment relay (`netlab.experiments.relay`), with real sockets.

Parametrization over transports comes from conftest.py (`start_relay` / `relay` put a
relay on the transport under test in front of a server). Every impaired case is seeded,
and checks the relay's own account (`relay.stats`) against what a client observed, and
each observed rate against its setting within binomial bounds. Nothing here asserts
speed: where time matters, only a lower bound set by the configured delay or rate is
checked.

Datagram exchanges send in batches and let the relay and server catch up between them
(`trio.testing.wait_all_tasks_blocked`), so the kernel never has to drop a datagram on
its own: every missing reply is one the relay decided to drop.

At the end, the real ``netlab relay`` process, talked to with plain sockets.
"""

from __future__ import annotations

import hashlib
import random
import re
import signal
import socket
import subprocess
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

import netlab.impair.relay as relay_module  # patched where the relay reads it
from netlab import errors
from netlab.experiments.impair import ImpairmentError, Impairments
from netlab.experiments.relay import Relay, run_relay
from netlab.runner import Server, open_client, serve
from netlab.transports import Address, Transport, get_transport, listen_connections
from netlab.transports.udp import UDP4_MAX, UDP6_MAX

from conftest import StartRelay
from helpers import assert_no_traceback, eventually, framed, invoke, message_channel, payload, within_binomial
from sum_cases import GOOD
from test_process import IO_TIMEOUT, STOP_TIMEOUT, finish, inet, read_line, run, serving, start

#: generous: only here so a lost datagram fails a test instead of hanging it
TIMEOUT = 10


async def echo_stream(address: Address, data: bytes, *, chunk: int = 50_000) -> tuple[bytes, list[int], list[int]]:
    """Send `data` in writes of `chunk` bytes, half-close, read until EOF.

    Returns (what came back, the sizes written, the sizes of the reads)."""
    received = bytearray()
    writes: list[int] = []
    reads: list[int] = []
    stream = await get_transport(address.scheme).connect(address)
    assert isinstance(stream, trio.abc.HalfCloseableStream)
    async with stream:

        async def send() -> None:
            view = memoryview(data)
            for start_at in range(0, len(data), chunk):
                piece = view[start_at : start_at + chunk]
                await stream.send_all(piece)
                writes.append(len(piece))
            await stream.send_eof()

        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send)
                while piece := await stream.receive_some():
                    received += piece
                    reads.append(len(piece))
    return bytes(received), writes, reads


# -- 1. no impairment: transparent on every transport ---------------------------------------


@pytest.mark.transports(kind="stream")
@pytest.mark.parametrize("size", [0, 1, 1024, 64 * 1024], ids=["0B", "1B", "1KiB", "64KiB"])
async def test_stream_echo_byte_exact_through_relay(relay: Relay, size: int) -> None:
    data = payload(size)
    received, _, _ = await echo_stream(relay.address, data)
    assert len(received) == size
    assert received == data
    stats = relay.stats
    assert stats.connections == 1 and stats.upstream_failures == 0
    assert stats.forward.bytes == stats.backward.bytes == size


def largest_datagram(transport_name: str, client_socket: socket.socket) -> int:
    if transport_name in ("udp", "udp6"):
        return {"udp": UDP4_MAX, "udp6": UDP6_MAX}[transport_name]
    return client_socket.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) - 32  # unix-dgram


@pytest.mark.transports(kind="datagram")
@pytest.mark.parametrize("size", [0, 1, 1024, "max"], ids=["0B", "1B", "1KiB", "max"])
async def test_datagram_echo_byte_exact_through_relay(relay: Relay, transport_name: str, size: int | str) -> None:
    async with open_client(relay.address, "echo") as client:
        channel = message_channel(client)
        limit = channel.max_message
        assert limit == largest_datagram(transport_name, channel.socket)
        n = limit if size == "max" else size
        assert isinstance(n, int)
        data = payload(n)
        reply = await client.request(data, timeout=TIMEOUT)
    assert len(reply) == n
    assert reply == data
    fwd, back = relay.stats.forward, relay.stats.backward
    assert fwd.received == fwd.passed == back.received == back.passed == 1
    assert fwd.bytes == back.bytes == n
    assert relay.stats.send_failures == relay.stats.upstream_failures == 0


async def test_sum_correct_through_relay(transport: Transport, sum_server: Server, start_relay: StartRelay) -> None:
    relay = await start_relay(sum_server.address)
    async with open_client(relay.address, "sum") as client:
        for request, reply in GOOD:
            assert await client.request(request, timeout=TIMEOUT) == framed(reply, transport)


@pytest.mark.transports(kind="stream")
async def test_sum_pipelined_through_relay(sum_server: Server, start_relay: StartRelay) -> None:
    relay = await start_relay(sum_server.address)
    lines = b"".join(b"%d %d\n" % (i, 1000 * i) for i in range(100))
    async with open_client(relay.address, "sum") as client:
        reply = await client.request(lines, timeout=TIMEOUT)  # one write, 100 replies
    assert reply == b"".join(b"%d\n" % (1001 * i) for i in range(100))


async def test_concurrent_clients_through_one_relay(
    transport: Transport, sum_server: Server, start_relay: StartRelay
) -> None:
    relay = await start_relay(sum_server.address)
    results: dict[int, list[bytes]] = {}

    async def client_task(n: int) -> None:
        async with open_client(relay.address, "sum", timeout=TIMEOUT) as client:
            results[n] = [await client.request(b"%d %d" % (n, 1000 * k), timeout=TIMEOUT) for k in range(5)]

    async with trio.open_nursery() as nursery:
        for n in range(20):
            nursery.start_soon(client_task, n)
    # each client got its own answers: replies were mapped back to the right peer
    assert results == {n: [framed(b"%d" % (n + 1000 * k), transport) for k in range(5)] for n in range(20)}
    if transport.kind == "stream":
        assert relay.stats.connections == sum_server.stats.connections == 20
    else:
        assert relay.stats.forward.received == relay.stats.backward.received == sum_server.stats.datagrams == 100


@pytest.mark.transports(kind="datagram")
async def test_datagram_relay_maps_replies_after_evicting_peers(
    transport: Transport, sum_server: Server, start_relay: StartRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With room for 2 peers, 5 clients taking turns each evict the least recent one; a
    returning client gets a fresh upstream, and every reply still reaches its own client."""
    monkeypatch.setattr(relay_module, "MAX_PEERS", 2)
    relay = await start_relay(sum_server.address)
    async with open_client(relay.address, "sum") as c0, open_client(relay.address, "sum") as c1, \
            open_client(relay.address, "sum") as c2, open_client(relay.address, "sum") as c3, \
            open_client(relay.address, "sum") as c4:
        for k in range(3):
            for n, client in enumerate((c0, c1, c2, c3, c4)):
                assert await client.request(b"%d %d" % (n, 100 * k), timeout=TIMEOUT) == b"%d" % (n + 100 * k)
    assert relay.stats.forward.received == relay.stats.backward.passed == 15


@pytest.mark.transports(target="unix")
async def test_relay_removes_its_socket_file_when_stopped(echo_server: Server, netlab_dir: Path) -> None:
    scheme = echo_server.address.scheme
    path = netlab_dir / "relay.sock"
    async with trio.open_nursery() as nursery:
        relay = await nursery.start(partial(run_relay, f"{scheme}:{path}", echo_server.address))
        assert relay.address.path == str(path)
        assert path.exists()
        nursery.cancel_scope.cancel()
    assert not path.exists()


# -- 2. families may differ, kinds may not ---------------------------------------------------


async def test_tcp6_in_unix_out(nursery: trio.Nursery, netlab_dir: Path) -> None:
    server = await nursery.start(serve, "echo", f"unix:{netlab_dir}/s.sock")
    relay = await nursery.start(partial(run_relay, "tcp6:[::1]:0", server.address))
    assert relay.address.scheme == "tcp6" and relay.address.port != 0
    data = payload(200_000)
    received, _, _ = await echo_stream(relay.address, data)
    assert received == data
    assert server.stats.connections == 1


async def test_unix_dgram_in_udp_out(nursery: trio.Nursery, netlab_dir: Path) -> None:
    server = await nursery.start(serve, "echo", "udp:127.0.0.1:0")
    relay = await nursery.start(partial(run_relay, f"unix-dgram:{netlab_dir}/r.sock", server.address))
    async with open_client(relay.address, "echo") as client:
        for data in (b"x", payload(UDP4_MAX)):
            assert await client.request(data, timeout=TIMEOUT) == data
        # a unix datagram may be larger than UDP can carry: the relay cannot send it on,
        # and says so in its count instead of stopping
        with pytest.raises(errors.TimeoutError):
            await client.request(b"y" * (UDP4_MAX + 1), timeout=0.5)
        assert relay.stats.send_failures == 1
        assert await client.request(b"still relaying", timeout=TIMEOUT) == b"still relaying"
    assert server.stats.datagrams == 3


@pytest.mark.parametrize("listen, to", [
    ("tcp:127.0.0.1:0", "udp:127.0.0.1:9"),
    ("udp6:[::1]:0", "tcp:127.0.0.1:9"),
    ("unix-dgram:@netlab-test-nope", "unix:/tmp/netlab-test-nope.sock"),
])
async def test_kinds_differ_is_an_address_error_naming_both(listen: str, to: str) -> None:
    with pytest.raises(errors.AddressError) as info:
        await run_relay(listen, to)
    message = str(info.value)
    in_scheme, out_scheme = listen.partition(":")[0], to.partition(":")[0]
    in_kind = "stream" if in_scheme in ("tcp", "unix") else "datagram"
    out_kind = "datagram" if in_kind == "stream" else "stream"
    assert f"{in_scheme} is a {in_kind} transport" in message
    assert f"{out_scheme} is a {out_kind} transport" in message


@pytest.mark.parametrize("setting", [
    {"loss": 0.1}, {"loss_burst": (0.1, 0.5)}, {"duplicate": 0.1}, {"reorder": 0.1}, {"corrupt": 0.1},
], ids=lambda s: next(iter(s)))
@pytest.mark.parametrize("scheme", ["tcp", "unix"])
async def test_stream_relay_refuses_datagram_impairments(setting: dict, scheme: str, netlab_dir: Path) -> None:
    listen = "tcp:127.0.0.1:0" if scheme == "tcp" else f"unix:{netlab_dir}/r.sock"
    name = next(iter(setting)).replace("_", "-")
    for forward, backward in ((Impairments(**setting), Impairments()), (Impairments(), Impairments(**setting))):
        with pytest.raises(ImpairmentError, match=f"^{name}: a stream relay cannot"):
            await run_relay(listen, "tcp:127.0.0.1:9", forward=forward, backward=backward)
    assert not (netlab_dir / "r.sock").exists()  # refused before binding anything


@pytest.mark.parametrize("setting", [{"slice": (1, 5)}, {"reset_after": 10}, {"close_after": 10}],
                         ids=lambda s: next(iter(s)))
async def test_datagram_relay_refuses_stream_impairments(setting: dict) -> None:
    name = next(iter(setting)).replace("_", "-")
    with pytest.raises(ImpairmentError, match=f"^{name}: these apply to stream transports only"):
        await run_relay("udp:127.0.0.1:0", "udp:127.0.0.1:9", forward=Impairments(**setting))


# -- 3. streams -------------------------------------------------------------------------------


@pytest.mark.transports(kind="stream")
async def test_slice_keeps_a_mebibyte_byte_exact(echo_server: Server, start_relay: StartRelay) -> None:
    relay = await start_relay(echo_server.address, forward=Impairments(slice=(1, 1500)), seed=3)
    data = payload(1024 * 1024)
    received, writes, reads = await echo_stream(relay.address, data)
    assert len(received) == len(data)
    assert received == data
    # the boundaries are not kept: the client wrote 50,000-byte pieces and read others
    assert reads != writes
    fwd, back = relay.stats.forward, relay.stats.backward
    assert fwd.bytes == back.bytes == len(data)
    # re-chunked into writes of 1..1500 bytes, each way: at least len / 1500 of them
    assert fwd.passed >= len(data) / 1500 and back.passed >= len(data) / 1500


async def serve_raw(nursery: trio.Nursery, address: Address,
                    handler: Callable[[Any], Awaitable[None]]) -> Address:
    """A stream server whose connections `handler` handles itself (no netlab service)."""
    listening = await listen_connections(address)
    await nursery.start(trio.serve_listeners, handler, listening.listeners)
    return listening.bound[0]


async def read_to_eof(stream: trio.abc.ReceiveStream) -> bytes:
    data = bytearray()
    while piece := await stream.receive_some():
        data += piece
    return bytes(data)


HALF_CLOSE_IMPAIRMENTS = {
    "none": Impairments(),
    "delay-jitter": Impairments(delay=0.005, jitter=0.002),
    "slice": Impairments(slice=(1, 100)),
    "rate": Impairments(rate=2_000_000),
}


@pytest.mark.transports(kind="stream")
@pytest.mark.parametrize("impairments", list(HALF_CLOSE_IMPAIRMENTS.values()), ids=list(HALF_CLOSE_IMPAIRMENTS))
async def test_half_close_passes_through_both_ways(
    nursery: trio.Nursery, make_address: Callable[[], Address], start_relay: StartRelay, impairments: Impairments
) -> None:
    """Client to server: the server answers only after the client's EOF, so the relay must
    pass the EOF on and keep the way back open. Server to client: the server says hello and
    half-closes first, then still reads what the client sends."""
    data = payload(20_000)

    async def digest_after_eof(stream: trio.abc.HalfCloseableStream) -> None:
        async with stream:
            got = await read_to_eof(stream)
            await stream.send_all(b"%d %s" % (len(got), hashlib.sha256(got).hexdigest().encode()))

    server_heard: list[bytes] = []

    async def hello_first(stream: trio.abc.HalfCloseableStream) -> None:
        async with stream:
            await stream.send_all(b"hello")
            await stream.send_eof()
            server_heard.append(await read_to_eof(stream))

    for handler in (digest_after_eof, hello_first):
        server = await serve_raw(nursery, make_address(), handler)
        relay = await start_relay(server, forward=impairments, seed=1)
        stream = await get_transport(relay.address.scheme).connect(relay.address)
        assert isinstance(stream, trio.abc.HalfCloseableStream)
        with trio.fail_after(TIMEOUT):
            async with stream:
                if handler is digest_after_eof:
                    await stream.send_all(data)
                    await stream.send_eof()
                    reply = await read_to_eof(stream)
                    assert reply == b"%d %s" % (len(data), hashlib.sha256(data).hexdigest().encode())
                else:
                    assert await read_to_eof(stream) == b"hello"  # the server's EOF came through
                    await stream.send_all(data)  # our way is still open
                    await stream.send_eof()
                    await eventually(lambda: server_heard, interval=0.001)
        if handler is hello_first:
            assert server_heard == [data]


@pytest.mark.transports(kind="stream", target="inet")
async def test_reset_after_gives_the_client_a_connection_reset(echo_server: Server, start_relay: StartRelay) -> None:
    relay = await start_relay(echo_server.address, forward=Impairments(reset_after=1000), seed=1)
    async with open_client(relay.address, "echo") as client:
        assert await client.request(b"a" * 600, timeout=TIMEOUT) == b"a" * 600  # 600 of 1000 bytes
        with pytest.raises(errors.ConnectionResetError, match="reset by the peer") as info:
            await client.request(b"b" * 2000, timeout=TIMEOUT)
    assert str(relay.address) in str(info.value)
    assert relay.stats.forward.resets == 1
    assert relay.stats.forward.bytes == 1000  # 600, then the 400 that fit before the cut


@pytest.mark.transports(target="unix", kind="stream")
async def test_reset_after_on_unix_streams_is_a_close(echo_server: Server, start_relay: StartRelay) -> None:
    """AF_UNIX has no RST: the relay can only close, and the client sees the connection end."""
    relay = await start_relay(echo_server.address, forward=Impairments(reset_after=1000), seed=1)
    async with open_client(relay.address, "echo") as client:
        with pytest.raises(errors.ConnectionResetError, match="closed the connection before replying"):
            await client.request(b"b" * 2000, timeout=TIMEOUT)
    assert relay.stats.forward.resets == 1


@pytest.mark.transports(kind="stream")
async def test_close_after_closes_cleanly_after_exactly_n_bytes(
    nursery: trio.Nursery, make_address: Callable[[], Address], start_relay: StartRelay
) -> None:
    heard: list[bytes] = []

    async def record(stream: trio.abc.HalfCloseableStream) -> None:
        async with stream:
            heard.append(await read_to_eof(stream))  # a clean EOF, not a reset

    server = await serve_raw(nursery, make_address(), record)
    relay = await start_relay(server, forward=Impairments(close_after=1000), seed=1)
    data = payload(2000)
    async with open_client(relay.address, "echo") as client:
        # the request is cut after 1000 bytes, and the connection closed: no reply ever comes
        with pytest.raises(errors.ConnectionResetError, match="closed the connection before replying"):
            await client.request(data, timeout=TIMEOUT)
    await eventually(lambda: heard, timeout=TIMEOUT, interval=0.001)
    assert heard == [data[:1000]]
    assert relay.stats.forward.closes == 1 and relay.stats.forward.resets == 0


@pytest.mark.transports(kind="stream")
@pytest.mark.parametrize("how", ["reset_after", "close_after"])
async def test_cut_after_counts_bytes_per_connection(
    echo_server: Server, start_relay: StartRelay, how: str
) -> None:
    """Toxiproxy's limit: each connection may carry N bytes, not the relay N in all."""
    relay = await start_relay(echo_server.address, forward=Impairments(**{how: 1000}), seed=1)
    for _ in range(5):
        async with open_client(relay.address, "echo") as client:
            assert await client.request(b"x" * 600, timeout=TIMEOUT) == b"x" * 600
    stats = relay.stats.forward
    assert stats.bytes == 3000 and stats.resets == stats.closes == 0
    assert relay.stats.connections == 5


async def test_delay_is_a_lower_bound_on_each_round_trip(echo_server: Server, start_relay: StartRelay) -> None:
    """Only a lower bound: the configured delay, each way. Nothing about speed."""
    delay = 0.02
    relay = await start_relay(echo_server.address, forward=Impairments(delay=delay, jitter=0.005), seed=1)
    async with open_client(relay.address, "echo") as client:
        for i in range(5):
            message = b"ping %d" % i
            sent_at = trio.current_time()
            assert await client.request(message, timeout=TIMEOUT) == message
            assert trio.current_time() - sent_at >= 2 * (delay - 0.005)
    fwd, back = relay.stats.forward, relay.stats.backward
    assert fwd.bytes == back.bytes == sum(len(b"ping %d" % i) for i in range(5))


# -- 4. datagrams, seeded ----------------------------------------------------------------------


def probes(n: int, size: int = 32) -> list[bytes]:
    """`n` distinct datagrams of `size` bytes, each starting with its number."""
    rng = random.Random(n)
    return [(b"%06d " % i) + rng.randbytes(size - 7) for i in range(n)]


async def exchange(address: Address, messages: list[bytes], *, batch: int = 20,
                   settle: float = 0.0) -> list[tuple[float, bytes]]:
    """Send each message from one client socket, in batches, letting everything else run
    between batches; wait `settle` s for delayed packets. Returns every reply, with the
    trio time it arrived, in arrival order."""
    replies: list[tuple[float, bytes]] = []
    async with open_client(address, "echo") as client:
        sock = message_channel(client)
        async with trio.open_nursery() as nursery:

            async def receive() -> None:
                while True:
                    datagram = await sock.receive()
                    replies.append((trio.current_time(), datagram.data))

            nursery.start_soon(receive)
            for at in range(0, len(messages), batch):
                for message in messages[at : at + batch]:
                    await sock.send(message)
                await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(settle)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    return replies


@pytest.mark.transports(kind="datagram")
async def test_loss_is_binomial_and_every_missing_reply_is_a_relay_drop(
    echo_server: Server, start_relay: StartRelay
) -> None:
    n, p = 2000, 0.2
    sent = probes(n)
    relay = await start_relay(echo_server.address, forward=Impairments(loss=p), seed=11)  # both ways
    replies = [data for _, data in await exchange(relay.address, sent)]
    fwd, back = relay.stats.forward, relay.stats.backward
    assert fwd.received == n
    assert within_binomial(fwd.dropped, n, p)
    assert back.received == echo_server.stats.datagrams == n - fwd.dropped  # all that got there was answered
    assert within_binomial(back.dropped, back.received, p)
    assert n - len(replies) == fwd.dropped + back.dropped
    assert len(set(replies)) == len(replies) and set(replies) <= set(sent)  # nothing else changed


@pytest.mark.transports(kind="datagram")
async def test_loss_burst_drops_in_bursts(echo_server: Server, start_relay: StartRelay) -> None:
    n, enter, leave = 2000, 0.05, 0.3
    sent = probes(n)
    relay = await start_relay(echo_server.address, forward=Impairments(loss_burst=(enter, leave)),
                              backward=Impairments(), seed=2)
    answered = {int(data[:6]) for _, data in await exchange(relay.address, sent)}
    lost = [i not in answered for i in range(n)]
    assert sum(lost) == relay.stats.forward.dropped
    runs = [len(m.group()) for m in re.finditer("1+", "".join("1" if x else "0" for x in lost))]
    # long-run loss p / (p + r) = 14 %; runs geometric with mean 1 / r = 3.3 (loosely)
    assert 0.05 < sum(lost) / n < 0.3
    assert 2 < sum(runs) / len(runs) < 5


@pytest.mark.transports(kind="datagram")
async def test_duplicates_the_client_sees_are_the_relays(echo_server: Server, start_relay: StartRelay) -> None:
    n = 2000
    sent = probes(n)
    relay = await start_relay(echo_server.address, forward=Impairments(duplicate=0.1),
                              backward=Impairments(duplicate=0.05), seed=2)
    copies = Counter(data for _, data in await exchange(relay.address, sent))
    fwd, back = relay.stats.forward, relay.stats.backward
    assert within_binomial(fwd.duplicated, n, 0.1)
    assert back.received == n + fwd.duplicated  # a duplicated request is answered twice
    assert within_binomial(back.duplicated, back.received, 0.05)
    assert set(copies) == set(sent)
    assert sum(copies.values()) - n == fwd.duplicated + back.duplicated


def bits_differing(a: bytes, b: bytes) -> int:
    assert len(a) == len(b)
    return sum(bin(x ^ y).count("1") for x, y in zip(a, b))


@pytest.mark.transports(kind="datagram")
@pytest.mark.parametrize("direction", ["forward", "backward"])
async def test_corrupted_replies_differ_in_exactly_one_bit(
    echo_server: Server, start_relay: StartRelay, direction: str
) -> None:
    n, p = 1000, 0.1
    sent = probes(n)
    settings = {direction: Impairments(corrupt=p), "backward" if direction == "forward" else "forward": Impairments()}
    relay = await start_relay(echo_server.address, seed=4, **settings)
    replies = [data for _, data in await exchange(relay.address, sent)]
    assert len(replies) == n  # nothing lost, nothing reordered: reply i answers request i
    flips = [bits_differing(a, b) for a, b in zip(sent, replies)]
    assert set(flips) <= {0, 1}
    stats = getattr(relay.stats, direction)
    assert sum(flips) == stats.corrupted
    assert within_binomial(stats.corrupted, n, p)


@pytest.mark.transports(kind="datagram")
async def test_reorder_lets_later_datagrams_pass(echo_server: Server, start_relay: StartRelay) -> None:
    n, p = 1000, 0.1
    sent = probes(n)
    relay = await start_relay(echo_server.address, forward=Impairments(reorder=p), backward=Impairments(), seed=6)
    order = [int(data[:6]) for _, data in await exchange(relay.address, sent, settle=0.05)]
    assert sorted(order) == list(range(n))  # held back, never lost
    assert within_binomial(relay.stats.forward.reordered, n, p)
    overtaken = sum(1 for i, seq in enumerate(order) if seq < max(order[: i + 1]))
    assert 0 < overtaken <= relay.stats.forward.reordered


@pytest.mark.transports(kind="datagram")
async def test_same_seed_same_decisions_other_seed_differs(echo_server: Server, start_relay: StartRelay) -> None:
    sent = probes(500)
    forward = Impairments(loss=0.1, duplicate=0.05, corrupt=0.05)
    backward = Impairments(loss=0.1, duplicate=0.05)
    outcomes = []
    for seed in (7, 7, 8):
        relay = await start_relay(echo_server.address, forward=forward, backward=backward, seed=seed)
        replies = Counter(data for _, data in await exchange(relay.address, sent))
        stats = relay.stats.as_dict()
        assert stats["forward"]["dropped"] > 0 and stats["forward"]["corrupted"] > 0  # type: ignore[index]
        outcomes.append((stats, replies))
    # the same messages got through, twice, corrupted in the same bit, and nothing else
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] != outcomes[2][0]
    assert outcomes[0][1] != outcomes[2][1]


@pytest.mark.transports(kind="datagram")
async def test_rate_limit_drops_from_a_full_queue_and_never_goes_faster(
    echo_server: Server, start_relay: StartRelay
) -> None:
    rate, queue, size, n = 20_000, 2_000, 200, 100  # 10 ms per datagram; 10 fit in the queue
    relay = await start_relay(echo_server.address, forward=Impairments(rate=rate, queue=queue),
                              backward=Impairments(), seed=1)
    started = trio.current_time()
    replies = await exchange(relay.address, probes(n, size), settle=0.3)
    fwd = relay.stats.forward
    assert fwd.queue_dropped > 0
    assert fwd.passed + fwd.queue_dropped == n
    assert len(replies) == fwd.passed
    # a lower bound, not a speed: the link carries at most `rate` bytes per second
    assert replies[-1][0] - started >= fwd.passed * size / rate


# -- 5. unix datagram senders with no address ---------------------------------------------------


@pytest.mark.transports(kind="datagram", target="unix")
async def test_unbound_unix_sender_is_counted_and_the_relay_keeps_working(
    relay: Relay, echo_server: Server
) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as unbound:  # never binds: no address
        unbound.sendto(b"who am I?", relay.address.unix_sockaddr())
    await eventually(lambda: relay.stats.unanswerable >= 1, timeout=TIMEOUT, interval=0.001)
    async with open_client(relay.address, "echo") as client:
        assert await client.request(b"still here", timeout=TIMEOUT) == b"still here"
    assert relay.stats.unanswerable == 1
    assert relay.stats.forward.received == 1  # the unanswerable one was not passed on
    assert echo_server.stats.datagrams == 1 and echo_server.stats.unanswerable == 0


@pytest.mark.transports(kind="datagram", target="unix")
async def test_a_client_that_stops_reading_holds_up_only_itself(
    relay: Relay, echo_server: Server
) -> None:
    """Unix datagram senders block when the receiver's queue is full. A client that sends
    and never reads must not stop the relay from answering anyone else."""
    lazy = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    lazy.bind("")
    lazy.setblocking(False)
    with lazy:
        def sent() -> bool:
            try:
                lazy.sendto(b"x" * 100, relay.address.unix_sockaddr())
            except BlockingIOError:  # its queue is full: let the relay read
                return False
            return True

        for _ in range(200):  # far more replies than its receive queue holds
            await eventually(sent, timeout=TIMEOUT, interval=0.001)
            await trio.sleep(0)
        await trio.testing.wait_all_tasks_blocked()
        async with open_client(relay.address, "echo") as client:
            assert await client.request(b"anyone?", timeout=2) == b"anyone?"


# -- 7. the real `netlab relay` process ------------------------------------------------------------


def summary_rows(text: str) -> dict[str, list[int]]:
    """The relay summary's rows: direction -> counts (received, passed, dropped, ...)."""
    rows = {}
    for line in text.splitlines():
        cells = line.split()
        if cells and cells[0] in ("forward", "backward") and all(c.isdigit() for c in cells[1:]) and len(cells) > 1:
            rows[cells[0]] = [int(c) for c in cells[1:]]
    return rows


def stop(proc: subprocess.Popen, signum: int) -> tuple[int, str, str]:
    proc.send_signal(signum)
    try:
        out, err = proc.communicate(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"netlab relay did not exit within {STOP_TIMEOUT} s of {signal.Signals(signum).name}")
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.process
def test_relay_process_udp_loss_and_summary_on_sigint() -> None:
    with serving("udp:127.0.0.1:0", "sum") as served:
        proc = start(["relay", "--listen", "udp:127.0.0.1:0", "--to", served.address, "--loss", "0.3/0",
                      "--seed", "5"])
        try:
            line = read_line(proc)
            assert re.fullmatch(rf"listening udp:127\.0\.0\.1:\d+  to={re.escape(served.address)}  seed=5  "
                                rf"max-connections=1024 buffer=262144 max-peers=1024 peer-queue=256", line), line
            relay_at = inet(line.split()[1])
            answered = set()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(IO_TIMEOUT)
                for i in range(50):
                    s.sendto(b"%d 1000" % i, relay_at)
                s.settimeout(1.0)
                try:
                    while len(answered) < 50:
                        answered.add(int(s.recv(100)) - 1000)
                except TimeoutError:
                    pass
            assert answered <= set(range(50))
            code, _, err = stop(proc, signal.SIGINT)
        finally:
            finish(proc)
    assert code == 0, err
    assert_clean(err)
    assert "relay summary" in err
    assert "kernel dropped → 0 before the relay read them" in err  # SO_RXQ_OVFL, on its own sockets
    rows = summary_rows(err)
    # received, passed, dropped, queue dropped, duplicated, reordered, corrupted, bytes
    assert rows["forward"][:3] == [50, len(answered), 50 - len(answered)]
    assert rows["backward"][:3] == [len(answered), len(answered), 0]
    assert 0 < 50 - len(answered) < 50


def assert_clean(text: str) -> None:
    assert "Traceback" not in text, text
    assert "…" not in text, text  # a piped summary is not cut to 80 columns


@pytest.mark.process
def test_relay_process_tcp_slice_half_close_and_sigterm(netlab_dir: Path) -> None:
    with serving(f"unix:{netlab_dir}/s.sock", "echo") as served:
        proc = start(["relay", "-l", "tcp:127.0.0.1:0", "--to", served.address, "--slice", "1:10", "--delay", "2"])
        try:
            line = read_line(proc)
            assert line.startswith("listening tcp:127.0.0.1:") and f"to={served.address}" in line
            message = bytes(range(256)) * 20
            with socket.create_connection(inet(line.split()[1]), timeout=IO_TIMEOUT) as s:
                s.settimeout(IO_TIMEOUT)
                s.sendall(message)
                s.shutdown(socket.SHUT_WR)  # passes through: the echo server closes after it
                received = b""
                while chunk := s.recv(65536):
                    received += chunk
            assert received == message
            code, _, err = stop(proc, signal.SIGTERM)
        finally:
            finish(proc)
    assert code == 0, err
    assert_clean(err)
    rows = summary_rows(err)
    assert rows["forward"][-1] == rows["backward"][-1] == len(message)  # bytes, each way
    assert rows["forward"][1] >= len(message) / 10  # sliced into writes of at most 10 bytes
    assert "connections 1, upstream failures 0" in err


@pytest.mark.process
def test_relay_process_kinds_differ_exits_2_cleanly() -> None:
    result = run(["relay", "--listen", "tcp:127.0.0.1:0", "--to", "udp:127.0.0.1:9"])
    assert result.returncode == 2, result
    assert result.stderr == ("netlab: error: a relay joins transports of the same kind: tcp is a stream transport, "
                             "udp is a datagram transport\n")
    assert result.stdout == ""


RELAY_USAGE_ERRORS = {
    "loss above 1": (["--loss", "2"], "loss is a probability: between 0 and 1, not 2"),
    "slice without MAX": (["--slice", "5"], "slice takes two values A:B, not '5'"),
    "slice MIN above MAX": (["--slice", "5:2"], "slice MIN:MAX needs 1 <= MIN <= MAX, not 5:2"),
    "loss not a number": (["--loss", "0.1/x"], "loss takes a number, not 'x'"),
    "jitter over delay": (["--delay", "1", "--jitter", "5"], "jitter (5 ms) cannot exceed delay (1 ms)"),
    "kinds differ": (["--to", "udp:127.0.0.1:9"], "tcp is a stream transport, udp is a datagram transport"),
    "loss on a stream": (["--loss", "0.1"], "loss: a stream relay cannot lose"),
    "slice on datagrams": (["--listen", "udp:127.0.0.1:0", "--to", "udp:127.0.0.1:9", "--slice", "1:5"],
                           "slice: these apply to stream transports only"),
    "bad listen address": (["--listen", "tcp:127.0.0.1:99999"], "out of range"),
}


@pytest.mark.parametrize("case", list(RELAY_USAGE_ERRORS))
def test_relay_usage_error_exits_2(case: str) -> None:
    extra, words = RELAY_USAGE_ERRORS[case]
    args = ["relay", "--listen", "tcp:127.0.0.1:0", "--to", "tcp:127.0.0.1:9"]
    for option, value in zip(extra[::2], extra[1::2]):
        if option in args:
            args[args.index(option) + 1] = value
        else:
            args += [option, value]
    result = invoke(args)
    assert result.exit_code == 2, result.output
    assert words in " ".join(re.sub(r"[\u2500-\u257f]", " ", result.output).split()), result.output
    assert "relay summary" not in result.output
    assert_no_traceback(result)


def test_relay_help_lists_impairments_with_forward_backward() -> None:
    result = invoke(["relay", "--help"])
    assert result.exit_code == 0
    for option in ("--loss", "--loss-burst", "--duplicate", "--reorder", "--corrupt", "--delay", "--jitter",
                   "--rate", "--queue", "--slice", "--reset-after", "--close-after", "--seed"):
        assert option in result.output, option
    assert "FORWARD/BACKWARD" in " ".join(result.output.split())


async def test_a_client_reset_costs_its_connection_not_the_relay(nursery: trio.Nursery) -> None:
    """A client that closes with replies unread sends RST; the relay's reader of it then fails
    (from inside a nursery, as an exception group). Only that connection ends."""
    server = await nursery.start(serve, "echo", "tcp:127.0.0.1:0")
    relay = await nursery.start(partial(run_relay, "tcp:127.0.0.1:0", server.address))
    sock = trio.socket.socket()
    await sock.connect(("127.0.0.1", relay.address.port))
    await sock.send(b"hello")
    await trio.lowlevel.wait_readable(sock)  # the echo is here, and stays unread
    sock.close()  # unread data: the kernel resets the connection
    await trio.testing.wait_all_tasks_blocked()
    async with open_client(relay.address, "echo") as client:
        assert await client.request(b"again", timeout=10) == b"again"
    assert relay.stats.connections == 2
