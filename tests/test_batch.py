"""Receiving in batches (`receive_batch`), the relay's forwarding path, and seeded decisions.

Everything is counted, nothing timed: a batch takes what the kernel has queued, never more
than its bound, in the order each peer sent it; a server and a relay fed a burst deliver
all of it; and the impairers decide exactly as before batching for every seed tested.
"""

from __future__ import annotations

import hashlib
import random
import socket
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path

import trio
import trio.testing

from netlab.experiments.impair import DatagramImpairer, Impairments, StreamImpairer
from netlab.experiments.relay import run_relay
from netlab.runner import serve
from netlab.transports import listen_datagrams, open_pair, parse_address
from netlab.transports import MessageStream
from netlab.transports.base import BATCH

from helpers import eventually

TIMEOUT = 10


def unix_client(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("")  # autobind: a reply address
    sock.connect(path)
    return sock


async def test_a_batch_takes_what_is_queued_in_order_and_never_more_than_the_bound() -> None:
    # UDP, with room for every datagram sent (a unix datagram queue holds only
    # net.unix.max_dgram_qlen of them before its senders wait)
    endpoint = await listen_datagrams(parse_address("udp:127.0.0.1:0?rcvbuf=4194304"))
    async with endpoint:
        peers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
        for peer in peers:
            peer.connect(("127.0.0.1", endpoint.local.port))
        sent = 2 * BATCH + 7
        for i in range(sent):  # interleaved: peer 0, 1, 2, 0, 1, 2...
            peers[i % 3].send(b"%d %d" % (i % 3, i))
        sizes = []
        got: dict[object, list[int]] = defaultdict(list)
        with trio.fail_after(TIMEOUT):
            while sum(sizes) < sent:
                batch = await endpoint.receive_batch()
                sizes.append(len(batch))
                for message in batch:
                    _, _, seq = message.data.partition(b" ")
                    got[message.peer].append(int(seq))
        # everything queued was taken, BATCH at a time (the fairness bound), then the rest
        assert sizes == [BATCH, BATCH, 7]
        assert sorted(len(v) for v in got.values()) == [sent // 3 + (1 if k < sent % 3 else 0) for k in (2, 1, 0)]
        for seqs in got.values():
            assert seqs == sorted(seqs)  # each peer's in the order it sent them
        # a smaller bound is honoured too
        for i in range(10):
            peers[0].send(b"x")
        assert len(await endpoint.receive_batch(4)) == 4
        assert len(await endpoint.receive_batch(100)) == 6
        for peer in peers:
            peer.close()


async def test_a_batch_waits_for_the_first_datagram_then_returns_it_at_once(netlab_dir: Path) -> None:
    endpoint = await listen_datagrams(parse_address(f"unix-dgram:{netlab_dir}/w.sock"))
    async with endpoint, trio.open_nursery() as nursery:
        result: list[int] = []

        async def receive() -> None:
            result.append(len(await endpoint.receive_batch()))

        nursery.start_soon(receive)
        await trio.testing.wait_all_tasks_blocked()
        assert result == []  # nothing queued: it waits
        with unix_client(f"{netlab_dir}/w.sock") as client:
            client.send(b"one")
            client.send(b"two")
            await eventually(lambda: result, interval=0.001)
        assert result == [1]  # it had to wait: the one that woke it comes back at once
        assert [m.data for m in await endpoint.receive_batch()] == [b"two"]
        # a batch that did not have to wait still checkpoints: cancellation gets in
        with unix_client(f"{netlab_dir}/w.sock") as client:
            client.send(b"three")
            with trio.CancelScope() as scope:
                scope.cancel()
                await endpoint.receive_batch()
            assert scope.cancelled_caught
            assert [m.data for m in await endpoint.receive_batch()] == [b"three"]  # not lost


async def test_seqpacket_batch_keeps_order_and_ends_with_end_of_stream(netlab_dir: Path) -> None:
    async with open_pair(f"unix-seq:{netlab_dir}/s.sock") as pair:
        server = pair.server
        assert isinstance(server, MessageStream)
        n = BATCH + 5
        for i in range(n):
            await pair.client.send(b"%d" % i)
        await pair.client.send_eof()
        seen: list[int] = []
        ended = False
        with trio.fail_after(TIMEOUT):
            while not ended:
                batch = await server.receive_batch()
                assert 1 <= len(batch) <= BATCH
                for message in batch:
                    if message is None:
                        ended = True
                    else:
                        assert not ended, "nothing may follow the end of stream"
                        seen.append(int(message.data))
        assert seen == list(range(n))


async def test_a_datagram_server_answers_every_datagram_of_a_burst_in_order(
        nursery: trio.Nursery, netlab_dir: Path) -> None:
    server = await nursery.start(serve, "echo", f"unix-dgram:{netlab_dir}/e.sock")
    clients = [unix_client(f"{netlab_dir}/e.sock") for _ in range(4)]
    for c in clients:
        c.setblocking(False)
    per_client = 300
    replies: dict[int, list[int]] = defaultdict(list)
    with trio.fail_after(TIMEOUT):
        for i in range(per_client):
            for k, c in enumerate(clients):
                # a unix sender waits when the queue is full: it never loses
                await eventually(partial(_sent, c, b"%d" % i, lambda: _drain(clients, replies)), interval=0.001)
            if i % 50 == 0:
                _drain(clients, replies)

    def all_answered() -> bool:
        _drain(clients, replies)
        return sum(len(v) for v in replies.values()) >= 4 * per_client

    await eventually(all_answered, interval=0.001)
    assert all(replies[k] == list(range(per_client)) for k in range(4))
    assert server.stats.datagrams == 4 * per_client and server.stats.reply_failures == 0
    for c in clients:
        c.close()


def _sent(sock: socket.socket, data: bytes, meanwhile: Callable[[], None]) -> bool:
    """Send `data` if the receiver's queue has room; else do `meanwhile` and say False."""
    try:
        sock.send(data)
    except BlockingIOError:
        meanwhile()
        return False
    return True


def _drain(clients: list[socket.socket], replies: dict[int, list[int]]) -> None:
    for k, c in enumerate(clients):
        while True:
            try:
                replies[k].append(int(c.recv(100)))
            except BlockingIOError:
                break


async def test_the_relay_passes_all_of_a_burst_from_a_plain_peer(nursery: trio.Nursery, netlab_dir: Path) -> None:
    """3,000 datagrams from a plain socket through a relay with no impairment to an echo
    server: every one comes back, in order (unix datagrams: a full queue holds the sender
    back, so the count is the relay's, not the kernel's)."""
    server = await nursery.start(serve, "echo", f"unix-dgram:{netlab_dir}/s.sock")
    relay = await nursery.start(partial(run_relay, f"unix-dgram:{netlab_dir}/r.sock", server.address))
    client = unix_client(f"{netlab_dir}/r.sock")
    client.setblocking(False)
    n = 3000
    got: list[int] = []

    def drain() -> None:
        while True:
            try:
                got.append(int(client.recv(100)))
            except BlockingIOError:
                return

    with client, trio.fail_after(TIMEOUT):
        for i in range(n):
            await eventually(partial(_sent, client, b"%d" % i, drain), interval=0.001)
            if i % 100 == 0:
                drain()
                await trio.sleep(0)
        await eventually(lambda: drain() or len(got) >= n, interval=0.001)
    assert got == list(range(n))
    fwd, back = relay.stats.forward, relay.stats.backward
    assert fwd.received == fwd.passed == back.received == back.passed == n
    assert relay.stats.send_failures == 0


# -- the same seed, the same decisions ----------------------------------------------------------

#: the settings the statistical tests use (tests/test_relay.py), one set per line
DATAGRAM_SETTINGS = [
    Impairments(loss=0.2), Impairments(loss_burst=(0.05, 0.3)), Impairments(duplicate=0.1),
    Impairments(corrupt=0.1), Impairments(reorder=0.1), Impairments(loss=0.1, duplicate=0.05, corrupt=0.05),
    Impairments(rate=20_000, queue=2_000), Impairments(delay=0.005, jitter=0.002),
]
SEEDS = [1, 2, 4, 6, 7, 8, 11]


def datagram_decisions(settings: Impairments, seed: int, direction: str = "forward") -> str:
    impairer = DatagramImpairer(settings, random.Random(f"{seed}:{direction}"))
    digest = hashlib.sha256()
    for i in range(500):
        data = b"%06d" % i + bytes(range(58))
        for when, out in impairer.decide(data, i * 0.0001):
            digest.update(b"%d %.9f " % (i, when) + out)
    digest.update(repr(impairer.stats.as_dict()).encode())
    return digest.hexdigest()[:16]


def stream_decisions(settings: Impairments, seed: int) -> str:
    impairer = StreamImpairer(settings, random.Random(f"{seed}:forward"))
    digest = hashlib.sha256()
    for i in range(200):
        writes, cut = impairer.decide(bytes(range(256)) * 4, i * 0.001)
        for when, chunk in writes:
            digest.update(b"%d %.9f %d " % (i, when, len(chunk)))
        digest.update(repr(cut).encode())
    return digest.hexdigest()[:16]


#: computed with the impairers as they were before batching (main at d18ad08): the
#: decisions of every seed must not change
GOLDEN = {"datagram": "546449aad63e49b8", "stream": "ddcc097f4b3eefb4"}


def all_decisions() -> dict[str, str]:
    datagram = hashlib.sha256(" ".join(datagram_decisions(s, seed) for s in DATAGRAM_SETTINGS
                                       for seed in SEEDS).encode()).hexdigest()[:16]
    stream = hashlib.sha256(" ".join(stream_decisions(s, seed) for s in (
        Impairments(slice=(1, 1500)), Impairments(delay=0.005, jitter=0.002), Impairments(rate=2_000_000),
        Impairments(reset_after=10_000)) for seed in SEEDS).encode()).hexdigest()[:16]
    return {"datagram": datagram, "stream": stream}


def test_the_same_seed_gives_the_same_decisions_as_before() -> None:
    assert all_decisions() == GOLDEN


def test_a_transparent_impairer_passes_everything_at_once_without_drawing() -> None:
    rng = random.Random(1)
    state = rng.getstate()
    impairer = DatagramImpairer(Impairments(), rng)
    assert impairer.decide(b"abc", 5.0) == [(5.0, b"abc")]
    assert rng.getstate() == state
    stream = StreamImpairer(Impairments(), rng)
    assert stream.transparent
    stream.passed_whole(10)
    assert stream.decide(b"x" * 10, 1.0) == ([(1.0, b"x" * 10)], None)
    assert stream.stats.received == stream.stats.passed == 2 and stream.stats.bytes == 20
    assert rng.getstate() == state
