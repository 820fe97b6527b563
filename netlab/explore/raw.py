"""``netlab raw``: netcat over any netlab transport, and its listening side.

`raw_client` connects (or, for datagrams, connects a bound socket), sends what it is given,
and reports what comes back, until the peer closes, the peer stays quiet for `timeout`
seconds after the input is done, or `max_bytes` have arrived. `raw_listen` binds, and
reports what each client or datagram sends, with the peer's address, answering with
`reply` if asked. Both report through an ``on_event`` callback of `RawEvent`s (the CLI
prints them) and return a summary. Sockets come from the transports only.

**Half-close.** On a stream, shutting down our write side (``shutdown(SHUT_WR)``: a TCP
FIN, EOF for the peer) says "no more requests". `raw_client` does it only when the input
*ended*: a `source` (stdin) that reached EOF, like ``nc -N``. With ``data`` (``--send``)
it keeps the write side open until the peer closes or the timeout or byte limit ends the
conversation, like ``nc -q``: many servers read an early EOF as "the client went away" and
drop the reply (nginx logs 499 for that), while nothing a client needs is lost by waiting.
``eof=True`` half-closes after ``data`` too (for servers that answer at EOF, like a line
counter); ``eof=False`` never half-closes.

**The timeout** starts when the input is done (at once with ``data``; at stdin's EOF with a
source) and restarts with every chunk that arrives: it is "stop once the peer has been
quiet this long", not a limit on the whole conversation. It also bounds connecting.

**Datagrams.** ``data`` is sent as one datagram (an empty one included); a `source`
yields one datagram per item (`read_lines`: one per line, newline kept). Each reply
datagram is reported on its own, with its sender and size.

**Listening.** A stream client that sends something gets `reply` once, after its first
data (or at its EOF if it sent nothing), and then a half-close: a client reading "until the
server closes" (HTTP/1.0, ``netlab raw --send``) finishes at once. A datagram gets `reply`
as one datagram back to its sender; an unbound unix-dgram sender has no address and cannot
be answered (reported, not fatal). `count` stops after that many clients (once they are
done) or datagrams.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import BinaryIO

import trio

from ..errors import AddressError, NetlabError, TimeoutError, TransportError
from ..transports import (
    Address, Connection, Transport, get_transport, listen_connections, listen_datagrams, parse_address, receive_data,
    receive_message, send_data, send_eof, socket_of, translate_os_errors,
)

RECEIVE_SIZE = 64 * 1024
#: how long `raw_listen` waits to hand a reply to a datagram sender that is not reading
REPLY_TIMEOUT = 1.0

_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "0": b"\0", "\\": b"\\"}


def decode_escapes(text: str) -> bytes:
    r"""``--send`` text to bytes: ``\r \n \t \0 \\`` and ``\xNN``; everything else as UTF-8.

    Raises:
        ValueError: an unknown escape, or ``\x`` without two hex digits.
    """
    out = bytearray()
    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\":
            out += char.encode("utf-8", "surrogateescape")
            i += 1
            continue
        if i + 1 >= len(text):
            raise ValueError("a lone '\\' at the end: write \\\\ for a backslash")
        code = text[i + 1]
        if code in _ESCAPES:
            out += _ESCAPES[code]
            i += 2
        elif code == "x":
            digits = text[i + 2:i + 4]
            if len(digits) != 2 or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise ValueError(f"\\x needs two hex digits, as in \\x0a (got \\x{digits})")
            out.append(int(digits, 16))
            i += 4
        else:
            raise ValueError(f"unknown escape \\{code} (known: \\r \\n \\t \\0 \\\\ \\xNN)")
    return bytes(out)


def hexdump(data: bytes, offset: int = 0) -> str:
    """``hexdump -C`` style lines; `offset` numbers the first byte (a stream's position)."""
    lines = []
    for start in range(0, len(data), 16):
        chunk = data[start:start + 16]
        left = " ".join(f"{b:02x}" for b in chunk[:8])
        right = " ".join(f"{b:02x}" for b in chunk[8:])
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset + start:08x}  {left:<23}  {right:<23}  |{text}|")
    return "\n".join(lines)


