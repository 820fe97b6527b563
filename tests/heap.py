"""Measuring what a fault costs a server in memory, honestly.

What is measured: Python heap blocks (tracemalloc), in the test process, where the server
runs. Two figures:

* **retained**: bytes still alive, after ``gc.collect()``, that were allocated with a frame
  of the ``netlab`` package on the stack (server and netlab clients alike) since tracing
  began, after a warm-up request (`mark_baseline`). A leaked buffer, or per-connection state
  (a session, a task) leaked for every connection of a fault, shows here. What is left
  after a fault that leaks nothing, measured: 0 to 600 bytes on tcp (trio's registration
  dict, logging's level cache), about 3.5 KiB on unix sockets and with datagrams (the
  quoting cache behind unix addresses in messages), and up to 12 KiB the first time a path
  logs through ``logging`` with arguments (abc's subclass caches). All of those are filled
  once and bounded, as are the entries a server keeps on purpose (a rate-limit bucket or a
  "not reading" mark per datagram peer, at most 4096 each). The tolerance,
  `RETAINED_TOLERANCE`, is above them; so a leak of less than about 1 KiB per connection in
  a fault of ten connections would go unnoticed (the soak's descriptor and task counts
  cover what such a leak usually drags along).
  Stale entries in trio's deadline heap are not counted either: every ``move_on_after``
  leaves one (with its cancel scope) that trio itself prunes only once there are 1000 more
  of them than live deadlines; bounded, trio's, and not a leak. They only ever add to the
  figure, so `retained` has trio prune them (`prune_trio_deadlines`, through trio's public
  API, and slow under tracing) only when the figure is over the tolerance, and measures
  again.
* **peak**: the highest total of traced Python memory during the fault, above what was
  alive when it began: what the server buffered while the fault lasted. Where a transient
  allocation would dominate it (a seqpacket receive reserves room for the largest message
  a client may send, untouched, and shrinks it at once), tests sample the memory in use
  from another task instead (`sample`): what is held while the fault lasts.

What is not measured: kernel socket buffers (they are not Python memory, and the kernel
bounds them with SO_RCVBUF/SO_SNDBUF), and memory that C code allocates outside Python's
allocator.
"""

from __future__ import annotations

import gc
import logging
import sys
import tracemalloc
from pathlib import Path

import trio

import netlab

NETLAB_DIR = str(Path(netlab.__file__).resolve().parent) + "/"
NETLAB_FILES = NETLAB_DIR + "*"
#: log records are not counted: pytest's log capture keeps every record a test logged for
#: its report, so how much of them is alive depends on the tests that ran before
LOGGING_DIR = str(Path(logging.__file__).resolve().parent) + "/"
LOGGING_FILES = LOGGING_DIR + "*"
#: bytes of netlab-attributed heap a fault may leave behind (see the module docstring)
RETAINED_TOLERANCE = 16 * 1024


class Heap:
    def __init__(self) -> None:
        self.baseline = 0
        self._peak_from = 0
        self._sampled = 0

    @staticmethod
    def netlab_bytes() -> int:
        gc.collect()
        snapshot = tracemalloc.take_snapshot()
        raw = getattr(snapshot.traces, "_traces", None)  # (domain, size, frames, nframe) tuples
        if raw is None:  # the public way: the same figure, several times slower
            snapshot = snapshot.filter_traces([tracemalloc.Filter(True, NETLAB_FILES, all_frames=True),
                                               tracemalloc.Filter(False, LOGGING_FILES, all_frames=True)])
            return sum(stat.size for stat in snapshot.statistics("filename"))
        return sum(trace[1] for trace in raw
                   if any(f[0].startswith(NETLAB_DIR) for f in trace[2])
                   and not any(f[0].startswith(LOGGING_DIR) for f in trace[2]))

    def mark_baseline(self) -> None:
        """Start tracing now: what is alive already is the baseline, and is not traced.

        It is also frozen out of the garbage collector (``gc.freeze``) for the rest of the
        test, so that each later ``gc.collect()`` scans only what the fault created: quick,
        however large the test session's heap has grown."""
        gc.collect()
        gc.freeze()
        if not tracemalloc.is_tracing():
            tracemalloc.start(24)
        self.baseline = self.netlab_bytes()

    async def retained(self) -> int:
        """netlab-attributed bytes alive now, less the baseline (stale entries of trio's
        deadline heap pruned first, when the figure is over the tolerance with them)."""
        found = self.netlab_bytes() - self.baseline
        if found >= RETAINED_TOLERANCE:
            await prune_trio_deadlines()
            found = self.netlab_bytes() - self.baseline
        return found

    def start_peak(self) -> None:
        gc.collect()
        tracemalloc.reset_peak()
        self._peak_from = tracemalloc.get_traced_memory()[0]
        self._sampled = 0

    def peak(self) -> int:
        """The most traced memory alive at once since `start_peak`, above what was alive then."""
        return tracemalloc.get_traced_memory()[1] - self._peak_from

    def sample(self) -> None:
        """Note the traced memory in use now (see `sampled`)."""
        self._sampled = max(self._sampled, tracemalloc.get_traced_memory()[0] - self._peak_from)

    @property
    def sampled(self) -> int:
        """The most traced memory in use at any `sample` since `start_peak`, above what was then."""
        return self._sampled


#: stale entries left per round by `prune_trio_deadlines`, and the rounds it tries
_STALE_PER_ROUND, _ROUNDS = 3000, 20


async def prune_trio_deadlines() -> None:
    """Have trio drop the stale entries of its deadline heap now, as it does by itself later.

    trio prunes them when a scheduling round finds over 1000 more stale entries than live
    deadlines (twice the live ones, to be exact). So this leaves stale entries of its own,
    cheaply (each new deadline of one cancel scope leaves its last one stale), and yields to
    the scheduler (``trio.sleep(0)``). Each entry refers to that scope: when the references
    are gone, the heap was pruned. trio's public API only: if it ever stops pruning this
    way, the error says so, rather than its entries being counted as netlab's."""
    far = trio.current_time() + 1e6
    for _ in range(_ROUNDS):
        with trio.CancelScope(deadline=far) as scope:
            for i in range(1, _STALE_PER_ROUND):
                scope.deadline = far + i
        held = sys.getrefcount(scope)
        await trio.sleep(0)
        if held - sys.getrefcount(scope) >= _STALE_PER_ROUND:
            return
    raise RuntimeError(f"trio kept {_ROUNDS * _STALE_PER_ROUND} stale deadline entries after {_ROUNDS} "
                       f"scheduling rounds: it no longer prunes them as tests/heap.py expects")
