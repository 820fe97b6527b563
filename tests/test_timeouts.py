"""Timeouts, rate limits and retry queues, on trio's fake clock.

Each test here runs under pytest-trio's ``autojump_clock``: whenever every task waits, the
clock jumps to the next deadline. So a 300 s idle timeout is decided in microseconds, with
the real defaults rather than shortened ones, and to the exact virtual second: no sleep of
the test's own, and nothing that a loaded machine can make late or early (the model is
trio's own test_highlevel_serve_listeners.py).

Unix sockets only: the kernel delivers on them within the sending call, so when every task
waits, nothing is in flight that a jump could overtake (over loopback inet, delivery may
trail the call, and the clock could jump past a timeout meanwhile).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from netlab import errors, logs
from netlab.client import Client
from netlab.experiments.relay import SEND_TIMEOUT, run_relay
from netlab.runner import Limits, Server, open_client
from netlab.server.datagrams import REPLY_TIMEOUT
from netlab.transports import get_transport

from helpers import LogWatch, eventually, framed, message_channel, read_to_end, watching

StartServer = Callable[..., Awaitable[Server]]

#: where the deadline of a connection may land after the idle timeout (`Deadline`'s slack)
SLACK = 1 / 32




# -- connections: the idle, stalled-writer and request timeouts ---------------------------------


@pytest.mark.parametrize("scheme", ["unix", "unix-seq"])
async def test_a_silent_connection_is_closed_when_the_idle_timeout_is_up(
        autojump_clock: trio.testing.MockClock, netlab_server: StartServer, scheme: str) -> None:
    server = await netlab_server("sum", f"{scheme}:{{dir}}/s.sock")  # the default: 300 s
    idle = server.limits.idle_timeout
    conn = await get_transport(scheme).connect(server.address)
    async with conn:
        began = trio.current_time()
        assert await read_to_end(conn, timeout=2 * idle) == b""
        took = trio.current_time() - began
    assert idle <= took <= idle * (1 + SLACK)
    assert server.stats.idle_closed == 1 and server.stats.stalled_closed == 0


@pytest.mark.parametrize("scheme", ["unix", "unix-seq"])
async def test_a_connection_that_asks_within_the_idle_timeout_stays_open_for_an_hour(
        autojump_clock: trio.testing.MockClock, netlab_server: StartServer, scheme: str) -> None:
    server = await netlab_server("sum", f"{scheme}:{{dir}}/s.sock")
    idle = server.limits.idle_timeout
    began = trio.current_time()
    async with open_client(server.address, "sum") as client:
        n = 0
        while trio.current_time() - began < 3600:
            await trio.sleep(idle - 1)
            assert await client.request(b"%d 1" % n, timeout=5) == framed(b"%d" % (n + 1), server.transport)
            n += 1
    assert n == 13 and server.stats.idle_closed == 0


async def test_a_client_that_does_not_read_its_replies_is_closed_as_stalled(
        autojump_clock: trio.testing.MockClock, netlab_server: StartServer) -> None:
    """Echo requests, never a reply read: the server's writes wait, then it gives up on the
    connection once a write has waited the idle timeout (counted as stalled, not idle)."""
    server = await netlab_server("echo", "unix:{dir}/s.sock")
    idle = server.limits.idle_timeout
    stream = await get_transport("unix").connect(server.address)
    async with stream:
        began = trio.current_time()
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, errors.TransportError):
            while True:
                await stream.send_all(b"x" * 65536)
        took = trio.current_time() - began
    assert idle <= took <= idle * (1 + SLACK) + 1
    assert server.stats.stalled_closed == 1 and server.stats.idle_closed == 0


async def test_a_request_is_cut_off_when_the_request_timeout_is_up_however_often_bytes_come(
        autojump_clock: trio.testing.MockClock, netlab_server: StartServer) -> None:
    """Slowloris: a byte every 7 s keeps the connection from being idle (300 s), but the
    request timeout (30 s) counts from the request's first byte: closed at 30 s exactly."""
    server = await netlab_server("sum", "unix:{dir}/s.sock")
    limits = server.limits
    slow = await get_transport("unix").connect(server.address)
    async with slow:
        await slow.send_all(b"1 1\n")  # a whole request first: the timeout is per request
        assert await slow.receive_some() == b"2\n"
        await trio.sleep(100)  # and a while between requests: that is the idle timeout's business
        began = trio.current_time()
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, errors.TransportError):
            while True:
                await slow.send_all(b"1")
                with trio.move_on_after(7):
                    if await slow.receive_some() == b"":
                        break
        took = trio.current_time() - began
    assert took == pytest.approx(limits.request_timeout)
    assert server.stats.request_timeouts == 1 and server.stats.idle_closed == 0