def as_text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _reader(file: BinaryIO) -> Callable[[int], bytes]:
    """A blocking ``read(size)`` for `file` that is safe to abandon in a thread.

    A real file descriptor is read with ``os.read``: a thread left blocked there (the peer
    closed while stdin is still open) holds no lock, so the interpreter can exit. Reading
    through the buffered object instead would leave its lock held, and Python aborts at
    shutdown ("could not acquire lock for <stdin>"). Objects with no descriptor (a test's
    BytesIO) are read with ``read1``.
    """
    try:
        fd = file.fileno()
    except (OSError, ValueError):
        return getattr(file, "read1", file.read)
    return lambda size: os.read(fd, size)


async def read_chunks(file: BinaryIO, size: int = RECEIVE_SIZE) -> AsyncIterator[bytes]:
    """What `file` gives, one read at a time (from a terminal, a line at a time), until EOF."""
    read = _reader(file)
    while True:
        chunk = await trio.to_thread.run_sync(read, size, abandon_on_cancel=True)
        if not chunk:
            return
        yield chunk


async def read_lines(file: BinaryIO) -> AsyncIterator[bytes]:
    """One item per line of `file` (newline kept; a last line without one too), until EOF."""
    pending = b""
    async for chunk in read_chunks(file):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line + b"\n"
    if pending:
        yield pending


@dataclass(frozen=True)
class RawEvent:
    """Something that happened. ``kind`` is one of: listening, connected, sent, half-closed,
    data, datagram, replied, closed, note."""

    kind: str
    peer: str | None = None  # netlab text of the other side
    data: bytes = b""
    offset: int = 0  # stream: position of `data` in what this peer sent
    client: int | None = None  # listen: the stream client's number, from 1
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        record: dict[str, object] = {"event": self.kind}
        if self.peer is not None:
            record["peer"] = self.peer
        if self.client is not None:
            record["client"] = self.client
        if self.kind in ("data", "datagram", "sent", "replied"):
            record.update(bytes=len(self.data), offset=self.offset, text=as_text(self.data), hex=self.data.hex())
        if self.detail:
            record["detail"] = self.detail
        return record


EventSink = Callable[[RawEvent], None]


def _ignore(_event: RawEvent) -> None:
    pass


@dataclass
class RawResult:
    address: str  # what was asked
    peer: str | None  # whom we talked to (getpeername)
    local: str | None  # our end (getsockname)
    sent: int = 0
    received: int = 0
    reads: list[int] = field(default_factory=list)  # size of each read or datagram, in order
    ended: str = ""  # "peer closed" | "timeout" | "byte limit"
    half_closed: bool = False
    data: bytes = b""

    def as_dict(self) -> dict[str, object]:
        return {"address": self.address, "peer": self.peer, "local": self.local, "sent": self.sent,
                "received": self.received, "reads": self.reads, "ended": self.ended,
                "half_closed": self.half_closed, "text": as_text(self.data), "hex": self.data.hex()}


def unix_peer_credentials(sock: trio.socket.SocketType) -> str:
    """``pid 123 uid 0`` for a unix stream peer (SO_PEERCRED), or "" if unavailable."""
    if sock.family != socket.AF_UNIX or not hasattr(socket, "SO_PEERCRED"):
        return ""
    try:
        pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    except OSError:
        return ""
    return f"pid {pid} uid {uid}"


def _sockname(transport: Transport, sock: trio.socket.SocketType, peer: bool) -> str | None:
    try:
        return transport.format_peer(sock.getpeername() if peer else sock.getsockname())
    except OSError:
        return None


