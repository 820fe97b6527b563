"""The clock a service does not have: what a stream server does about a request that has
begun and not ended.

A service is sans-IO and never waits, so it cannot tell a request that is still coming
from one that will never end. The stream handler asks `Unfinished` when to stop waiting:
with quiet framing, a silence ends the request (`Session.flush`); with a framing only the
client can end (line, eof), a request left unfinished for `HINT_AFTER` s gets one line in
the log (`Hints`) that says what the client should do, once per connection and within a
budget for the whole server, so that many stuck clients cannot flood the log.
"""

from __future__ import annotations

import logging
import socket

import trio

from ..logs import RATE_LIMITED
from ..services import Session
from ..services.framing import Framing
from ..transports import Connection, socket_of
from .admission import peer_credentials
from .context import Serving, log
from .limits import RateLimiter

#: seconds a request may wait unfinished (no newline yet) before the server logs, once for
#: that connection, what the client should do
HINT_AFTER = 1.0
#: bytes of the unfinished request the hint shows
HINT_SHOWS = 40
#: hints logged per second at most (bursts of as many); the others go to the debug log
HINTS_PER_S = 5.0


class Hints:
    """One server's hint lines, and their budget (`HINTS_PER_S`)."""

    def __init__(self, server: Serving) -> None:
        self._server = server
        self._budget = RateLimiter(HINTS_PER_S)

    def hint(self, conn: Connection, session: Session, framing: Framing) -> None:
        """Log, within the budget, that `conn`'s request has waited `HINT_AFTER` s unfinished."""
        assert framing.advice is not None  # Unfinished hints only then
        self._server.stats.hints += 1
        head, size = session.head(HINT_SHOWS), session.pending()
        shown = repr(head.decode("utf-8", "backslashreplace")) + ("..." if size > len(head) else "")
        level = logging.WARNING if self._budget.allow("hint", trio.current_time()) else logging.DEBUG
        log.log(level, "%s began a request %g s ago and has not ended it: %d byte%s so far, %s. With framing=%s a "
                "request ends at %s. To get a reply: %s",
                self._peer_name(conn), HINT_AFTER, size, "" if size == 1 else "s", shown, framing,
                framing.end, framing.advice, extra={RATE_LIMITED: True})  # by the budget: no summary

    def _peer_name(self, conn: Connection) -> str:
        """The peer's address; for a unix peer, which is usually unnamed, its pid and uid."""
        sock = socket_of(conn)
        transport = self._server.transport
        scheme = transport.scheme
        try:
            name = transport.format_peer(sock.getpeername())
        except OSError:
            name = f"a {scheme} client"
        if sock.family == socket.AF_UNIX and (creds := peer_credentials(sock)) is not None:
            who = f"pid {creds[0]}, uid {creds[1]}"
            name = f"{scheme} client ({who})" if name == "(unbound)" else f"{name} ({who})"
        return name


class Unfinished:
    """The clock a service does not have, for one connection's unfinished request.

    Before each wait for data the handler asks `wake_at` when to stop waiting if nothing
    comes: with quiet framing, ``framing.silence`` s from now (just after the last read);
    with a framing only the client can end (line, eof), `HINT_AFTER` s after the request
    began, once per connection; otherwise never (None). When that time came and a read
    finds nothing, `expired` ends the request (quiet: `Session.flush`, whose reply goes
    back) or logs the hint (`Hints.hint`).
    """

    __slots__ = ("hints", "conn", "session", "framing", "silence", "since", "hinted")

    def __init__(self, hints: Hints, conn: Connection, session: Session, framing: Framing) -> None:
        self.hints, self.conn, self.session, self.framing = hints, conn, session, framing
        self.silence = framing.silence
        self.since: float | None = None  # when the request began (its first unanswered byte was read)
        self.hinted = framing.advice is None  # a framing that ends requests itself needs no hint

    def wake_at(self) -> float | None:
        if not self.session.pending():
            self.since = None
            return None
        now = trio.current_time()
        if self.silence is not None:
            return now + self.silence
        if self.since is None:  # (the handler resets it when a reply goes: a request ended)
            self.since = now
        return None if self.hinted else self.since + HINT_AFTER

    def expired(self) -> bytes:
        if self.silence is not None:
            return self.session.flush()
        self.hinted = True
        self.hints.hint(self.conn, self.session, self.framing)
        return b""
