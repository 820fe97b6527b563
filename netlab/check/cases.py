"""The cases `netlab check` runs against a server, with stable ids, in one registry.

Each case is a small async function of a `CaseContext` that returns a `Verdict`: an outcome
(pass, fail, warn, skip) and one sentence saying what happened and, on failure, the likely
cause and the fix. A case talks to the server only through netlab's transports
(`Transport.connect`, `send_data`, `receive_data`), so every case runs on every transport;
what cannot apply to a kind (a request in pieces over datagrams) is skipped with a sentence
saying why. The runner (`netlab.check.run`) gives each case a hard deadline, restarts a
program that died, and records the death in the case during which it happened.

How a conversation ends (`converse`): when the reply is judged right; when the server
closes or resets; when nothing more has come for `SETTLE` seconds after something did;
or at the case's deadline. So a right answer is taken at once, and a wrong one costs at
most a short pause, never the whole deadline.

When no reply came, the conversation also notes what the kernel shows: whether the server
ever accepted the connection (a TCP connection waiting in the accept queue has no socket
inode in ``/proc/net/tcp``) and, with ``--run``, the program's share of a core meanwhile.
So a stuck server (never accepts again, accept queue full, spinning on an earlier
connection) is named as stuck wherever it shows (`stuck_note`), and hints such as "the
request has no newline" are given only where the evidence supports them (`newline_hint`).

Adding a case is one function and one `Case(...)` line in `CASES`; its id is stable (the
report, ``--json`` and ``--junit`` use it).
"""

from __future__ import annotations

import math
import os
import random
import socket
import struct
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import trio

from ..errors import ConnectionRefusedError, NetlabError, UsageError
from ..services import get_service
from ..transports import Address, Connection, Transport, receive_data, send_data, socket_of
from ..transports.udp import UDP4_MAX, UDP6_MAX, UdpTransport
from . import judge, procnet
from .judge import RequestFormat, shown
from .procnet import ListeningSocket
from .program import Program
from .restart import restart_verdict

Outcome = Literal["pass", "fail", "warn", "skip"]
Verdict = tuple[Outcome, str]
#: after the last bytes of a reply that is not (yet) right, wait this long for more
SETTLE = 0.3
#: the most bytes of a reply a conversation keeps (beyond what it sent, for echo): a server
#: that sends more without the reply being right is done with, at once (`Conversation.overflow`)
KEEP = 64 * 1024
#: the share of one core above which an idle server counts as busy-looping (an idle server
#: blocked in accept() or recv() uses next to nothing; a spinning one takes what it can get,
#: which on a loaded machine can be well under a whole core)
BUSY_SHARE = 0.1


