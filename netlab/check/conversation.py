"""One conversation with the server under test (`converse`), and what happened on it.

How a conversation ends: when the reply is judged right; when the server closes or resets;
when nothing more has come for `SETTLE` seconds after something did; or at the case's
deadline. So a right answer is taken at once, and a wrong one costs at most a short pause,
never the whole deadline. On a transport that may lose datagrams the request is sent again,
a few times, while no reply has come.

When no reply came, the conversation also notes what the kernel shows (`context`): whether
the server ever accepted the connection and, with ``--run``, the program's share of a core
meanwhile; `wording.stuck_note` turns that into a sentence.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import trio

from ..errors import ConnectionRefusedError, NetlabError
from ..transports import Address, Connection, get_transport, receive_data, send_data, socket_of
from .context import CaseContext, _CpuWatch, was_accepted

#: after the last bytes of a reply that is not (yet) right, wait this long for more
SETTLE = 0.3
#: the most bytes of a reply a conversation keeps (beyond what it sent, for echo): a server
#: that sends more without the reply being right is done with, at once (`Conversation.overflow`)
KEEP = 64 * 1024


@dataclass
class Conversation:
    """What happened on one connection."""

    received: bytes = b""
    closed: bool = False  # the server closed (end of stream)
    reset: bool = False  # the connection broke (reset, or closed while we still sent)
    refused: str | None = None  # could not connect: why
    early: bool = False  # bytes came before the last piece of the request was sent
    done: bool = False  # the reply was judged complete
    pieces: list[float] = field(default_factory=list)
    #: connecting took until the deadline (a full accept queue drops the connection's SYNs)
    timed_out: bool = False
    #: TCP, when no reply came: whether the server had accepted this connection (the kernel's
    #: tables say; None where they cannot)
    accepted: bool | None = None
    #: with --run, when no reply came: the program's share of a core while this conversation waited
    busy: float | None = None
    #: the server sent more than the conversation keeps (`KEEP`): reading stopped there
    overflow: bool = False

    @property
    def silent(self) -> bool:
        return not self.received and not self.closed and not self.reset and self.refused is None


#: how `open_connection` words a connect that ran into the case's deadline
CONNECT_TIMED_OUT = "took longer than the deadline"


async def open_connection(ctx: CaseContext, address: Address | None = None) -> Connection | str:
    """A connection to the server, or the reason there is none."""
    target = address or ctx.address
    with trio.move_on_at(ctx.deadline):
        try:
            return await get_transport(target.scheme).connect(target)
        except NetlabError as exc:
            return str(exc)
    return f"connecting to {target} {CONNECT_TIMED_OUT}"


_BROKEN = (NetlabError, trio.BrokenResourceError, trio.ClosedResourceError, OSError)


async def converse(ctx: CaseContext, pieces: Sequence[bytes], done: Callable[[bytes], bool], *,
                   eof: bool = True, pause: float = 0.0, settle: bool = True, address: Address | None = None,
                   deadline: float | None = None, keep: int = KEEP) -> Conversation:
    """Send `pieces` (one message where the transport keeps boundaries; on a stream, with
    `pause` seconds between them), half-close if `eof`, and read until `done(received)`, the
    end of the stream, `SETTLE` seconds of silence after some bytes (if `settle`), more than
    `keep` bytes (the first `keep` are kept: a server that sends without end costs the case
    no more than that, in time and memory), or the deadline."""
    conv = Conversation()
    end = ctx.deadline if deadline is None else deadline
    cpu = _CpuWatch(ctx)
    opened = await open_connection(ctx, address)
    if isinstance(opened, str):
        conv.refused = opened
        conv.timed_out = opened.endswith(CONNECT_TIMED_OUT)
        conv.busy = cpu.share() if conv.timed_out else None
        return conv
    conn = opened
    if not ctx.stream:
        pieces = [b"".join(pieces)]
    retry = not get_transport((address or ctx.address).scheme).reliable
    got_some = trio.Event()
    try:
        with trio.move_on_at(end):
            async with trio.open_nursery() as nursery:
                sent_all = trio.Event()
                last = [trio.current_time()]

                async def read() -> None:
                    while True:
                        try:
                            data = await receive_data(conn)
                        except ConnectionRefusedError as exc:  # a datagram's ICMP port unreachable
                            conv.refused = str(exc)
                            break
                        except _BROKEN:
                            conv.reset = True
                            break
                        if data is None:
                            conv.closed = True
                            break
                        if not sent_all.is_set():
                            conv.early = True
                        conv.received += data
                        if len(conv.received) > keep:
                            conv.received, conv.overflow = conv.received[:keep], True
                        last[0] = trio.current_time()
                        got_some.set()
                        if done(conv.received):
                            conv.done = True
                            break
                        if conv.overflow:
                            break
                    nursery.cancel_scope.cancel()

                nursery.start_soon(read)
                for i, piece in enumerate(pieces):
                    if i and pause:
                        await trio.sleep(pause)
                    try:
                        await send_data(conn, piece)
                    except _BROKEN:
                        conv.reset = not conv.closed
                        break
                    conv.pieces.append(trio.current_time())
                sent_all.set()
                if eof and not conv.reset:
                    try:
                        await conn.send_eof()
                    except _BROKEN:
                        pass
                resend = ctx.timeout / 4
                sent_at = trio.current_time()
                while True:
                    await trio.sleep(min(SETTLE, resend) if retry else SETTLE)
                    now = trio.current_time()
                    if settle and conv.received and now - last[0] >= SETTLE:
                        nursery.cancel_scope.cancel()
                    # an unreliable transport may lose the request or the reply: send again,
                    # a few times (loss is no failure; no reply at all is)
                    if retry and not conv.received and now - sent_at >= resend:
                        sent_at = now
                        try:
                            await send_data(conn, pieces[0])
                        except _BROKEN:
                            pass
    finally:
        with trio.CancelScope(shield=True):
            if not conv.received and not conv.closed and not conv.reset and conv.refused is None:
                conv.accepted = was_accepted(ctx, conn) if address is None else None
                conv.busy = cpu.share()
            await conn.aclose()
    return conv


def split_pieces(data: bytes, count: int = 3) -> list[bytes]:
    """`data` in `count` pieces of about the same size (fewer if it is shorter)."""
    size = max(1, -(-len(data) // count))
    return [data[i:i + size] for i in range(0, len(data), size)]


def pause_for(ctx: CaseContext) -> float:
    """The pause between pieces of a split request: long enough that each arrives alone."""
    return min(0.2, ctx.timeout / 10)


async def reset(conn: Connection) -> None:
    """Close abruptly: a TCP reset (SO_LINGER 0) where the kind has one."""
    try:
        sock = socket_of(conn)
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except (OSError, TypeError):
        pass
    await conn.aclose()


__all__ = ["CONNECT_TIMED_OUT", "KEEP", "SETTLE", "Conversation", "converse", "open_connection", "pause_for", "reset",
           "split_pieces"]
