"""Checking a client (``netlab check --client CMD --listen ADDR``).

netlab serves a lenient reference at ADDR (for sum: the first two numbers in whatever the
client sent, whatever separates them; the reply is the sum and a newline; for echo: the
bytes back) and runs the client once per case, each time misbehaving in one way a real
server or network does:

==========================  ==========================================================
``client.plain``             an ordinary reply
``client.split_reply``       the reply in 1-byte pieces with pauses (catches clients that
                             read once)                                    byte streams
``client.slow_reply``        the reply after 2 s (or half the timeout, if less)
``client.server_closes``     the server closes without replying       connection kinds
``client.no_reply``          the server never replies: the client must give up within
                             ``--timeout``, not hang
``client.lost_reply``        the first reply is lost; later requests are answered  datagrams
``client.request_end``       sum, byte streams: the reference reads a line, as netlab
                             serve does; a request with no newline and no half-close
                             waits there for ever (a warning)
==========================  ==========================================================

Judged by the client's exit status and whether its output holds the answer: stdout *or*
stderr (the course's skeleton logs what it receives on stderr), read by
`netlab.check.judge.printed_answer`, which does not take the client's log of its own
request (``sending "hello"``) for the reply and accepts a reply printed in pieces. A client
is said to read once only when it truly stopped: it closed its connection before the whole
reply had been sent. A client still running at its deadline is stopped (its whole process
group) and fails.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from ..errors import NetlabError
from ..runner import HINT_AFTER
from ..services.lenient import NotTwoNumbers, two_numbers
from ..services.sum import SumError, add
from ..transports.base import Peer
from ..transports import (Address, Connection, DatagramEndpoint, Listeners, parse_address, receive_data, send_data,
                          socket_of)
from .cases import CheckSettings, Outcome
from .judge import numbers_in, printed_answer, shown
from . import isolate
from .command import Command
from .program import Program
from .report import CaseResult, CheckReport
from .sandbox import RunAs, Workspace, resolve_user

#: a client may take this long beyond its case's wait to start up and exit
MARGIN = 2.0
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


@dataclass(frozen=True)
class ClientCase:
    id: str
    checks: str
    behaviour: str
    kinds: frozenset[str] = frozenset({"stream", "seqpacket", "datagram"})
    services: frozenset[str] = frozenset({"sum", "echo"})

    @property
    def group(self) -> str:
        return "client"


CLIENT_CASES: list[ClientCase] = [
    ClientCase("client.plain", "an ordinary reply: the client prints the answer and exits 0", "plain"),
    ClientCase("client.split_reply", "the reply in 1-byte pieces with pauses: the client reads all of it", "split",
               frozenset({"stream"})),
    ClientCase("client.slow_reply", "the reply comes late (2 s): the client waits for it", "slow"),
    ClientCase("client.server_closes", "the server closes without replying: the client exits, without hanging",
               "close", frozenset({"stream", "seqpacket"})),
    ClientCase("client.no_reply", "the server never replies: the client gives up within --timeout", "silent"),
    ClientCase("client.lost_reply", "the first reply is lost: the client retries or gives up, without hanging",
               "lose_first", frozenset({"datagram"})),
    ClientCase("client.request_end", "the request ends (a newline, or shutdown(SHUT_WR)), so a server that reads a "
               "line sees it whole (a warning)", "line", frozenset({"stream"}), frozenset({"sum"})),
]


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


async def _serve_connection(conn: Connection, case: ClientCase, service: str, seen: _Seen, slow: float,
                            pause: float) -> None:
    async with conn:
        request, end = await _read_request(conn, service, seen, line=case.behaviour == "line")
        if not request:
            return  # a connection that carried no request (a probe, connect then close): not the one judged
        seen.ends.append(end)
        answer = _answer(service, request)
        seen.record(request, answer)
        try:
            if case.behaviour == "close":
                return
            if case.behaviour == "silent":
                await trio.sleep_forever()
            if case.behaviour == "slow":
                await trio.sleep(slow)
            if case.behaviour == "split":
                await _send_split(conn, answer, seen, pause, slow, at_eof=end == "eof")
                return
            else:
                await send_data(conn, answer)
            seen.replied()
            await conn.send_eof()
            with trio.move_on_after(slow):  # let the client close first: its last read sees EOF, not a reset
                while await receive_data(conn) is not None:
                    pass
        except (NetlabError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass


async def _serve(listening: Listeners | DatagramEndpoint, case: ClientCase, service: str, seen: _Seen, slow: float,
                 pause: float) -> None:
    async with trio.open_nursery() as nursery:
        if isinstance(listening, Listeners):
            while True:
                conn = await listening.listeners[0].accept()
                nursery.start_soon(_serve_connection, conn, case, service, seen, slow, pause)
        while True:
            message = await listening.receive()
            if message.peer is None or not message.data:
                continue
            request = message.data
            answer = _answer(service, request)
            seen.record(request, answer)
            if case.behaviour == "silent" or (case.behaviour == "lose_first" and len(seen.requests) == 1):
                continue
            if case.behaviour == "slow":
                nursery.start_soon(_later, listening, answer, message.peer, slow, seen)
                continue
            try:
                await listening.send_to(answer, message.peer)
                seen.replied()
            except NetlabError:
                pass


async def _drain(listening: Listeners | DatagramEndpoint) -> int:
    """Accept and close every connection waiting (or read every datagram queued) from clients
    of earlier cases, so that the next case judges only its own client; how many there were."""
    count = 0
    while True:
        with trio.move_on_after(DRAIN) as quiet:
            if isinstance(listening, Listeners):
                conn = await listening.listeners[0].accept()
                with trio.CancelScope(shield=True):
                    await conn.aclose()
            else:
                await listening.receive()
        if quiet.cancelled_caught:
            return count
        count += 1


async def _later(endpoint: DatagramEndpoint, answer: bytes, peer: Peer, delay: float, seen: _Seen) -> None:
    await trio.sleep(delay)
    try:
        await endpoint.send_to(answer, peer)
        seen.replied()
    except NetlabError:
        pass


def _verdict(case: ClientCase, seen: _Seen, program: Program, finished: bool, wait: float, service: str,
             slow: float, ended: float | None) -> tuple[Outcome, str]:
    """The verdict on one run of the client; `ended` is when it was seen to exit (None: it
    had not, or was stopped)."""
    outputs = {"stdout": program.stdout(), "stderr": program.stderr()}
    status = program.exit_status()
    tail = program.stderr_tail()
    if case.behaviour == "line" and seen.unfinished is not None:
        return "warn", _unfinished(seen.unfinished)
    if not seen.connected:
        if not finished:
            return "fail", f"the client never sent a request and was still running after {wait:g} s (stopped)"
        return "fail", (f"the client never sent a request to the reference server ({program.status_text()}"
                        + (f"; last stderr lines: {tail}" if tail else "") + ")")
    answer = seen.answers[0]
    found = [name for name, output in outputs.items()
             if printed_answer(output, answer, seen.requests, echo=service == "echo")]
    got = bool(found)
    if case.behaviour == "line":
        how = {"newline": "a newline", "long": f"its size (netlab reads at most {KEEP:,} bytes of a request)"}.get(
            seen.ends[0], "the end of its stream (it shut down its sending side, or closed)")
        return "pass", f"sent {shown(seen.requests[0])}, ended by {how}: a server that reads a line sees it whole"
    if case.behaviour in ("plain", "split", "slow"):
        if not finished:
            hint = "; it reads until the server closes?" if case.behaviour != "slow" else ""
            return "fail", f"the client got {shown(answer)} but was still running after {wait:g} s (stopped){hint}"
        where = "" if "stdout" in found else " (on stderr)"
        if got and status == 0:
            return "pass", f"sent {shown(seen.requests[0])}, printed the answer{where}, exited 0"
        if got:
            return "fail", (f"printed the answer{where} but {program.status_text()}"
                            + (f"; last stderr lines: {tail}" if tail else ""))
        text = (f"sent {shown(seen.requests[0])}, was answered {shown(answer)}, but its output does not hold the "
                f"answer (stdout {shown(outputs['stdout'])}" + (f"; last stderr lines: {tail}" if tail else "")
                + ")")
        if service == "echo" and any(answer.strip() and answer.strip() in output for output in outputs.values()):
            text += "; its log of the request it sent (\"sending ...\") does not count as the reply"
        if case.behaviour == "split":
            text += _stopped_reading(seen, len(answer), service)
        elif case.behaviour == "slow" and seen.replied_at is None and seen.asked_at is not None:
            waited = (ended if ended is not None else trio.current_time()) - seen.asked_at
            text = (f"sent {shown(seen.requests[0])} and gave up {waited:.1f} s later ({program.status_text()}), "
                    f"before the reply, which was to come {slow:g} s after the request: its timeout is shorter than "
                    f"that; wait longer for a reply (sock.settimeout(5))")
        return "fail", text
    if not finished:
        return "fail", (f"the client was still waiting after {wait:g} s (stopped): it has no timeout; set one "
                        f"(sock.settimeout(5)) and report the failure")
    if "Traceback" in tail or "Traceback" in program.stderr_tail(50):
        return "warn", (f"the client stopped ({program.status_text()}) but with a traceback ({tail}): catch the "
                        f"error and print a message")
    retried = case.behaviour == "lose_first" and len(seen.requests) > 1
    text = f"the client gave up on its own ({program.status_text()})"
    if retried:
        text = f"the client sent again and {'got' if got else 'missed'} the answer ({program.status_text()})"
    return "pass", text


def _stopped_reading(seen: _Seen, size: int, service: str) -> str:
    """Why a client missed a reply sent in 1-byte pieces: it stopped reading only if it closed
    its connection before the end of the reply, or with some of it unread."""
    until = "the newline" if service == "sum" else "it has as many bytes as it sent"
    left = seen.left_at
    if left is None:
        return (f": it was sent all {size} bytes, one at a time, and read to the end without closing early; it "
                f"printed something else")
    if left == 0 and not seen.left_unread:
        return ": it closed its connection before the first byte of the reply was sent: it does not wait for the reply"
    if seen.left_unread:
        what = (f"closed its connection with part of the reply unread ({left} of {size} bytes had been sent; its "
                f"kernel reset the connection)")
    else:
        what = f"closed its connection when {left} of {size} bytes had been sent"
    first = " after the first piece" if left == 1 else ""
    return (f": it stopped reading{first}: it {what}; it reads once and takes what came for the whole reply; "
            f"read until {until}")


def _unfinished(request: bytes) -> str:
    """client.request_end's warning: a request with no end."""
    ended = request + b"\n"
    return (f"the client sent {shown(request)} with no newline and did not shut down its sending side, then waited "
            f"for the reply; netlab stopped it after {UNFINISHED:g} s with the request unfinished. A server that "
            f"reads a line, as netlab serve does (its default, --framing line), waits for ever for the rest, and the "
            f"client waits with it. Fix: end the request with \"\\n\" (sendall({shown(ended)})), or call "
            f"sock.shutdown(socket.SHUT_WR) once it is sent; against netlab serve, --framing quiet takes a pause "
            f"as the end of a request")


