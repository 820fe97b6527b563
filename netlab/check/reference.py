"""The reference server `netlab check --client` runs a client against, misbehaving as each case asks.

It is lenient: for sum, the first two numbers in whatever the client sent, whatever separates
them (`netlab.services.lenient`), and the reply is the sum and a newline; for echo, the
bytes back. A request is complete at a newline (or a closing ``]``), at the client's end of
stream, or after `QUIET` seconds without more; read as a line (``line=True``), only a newline
or the end of the stream end it, as a line-reading server such as netlab serve waits.

How it replies to each request is the case's to say, calling a `Reply` method
(`netlab.check.client`): at once (`send`), late (`send_late`), in 1-byte pieces
(`send_in_pieces`), never while the connection stays open (`hold`), or not at all, closing
the connection (`close`). What it saw (the requests, how each ended, when the reply went, and
whether the client stopped reading a reply in pieces) is noted in `_Seen`, for the verdict.
`reference` is its one choice by the kind of socket: connections, or datagrams.
"""

from __future__ import annotations

import abc
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from ..errors import NetlabError
from ..server.unfinished import HINT_AFTER
from ..services.lenient import NotTwoNumbers, two_numbers
from ..services.sum import SumError, add
from ..transports import (
    Address, Connection, DatagramEndpoint, Listeners, Listening, get_transport, listen_connections, listen_datagrams,
    receive_data, send_data, socket_of,
)
from ..transports.base import Peer
from .judge import numbers_in

#: the request is taken as complete after this much silence
QUIET = 0.2
#: client.request_end: a request unfinished this long (no newline, no end of stream) is
#: one a line-reading server waits on for ever (netlab serve logs its hint after as long)
UNFINISHED = HINT_AFTER
#: the most bytes of one request the reference server reads (a client that sends without end
#: costs no more memory than this): what it has then is the request
KEEP = 64 * 1024
#: how long the reference server looks for connections and datagrams left over from the
#: case before (a client stopped as it connected) before the next client starts
DRAIN = 0.05


@dataclass
class _Seen:
    """What the reference server saw during one case."""

    requests: list[bytes]
    answers: list[bytes]
    #: how each request ended: "newline", "eof" (the client shut down its sending side, or
    #: closed), "quiet" (nothing more came for `QUIET` s), "long" (`KEEP` bytes came). A
    #: connection that carried no request at all (a client's probe) is not recorded
    ends: list[str] = field(default_factory=list)
    #: client.request_end: the request as it stood once it had waited `UNFINISHED` s unfinished
    unfinished: bytes | None = None
    unfinished_seen: trio.Event = field(default_factory=trio.Event)
    #: client.split_reply: bytes of the reply sent when the client closed its connection, if
    #: it stopped reading before the end of the reply; and whether it left some of them unread
    left_at: int | None = None
    left_unread: bool = False
    #: client.split_reply: the last piece has been sent (or the client was found gone)
    split_done: trio.Event = field(default_factory=trio.Event)
    #: when the first request had come in, and when a reply was first sent (trio's clock)
    asked_at: float | None = None
    replied_at: float | None = None

    def record(self, request: bytes, answer: bytes) -> None:
        if self.asked_at is None:
            self.asked_at = trio.current_time()
        self.requests.append(request)
        self.answers.append(answer)

    def replied(self) -> None:
        if self.replied_at is None:
            self.replied_at = trio.current_time()

    @property
    def connected(self) -> bool:
        return bool(self.requests)


def _answer(service: str, request: bytes) -> bytes:
    """The reference's reply: netlab's lenient reading of sum (`netlab.services.lenient`), or echo."""
    if service == "echo":
        return request
    try:
        a, b = two_numbers(request.decode("utf-8", "replace"))
        return add(f"{a} {b}").encode() + b"\n"
    except (NotTwoNumbers, SumError) as exc:
        return f"ERR {exc}\n".encode()


def _complete(service: str, data: bytes) -> bool:
    if service == "echo":
        return data.endswith(b"\n")
    return data.endswith(b"\n") or (len(numbers_in(data)) >= 2 and data.rstrip().endswith(b"]"))