@dataclass(frozen=True)
class CheckSettings:
    """What to check, and how strictly. `timeout` is every case's hard deadline in seconds."""

    service: str = "sum"
    profile: str = "assignment"
    request: str | None = None  # a template with {a} and {b}, "auto", or None for the default
    timeout: float = 5.0
    only: tuple[str, ...] = ()  # case ids or groups to run (default: all)
    idle_window: float = 1.0  # resources.idle_cpu: seconds of CPU time measured
    startup: float = 10.0  # --run: seconds a program may take to start listening
    namespaces: bool = True  # reach.interfaces: test from a second network namespace when root
    #: --user: who the program runs as, as root (None: `netlab.check.sandbox.resolve_user`'s default)
    user: str | None = None
    #: --env: the variables of netlab's environment a program also gets
    env: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("timeout", "idle_window", "startup"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise UsageError(f"{name} must be a finite number of seconds above 0, not {value!r}")


@dataclass
class CaseContext:
    """What a case works with: where the server is, how to write a request, the program."""

    address: Address
    settings: CheckSettings
    fmt: RequestFormat
    program: Program | None = None
    #: the server's listening socket as the kernel lists it, when netlab can see it
    listener: ListeningSocket | None = None
    deadline: float = 0.0
    #: the ids of the cases passed so far (a hint may depend on what already worked)
    passed: set[str] = field(default_factory=set)
    #: this check runs in namespaces of its own (`netlab.check.isolate`)
    isolated: bool = False

    @property
    def transport(self) -> Transport:
        return self.address.transport

    @property
    def stream(self) -> bool:
        """The server's connections are byte streams (no message boundaries)."""
        return not self.address.transport.boundaries

    @property
    def connected(self) -> bool:
        return self.address.transport.connected

    @property
    def netlab(self) -> bool:
        return self.settings.profile == "netlab"

    @property
    def timeout(self) -> float:
        return self.settings.timeout

    def remaining(self) -> float:
        return max(0.0, self.deadline - trio.current_time())

    def request(self, a: str, b: str) -> bytes:
        return self.fmt.render(a, b)

    def oracle(self, request: bytes) -> bytes:
        """What netlab's own service answers to `request` on this transport."""
        service = get_service(self.settings.service)
        if self.stream:
            return service.new_session().receive_data(request)
        return service.handle_datagram(request) or b""


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
            return await target.transport.connect(target)
        except NetlabError as exc:
            return str(exc)
    return f"connecting to {target} {CONNECT_TIMED_OUT}"


def _namespace_pid(ctx: CaseContext) -> int | str:
    """Whose /proc/PID/net tables show the server's sockets (those of the network namespace
    that process is in): the process holding the listening socket, else the program's first
    process, else ours."""
    if ctx.listener is not None and ctx.listener.pid is not None and os.path.exists(f"/proc/{ctx.listener.pid}"):
        return ctx.listener.pid
    program = ctx.program
    if program is not None and program.running and program.pid is not None:
        return program.pid
    return "self"


def was_accepted(ctx: CaseContext, conn: Connection) -> bool | None:
    """Whether the server accepted `conn` (TCP only: the kernel lists a connection waiting in
    the accept queue with no socket inode); None where that cannot be seen."""
    if ctx.address.is_unix or ctx.address.transport.kind != "stream":
        return None
    try:
        sock = socket_of(conn)
        local, peer = sock.getsockname(), sock.getpeername()
    except (OSError, TypeError):
        return None
    return procnet.accepted(peer[1], (local[0], local[1]), _namespace_pid(ctx))


def waiting_in_queue(ctx: CaseContext) -> int | None:
    """How many connections wait in the server's accept queue, never accepted (TCP, when
    netlab can see its listening socket)."""
    if ctx.listener is None or not ctx.listener.kind.startswith("tcp"):
        return None
    return procnet.accept_queue(ctx.listener.inode, _namespace_pid(ctx))


class _CpuWatch:
    """The program's share of a core from now until `share()`."""

    def __init__(self, ctx: CaseContext) -> None:
        self.program = ctx.program
        self.start = trio.current_time()
        self.before = self.program.cpu_seconds() if self.program is not None else 0.0

    def share(self) -> float | None:
        if self.program is None or not self.program.running:
            return None
        elapsed = trio.current_time() - self.start
        return (self.program.cpu_seconds() - self.before) / elapsed if elapsed > 0 else None


def stuck_note(ctx: CaseContext, conv: Conversation) -> str | None:
    """"the server is stuck: ..." when the kernel shows it: this connection was completed but
    never accepted, or connecting timed out while the accept queue held connections nobody
    accepted. With --run, the CPU the program used meanwhile tells spinning (a loop on an
    earlier connection) from blocked (an earlier client, input(), a sleep). None otherwise:
    a server that accepted and did not answer is not called stuck here."""
    if conv.accepted is False:
        queue = waiting_in_queue(ctx)
        others = f" with {queue - 1} other{'s' if queue > 2 else ''}" if queue is not None and queue > 1 else ""
        text = (f"the server is stuck: it never accepted this connection (the kernel completed it, and it waited "
                f"in the accept queue{others})")
    elif conv.timed_out:
        queue = waiting_in_queue(ctx)
        if not queue:
            return None
        text = (f"the server is stuck: its accept queue is full ({queue} connection{'s' if queue > 1 else ''} "
                f"the kernel completed wait there, never accepted), so new ones are not even completed")
    else:
        return None
    busy = conv.busy
    if busy is not None and busy > BUSY_SHARE:
        return text + (f"; meanwhile the program used {busy:.0%} of a core: it spins, most likely on an earlier "
                       f"connection whose recv() returns b'' for ever, and never gets back to accept(); when recv() "
                       f"returns b'', close that connection and accept the next")
    if busy is not None:
        return text + ("; meanwhile the program used next to no CPU: it is blocked somewhere other than accept() "
                       "(on an earlier client, input(), a sleep); accept clients in a loop, each served in a thread "
                       "of its own or until it leaves")
    return text


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
    retry = not (address or ctx.address).transport.reliable
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


# -- judging a sum or an echo --------------------------------------------------------------


def _sum_done(ctx: CaseContext, a: str, b: str, request: bytes, *, exact: bool) -> Callable[[bytes], bool]:
    if not ctx.stream:
        return bool  # one message is one reply
    if ctx.netlab:
        lines = ctx.oracle(request).count(b"\n")
        return lambda got: got.count(b"\n") >= lines
    return lambda got: got.endswith(b"\n") and judge.sum_matches(got, a, b, exact=exact)


def why_no_reply(ctx: CaseContext, conv: Conversation, request: bytes, *, waited: str = "") -> str:
    """The sentence for a conversation that brought no reply at all."""
    stuck = stuck_note(ctx, conv)
    if conv.refused is not None:
        return f"could not connect: {conv.refused}" + (f": {stuck}" if stuck else "")
    if conv.reset and not conv.received:
        return f"the connection broke before any reply to {shown(request)}"
    if conv.closed:
        return f"the server closed the connection without replying to {shown(request)}"
    if stuck:
        return f"no reply to {shown(request)} within {ctx.timeout:g} s{waited}: {stuck}"
    hint = newline_hint(ctx, request)
    if not hint and not ctx.transport.reliable:
        hint = " (datagrams can be lost, but every try went unanswered)"
    return f"no reply to {shown(request)} within {ctx.timeout:g} s{waited}: the server accepted it but never " \
           f"answered{hint}"


#: cases whose request ends with a newline (echo) or that answer the request format in use (sum)
_ECHOED_LINES = frozenset({"echo.small", "framing.split"})
_SUM_ANSWERED = frozenset({"sum.small", "sum.negative", "sum.decimal", "sum.large", "framing.split",
                           "framing.long"})


def newline_hint(ctx: CaseContext, request: bytes) -> str:
    """" (the request has no newline: ...)" where the evidence supports it, else "".

    Only on a byte stream, for a request with no newline, and only where a newline could be
    the reason: for echo, if data ending in a newline was echoed before (the server reads
    lines); for sum, if no request in this format has been answered yet (then the format is
    the likely reason). `--request` is suggested for sum only (echo has no request format),
    and not when it was ``auto`` already (it found no format, or found this one)."""
    if not ctx.stream or request.endswith(b"\n"):
        return ""
    if ctx.settings.service == "echo":
        if not ctx.passed & _ECHOED_LINES:
            return ""
        return (" (this data has no newline, and data ending in one was echoed: the server reads a line and "
                "waits for its newline; echo what arrives, as it arrives)")
    if ctx.passed & _SUM_ANSWERED or ctx.settings.request == "auto":
        return ""
    return (" (the request has no newline: a server that reads a line waits for one; try --request auto, or a "
            "format ending in \\n)")


def judge_sum(ctx: CaseContext, a: str, b: str, request: bytes, conv: Conversation, *, exact: bool,
              split: bool = False) -> Verdict:
    """The verdict on a sum conversation."""
    if ctx.netlab:
        want = ctx.oracle(request)
        if conv.received == want:
            return "pass", f"{shown(request)} -> {shown(conv.received)}"
        if not conv.received:
            return "fail", why_no_reply(ctx, conv, request)
        return "fail", (f"{shown(request)} -> {shown(conv.received)}, expected {shown(want)} exactly "
                        f"(netlab's line protocol)" + _overflowed(conv) + _early(conv, split))
    if judge.sum_matches(conv.received, a, b, exact=exact):
        return "pass", f"{shown(request)} -> {shown(conv.received)}"
    if not conv.received:
        text = why_no_reply(ctx, conv, request)
        if split and (conv.closed or conv.reset) and len(conv.pieces) < 2:
            text += ": it read the first piece and gave up; loop until the request is complete"
        return "fail", text
    total = judge.expected_sum(a, b)
    text = f"{shown(request)} -> {shown(conv.received)}, expected a reply ending in {total}" + _overflowed(conv)
    cut = judge.truncation(request, conv.received)
    found = judge.numbers_in(conv.received)
    if split and conv.early:
        text += _early(conv, split)
    elif cut is not None:
        text += (f": that is the sum of the first {cut} bytes of the request only: the server reads a fixed "
                 f"{cut} bytes (recv({cut})); read until the request is complete (a newline)")
    elif found and exact and abs(float(found[-1]) - float(total)) <= abs(float(total)) * 1e-9:
        text += (": close, but not exact: the server adds floats (float() keeps about 16 digits); "
                 "add integers as int (Python's ints are exact)")
    elif not found:
        text += ": the reply has no number in it"
    if cut is None and len(request) > 16 and not (split and conv.early) and "sum.small" in ctx.passed:
        text += (f" (the request is {len(request)} bytes: a server that reads a fixed 16 or 32 bytes, "
                 f"recv(16), sees only part of it)")
    return "fail", text


def _overflowed(conv: Conversation) -> str:
    """" (it sent more than 64 KiB ...)" when the conversation stopped reading at `KEEP`."""
    if not conv.overflow:
        return ""
    return (f" (it sent more than {len(conv.received):,} bytes without the right reply; netlab read no further: "
            f"answer each request with one line)")


def _early(conv: Conversation, split: bool) -> str:
    if split and conv.early:
        return (": the reply came before the whole request had arrived: the server reads once and answers "
                "what it has; loop until the request is complete (until the newline)")
    return ""


async def sum_exchange(ctx: CaseContext, a: str, b: str, *, exact: bool = False, split: bool = False,
                       address: Address | None = None) -> tuple[Verdict, Conversation]:
    request = ctx.request(a, b)
    pieces = split_pieces(request) if split else [request]
    conv = await converse(ctx, pieces, _sum_done(ctx, a, b, request, exact=exact), pause=pause_for(ctx) if split
                          else 0.0, address=address)
    return judge_sum(ctx, a, b, request, conv, exact=exact, split=split), conv


async def echo_exchange(ctx: CaseContext, data: bytes, *, split: bool = False,
                        address: Address | None = None) -> tuple[Verdict, Conversation]:
    """Send `data`, expect it back unchanged. The connection stays open until the echo is
    back (an echo client waits for its echo before it closes)."""
    pieces = split_pieces(data) if split else [data]
    conv = await converse(ctx, pieces, lambda got: len(got) >= len(data), eof=False,
                          pause=pause_for(ctx) if split else 0.0, address=address, keep=len(data) + KEEP)
    if conv.received == data:
        return ("pass", f"{_size(data)} came back unchanged"), conv
    if not conv.received:
        return ("fail", why_no_reply(ctx, conv, data)), conv
    got = conv.received
    if got == data[:len(got)]:
        text = f"only the first {len(got)} of {len(data)} bytes came back"
        if split and len(got) == len(b"".join(split_pieces(data)[:1])):
            text += ": the server answered the first piece and stopped; loop until the client closes"
        elif got.endswith(b"\n"):
            text += (": they end at a newline: the server echoes a line at a time and waits for the next "
                     "newline; echo what arrives, as it arrives")
        elif len(data) >= 32:
            text += (": the server reads a fixed amount, or stops at a short read; loop until recv() returns "
                     "b'' (or keep echoing what arrives)")
        return ("fail", text), conv
    return ("fail", f"{_size(data)} sent, {_changed(data, got)}"), conv


def _changed(data: bytes, got: bytes) -> str:
    """What came back instead of the echo, shown as the bytes it is; that the server decodes
    the data as text only where re-encoding the data gives these bytes."""
    came = f"{shown(got)} came back" if len(got) <= 60 else f"{len(got):,} different bytes came back, {shown(got)}"
    if got[:2] in (b"b'", b'b"') and data[:2] != got[:2]:
        return (f"{came}: the text of a Python bytes object (str(data) or f'{{data}}'), not the bytes; send the "
                f"bytes themselves (conn.sendall(data))")
    for errors in ("replace", "ignore", "backslashreplace"):
        redone = data.decode("utf-8", errors).encode("utf-8")
        if redone != data and redone[:len(got)] == got:
            return (f"{came}, first different at byte {_first_difference(data, got)}: the server decodes the data "
                    f"as text (errors={errors!r}) and encodes it again, which changes every byte that is not "
                    f"UTF-8; echo the bytes as they came")
    redone = data.decode("latin-1").encode("utf-8")
    if redone != data and redone[:len(got)] == got:
        return (f"{came}, first different at byte {_first_difference(data, got)}: the server decodes the data as "
                f"Latin-1 text and sends it as UTF-8; echo the bytes as they came")
    return f"{came} instead: not the data sent; an echo server sends back the bytes it received, unchanged"


def _size(data: bytes) -> str:
    return shown(data) if len(data) <= 40 else f"{len(data):,} bytes"


def _first_difference(a: bytes, b: bytes) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def program_state(ctx: CaseContext) -> str | None:
    """What went wrong with the program, when netlab runs it and something did: "the program
    exited with status 1; last stderr lines: ..." or that it stopped listening."""
    program = ctx.program
    if program is None:
        return None
    if program.running and not program.listening():
        program.wait_exit(1.0)  # a program dying of an exception closes its sockets a moment before it is gone
    if not program.running:
        return f"the program {program.death_note()}"
    if not program.listening():
        return "the program no longer listens: it closed its listening socket"
    return None


async def settled_state(ctx: CaseContext, within: float = 1.0) -> str | None:
    """`program_state`, once a program that stopped listening has had `within` seconds to
    finish exiting: a program dying of an exception closes its sockets a moment before the
    kernel reports it gone, and "it exited with status 1 (ValueError…)" is the true story,
    not "it closed its listening socket"."""
    program = ctx.program
    if program is not None and program.running and not program.listening():
        with trio.move_on_at(min(trio.current_time() + within, ctx.deadline)):
            while program.running:
                await trio.sleep(0.02)
    return program_state(ctx)


def _fix(ctx: CaseContext, *, left: bool = False) -> str:
    """The likely fix, once the program died or stopped listening."""
    program = ctx.program
    if program is not None and program.exit_status() in (None, 0):
        return (": it stops after one client; serve clients in a loop (while True: conn, addr = "
                "server.accept()) and keep the listening socket open")
    if left:
        return ": an error escaped when a client left; treat recv() == b'' and ConnectionResetError as 'this " \
               "client is gone' and go on serving the others"
    return ": an error escaped; catch it (try/except ValueError), answer with an error message, go on serving"


def _queue_full(ctx: CaseContext, reason: str) -> str:
    """": the server is stuck: its accept queue is full ..." after a connect that timed out."""
    if not reason.endswith(CONNECT_TIMED_OUT):
        return ""
    conv = Conversation(refused=reason, timed_out=True)
    note = stuck_note(ctx, conv)
    return f": {note}" if note else ""


def _program_gone(ctx: CaseContext) -> str:
    state = program_state(ctx)
    return f" ({state})" if state else ""


async def reset(conn: Connection) -> None:
    """Close abruptly: a TCP reset (SO_LINGER 0) where the kind has one."""
    try:
        sock = socket_of(conn)
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except (OSError, TypeError):
        pass
    await conn.aclose()


# -- the cases -----------------------------------------------------------------------------


async def case_connect(ctx: CaseContext) -> Verdict:
    if ctx.connected:
        opened = await open_connection(ctx)
        if isinstance(opened, str):
            return "fail", f"could not connect to {ctx.address}: {opened}{_program_gone(ctx)}{_queue_full(ctx, opened)}"
        await opened.aclose()
        return "pass", f"accepted a connection at {ctx.address}"
    verdict, conv = await _any_exchange(ctx)
    if conv.refused is not None:
        return "fail", f"nothing answers at {ctx.address}: {conv.refused}"
    if verdict[0] == "pass" or conv.received:
        return "pass", f"a request to {ctx.address} got a reply"
    return "fail", f"no reply at {ctx.address} within {ctx.timeout:g} s: nothing seems to serve there"


async def _any_exchange(ctx: CaseContext) -> tuple[Verdict, Conversation]:
    if ctx.settings.service == "echo":
        return await echo_exchange(ctx, b"hello\n")
    return await sum_exchange(ctx, "2", "3")


def _sum_case(a: str, b: str, *, exact: bool = False) -> Callable[[CaseContext], Awaitable[Verdict]]:
    async def run(ctx: CaseContext) -> Verdict:
        verdict, _ = await sum_exchange(ctx, a, b, exact=exact)
        return verdict
    return run


def _echo_case(data: bytes | None, *, datagrams: bool = True) -> Callable[[CaseContext], Awaitable[Verdict]]:
    """An echo case; `data` None is 1 MiB of reproducible random bytes."""

    async def run(ctx: CaseContext) -> Verdict:
        if not datagrams and not ctx.stream:
            return "skip", f"a message carries at most {_limit(ctx)}: 1 MiB does not fit one"
        verdict, _ = await echo_exchange(ctx, data if data is not None else random.Random(1).randbytes(1 << 20))
        return verdict
    return run


def _limit(ctx: CaseContext) -> str:
    """The largest message the transport carries, for a sentence: UDP's depends on the family
    (65,507 bytes over IPv4, 65,527 over IPv6), as the transport states it for a socket."""
    transport = ctx.transport
    if isinstance(transport, UdpTransport):
        six = transport.family == socket.AF_INET6 or ctx.address.host_family == socket.AF_INET6
        try:
            with socket.socket(socket.AF_INET6 if six else socket.AF_INET, socket.SOCK_DGRAM) as probe:
                return f"{transport.max_message_for(probe):,} bytes over UDP over IPv{6 if six else 4}"
        except OSError:  # no such family here: the transport's own figures
            return f"{UDP6_MAX if six else UDP4_MAX:,} bytes over UDP over IPv{6 if six else 4}"
    return "a few hundred KiB"


LONG_A, LONG_B = "1" * 30, "2" * 30


async def case_framing_split(ctx: CaseContext) -> Verdict:
    if not ctx.stream:
        return "skip", "this transport keeps message boundaries: a request cannot arrive in pieces"
    if ctx.settings.service == "echo":
        verdict, _ = await echo_exchange(ctx, b"a message in three pieces\n", split=True)
        return verdict
    verdict, _ = await sum_exchange(ctx, "12", "30", split=True)
    return verdict


async def case_framing_long(ctx: CaseContext) -> Verdict:
    if ctx.settings.service == "echo":
        verdict, _ = await echo_exchange(ctx, bytes(range(48, 112)))  # 64 bytes: four 16-byte reads
        return verdict
    verdict, _ = await sum_exchange(ctx, LONG_A, LONG_B)
    return verdict


async def case_pipelined(ctx: CaseContext) -> Verdict:
    if not ctx.stream:
        return "skip", "pipelining is a byte-stream matter: each message here is one request"
    request = b"1 2\n3 4\n5 6\n"
    want = ctx.oracle(request)
    conv = await converse(ctx, [request], lambda got: got.count(b"\n") >= 3)
    if conv.received == want:
        return "pass", f"three requests in one write -> {shown(conv.received)}"
    if not conv.received:
        return "fail", why_no_reply(ctx, conv, request)
    return "fail", (f"three requests in one write -> {shown(conv.received)}, expected {shown(want)}: answer every "
                    f"line, in order")


async def case_crlf(ctx: CaseContext) -> Verdict:
    request = b"2 3\r\n"
    want = ctx.oracle(request)
    conv = await converse(ctx, [request], lambda got: got.endswith(b"\n"))
    if conv.received == want:
        return "pass", f"{shown(request)} -> {shown(conv.received)} (the line ending mirrored)"
    if not conv.received:
        return "fail", why_no_reply(ctx, conv, request)
    return "fail", f"{shown(request)} -> {shown(conv.received)}, expected {shown(want)} (CRLF mirrored)"


async def _two_clients(ctx: CaseContext) -> tuple[Verdict, Conversation]:
    if ctx.settings.service == "echo":
        return await echo_exchange(ctx, b"another client\n")
    return await sum_exchange(ctx, "40", "2")


async def case_sequential(ctx: CaseContext) -> Verdict:
    first, _ = await _any_exchange(ctx)
    if first[0] != "pass":
        return "fail", f"the first client was not served: {first[1]}"
    second, conv = await _two_clients(ctx)
    if second[0] == "pass":
        return "pass", "a second client, after the first left, was served too"
    if conv.refused is not None or program_state(ctx):
        return "fail", (f"the second client was not served ({second[1]}){_program_gone(ctx)}: the server served "
                        f"one client, then stopped accepting; accept clients in a loop (while True: conn, addr = "
                        f"server.accept())")
    return "fail", f"the second client, after the first left, was not served: {second[1]}"


async def case_concurrent(ctx: CaseContext) -> Verdict:
    idle = await open_connection(ctx)
    if isinstance(idle, str):
        return "fail", f"could not connect: {idle}{_queue_full(ctx, idle)}"
    try:
        verdict, conv = await _two_clients(ctx)
        idle_accepted = was_accepted(ctx, idle) if verdict[0] != "pass" else True
    finally:
        with trio.CancelScope(shield=True):
            await idle.aclose()
    if verdict[0] == "pass":
        return "pass", "a second client was served while the first held its connection open, idle"
    if idle_accepted is False:  # not one client at a time: none at all
        return "fail", f"the server accepted neither the idle first client nor the second: {verdict[1]}"
    if conv.silent or (not conv.received and not conv.refused):
        return "fail", (f"while one client held its connection open and idle, a second got no reply within "
                        f"{ctx.timeout:g} s: the server serves one client at a time; use a thread per client "
                        f"(socketserver.ThreadingTCPServer) or select")
    return "fail", f"while one client held its connection open, a second was not served: {verdict[1]}"


async def case_banner(ctx: CaseContext) -> Verdict:
    if not ctx.connected:
        return "skip", "a datagram server can only answer: it cannot send before a request"
    opened = await open_connection(ctx)
    if isinstance(opened, str):
        return "fail", f"could not connect: {opened}{_queue_full(ctx, opened)}"
    quiet = min(0.5, ctx.timeout / 4)
    received = b""
    async with opened:
        with trio.move_on_after(quiet):
            try:
                while len(received) <= KEEP and (data := await receive_data(opened)) is not None:
                    received += data
            except _BROKEN:
                pass
    if received:
        return "fail", (f"the server sent {shown(received)} before any request: a client that reads one reply "
                        f"gets this greeting instead of its answer; send only replies")
    return "pass", f"nothing came before the request ({quiet:g} s)"


async def case_bad_input(ctx: CaseContext) -> Verdict:
    if ctx.settings.service == "echo":
        return "skip", "echo has no bad input: every byte is echoed"
    request = ctx.request("hello", "world")
    conv = await converse(ctx, [request], lambda got: got.endswith(b"\n"))
    if ctx.netlab:
        want_end = ctx.oracle(request)[-1:] if ctx.stream else b""
        if conv.received.startswith(b"ERR ") and conv.received.endswith(want_end or conv.received[-1:]):
            return "pass", f"{shown(request)} -> {shown(conv.received)}"
        if not conv.received:
            return "fail", why_no_reply(ctx, conv, request)
        return "fail", f"{shown(request)} -> {shown(conv.received)}, expected one line 'ERR <reason>'"
    if conv.received:
        return "pass", f"{shown(request)} -> {shown(conv.received)}"
    if conv.closed or conv.reset:
        gone = _program_gone(ctx)
        return "warn", (f"{shown(request)}: the connection closed without a reply{gone}; an error message "
                        f"would tell the user what was wrong")
    stuck = stuck_note(ctx, conv)
    if stuck:
        return "fail", f"{shown(request)}: no reply and no close within {ctx.timeout:g} s: {stuck}"
    return "fail", (f"{shown(request)}: no reply and no close within {ctx.timeout:g} s: the server neither "
                    f"answered nor closed the connection (a thread that died holding it, or one waiting for more "
                    f"input)")


async def case_survives_bad_input(ctx: CaseContext) -> Verdict:
    bad = b"\xff\xfe not text \x00\n" if ctx.settings.service == "echo" else ctx.request("hello", "world")
    await converse(ctx, [bad], lambda got: got.endswith(b"\n") and ctx.settings.service != "echo",
                   eof=ctx.settings.service != "echo",
                   deadline=min(ctx.deadline, trio.current_time() + min(1.0, ctx.timeout / 3)))
    state = await settled_state(ctx)
    if state:
        return "fail", f"after the bad input {shown(bad)}, {state}{_fix(ctx)}"
    verdict, conv = await _two_clients(ctx)
    if verdict[0] == "pass":
        return "pass", f"after the bad input {shown(bad)}, a new client was served"
    return "fail", f"after the bad input {shown(bad)}, a new client was not served: {verdict[1]}{_program_gone(ctx)}"


async def case_survives_disconnect(ctx: CaseContext) -> Verdict:
    if not ctx.connected:
        return "skip", "datagrams have no connection to leave"
    for abrupt in (False, True):
        opened = await open_connection(ctx)
        if isinstance(opened, str):
            state = await settled_state(ctx)
            return "fail", f"could not connect: {opened}{_queue_full(ctx, opened)}" + (
                f"; after a client left, {state}{_fix(ctx, left=True)}" if state else "")
        if abrupt:
            try:
                await send_data(opened, ctx.request("2", "") if ctx.settings.service == "sum" else b"half a mess")
            except _BROKEN:
                pass
            await trio.sleep(min(0.1, ctx.timeout / 10))
            await reset(opened)
        else:
            await opened.aclose()
    await trio.sleep(min(0.1, ctx.timeout / 10))
    state = await settled_state(ctx)
    if state:
        return "fail", (f"clients that left (one closed at once, one reset mid-request) took the server down: "
                        f"{state}{_fix(ctx, left=True)}")
    verdict, _ = await _two_clients(ctx)
    if verdict[0] == "pass":
        return "pass", "after a client closed at once and another reset mid-request, a new client was served"
    return "fail", f"after clients that left abruptly, a new client was not served: {verdict[1]}"


async def case_close_on_eof(ctx: CaseContext) -> Verdict:
    if not ctx.connected:
        return "skip", "datagrams have no connection to close"
    if ctx.settings.service == "echo":
        request, done = b"bye\n", (lambda got: False)
    else:
        request, done = ctx.request("2", "3"), (lambda got: False)
    conv = await converse(ctx, [request], done, settle=False)
    if conv.closed or conv.reset:
        return "pass", "after the client's end of stream, the server closed the connection"
    if conv.refused is not None:
        return "fail", why_no_reply(ctx, conv, request)
    stuck = stuck_note(ctx, conv)
    if stuck:
        return "fail", f"the client sent {shown(request)} and its end of stream (EOF): {stuck}"
    return "fail", (f"the client sent {shown(request)} and its end of stream (EOF), and {ctx.timeout:g} s later the "
                    f"connection was still open: the server never closes connections; when recv() returns b'' "
                    f"the client is done: close the connection (and stop reading)")


async def case_idle_cpu(ctx: CaseContext) -> Verdict:
    program = ctx.program
    if program is None:
        return "skip", "needs --run: netlab measures the CPU time of a program it started"
    full, ctx.deadline = ctx.deadline, min(ctx.deadline, trio.current_time() + ctx.timeout)
    await _any_exchange(ctx)  # within the usual timeout, answered or not: the measuring comes after
    ctx.deadline = full
    await trio.sleep(0.2)
    window = ctx.settings.idle_window
    before, start = program.cpu_seconds(), trio.current_time()
    await trio.sleep(window)
    used = (program.cpu_seconds() - before) / (trio.current_time() - start)
    if used > BUSY_SHARE:
        return "fail", (f"used {used:.0%} of a core for {window:g} s while idle, after a client left: a busy loop; "
                        f"most likely recv() returning b'' forever once the client has gone: stop when it does")
    return "pass", f"used {used:.0%} of a core while idle, after a client left"


async def case_reach_interfaces(ctx: CaseContext) -> Verdict:
    from .reach import reach_verdict

    return await reach_verdict(ctx)


async def case_reach_ipv6(ctx: CaseContext) -> Verdict:
    from .reach import ipv6_verdict

    return await ipv6_verdict(ctx)


async def case_restart(ctx: CaseContext) -> Verdict:
    request = ctx.request("2", "3") if ctx.settings.service == "sum" else b"hello, netlab\n"
    status, text = await restart_verdict(ctx.program, ctx.address, request, isolated=ctx.isolated,
                                         startup=ctx.settings.startup, deadline=ctx.deadline)
    if status == "lesson":
        return ("fail" if ctx.netlab else "warn"), text
    return status, text


@dataclass(frozen=True)
class Case:
    """One case: a stable id, the services it is for, the profiles it runs in, what it checks."""

    id: str
    checks: str
    run: Callable[[CaseContext], Awaitable[Verdict]]
    services: frozenset[str] = frozenset({"sum", "echo"})
    profiles: frozenset[str] = frozenset({"assignment", "netlab"})
    #: seconds a case may take beyond the per-case timeout (a measurement window, a restart)
    extra: Callable[[CheckSettings], float] = lambda settings: 0.0

    @property
    def group(self) -> str:
        return self.id.split(".")[0]


SUM, ECHO = frozenset({"sum"}), frozenset({"echo"})

#: every case, in the order they run
CASES: list[Case] = [
    Case("connect", "accepts a connection (datagrams: answers a request) at the address", case_connect),
    Case("sum.small", "2 3 -> 5", _sum_case("2", "3"), SUM),
    Case("sum.negative", "-10 3 -> -7", _sum_case("-10", "3"), SUM),
    Case("sum.decimal", "0.1 0.2 -> 0.3 (a float within 1e-9 is fine in the assignment profile)",
         _sum_case("0.1", "0.2"), SUM),
    Case("sum.large", "two 20-digit integers, added exactly",
         _sum_case("12345678901234567890", "98765432109876543210", exact=True), SUM),
    Case("echo.small", "a short line comes back unchanged", _echo_case(b"hello, netlab\n"), ECHO),
    Case("echo.binary", "all 256 byte values come back unchanged", _echo_case(bytes(range(256))), ECHO),
    Case("echo.large", "1 MiB comes back unchanged (streams)", _echo_case(None, datagrams=False), ECHO),
    Case("framing.split", "a request arriving in pieces, with pauses, is answered whole", case_framing_split),
    Case("framing.long", "a request longer than a 16-byte read (two 30-digit numbers; 64 bytes for echo)",
         case_framing_long),
    Case("lines.pipelined", "three requests in one write get three replies, in order", case_pipelined, SUM,
         frozenset({"netlab"})),
    Case("lines.crlf", "a CRLF request gets a CRLF reply", case_crlf, SUM, frozenset({"netlab"})),
    Case("clients.sequential", "a second client is served after the first leaves", case_sequential),
    Case("clients.concurrent", "a second client is served while the first holds its connection open, idle",
         case_concurrent),
    Case("protocol.banner", "the server sends nothing before the request", case_banner),
    Case("input.bad", "non-numbers get an error reply or a clean close, not silence", case_bad_input, SUM),
    Case("survives.bad_input", "after bad input, a new client is served", case_survives_bad_input),
    Case("survives.disconnect", "clients that leave at once or reset mid-request do not take the server down",
         case_survives_disconnect),
    Case("close.on_eof", "after the client's end of stream, the server closes the connection", case_close_on_eof),
    Case("reach.interfaces", "bound to loopback only, all interfaces, or one address: can another machine reach it?",
         case_reach_interfaces, extra=lambda settings: settings.startup + 5.0),
    Case("reach.ipv6", "reachable over IPv6 (::1) as well as IPv4", case_reach_ipv6),
    Case("resources.idle_cpu", "with --run: CPU use while idle after a client left (catches busy loops)",
         case_idle_cpu, extra=lambda settings: settings.idle_window + 0.5),
    # last: it turns TIME_WAIT on and leaves the port with it
    Case("restart.reuse", "with --run: stopped as Ctrl-C would with a client connected, it starts again at once "
         "(TIME_WAIT and SO_REUSEADDR)", case_restart, extra=lambda settings: settings.startup + 5.0),
]


def select_cases(service: str, profile: str, only: Sequence[str] = ()) -> list[Case]:
    """The cases for a service and profile; `only` narrows to ids or groups (``framing``).

    Raises: UsageError for a name that is no case id or group."""
    from ..errors import UsageError

    chosen = [c for c in CASES if service in c.services and profile in c.profiles]
    if only:
        known = {c.id for c in chosen} | {c.group for c in chosen}
        unknown = [name for name in only if name not in known]
        if unknown:
            raise UsageError(f"no case or group {unknown[0]!r} for {service} in the {profile} profile "
                             f"(known: {', '.join(c.id for c in chosen)})")
        chosen = [c for c in chosen if c.id in only or c.group in only]
    return chosen


__all__ = ["CASES", "Case", "CaseContext", "CheckSettings", "Conversation", "Outcome", "Verdict", "converse",
           "select_cases"]