async def check_client(command: str, listen: Address | str, settings: CheckSettings = CheckSettings(), *,
                       stdin: bytes | None = None, cwd: str | None = None,
                       progress: Callable[[str, int, int], None] | None = None, owner: bool = False,
                       run_as: RunAs | None = None) -> CheckReport:
    """Run the client `command` once per case against a reference server at `listen`.

    The client and the reference server run in namespaces of their own where this machine
    allows it (`netlab.check.isolate`; ``settings.namespaces=False`` keeps them on the host), so
    a student's server that just left TIME_WAIT on the port does not stop the reference server
    from binding. (`owner`: this process is the isolated child itself.)

    Raises: what `Transport.listen` raises (the address is taken, not allowed)."""
    address = parse_address(listen)
    Command.parse(command)  # a bad command, before anything runs
    if not owner:
        found = isolate.isolation() if settings.namespaces else None
        if run_as is None:
            run_as = resolve_user(settings.user, isolation_mode=found.mode if found else None, folder=False,
                                  env=settings.env)
        assert run_as is not None  # folder=False always resolves
        if found is not None and found.available:
            job = {"kind": "client", "command": command, "listen": str(address), "cwd": cwd,
                   "stdin": None if stdin is None else stdin.hex(), "mode": found.mode, "run_as": run_as.as_json()}
            return await isolate.run_isolated(job, settings, len(CLIENT_CASES), progress)
    run_as = run_as if run_as is not None else RunAs()
    space = Workspace.make(run_as)
    try:
        report = await _check_client(command, address, settings, stdin, cwd, progress, owner, run_as, space.home)
    finally:
        space.remove()
    report.isolation = run_as.describe()
    return report


