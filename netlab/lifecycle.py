"""Running a long-lived task until a signal stops it, written once for `netlab serve`,
`netlab relay` and `netlab raw --listen`.

The rule: the first SIGINT (Ctrl-C) or SIGTERM stops the task, or, for a task that can
drain (a server), starts the drain and stops once it is done; a second signal during the
drain stops at once and raises `Interrupted` (the CLI exits 130). A task that ends by
itself (``raw --listen --count``) ends the run too.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from .errors import Interrupted

T = TypeVar("T")

logger = logging.getLogger("netlab")


async def run_until_signalled(
    start: Callable[..., Awaitable[object]],
    *,
    started: Callable[[T], None] | None = None,
    drain: Callable[[T], Awaitable[None]] | None = None,
    grace: float = 0.0,
) -> None:
    """Run `start` until it returns or a signal stops it.

    `start` is started with ``nursery.start``: it takes ``task_status`` and reports the
    value that `started` and `drain` receive. `drain` (given for a server) is awaited on
    the first signal, `grace` being what the log line promises it takes at most. Errors
    `start` raises before it reports come out of here (in trio's exception group).
    """
    stopped_by: str | None = None
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def run_then_stop(task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED) -> None:
                await start(task_status=task_status)
                nursery.cancel_scope.cancel()  # it ended by itself: stop waiting for signals

            async def drain_then_stop(value: T) -> None:
                assert drain is not None
                await drain(value)
                nursery.cancel_scope.cancel()

            value: T = await nursery.start(run_then_stop)
            if started is not None:
                started(value)
            draining = False
            async for signum in signals:
                name = signal.Signals(signum).name
                if drain is None:
                    nursery.cancel_scope.cancel()
                    break
                if draining:  # a second signal: stop now
                    logger.info("%s again: stopping now", name)
                    stopped_by = name
                    nursery.cancel_scope.cancel()
                    break
                draining = True
                logger.info("%s: draining (up to %g s for requests in flight; Ctrl-C again to stop now)",
                            name, grace)
                nursery.start_soon(drain_then_stop, value)
    if stopped_by is not None:
        raise Interrupted(f"{stopped_by} again: stopped without finishing the drain")


__all__ = ["run_until_signalled"]
