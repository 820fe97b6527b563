"""Framing for stream services: where one request ends, with a hard limit on what is buffered.

A stream has no message boundaries: one request may arrive in many reads, and many
requests in one read. A protocol over a stream must say where a request ends; a `Framing`
is that choice, and a splitter applies it to arbitrary chunks:

==========  ========================================================================
``line``    a request ends at ``\\n`` (the default, and what netlab's clients send)
``quiet``   at ``\\n``, or after MS milliseconds in which nothing more arrived: what a
            client that sends ``2 3`` in one ``send`` and waits assumes
``eof``     when the client half-closes (``shutdown(SHUT_WR)``): everything it sent
            is one request
==========  ========================================================================

`LineSplitter` (line and quiet) turns chunks back into lines:

* a line ends at ``\\n``; a ``\\r`` right before it is part of the ending, not the line;
* at end of stream (``feed(b"")``) a final line without its ending still counts;
* `flush` ends the line in progress now (quiet framing: the server calls it after MS of
  silence; services have no clocks);
* a line longer than ``max_line`` bytes yields one `TooLong` as soon as the limit is
  passed, and the rest of it, up to the next ``\\n``, is discarded unbuffered.

`EofSplitter` (eof) keeps everything until end of stream, under the same limit.

Whatever the chunking, the same bytes give the same items.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ServiceOptionError

DEFAULT_MAX_LINE = 64 * 1024
#: quiet framing's default silence, in seconds
DEFAULT_QUIET = 0.2
FRAMINGS = ("line", "quiet", "eof")


@dataclass(frozen=True)
class Framing:
    """Where a request ends on a stream: ``line``, ``quiet`` (after `quiet` s of silence
    too) or ``eof``. ``str()`` gives the text `parse` reads: ``line``, ``quiet:200``, ``eof``."""

    kind: str = "line"
    quiet: float = DEFAULT_QUIET  # seconds; used by quiet framing only

    def __post_init__(self) -> None:
        if self.kind not in FRAMINGS:
            raise ServiceOptionError(f"unknown framing {self.kind!r} (known: line, quiet[:MS], eof)")
        if not (math.isfinite(self.quiet) and self.quiet > 0):
            raise ServiceOptionError(f"quiet framing needs a silence of more than 0 ms, not {self.quiet * 1e3:g}")

    @classmethod
    def parse(cls, text: str) -> Framing:
        """``line``, ``eof``, ``quiet`` or ``quiet:MS`` (milliseconds; default 200).

        Raises:
            ServiceOptionError: anything else.
        """
        kind, colon, value = text.strip().partition(":")
        if kind != "quiet" and colon:
            raise ServiceOptionError(f"framing {text!r}: only quiet takes a value (quiet:MS)")
        if not colon:
            return cls(kind)
        try:
            ms = float(value.removesuffix("ms"))
        except ValueError:
            raise ServiceOptionError(f"framing {text!r}: quiet:MS takes milliseconds, e.g. quiet:200") from None
        return cls("quiet", ms / 1e3)

    def __str__(self) -> str:
        return f"quiet:{self.quiet * 1e3:g}" if self.kind == "quiet" else self.kind

    @property
    def silence(self) -> float | None:
        """Seconds of silence that end a request in progress (None: silence never does)."""
        return self.quiet if self.kind == "quiet" else None

    @property
    def end(self) -> str:
        """What ends a request, in words."""
        return {"line": "a newline (\\n)", "quiet": f"a newline (\\n) or {self.quiet * 1e3:g} ms of silence",
                "eof": "the client's half-close (end of its sending side)"}[self.kind]

    @property
    def advice(self) -> str | None:
        """What a client whose request waits should do (None: the framing ends it anyway)."""
        if self.kind == "line":
            return "end the request with \\n, or serve with --framing quiet"
        if self.kind == "eof":
            return ("half-close after the request (shutdown(SHUT_WR), which `netlab send --half-close` "
                    "does), or serve with --framing quiet")
        return None


@dataclass(frozen=True)
class Line:
    body: bytes
    ending: bytes  # b"\n" or b"\r\n"; b"" for a last line cut short by end of stream


@dataclass(frozen=True)
class TooLong:
    limit: int


class LineSplitter:
    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        if max_line < 1:
            raise ValueError("max_line must be at least 1")
        self.max_line = max_line
        self._buffer = bytearray()
        self._discarding = False
        self._skipped = 0  # bytes of an over-long line thrown away so far
        self._eof = False

    @property
    def pending(self) -> int:
        """Bytes of a line that has begun and not ended (0: none)."""
        return len(self._buffer) + self._skipped

    def head(self, limit: int) -> bytes:
        """The first `limit` bytes kept of the line in progress (for a log line)."""
        return bytes(self._buffer[:limit])

    def flush(self) -> list[Line | TooLong]:
        """End the line in progress now, as if its ``\\n`` had come (quiet framing)."""
        items: list[Line | TooLong] = []
        if self._buffer and not self._eof:
            body = bytes(self._buffer)
            items.append(Line(body[:-1] if body.endswith(b"\r") else body, b""))
        self._buffer.clear()
        self._discarding = False
        self._skipped = 0
        return items

    def feed(self, data: bytes) -> list[Line | TooLong]:
        """Add a chunk (``b""`` = end of stream) and return the items it completes."""
        if self._eof:
            return []
        items: list[Line | TooLong] = []
        if not data:
            self._eof = True
            self._skipped = 0
            if self._buffer and not self._discarding:
                body = bytes(self._buffer)
                ending = b""
                if body.endswith(b"\r"):
                    body, ending = body[:-1], b"\r\n"
                items.append(Line(body, ending) if len(body) <= self.max_line else TooLong(self.max_line))
            self._buffer.clear()
            return items
        start = 0
        while start < len(data):
            end = data.find(b"\n", start)
            if self._discarding:
                if end < 0:
                    self._skipped += len(data) - start
                    return items
                self._discarding = False
                self._skipped = 0
                start = end + 1
                continue
            piece = data[start:] if end < 0 else data[start:end]
            # the line is over the limit once its body (without the \r\n) passes max_line
            room = self.max_line + 1 - len(self._buffer)  # +1: a trailing \r may still go
            if len(piece) > room or (end >= 0 and self._body_len(piece) > self.max_line):
                items.append(TooLong(self.max_line))
                if end < 0:
                    self._skipped = len(self._buffer) + len(piece)
                    self._buffer.clear()
                    self._discarding = True
                    return items
                self._buffer.clear()
                start = end + 1
                continue
            self._buffer += piece
            if end < 0:
                return items
            body = bytes(self._buffer)
            self._buffer.clear()
            if body.endswith(b"\r"):
                items.append(Line(body[:-1], b"\r\n"))
            else:
                items.append(Line(body, b"\n"))
            start = end + 1
        return items

    def _body_len(self, piece: bytes) -> int:
        n = len(self._buffer) + len(piece)
        tail = piece[-1:] if piece else self._buffer[-1:]
        return n - 1 if tail == b"\r" else n


class EofSplitter:
    """Eof framing: everything until end of stream is one request (its last line ending,
    ``\\n`` or ``\\r\\n``, is the request's ending, as in a line). Over ``max_line`` bytes:
    one `TooLong` as soon as the limit is passed, and the rest is discarded unbuffered."""

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        if max_line < 1:
            raise ValueError("max_line must be at least 1")
        self.max_line = max_line
        self._buffer = bytearray()
        self._received = 0
        self._eof = False

    @property
    def pending(self) -> int:
        return self._received

    def head(self, limit: int) -> bytes:
        return bytes(self._buffer[:limit])

    def flush(self) -> list[Line | TooLong]:
        return []  # only end of stream ends a request

    def feed(self, data: bytes) -> list[Line | TooLong]:
        if self._eof:
            return []
        if data:
            before = self._received
            self._received += len(data)
            # +2: the request's own line ending does not count against the limit
            if self._received <= self.max_line + 2:
                self._buffer += data
                return []
            self._buffer.clear()
            return [TooLong(self.max_line)] if before <= self.max_line + 2 else []
        self._eof = True
        body, self._buffer = bytes(self._buffer), bytearray()
        over, self._received = self._received > self.max_line + 2, 0
        if over or not body:
            return []
        ending = b""
        for candidate in (b"\r\n", b"\n"):
            if body.endswith(candidate):
                body, ending = body[: -len(candidate)], candidate
                break
        return [Line(body, ending) if len(body) <= self.max_line else TooLong(self.max_line)]
