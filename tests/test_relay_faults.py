"""Faults the impairment relay must survive, like the server's (``test_faults.py``): each
on every transport it applies to, each followed by a fresh client through the same relay,
which must be answered. A client's fault ends that client's connection, never the relay
(before, a reset reached the relay's handler inside an ExceptionGroup, escaped
``serve_listeners``, and the relay exited with a traceback).

The relay runs in the test's nursery: if it died, its exception would end the test.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from netlab import errors
from netlab.experiments.relay import PEER_QUEUE, STREAM_BUFFER, Relay
from netlab.runner import open_client
from netlab.transports import Connection, Transport, send_data, send_eof, socket_of

from conftest import StartServer
from heap import Heap
from helpers import eventually, framed, read_pieces, read_to_end, send_request
from test_process import NETLAB, ROOT, finish, inet, read_line, serving
from test_process_safety import FD_LIMIT, _low_fd_limit

TIMEOUT = 10
LINGER_0 = struct.pack("ii", 1, 0)
StartRelay = Callable[..., Awaitable[Relay]]


async def answered(relay: Relay, transport: Transport) -> None:
    """A fresh client through the relay gets its sum."""
    async with open_client(relay.address, "sum", timeout=TIMEOUT) as client:
        assert await client.request(b"40 2", timeout=TIMEOUT) == framed(b"42", transport)


async def through(netlab_relay: StartRelay, start_server: StartServer, **settings: object) -> Relay:
    server = await start_server("sum")
    relay = await netlab_relay(server, **settings)
    await answered(relay, server.transport)
    return relay


async def until_closed(relay: Relay) -> None:
    await eventually(lambda: not relay.active, timeout=TIMEOUT)


# -- connection transports (stream and seqpacket) -----------------------------------------------

CONNECTION = pytest.mark.transports(kind=("stream", "seqpacket"))


@CONNECTION
async def test_client_resets(transport: Transport, start_server: StartServer, netlab_relay: StartRelay) -> None:
    """SO_LINGER 0 then close, with requests in flight and replies unread: a RST on TCP,
    ECONNRESET for the relay's next call on a unix socket."""
    relay = await through(netlab_relay, start_server)
    for _ in range(5):
        conn = await transport.connect(relay.address)
        socket_of(conn).setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
        for _ in range(50):
            await send_request(conn, transport, b"2 3")
        await trio.testing.wait_all_tasks_blocked(0.01)
        await conn.aclose()
    await until_closed(relay)
    await answered(relay, transport)


@CONNECTION
@pytest.mark.parametrize("whole", [False, True], ids=["mid-request", "without-reading"])
async def test_client_closes_before_the_reply(transport: Transport, start_server: StartServer,
                                              netlab_relay: StartRelay, whole: bool) -> None:
    """Half a request, or a whole one, then close before the reply: in the second case the
    relay writes the reply into a closed socket (EPIPE or a reset)."""
    relay = await through(netlab_relay, start_server)
    for _ in range(5):
        conn = await transport.connect(relay.address)
        if whole:
            await send_request(conn, transport, b"2 3")
        else:
            await send_data(conn, b"2 ")
        await conn.aclose()
    await until_closed(relay)
    await answered(relay, transport)


@CONNECTION
async def test_client_half_closes_and_gets_every_reply(transport: Transport, start_server: StartServer,
                                                       netlab_relay: StartRelay) -> None:
    relay = await through(netlab_relay, start_server)
    conn = await transport.connect(relay.address)
    async with conn:
        for i in range(100):
            await send_request(conn, transport, b"%d %d" % (i, i))
        await send_eof(conn)
        if transport.boundaries:
            assert await read_pieces(conn) == [b"%d" % (2 * i) for i in range(100)]
        else:
            assert await read_to_end(conn) == b"".join(b"%d\n" % (2 * i) for i in range(100))
    await until_closed(relay)
    await answered(relay, transport)


KILLED_CLIENT = """
import socket, sys, time
family, kind, target = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
s = socket.socket(family, kind)
s.connect((target.rsplit(":", 1)[0], int(target.rsplit(":", 1)[1])) if family != socket.AF_UNIX else target)
for _ in range(200):
    s.send(b"2 3\\n" if kind == socket.SOCK_STREAM else b"2 3")
print("sent", flush=True)
time.sleep(60)
"""