# -- datagrams: the reply queue, the rate limit -------------------------------------------------


async def test_a_reply_the_peer_does_not_take_is_given_up_when_the_reply_timeout_is_up(
        autojump_clock: trio.testing.MockClock, netlab_server: StartServer, server_log: LogWatch) -> None:
    """A unix-dgram peer connected to the server, sending large requests and never reading
    the echoes: they fill the server's send buffer, the next reply is queued, and after
    REPLY_TIMEOUT in vain it is dropped and the peer marked as not reading. A fresh client
    is answered once the silent one is gone."""
    server = await netlab_server("echo", "unix-dgram:{dir}/s.sock")
    silent = await get_transport("unix-dgram").connect(server.address)
    async with silent:
        for _ in range(200):
            await silent.send(b"r" * 150_000)
            await trio.testing.wait_all_tasks_blocked()  # the server has read it and replied, or queued
            if server.stats.replies_queued:
                break
        assert server.stats.replies_queued, "no reply had to wait"
        queued_at = trio.current_time()
        await server_log.wait_for("it is not reading", timeout=10 * REPLY_TIMEOUT)
        took = trio.current_time() - queued_at
        assert server.stats.reply_failures >= 1 and server.stats.replies_queued == 0
    assert REPLY_TIMEOUT <= took <= REPLY_TIMEOUT + 0.05  # the queue is retried every 20 ms at most
    async with open_client(server.address, "echo") as client:
        assert await client.request(b"and me?", timeout=5) == b"and me?"


async def test_the_rate_limit_gives_a_burst_then_exactly_the_rate(
        autojump_clock: trio.testing.MockClock, netlab_server: StartServer) -> None:
    """rate_limit=5: a burst of 5 replies, then 5 a second, to the token; another peer has
    its own allowance. (unix datagrams are reliable: every count is exact.)"""
    server = await netlab_server("sum", "unix-dgram:{dir}/s.sock", limits=Limits(rate_limit=5))
    stats = server.stats

    async def burst(client: Client, n: int) -> None:
        channel = message_channel(client)
        for i in range(n):
            await channel.send(b"%d 0" % i)
        await trio.testing.wait_all_tasks_blocked()  # the server has decided on each

    async with open_client(server.address, "sum") as greedy:
        await burst(greedy, 20)
        assert (stats.datagrams, stats.rate_limited) == (20, 15)
        await trio.sleep(1.0)  # 5 tokens more
        await burst(greedy, 10)
        assert (stats.datagrams, stats.rate_limited) == (30, 20)
        await trio.sleep(0.5)  # two tokens and a half
        await burst(greedy, 3)
        assert (stats.datagrams, stats.rate_limited) == (33, 21)
        replies = [(await message_channel(greedy).receive()) for _ in range(12)]
        assert [r.data for r in replies if r is not None] == [b"%d" % i for i in (0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1)]
        async with open_client(server.address, "sum") as other:
            assert await other.request(b"1 1", timeout=1) == b"2"
    assert stats.rate_limited == 21


async def test_a_rate_below_one_a_second_answers_every_other_second(
        autojump_clock: trio.testing.MockClock, netlab_server: StartServer) -> None:
    server = await netlab_server("sum", "unix-dgram:{dir}/s.sock", limits=Limits(rate_limit=0.5))
    async with open_client(server.address, "sum") as client:
        channel = message_channel(client)
        for second in range(5):  # answered at 0, 2 and 4 s
            await channel.send(b"%d 0" % second)
            await trio.testing.wait_all_tasks_blocked()
            await trio.sleep(1.0)
        replies = [await channel.receive() for _ in range(3)]
        assert [r.data for r in replies if r is not None] == [b"0", b"2", b"4"]
    assert server.stats.rate_limited == 2


