"""Line framing for stream services, with a hard limit on how much is buffered.

A stream has no message boundaries: one request may arrive in many reads, and many
requests in one read. `LineSplitter` turns arbitrary chunks back into lines:

* a line ends at ``\\n``; a ``\\r`` right before it is part of the ending, not the line;
* at end of stream (``feed(b"")``) a final line without its ending still counts;
* a line longer than ``max_line`` bytes yields one `TooLong` as soon as the limit is
  passed, and the rest of it, up to the next ``\\n``, is discarded unbuffered.

Whatever the chunking, the same bytes give the same items.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_LINE = 64 * 1024


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
        self._eof = False

    def feed(self, data: bytes) -> list[Line | TooLong]:
        """Add a chunk (``b""`` = end of stream) and return the items it completes."""
        if self._eof:
            return []
        items: list[Line | TooLong] = []
        if not data:
            self._eof = True
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
                    return items
                self._discarding = False
                start = end + 1
                continue
            piece = data[start:] if end < 0 else data[start:end]
            # the line is over the limit once its body (without the \r\n) passes max_line
            room = self.max_line + 1 - len(self._buffer)  # +1: a trailing \r may still go
            if len(piece) > room or (end >= 0 and self._body_len(piece) > self.max_line):
                items.append(TooLong(self.max_line))
                self._buffer.clear()
                if end < 0:
                    self._discarding = True
                    return items
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

    @property
    def partial(self) -> bool:
        """True while a line has begun and not ended (buffered, or being discarded)."""
        return bool(self._buffer) or self._discarding

    def _body_len(self, piece: bytes) -> int:
        n = len(self._buffer) + len(piece)
        tail = piece[-1:] if piece else self._buffer[-1:]
        return n - 1 if tail == b"\r" else n