async def raw_client(
    address: Address | str,
    data: bytes | None = None,
    *,
    source: AsyncIterator[bytes] | None = None,
    timeout: float = 5.0,
    max_bytes: int | None = None,
    eof: bool | None = None,
    on_event: EventSink = _ignore,
) -> RawResult:
    """Talk to `address`: send `data` (or what `source` yields), report what comes back.

    See the module docstring for when it stops and when it half-closes.

    Raises:
        ConnectionRefusedError, ResolveError, TimeoutError (connecting), TransportError
    """
    if data is not None and source is not None:
        raise ValueError("give data or source, not both")
    address = parse_address(address)
    transport = get_transport(address.scheme)
    try:
        with trio.fail_after(timeout):
            conn = await transport.connect(address)
    except trio.TooSlowError:
        raise TimeoutError(f"could not connect to {address} within {timeout:g} s") from None
    if transport.boundaries:
        return await _client_messages(address, conn, data, source, timeout, max_bytes, on_event)
    return await _client_stream(address, conn, data, source, timeout, max_bytes, eof, on_event)


class _Conversation:
    """The shared state of one client run: the idle timer, the byte limit, the tallies."""

    def __init__(self, result: RawResult, timeout: float, max_bytes: int | None) -> None:
        self.result = result
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.idle = trio.CancelScope()  # deadline set once the input is done
        self.input_done = False

    def done_sending(self) -> None:
        self.input_done = True
        self.idle.deadline = trio.current_time() + self.timeout

    def take(self, data: bytes) -> bytes:
        """Count `data` in, cut to the byte limit; restart the idle timer."""
        if self.max_bytes is not None:
            data = data[: self.max_bytes - self.result.received]
        self.result.received += len(data)
        self.result.reads.append(len(data))
        self.result.data += data
        if self.input_done:
            self.idle.deadline = trio.current_time() + self.timeout
        return data

    @property
    def full(self) -> bool:
        return self.max_bytes is not None and self.result.received >= self.max_bytes


async def _client_stream(address: Address, stream: Connection, data: bytes | None,
                         source: AsyncIterator[bytes] | None, timeout: float, max_bytes: int | None,
                         eof: bool | None, on_event: EventSink) -> RawResult:
    """A byte stream: chunks as they come, with their offsets; half-close as asked."""
    transport = get_transport(address.scheme)
    sock = socket_of(stream)
    result = RawResult(str(address), _sockname(transport, sock, True), _sockname(transport, sock, False))
    talk = _Conversation(result, timeout, max_bytes)
    on_event(RawEvent("connected", peer=result.peer, detail=f"from {result.local}"))
    if max_bytes == 0:
        result.ended = "byte limit"
        await stream.aclose()
        return result

    async def send_all(chunk: bytes) -> None:
        with translate_os_errors(address, "send to"):
            await send_data(stream, chunk)
        on_event(RawEvent("sent", peer=result.peer, data=chunk, offset=result.sent))
        result.sent += len(chunk)

    async def send() -> None:
        if data is not None:
            if data:
                await send_all(data)
            half_close = bool(eof)
        else:
            if source is not None:
                async for chunk in source:
                    await send_all(chunk)
            half_close = source is not None if eof is None else eof
        if half_close:
            with translate_os_errors(address, "half-close"):
                await send_eof(stream)
            result.half_closed = True
            on_event(RawEvent("half-closed", peer=result.peer, detail="shutdown(SHUT_WR): the peer reads EOF"))
        talk.done_sending()

    async with stream, trio.open_nursery() as nursery:
        nursery.start_soon(send)
        with talk.idle:
            with translate_os_errors(address, "receive from"):
                while True:
                    chunk = await receive_data(stream, RECEIVE_SIZE)
                    if chunk is None:
                        result.ended = "peer closed"
                        break
                    offset = result.received
                    chunk = talk.take(chunk)
                    on_event(RawEvent("data", peer=result.peer, data=chunk, offset=offset))
                    if talk.full:
                        result.ended = "byte limit"
                        break
        if talk.idle.cancelled_caught:
            result.ended = "timeout"
        nursery.cancel_scope.cancel()  # stop sending (stdin may still be open)
    on_event(RawEvent("closed", peer=result.peer, detail=result.ended))
    return result