@pytest.mark.transports(kind=("stream", "seqpacket"), encrypted=False)  # a plain socket client; the reset and
@pytest.mark.process
async def test_client_is_killed(transport: Transport, start_server: StartServer,  # close cases cover tls
                                netlab_relay: StartRelay) -> None:
    """A client process SIGKILLed with requests in flight and replies unread."""
    relay = await through(netlab_relay, start_server)
    address = relay.address
    target = str(address).split(":", 1)[1] if address.is_unix else f"{address.host}:{address.port}"
    family = socket.AF_UNIX if address.is_unix else (socket.AF_INET6 if ":" in str(address.host) else socket.AF_INET)
    socktype = socket.SOCK_SEQPACKET if transport.kind == "seqpacket" else socket.SOCK_STREAM
    proc = subprocess.Popen([sys.executable, "-c", KILLED_CLIENT, str(int(family)), str(int(socktype)), target],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        with trio.fail_after(TIMEOUT):
            assert await trio.to_thread.run_sync(proc.stdout.readline) == b"sent\n"  # type: ignore[union-attr]
            await eventually(lambda: relay.active >= 1)
        proc.send_signal(signal.SIGKILL)
        await trio.to_thread.run_sync(proc.wait)
    finally:
        finish(proc)
    await until_closed(relay)
    await answered(relay, transport)


@pytest.mark.transports(kind="stream")
async def test_max_connections_closes_the_next_one_and_counts_it(transport: Transport, start_server: StartServer,
                                                                 netlab_relay: StartRelay, nursery: trio.Nursery,
                                                                 netlab_dir: Path) -> None:
    server = await start_server("sum")
    relay = await netlab_relay(server)
    relay.max_connections = 2
    async with open_client(relay.address, "sum") as first, open_client(relay.address, "sum") as second:
        for client in (first, second):
            assert await client.request(b"1 1", timeout=TIMEOUT) == b"2\n"
        extra = await transport.connect(relay.address)
        async with extra:
            with contextlib.suppress(trio.BrokenResourceError, errors.TransportError):
                assert await read_to_end(extra) == b""  # closed at once, unanswered
        assert relay.stats.refused == 1
        for client in (first, second):
            assert await client.request(b"2 2", timeout=TIMEOUT) == b"4\n"
    await until_closed(relay)
    await answered(relay, transport)


@pytest.mark.transports(kind="stream")
async def test_a_client_that_does_not_read_costs_the_relay_a_bounded_buffer(
    transport: Transport, start_server: StartServer, netlab_relay: StartRelay, heap: Heap
) -> None:
    """Echo through the relay to clients that send and never read: the relay holds at most
    STREAM_BUFFER (and one read) per direction, then stops reading from the server (which
    stops reading from the relay): backpressure, not memory. Before, it held up to 64 reads
    of 64 KiB per direction, ~8 MiB per stalled connection."""
    server = await start_server("echo")
    relay = await netlab_relay(server)
    heap.mark_baseline()
    heap.start_peak()
    stalled = [await transport.connect(relay.address) for _ in range(4)]
    sent = [0] * len(stalled)

    async def flood(n: int, conn: Connection) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, errors.TransportError):
            while True:
                await send_data(conn, b"z" * 65536)
                sent[n] += 65536

    async with trio.open_nursery() as floods:
        for n, conn in enumerate(stalled):
            floods.start_soon(flood, n, conn)
        with trio.fail_after(TIMEOUT):  # until every flood is stuck: nothing moves any more
            last = None
            while last != sum(sent):
                last = sum(sent)
                await trio.sleep(0.3)
        await answered_echo(relay)
        peak = heap.peak()
        floods.cancel_scope.cancel()
    for conn in stalled:
        await conn.aclose()
    per_connection = peak / len(stalled)
    assert per_connection < 4 * (STREAM_BUFFER + 65536), f"{per_connection:.0f} bytes held per stalled client"
    await until_closed(relay)


async def answered_echo(relay: Relay) -> None:
    async with open_client(relay.address, "echo", timeout=TIMEOUT) as client:
        assert await client.request(b"still there?", timeout=TIMEOUT) == b"still there?"


# -- unix datagrams -----------------------------------------------------------------------------


