"""netlab check itself being stopped: the programs it started are stopped first.

A program netlab starts runs in a session of its own (so that a terminal's Ctrl-C reaches
netlab, not the program, and netlab stops it in order). The other side of that: when netlab
is stopped, nothing else stops the program. So, for ``netlab check``:

* **SIGTERM or SIGHUP** (a closed terminal, ``kill``, a CI job's timeout) is taken like a
  first Ctrl-C (`stoppable`): the check is cancelled, each program is stopped as at the end of
  a check (SIGTERM to all of it, SIGKILL a second later), and netlab exits with the
  interruption's status (130), saying which signal it was.
* **A second Ctrl-C** (or signal) while that stopping is under way cuts it short, and `run`
  then SIGKILLs every program still known (`netlab.check.program.kill_all`) before netlab
  exits.
* netlab itself is not dumpable while it checks (`not_dumpable`): a program running as the
  same user cannot open its /proc/PID/fd to write into its output, nor read its environment.
* An isolated check (`netlab.check.isolate`) needs none of this to end: its child exits when
  netlab's end of its stdin closes, however netlab ends (SIGKILL included), and takes the
  program's whole PID namespace with it.
"""

from __future__ import annotations

import ctypes
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from ..errors import Interrupted
from .program import kill_all
from .sandbox import remove_all

T = TypeVar("T")
#: prctl(2): whether a process may be dumped, or read through /proc by another of its user
PR_SET_DUMPABLE = 4
#: the signals that stop a check as Ctrl-C does
STOPPING = (signal.SIGTERM, signal.SIGHUP)


class Stopped(Interrupted):
    """netlab check was stopped by a signal (the CLI exits 130); the programs were stopped."""


async def stoppable(work: Callable[[], Awaitable[T]]) -> T:
    """`work()`, cancelled if SIGTERM or SIGHUP arrives meanwhile (its clean-up runs as for a
    Ctrl-C). Raises: Stopped, naming the signal."""
    got: list[int] = []
    result: list[T] = []
    with trio.open_signal_receiver(*STOPPING) as signals:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                async for signum in signals:
                    got.append(signum)
                    nursery.cancel_scope.cancel()
                    return

            async def main() -> None:
                result.append(await work())
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            nursery.start_soon(main)
    if got:
        raise Stopped(f"stopped by {signal.Signals(got[0]).name}: the programs under test were stopped first")
    return result[0]


def not_dumpable() -> None:
    """Make this process undumpable: its /proc/PID/fd, mem and environ then open only to a
    process with CAP_SYS_PTRACE, never to a program netlab runs, even as the same user (which
    could otherwise write into netlab's stdout, or read its environment)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def run(work: Callable[[], Awaitable[T]]) -> T:
    """``trio.run(work)`` for netlab check: `stoppable`, and whatever ends it (a second Ctrl-C
    during the clean-up included), every program netlab started and has not stopped is
    SIGKILLed, and every private directory made for one removed, before this returns or
    raises. netlab is made `not_dumpable` first."""
    not_dumpable()
    try:
        return trio.run(stoppable, work)
    except Stopped as exc:
        print(f"netlab: {exc}", file=sys.stderr, flush=True)
        raise
    finally:
        kill_all()
        remove_all()


__all__ = ["STOPPING", "Stopped", "not_dumpable", "run", "stoppable"]