async def _client_messages(address: Address, channel: Connection, data: bytes | None,
                           source: AsyncIterator[bytes] | None, timeout: float, max_bytes: int | None,
                           on_event: EventSink) -> RawResult:
    """Whole messages: datagrams, or the messages of a seqpacket connection (which may also end)."""
    transport = get_transport(address.scheme)
    sock = socket_of(channel)
    # a connected datagram socket knows its own address in the requested scheme, options kept
    local: object = getattr(channel, "local", None)
    result = RawResult(str(address), _sockname(transport, sock, True),
                       _sockname(transport, sock, False) if local is None else str(local))
    talk = _Conversation(result, timeout, max_bytes)
    on_event(RawEvent("connected", peer=result.peer, detail=f"from {result.local}"))
    if max_bytes == 0:
        result.ended = "byte limit"
        await channel.aclose()
        return result

    async def send() -> None:
        items = [data] if data is not None else []
        for item in items:
            await send_data(channel, item)
            result.sent += len(item)
            on_event(RawEvent("sent", peer=result.peer, data=item))
        if source is not None:
            async for item in source:
                await send_data(channel, item)
                result.sent += len(item)
                on_event(RawEvent("sent", peer=result.peer, data=item))
        talk.done_sending()

    async with channel, trio.open_nursery() as nursery:
        nursery.start_soon(send)
        with talk.idle:
            while True:
                message = await receive_message(channel)
                if message is None:  # a seqpacket connection's end of stream
                    result.ended = "peer closed"
                    break
                payload = talk.take(message.data)
                detail = "truncated: larger than the read buffer" if message.truncated else ""
                on_event(RawEvent("datagram", peer=transport.format_peer(message.peer), data=payload,
                                  detail=detail))
                if talk.full:
                    result.ended = "byte limit"
                    break
        if talk.idle.cancelled_caught:
            result.ended = "timeout"
        nursery.cancel_scope.cancel()
    return result


# -- listening --------------------------------------------------------------------------


@dataclass
class ListenResult:
    bound: list[str] = field(default_factory=list)
    clients: int = 0  # stream connections
    datagrams: int = 0
    received: int = 0  # bytes, all peers

    def as_dict(self) -> dict[str, object]:
        return {"bound": self.bound, "clients": self.clients, "datagrams": self.datagrams,
                "received": self.received}


async def raw_listen(
    address: Address | str,
    *,
    reply: bytes | None = None,
    count: int | None = None,
    on_event: EventSink = _ignore,
    task_status: trio.TaskStatus[ListenResult] = trio.TASK_STATUS_IGNORED,
) -> ListenResult:
    """Bind `address` and report what arrives, until cancelled or `count` clients/datagrams.

    Use with ``nursery.start``: it is started once bound, with the `ListenResult` (whose
    ``bound`` holds the real addresses) that it keeps up to date and returns.

    Raises (before started): AddressError, AddressInUseError, PermissionDeniedError,
    AddressUnavailableError, ResolveError.
    """
    address = parse_address(address)
    transport = get_transport(address.scheme)
    result = ListenResult()
    if transport.connected and transport.boundaries:  # seqpacket: connections of whole messages
        raise AddressError(f"raw --listen speaks stream and datagram transports; for {address.scheme}: "
                           f"use `netlab serve` (or `netlab raw` as its client)")
    if transport.connected:
        await _listen_stream(address, reply, count, on_event, result, task_status)
    else:
        await _listen_datagram(address, reply, count, on_event, result, task_status)
    return result


