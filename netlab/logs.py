"""Logging that an attacker cannot turn into a flood of log lines.

A server under attack would otherwise log a line per refused connection, per dropped
datagram, per failed send: tens of thousands of lines in seconds, and a full traceback
every 0.1 s while it is out of file descriptors. Two filters stop that, attached to the
loggers themselves (so they work with any handler, the CLI's or pytest's):

* `RepeatSummary` lets the first record of each kind through (same logger, level and
  message template, whatever its arguments), holds back the repeats for `window` seconds,
  and adds to the next one it lets through how many it held back:
  ``... (and 19,999 more like this in the last 10 s)``.
* `AcceptErrorSummary`, on trio's ``serve_listeners`` logger: an accept that fails for
  lack of file descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM) logs one line, without the
  traceback, per episode; an episode ends when no such failure came for a second.

Both read `time.monotonic` unless given another ``clock`` (a test's fake one).
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable

#: seconds a kind of record is summarised over
WINDOW = 10.0
#: ``extra={RATE_LIMITED: True}`` on a record whose caller limits its rate itself: not summarised
RATE_LIMITED = "netlab_rate_limited"


class RepeatSummary(logging.Filter):
    """Let one record of each kind through per `window` seconds; count the rest, and say so."""

    def __init__(self, window: float = WINDOW, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        # kind -> (when the one let through was, records held back since)
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def reset(self) -> None:
        self._seen.clear()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, RATE_LIMITED, False):
            return True
        kind = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        shown, held = self._seen.get(kind, (-self.window, 0))
        if now - shown < self.window:
            self._seen[kind] = (shown, held + 1)
            return False
        if held:
            record.msg = f"{record.msg} (and {held:,} more like this in the last {now - shown:.0f} s)"
        self._seen[kind] = (now, 0)
        if len(self._seen) > 1024:  # message templates are few; this only bounds the dict
            self._seen.clear()
        return True


_OUT_OF_DESCRIPTORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class AcceptErrorSummary(logging.Filter):
    """trio's serve_listeners logs every failed accept with a traceback, and retries every
    0.1 s: while out of file descriptors, that is ten tracebacks a second. One line per
    episode instead."""

    def __init__(self, gap: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.gap = gap
        self.clock = clock
        self._last = -gap

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, OSError) or exc.errno not in _OUT_OF_DESCRIPTORS:
            return True
        now = self.clock()
        first = now - self._last > self.gap
        self._last = now
        if not first:
            return False
        record.msg = ("out of file descriptors (%s: %s): not accepting new connections, retrying every 0.1 s; "
                      "the connections already open are served")
        record.args = (errno.errorcode.get(exc.errno or 0, "?"), exc.strerror)
        record.exc_info = None
        record.exc_text = None
        return True


_SUMMARIES: list[RepeatSummary] = []


def summarised(logger: logging.Logger) -> logging.Logger:
    """`logger`, with its repeats summarised (once, however often it is called)."""
    if not any(isinstance(f, RepeatSummary) for f in logger.filters):
        summary = RepeatSummary()
        _SUMMARIES.append(summary)
        logger.addFilter(summary)
    return logger


def forget_repeats() -> None:
    """Start every summary afresh, as if nothing had been logged (for tests, which each
    expect their own first warning to be logged)."""
    for summary in _SUMMARIES:
        summary.reset()


def summarise_accept_errors() -> None:
    """Put `AcceptErrorSummary` on trio's serve_listeners logger (once)."""
    logger = logging.getLogger("trio.serve_listeners")
    if not any(isinstance(f, AcceptErrorSummary) for f in logger.filters):
        logger.addFilter(AcceptErrorSummary())
