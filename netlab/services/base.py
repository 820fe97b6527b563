"""The contract every service core follows. Services are sans-IO: bytes in, bytes out.

A service never touches a socket or trio. Adapters in `netlab.server` drive it:

* on a **stream** transport, the adapter makes one `Session` per connection with
  `Service.new_session()`, feeds it every chunk it reads with `Session.receive_data`, and
  writes whatever that returns. ``receive_data(b"")`` means the peer closed its sending
  side (end of stream); the session returns its last words and is finished.
  A service whose requests can be left half-sent says so: `Session.pending` counts the
  bytes of a request that has begun and not ended, and `Service.framing` says what ends
  one. Services have no clocks: with quiet framing the adapter calls `Session.flush` once
  ``framing.silence`` seconds have passed with nothing read (as h11 leaves timeouts to
  its caller), and it is the adapter that tells a waiting client what to do.
* on a **datagram** transport, the adapter calls `Service.handle_datagram` once per
  datagram and sends back the returned datagram (``None`` means: no reply).

The client side of a service's framing lives here too (`ReplyReader`), so that a generic
client can tell where one reply ends without knowing which service it talks to.
"""

from __future__ import annotations

import abc
from collections import deque

from .framing import Framing

#: bytes of replies a session builds in one call. A short request can have a long reply
#: (sum: ``1e9998 1``, 9 bytes, is answered by 10,000), so one read full of such requests
#: would otherwise be answered with hundreds of megabytes at once. A session that reaches
#: the budget stops, keeps the requests it has not answered, and answers them in `resume`
#: once the adapter has written what it has (a reply that starts below the budget is
#: finished, so a call returns at most the budget plus one reply).
REPLY_BUDGET = 64 * 1024


class Session(abc.ABC):
    """One stream connection's worth of protocol state."""

    @abc.abstractmethod
    def receive_data(self, data: bytes) -> bytes:
        """Take bytes read from the peer; return bytes to write back (may be empty).

        ``data == b""`` signals end of stream. Must never raise on any input: bad input is
        answered in-band (for example ``ERR <reason>``). Returns at most about
        `REPLY_BUDGET` bytes: when it returns that many or more, the adapter writes them,
        then calls `resume` for the rest, before it reads again.
        """

    def pending(self) -> int:
        """Bytes of a request that has begun and not ended yet (0: none, or no requests)."""
        return 0

    def head(self, limit: int) -> bytes:
        """The first `limit` bytes of that request, for a log line."""
        return b""

    def flush(self) -> bytes:
        """The adapter's word that ``framing.silence`` s passed with nothing read: end the
        pending request now; return the reply (may be empty). Must never raise."""
        return b""

    def resume(self) -> bytes:
        """Replies to requests already received that the last call left for later (it
        stopped at `REPLY_BUDGET`); b"" once every request is answered. The same budget
        applies to each call."""
        return b""


class ReplyReader(abc.ABC):
    """Client-side framing: splits the bytes a server sends into replies."""

    @abc.abstractmethod
    def expect(self, request: bytes) -> int:
        """Register a request that was sent; return how many replies it will produce."""

    @abc.abstractmethod
    def feed(self, data: bytes) -> list[bytes]:
        """Take bytes from the server; return the replies completed by them, in order."""


class Service(abc.ABC):
    """A protocol core. Subclasses set `name`, `summary` and `example`."""

    name: str = ""
    summary: str = ""
    #: a request and the reply it gets, for help texts
    example: tuple[str, str] = ("", "")
    #: False for a sink (discard): no request is ever answered, so clients must not wait
    replies: bool = True
    #: where a request ends on a stream; None for a service without requests to frame (echo
    #: answers every byte as it comes, discard none)
    framing: Framing | None = None
    #: the keyword options its constructor takes besides ``max_line`` (`get_service` checks)
    options: tuple[str, ...] = ()

    def __init__(self, max_line: int | None = None) -> None:
        """`max_line`: bytes one request may have, for a service that buffers requests
        (each subclass keeps what it needs)."""

    def describe(self, *, stream: bool) -> str:
        """The service's settings for a startup line (``framing=line accept=strict``), on a
        stream or on messages; "" when it has none."""
        return ""

    @abc.abstractmethod
    def new_session(self) -> Session:
        """State for one new stream connection."""

    @abc.abstractmethod
    def handle_datagram(self, data: bytes) -> bytes | None:
        """Answer one datagram. Must never raise."""

    @abc.abstractmethod
    def encode_request(self, message: bytes, *, stream: bool) -> bytes:
        """Turn a user's message into what goes on the wire (e.g. add the line ending)."""

    @abc.abstractmethod
    def new_reply_reader(self) -> ReplyReader:
        """Client-side framing for replies on a stream."""

    def is_error(self, reply: bytes) -> bool:
        """Whether `reply` is the service refusing a request in-band (``netlab send`` exits 1).
        A service whose replies are the requests themselves (echo) never refuses."""
        return False


class LengthReplyReader(ReplyReader):
    """Each request is answered by exactly as many bytes as it had (echo)."""

    def __init__(self) -> None:
        self._pending: deque[int] = deque()
        self._buffer = bytearray()

    def expect(self, request: bytes) -> int:
        self._pending.append(len(request))
        return 1

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        replies = []
        while self._pending and len(self._buffer) >= self._pending[0]:
            n = self._pending.popleft()
            replies.append(bytes(self._buffer[:n]))
            del self._buffer[:n]
        return replies


class LineReplyReader(ReplyReader):
    """Each request line is answered by one reply line (sum, and most text protocols)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def expect(self, request: bytes) -> int:
        return max(1, request.count(b"\n"))

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        replies = []
        while (end := self._buffer.find(b"\n")) >= 0:
            replies.append(bytes(self._buffer[: end + 1]))
            del self._buffer[: end + 1]
        return replies