async def _listen_stream(address: Address, reply: bytes | None, count: int | None, on_event: EventSink,
                         result: ListenResult, task_status: trio.TaskStatus[ListenResult]) -> None:
    listening = await listen_connections(address)
    listeners = listening.listeners
    try:
        for bound in listening.bound:
            result.bound.append(str(bound))
            on_event(RawEvent("listening", detail=result.bound[-1]))
        task_status.started(result)
        if count == 0:
            return
        async with trio.open_nursery() as handlers:
            async with trio.open_nursery() as acceptors:

                async def accept_loop(listener: trio.abc.Listener[Connection]) -> None:
                    while True:
                        with translate_os_errors(address, "accept on"):
                            stream = await listener.accept()
                        result.clients += 1
                        handlers.start_soon(_serve_client, get_transport(address.scheme), stream, result.clients, reply,
                                            on_event, result)
                        if count is not None and result.clients >= count:
                            acceptors.cancel_scope.cancel()
                            return

                for listener in listeners:
                    acceptors.start_soon(accept_loop, listener)
            # enough clients: stop listening now, while the last ones finish
            with trio.CancelScope(shield=True):
                for listener in listeners:
                    await listener.aclose()
    finally:
        await listening.aclose()


async def _serve_client(transport: Transport, stream: Connection, number: int, reply: bytes | None,
                        on_event: EventSink, result: ListenResult) -> None:
    sock = socket_of(stream)
    peer = _sockname(transport, sock, True) or "?"
    who = unix_peer_credentials(sock)
    on_event(RawEvent("connected", peer=peer, client=number, detail=who))
    total = 0
    replied = False
    how = "closed by the peer"

    async def answer(reply: bytes) -> None:
        nonlocal replied
        replied = True
        await send_data(stream, reply)
        on_event(RawEvent("replied", peer=peer, client=number, data=reply))
        await send_eof(stream)
        on_event(RawEvent("half-closed", peer=peer, client=number, detail="shutdown(SHUT_WR) after the reply"))

    async with stream:
        try:
            while True:
                data = await receive_data(stream, RECEIVE_SIZE)
                if data is None:
                    break
                on_event(RawEvent("data", peer=peer, client=number, data=data, offset=total))
                total += len(data)
                result.received += len(data)
                if reply is not None and not replied:
                    await answer(reply)
            if reply is not None and not replied:
                await answer(reply)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            cause = exc.__cause__
            how = f"broken: {cause.strerror if isinstance(cause, OSError) else exc}"
    on_event(RawEvent("closed", peer=peer, client=number, detail=f"{how}; {total} bytes in all"))


async def _listen_datagram(address: Address, reply: bytes | None, count: int | None, on_event: EventSink,
                           result: ListenResult, task_status: trio.TaskStatus[ListenResult]) -> None:
    transport = get_transport(address.scheme)
    async with await listen_datagrams(address) as sock:
        result.bound.append(str(sock.local))
        on_event(RawEvent("listening", detail=result.bound[-1]))
        task_status.started(result)
        while count is None or result.datagrams < count:
            try:
                datagram = await sock.receive()
            except TransportError as exc:
                on_event(RawEvent("note", detail=f"receive failed: {exc}"))
                continue
            result.datagrams += 1
            result.received += len(datagram.data)
            peer = transport.format_peer(datagram.peer)
            detail = "truncated: larger than the read buffer" if datagram.truncated else ""
            on_event(RawEvent("datagram", peer=peer, data=datagram.data, detail=detail))
            if reply is None:
                continue
            if datagram.peer is None:
                on_event(RawEvent("note", peer=peer, detail="cannot reply: the sender never bound, so it has "
                                                            "no address (netlab clients autobind)"))
                continue
            with trio.move_on_after(REPLY_TIMEOUT) as scope:
                try:
                    await sock.send_to(reply, datagram.peer)
                except NetlabError as exc:
                    on_event(RawEvent("note", peer=peer, detail=f"could not reply: {exc}"))
                    continue
                on_event(RawEvent("replied", peer=peer, data=reply))
            if scope.cancelled_caught:
                on_event(RawEvent("note", peer=peer, detail="dropped the reply: the sender is not reading"))


__all__ = ["ListenResult", "RawEvent", "RawResult", "decode_escapes", "hexdump", "raw_client", "raw_listen",
           "read_chunks", "read_lines"]
