"""A connection's idle, stalled-writer and request timeouts: one cancel scope for its whole
life (`Deadline`), and what the server counts and logs when it closes a connection."""

from __future__ import annotations

import trio

from .context import Serving, log


class Deadline:
    """A connection's idle and stalled-writer timeouts: one cancel scope for its whole life.

    What it stands for is a fresh ``move_on_after(idle_timeout)`` around every receive and
    every send that waits. That costs two cancel scopes per message, and entering and
    leaving one costs trio several µs: measured, more than half of the rest of an echo's
    cost (see benchmarks/RESULTS.md). Instead, `arm` is called before each receive and
    before each send that has to wait: it leaves the deadline alone while it is at least
    ``idle_timeout`` away, and otherwise moves it ``idle_timeout + slack`` ahead. A busy
    connection moves it once every `slack` seconds rather than once per message. A
    connection is closed no sooner than ``idle_timeout`` after the wait began, as before, and
    at most `slack` (1/32 of ``idle_timeout``) later. `sending` says which wait it was.

    The request timeout shares the scope: `request` is told after each read whether a
    request is under way (begun, not ended); the first such read sets `request_due`
    ``request_timeout`` ahead, a read that ends a request clears it, and the scope's
    deadline is the sooner of the two. A byte now and then keeps a connection from being
    idle, but not a request from being due.

    When the scope has closed the connection, `report` counts and logs which timeout it was.
    """

    __slots__ = ("scope", "sending", "request_due", "_idle", "_slack", "_deadline", "_request_timeout")

    def __init__(self, idle_timeout: float, request_timeout: float = float("inf")) -> None:
        self._idle = idle_timeout
        self._slack = idle_timeout / 32
        self._deadline = trio.current_time() + idle_timeout + self._slack
        self._request_timeout = request_timeout
        self.scope = trio.CancelScope(deadline=self._deadline)
        self.sending = False
        self.request_due: float | None = None

    def arm(self) -> None:
        now = trio.current_time()
        if now + self._idle > self._deadline:
            self._deadline = now + self._idle + self._slack
            due = self.request_due
            self.scope.deadline = self._deadline if due is None or due > self._deadline else due

    def request(self, pending: bool, ended: bool) -> None:
        """After a read: `pending` says a request is under way, `ended` that one (at least)
        ended in this read, so a request still pending began in it."""
        if self.request_due is not None and (ended or not pending):
            self.request_due = None
            self.scope.deadline = self._deadline
        if pending and self.request_due is None:
            self.request_due = trio.current_time() + self._request_timeout
            self.scope.deadline = min(self._deadline, self.request_due)

    def report(self, server: Serving) -> None:
        """Count and log, in `server`'s stats, the connection this deadline closed."""
        if self.request_due is not None and trio.current_time() >= self.request_due:
            server.stats.request_timeouts += 1
            log.info("closed a connection whose request was not complete %g s after its first byte "
                     "(request-timeout)", server.limits.request_timeout)
        elif self.sending:
            server.stats.stalled_closed += 1
            log.info("closed a connection that did not read its replies for %g s", server.limits.idle_timeout)
        else:
            server.stats.idle_closed += 1
            log.info("closed a connection that sent nothing for %g s (idle-timeout)", server.limits.idle_timeout)
