"""Batched receives: every message already queued on a socket, in one trip through trio's scheduler.

A server that reads one datagram per trip through trio's scheduler spends most of a flood
scheduling; `receive_queued` takes what the kernel already holds (up to `BATCH`) with
non-blocking calls and waits only for the first. `readable_soon` is the optional busy-poll
(``NETLAB_SPIN_US``) a server may do before it sleeps in epoll.

The message sockets (`datagram`, `seqpacket`) and the server's stream hot path use these;
nothing here knows what a transport is, beyond naming it in an error. `BATCH`, the most one
call takes, is the contract's own default (`MessageChannel.receive_batch`), so it is defined
in `base`.
"""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Callable
from typing import TypeVar

import trio

from .base import BATCH, Transport
from .oserrors import translate_os_errors

#: Linux's SO_RXQ_OVFL (not in the socket module): with it set, every datagram received
#: carries the socket's count of datagrams dropped for a full receive queue
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)

#: how long a server looks again at a socket it just found empty before it sleeps in epoll
#: (seconds; 0: it sleeps at once). See `readable_soon`.
SPIN = float(os.environ.get("NETLAB_SPIN_US", "0")) / 1e6


def readable_soon(fd: int, budget: float) -> bool:
    """Busy-poll `fd` for up to `budget` seconds, giving the core away (sched_yield) between
    looks; True as soon as it is readable.

    Why: when the peer is on another core, the next message usually comes within a few tens
    of µs of the reply, and catching it awake saves the sleep and the wake-up, which across
    cores is most of a round trip. When the peer shares the core, sched_yield lets it run
    now (to read the reply and send the next request, or to fill the queue) instead of
    after an epoll sleep. It costs up to `budget` of CPU after each message that is not
    followed by another within it; a server with no traffic sleeps and costs nothing.
    """
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    end = time.perf_counter() + budget
    while True:
        os.sched_yield()
        if poller.poll(0):
            return True
        if time.perf_counter() >= end:
            return False


_M = TypeVar("_M")


async def receive_queued(raw: socket.socket, take: Callable[[], tuple[_M, bool]], limit: int,
                         pending: list[OSError], where: object, transport: Transport | None = None) -> list[_M]:
    """Every message already queued on `raw`, up to `limit`, waiting only for the first: one
    trip through trio's scheduler for the lot, instead of one per message. `take` makes one
    non-blocking receive: (the message, whether it is the last: end of stream). `where` and
    `transport` name the socket in an error.

    Non-blocking receives until the kernel has no more (EAGAIN) or `limit` is reached: the
    bound keeps one busy socket from starving the other tasks. It keeps trio's protocol for
    a socket call: a cancelled task receives nothing, and a batch that did not have to wait
    still yields once (shielded), so a loop around it is a fair one. A batch is taken only
    when the first receive found the queue non-empty (the reader is behind: a flood); when
    it had to wait, the queue was empty a moment before, so the one message that woke it is
    returned at once, with no further try: a ping-pong peer gets its reply as soon as
    before, for the same system calls. An error met after some messages were taken is kept
    in `pending` and raised by the next call, so none of them is lost.
    """
    await trio.lowlevel.checkpoint_if_cancelled()
    if pending:
        with translate_os_errors(where, "receive from", transport):
            raise pending.pop()
    batch: list[_M] = []
    waited = False
    spin = SPIN
    while True:
        try:
            item, last = take()
        except BlockingIOError:
            if batch:
                break
            if spin and not waited and readable_soon(raw.fileno(), spin):
                spin = 0.0
                continue
            await trio.lowlevel.wait_readable(raw)
            waited = True
            continue
        except OSError as exc:
            if not batch:
                with translate_os_errors(where, "receive from", transport):
                    raise
            pending.append(exc)
            break
        batch.append(item)
        if last or waited or len(batch) >= limit:
            break
    if not waited:
        await trio.lowlevel.cancel_shielded_checkpoint()
    return batch


__all__ = ["BATCH", "SO_RXQ_OVFL", "SPIN", "readable_soon", "receive_queued"]