@pytest.mark.transports(kind="datagram", target="unix")
async def test_datagram_client_that_never_reads_is_bounded_then_forgotten(
    transport: Transport, start_server: StartServer, netlab_relay: StartRelay
) -> None:
    """A unix-dgram client sends and never reads: the replies the relay holds for it are
    bounded (PEER_QUEUE, then dropped and counted), and when it goes, what was queued for it
    fails in a bounded number of sends; a fresh client is answered throughout."""
    relay = await through(netlab_relay, start_server)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("")
    s.setblocking(False)
    target = relay.address.unix_sockaddr()
    sent = 0

    def queue_full() -> bool:
        """Send until the relay's queue for us is full; False meanwhile, so that it runs."""
        nonlocal sent
        for _ in range(50):
            if relay.stats.queue_full:
                return True
            try:
                s.sendto(b"%d 1" % sent, target)
            except BlockingIOError:
                return False
            sent += 1
        return False

    await eventually(queue_full, timeout=TIMEOUT, interval=0.001)
    await answered(relay, transport)
    s.close()
    failures = relay.stats.send_failures
    await answered(relay, transport)
    assert relay.stats.queue_full > 0
    assert relay.stats.send_failures - failures <= 2 * PEER_QUEUE


@pytest.mark.transports(kind="datagram", target="inet")
async def test_relay_counts_what_the_kernel_dropped_before_it_read(
    transport: Transport, start_server: StartServer, netlab_relay: StartRelay
) -> None:
    """A burst faster than the relay reads: every datagram sent to it was either received
    or counted as dropped by the kernel on the relay's receive queue (SO_RXQ_OVFL)."""
    relay = await through(netlab_relay, start_server)
    assert relay.stats.kernel_dropped_forward == 0
    before = relay.stats.forward.received
    family = socket.AF_INET6 if ":" in str(relay.address.host) else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.bind((str(relay.address.host), 0))
        sent = 0
        for _ in range(4):
            for i in range(2000):  # no checkpoint: the relay cannot read meanwhile
                s.sendto(b"%d 1" % i, (relay.address.host, relay.address.port))
                sent += 1
            await trio.sleep(0.01)
        with trio.fail_after(TIMEOUT):  # until the relay has read all it will
            seen = -1
            while seen != relay.stats.forward.received:
                seen = relay.stats.forward.received
                await trio.sleep(0.2)
        # the last datagram read carried the count as of its arrival: one more settles it
        s.sendto(b"1 1", (relay.address.host, relay.address.port))
        sent += 1
        await eventually(lambda: relay.stats.forward.received != seen, timeout=TIMEOUT)
    received = relay.stats.forward.received - before
    dropped = relay.stats.kernel_dropped_forward
    assert dropped is not None and dropped > 0, "the burst did not overflow the relay's queue"
    assert received + dropped == sent
    await answered(relay, transport)


# -- the relay process: out of file descriptors ---------------------------------------------------


@pytest.mark.process
def test_relay_survives_running_out_of_file_descriptors(netlab_dir: Path) -> None:
    """With RLIMIT_NOFILE low, clients connect until the relay cannot accept (EMFILE): it
    keeps relaying for those it has, logs one line for the episode (no traceback every
    0.1 s), and accepts again once descriptors are free."""
    with serving("tcp:127.0.0.1:0", "sum") as served:
        proc = subprocess.Popen(NETLAB + ["relay", "--listen", "tcp:127.0.0.1:0", "--to", served.address],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=ROOT,
                                preexec_fn=_low_fd_limit)
        clients: list[socket.socket] = []
        try:
            target = inet(read_line(proc).split()[1])

            def client() -> socket.socket:
                s = socket.create_connection(target, timeout=5.0)
                s.sendall(b"2 3\n")
                return s

            for _ in range(FD_LIMIT):  # each costs the relay two descriptors: it runs out
                clients.append(client())
            time.sleep(1.0)  # it retries accept every 0.1 s meanwhile, ten times
            assert proc.poll() is None, "the relay died"
            assert clients[0].recv(100) == b"5\n"  # the first ones are relayed
            for s in clients:
                s.close()
            clients.clear()
            deadline = time.monotonic() + 10.0
            while True:  # it accepts again once descriptors are free
                with client() as fresh:
                    fresh.settimeout(2.0)
                    with contextlib.suppress(OSError):
                        if fresh.recv(100) == b"5\n":
                            break
                assert time.monotonic() < deadline, "the relay did not recover"
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=10.0)
        finally:
            for s in clients:
                s.close()
            finish(proc)
    text = err.decode()
    assert proc.returncode == 0, text
    assert "Traceback" not in text, text
    assert 1 <= text.count("out of file descriptors") <= 2, text