async def _check_client(command: str, address: Address, settings: CheckSettings, stdin: bytes | None,
                        cwd: str | None, progress: Callable[[str, int, int], None] | None, owner: bool,
                        run_as: RunAs, home: str) -> CheckReport:
    kind = address.transport.kind
    cases = [c for c in CLIENT_CASES if kind in c.kinds and settings.service in c.services]
    if settings.only:
        cases = [c for c in cases if c.id in settings.only or c.group in settings.only]
    report = CheckReport(command, settings.service, "client", None)
    slow = min(2.0, settings.timeout / 2)
    pause = min(0.05, settings.timeout / 50)
    listening = await address.transport.listen(address)
    async with listening:
        assert isinstance(listening, (Listeners, DatagramEndpoint))
        for i, case in enumerate(cases):
            if progress is not None:
                progress(case.id, i, len(cases))
            report.cases.append(await _run_case(case, command, listening, settings, stdin, cwd, slow, pause, owner,
                                                report, run_as, home))
    return report


async def _run_case(case: ClientCase, command: str, listening: Listeners | DatagramEndpoint,
                    settings: CheckSettings, stdin: bytes | None, cwd: str | None, slow: float,
                    pause: float, owner: bool, report: CheckReport, run_as: RunAs, home: str) -> CaseResult:
    started = trio.current_time()
    seen = _Seen([], [])
    program = Program(command, cwd=cwd, stdin=stdin, owner=owner, run_as=run_as, home=home)
    wait = settings.timeout + MARGIN + (slow if case.behaviour == "slow" else 0.0) + \
        (32 * pause if case.behaviour == "split" else 0.0)  # a reply of up to 32 bytes, a pause after each
    finished = False
    await _drain(listening)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_serve, listening, case, settings.service, seen, slow, pause)
        program.start()
        ended = None
        with trio.move_on_after(wait):
            while program.running and not seen.unfinished_seen.is_set():
                await trio.sleep(0.02)
            finished = not seen.unfinished_seen.is_set()
            ended = trio.current_time() if finished else None
        if case.behaviour == "split" and seen.connected:
            # a client that stopped reading exits while the pieces are still being sent:
            # whether it closed before the last one is known once they all have been
            with trio.move_on_after(len(seen.answers[0]) * pause + slow + 1.0):
                await seen.split_done.wait()
        verdict = _verdict(case, seen, program, finished, wait, settings.service, slow, ended)
        await program.stop(grace=0.5)
        program.close()
        report.cleanup += [f"{case.id}: {line}" for line in program.cleanup]
        report.limits += [f"{case.id}: {line}" for line in program.limits_hit]
        nursery.cancel_scope.cancel()
    return CaseResult(case.id, case.group, verdict[0], verdict[1], trio.current_time() - started)


__all__ = ["CLIENT_CASES", "ClientCase", "check_client"]