async def _read_request(conn: Connection, service: str, seen: _Seen, *, line: bool = False) -> tuple[bytes, str]:
    """Bytes until the request looks complete, and how it ended: a newline (or ``]``), the end
    of the stream, or `QUIET` seconds without more once something came. With `line`, as a
    server that reads a line: only a newline or the end of the stream end it; once it has
    waited `UNFINISHED` s unfinished, that is noted in `seen` (and the wait goes on)."""
    data = b""
    while True:
        if line:
            wait = float("inf") if not data or seen.unfinished is not None else UNFINISHED
        else:
            wait = QUIET if data else float("inf")
        with trio.move_on_after(wait) as quiet:
            try:
                chunk = await receive_data(conn)
            except (NetlabError, trio.BrokenResourceError, trio.ClosedResourceError):
                return data, "eof"
        if quiet.cancelled_caught:
            if not line:
                return data, "quiet"
            seen.unfinished = data
            seen.unfinished_seen.set()
            continue
        if chunk is None:
            return data, "eof"
        data += chunk
        if len(data) >= KEEP:
            return data[:KEEP], "long"
        if data.endswith(b"\n") if line else _complete(service, data):
            return data, "newline"


def _peer_gone(conn: Connection) -> bool:
    """Whether the peer refused what was sent after its end of stream (a TCP reset leaves
    SO_ERROR set): it had closed, not just shut down its sending side."""
    try:
        return socket_of(conn).getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0
    except (OSError, TypeError):
        return False


_GONE = (NetlabError, trio.BrokenResourceError, trio.ClosedResourceError)


async def _send_split(conn: Connection, answer: bytes, seen: _Seen, pause: float, slow: float, *,
                      at_eof: bool) -> None:
    """The answer a byte at a time, `pause` s apart, then the end of the stream; then wait (up
    to `slow` s) for the client's end. Whether it stopped reading before the whole reply is
    noted in `seen` (`left_at`, `left_unread`): it did if it closed with some of the reply
    unread (its kernel resets the connection), or closed before the last byte was sent (a
    later send fails, or is reset). A client that only shut down its sending side
    (shutdown(SHUT_WR): an end of stream, and sends are still taken) is reading on. `at_eof`:
    its end of stream ended the request (came before any of the reply)."""
    sent = [0]
    eof_at: list[int] = [0] if at_eof else []
    reset = [False]
    ended = trio.Event()

    async def watch() -> None:
        try:
            while await receive_data(conn) is not None:
                pass
        except _GONE:
            reset[0] = True
        eof_at.append(sent[0])
        ended.set()

    failed = False
    async with trio.open_nursery() as nursery:
        if at_eof:
            ended.set()
        else:
            nursery.start_soon(watch)
        try:
            for i in range(len(answer)):
                await send_data(conn, answer[i:i + 1])
                sent[0] += 1
                await trio.sleep(pause)
            await conn.send_eof()
        except _GONE:
            failed = True
        with trio.move_on_after(slow):  # let the client close first: its last read sees EOF, not a reset
            await ended.wait()
        early = bool(eof_at) and eof_at[0] < len(answer)
        if failed or reset[0] or (early and _peer_gone(conn)):
            seen.left_at = eof_at[0] if eof_at else sent[0]
            seen.left_unread = reset[0]
        seen.split_done.set()
        nursery.cancel_scope.cancel()


class Reply(abc.ABC):
    """What the reference does with one request it has read, as a case asks: `answer` is
    the reference's reply to it."""

    answer: bytes
    seen: _Seen

    @property
    def first(self) -> bool:
        """This is the first request of the case."""
        return len(self.seen.requests) == 1

    @abc.abstractmethod
    async def send(self) -> None:
        """Send the answer now."""

    @abc.abstractmethod
    async def send_late(self) -> None:
        """Send the answer after the case's slow delay (2 s, or half the timeout if less)."""

    @abc.abstractmethod
    async def send_in_pieces(self) -> None:
        """Send the answer a byte at a time, with pauses (a byte stream's reply as a slow
        network delivers it)."""

    @abc.abstractmethod
    async def hold(self) -> None:
        """Never answer, and keep the connection open."""

    async def close(self) -> None:
        """Send nothing: the connection closes as the reference is done with it."""


#: a case's way of replying to each request: ``lambda reply: reply.send()``, ...
ReplyWith = Callable[[Reply], Awaitable[None]]


class _ConnectionReply(Reply):
    def __init__(self, conn: Connection, answer: bytes, seen: _Seen, slow: float, pause: float, end: str) -> None:
        self.conn, self.answer, self.seen, self.slow, self.pause, self.end = conn, answer, seen, slow, pause, end

    async def send(self) -> None:
        await send_data(self.conn, self.answer)
        self.seen.replied()
        await self.conn.send_eof()
        with trio.move_on_after(self.slow):  # let the client close first: its last read sees EOF, not a reset
            while await receive_data(self.conn) is not None:
                pass

    async def send_late(self) -> None:
        await trio.sleep(self.slow)
        await self.send()

    async def send_in_pieces(self) -> None:
        await _send_split(self.conn, self.answer, self.seen, self.pause, self.slow, at_eof=self.end == "eof")

    async def hold(self) -> None:
        await trio.sleep_forever()