# -- logs: repeats summarised, accept errors once per episode ----------------------------------------


async def test_a_repeated_warning_is_logged_once_per_window_then_says_how_many_it_held_back(
        autojump_clock: trio.testing.MockClock, netlab_server: StartServer, server_log: LogWatch,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """50 datagrams whose replies are over the amplification cap: one warning; another
    within the window (10 s) is held back too; the next after it says how many were."""
    summary = next(f for f in logging.getLogger("netlab.server").filters if isinstance(f, logs.RepeatSummary))
    monkeypatch.setattr(summary, "clock", trio.current_time)  # the window on the fake clock
    server = await netlab_server("sum", "unix-dgram:{dir}/s.sock")
    async with open_client(server.address, "sum") as client:
        channel = message_channel(client)
        for _ in range(50):
            await channel.send(b"9e9990 1")
        await eventually(lambda: server.stats.amplification_dropped == 50)
        assert len(server_log.matching("amplification")) == 1
        await trio.sleep(logs.WINDOW * 0.9)  # within the window: held back too
        await channel.send(b"9e9990 1")
        await eventually(lambda: server.stats.amplification_dropped == 51)
        assert len(server_log.matching("amplification")) == 1
        await trio.sleep(logs.WINDOW * 0.1)  # the window is over: the next is logged, and says so
        await channel.send(b"9e9990 1")
        first, second = await server_log.wait_for("amplification", count=2)
    assert "more like this" not in first.getMessage()
    assert second.getMessage().endswith("(and 50 more like this in the last 10 s)")


def test_out_of_descriptors_is_one_line_per_episode() -> None:
    """trio retries a failed accept every 0.1 s: while out of descriptors, one line (no
    traceback); a new episode, after a second without such failures, gets its own line."""
    clock = trio.testing.MockClock()
    clock.jump(1000)
    summary = logs.AcceptErrorSummary(clock=clock.current_time)

    def failed_accept(code: int) -> logging.LogRecord:
        exc = OSError(code, "no")
        return logging.LogRecord("trio.serve_listeners", logging.ERROR, __file__, 1, "accept failed", (),
                                 (OSError, exc, None))

    first = failed_accept(errno.EMFILE)
    assert summary.filter(first)
    assert first.exc_info is None and "out of file descriptors (EMFILE: no)" in first.getMessage()
    for _ in range(30):  # three seconds of retries: the same episode
        clock.jump(0.1)
        assert not summary.filter(failed_accept(errno.EMFILE))
    assert summary.filter(failed_accept(errno.ECONNABORTED))  # another error: as trio logs it
    clock.jump(0.9)
    assert not summary.filter(failed_accept(errno.EMFILE))  # under a second's gap: the same episode
    clock.jump(1.5)
    assert summary.filter(failed_accept(errno.ENFILE))  # a new episode


# -- the relay: a send that waits in vain --------------------------------------------------------


async def test_the_relay_gives_up_a_datagram_when_the_send_timeout_is_up(
        autojump_clock: trio.testing.MockClock, nursery: trio.Nursery, netlab_dir: Path) -> None:
    """A relay in front of a unix-dgram socket that never reads: once its queue is full, a
    send waits, and after SEND_TIMEOUT in vain the datagram is given up (with any due behind
    it) and counted; datagrams passed on before that were sent."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sink, watching("netlab.relay") as relay_log:
        sink.bind(f"{netlab_dir}/sink.sock")  # never read
        queue = int(Path("/proc/sys/net/unix/max_dgram_qlen").read_text())
        relay = await nursery.start(partial(run_relay, f"unix-dgram:{netlab_dir}/r.sock",
                                            f"unix-dgram:{netlab_dir}/sink.sock"))
        async with open_client(relay.address, "echo") as client:
            channel = message_channel(client)
            for i in range(queue + 5):  # more than the sink's queue holds
                await channel.send(b"%d" % i)
            await trio.testing.wait_all_tasks_blocked()  # the relay has passed on what it could
            began = trio.current_time()
            await relay_log.wait_for("gave up", timeout=10 * SEND_TIMEOUT)
            took = trio.current_time() - began
    assert took == pytest.approx(SEND_TIMEOUT)
    stats = relay.stats
    assert stats.forward.received == queue + 5
    assert stats.send_failures >= 1