class _DatagramReply(Reply):
    def __init__(self, endpoint: DatagramEndpoint, answer: bytes, peer: Peer, seen: _Seen, slow: float,
                 nursery: trio.Nursery) -> None:
        self.endpoint, self.answer, self.peer, self.seen, self.slow = endpoint, answer, peer, seen, slow
        self.nursery = nursery

    async def send(self) -> None:
        try:
            await self.endpoint.send_to(self.answer, self.peer)
            self.seen.replied()
        except NetlabError:
            pass

    async def send_late(self) -> None:
        self.nursery.start_soon(_later, self.endpoint, self.answer, self.peer, self.slow, self.seen)

    async def send_in_pieces(self) -> None:
        """A datagram is one message: it goes whole."""
        await self.send()

    async def hold(self) -> None:
        """A datagram is answered or not: nothing to hold open."""


async def _later(endpoint: DatagramEndpoint, answer: bytes, peer: Peer, delay: float, seen: _Seen) -> None:
    await trio.sleep(delay)
    try:
        await endpoint.send_to(answer, peer)
        seen.replied()
    except NetlabError:
        pass


class Reference(abc.ABC):
    """The reference server on its listening socket (`reference` makes one), serving one
    case at a time: `serve` until cancelled."""

    def __init__(self, listening: Listening, service: str, slow: float, pause: float) -> None:
        self.listening: Listening = listening  # what the caller closes when the check is over
        self.service, self.slow, self.pause = service, slow, pause

    @abc.abstractmethod
    async def serve(self, reply_with: ReplyWith, seen: _Seen, *, line: bool = False) -> None:
        """Serve every request until cancelled, each as `reply_with` says; `line`: read a
        request as a line-reading server does."""

    async def drain(self) -> int:
        """Accept and close every connection waiting (or read every datagram queued) from clients
        of earlier cases, so that the next case judges only its own client; how many there were."""
        count = 0
        while True:
            with trio.move_on_after(DRAIN) as quiet:
                await self._discard_one()
            if quiet.cancelled_caught:
                return count
            count += 1

    @abc.abstractmethod
    async def _discard_one(self) -> None:
        """Wait for one connection (accepted and closed) or datagram (read), left over."""


class _Connections(Reference):
    def __init__(self, listeners: Listeners[Connection], service: str, slow: float, pause: float) -> None:
        super().__init__(listeners, service, slow, pause)
        self.listeners = listeners

    async def serve(self, reply_with: ReplyWith, seen: _Seen, *, line: bool = False) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                conn = await self.listeners.listeners[0].accept()
                nursery.start_soon(self._serve_connection, conn, reply_with, seen, line)

    async def _discard_one(self) -> None:
        conn = await self.listeners.listeners[0].accept()
        with trio.CancelScope(shield=True):
            await conn.aclose()

    async def _serve_connection(self, conn: Connection, reply_with: ReplyWith, seen: _Seen, line: bool) -> None:
        async with conn:
            request, end = await _read_request(conn, self.service, seen, line=line)
            if not request:
                return  # a connection that carried no request (a probe, connect then close): not the one judged
            seen.ends.append(end)
            answer = _answer(self.service, request)
            seen.record(request, answer)
            try:
                await reply_with(_ConnectionReply(conn, answer, seen, self.slow, self.pause, end))
            except (NetlabError, trio.BrokenResourceError, trio.ClosedResourceError):
                pass


class _Datagrams(Reference):
    def __init__(self, endpoint: DatagramEndpoint, service: str, slow: float, pause: float) -> None:
        super().__init__(endpoint, service, slow, pause)
        self.endpoint = endpoint

    async def serve(self, reply_with: ReplyWith, seen: _Seen, *, line: bool = False) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                message = await self.endpoint.receive()
                if message.peer is None or not message.data:
                    continue
                request = message.data
                answer = _answer(self.service, request)
                seen.record(request, answer)
                await reply_with(_DatagramReply(self.endpoint, answer, message.peer, seen, self.slow, nursery))

    async def _discard_one(self) -> None:
        await self.endpoint.receive()


async def reference(address: Address, service: str, slow: float, pause: float) -> Reference:
    """The reference server at `address`: connections (stream and seqpacket kinds) or
    datagrams, chosen once here by what the transport declares (`connected`); the transports'
    narrowing openers hand over the matching contract. The caller closes `.listening`."""
    if get_transport(address.scheme).connected:
        return _Connections(await listen_connections(address), service, slow, pause)
    return _Datagrams(await listen_datagrams(address), service, slow, pause)


__all__ = ["DRAIN", "KEEP", "QUIET", "UNFINISHED", "Reference", "Reply", "ReplyWith", "reference"]
