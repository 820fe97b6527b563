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
==========================  ==========================================================

Judged by the client's exit status and whether its output contains the answer. A client
still running at its deadline is stopped (its whole process group) and fails.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from dataclasses import dataclass

import trio

from ..errors import NetlabError
from ..services.lenient import NotTwoNumbers, two_numbers
from ..services.sum import SumError, add
from ..transports.base import Peer
from ..transports import (
    Address, Connection, DatagramEndpoint, Listeners, get_transport, parse_address, receive_data, send_data,
)
from .cases import CheckSettings, Outcome
from .judge import numbers_in, shown
from .program import Program
from .report import CaseResult, CheckReport

#: a client may take this long beyond its case's wait to start up and exit
MARGIN = 2.0
#: the request is taken as complete after this much silence
QUIET = 0.2


@dataclass(frozen=True)
class ClientCase:
    id: str
    checks: str
    behaviour: str
    kinds: frozenset[str] = frozenset({"stream", "seqpacket", "datagram"})

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
]


@dataclass
class _Seen:
    """What the reference server saw during one case."""

    requests: list[bytes]
    answers: list[bytes]

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


async def _read_request(conn: Connection, service: str) -> bytes:
    """Bytes until the request looks complete: a newline (or ``]``), the end of the stream, or
    `QUIET` seconds without more once something came."""
    data = b""
    while True:
        with trio.move_on_after(QUIET if data else float("inf")) as quiet:
            try:
                chunk = await receive_data(conn)
            except (NetlabError, trio.BrokenResourceError, trio.ClosedResourceError):
                return data
        if quiet.cancelled_caught or chunk is None:
            return data
        data += chunk
        if _complete(service, data):
            return data


async def _serve_connection(conn: Connection, case: ClientCase, service: str, seen: _Seen, slow: float,
                            pause: float) -> None:
    async with conn:
        request = await _read_request(conn, service)
        seen.requests.append(request)
        answer = _answer(service, request)
        seen.answers.append(answer)
        try:
            if case.behaviour == "close":
                return
            if case.behaviour == "silent":
                await trio.sleep_forever()
            if case.behaviour == "slow":
                await trio.sleep(slow)
            if case.behaviour == "split":
                for i in range(len(answer)):
                    await send_data(conn, answer[i:i + 1])
                    await trio.sleep(pause)
            else:
                await send_data(conn, answer)
            await conn.send_eof()
            with trio.move_on_after(slow):  # let the client close first: its last read sees EOF, not a reset
                while await receive_data(conn) is not None:
                    pass
        except (NetlabError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass


async def _serve(listening: Listeners[Connection] | DatagramEndpoint, case: ClientCase, service: str, seen: _Seen,
                 slow: float, pause: float) -> None:
    async with trio.open_nursery() as nursery:
        if isinstance(listening, Listeners):
            while True:
                conn = await listening.listeners[0].accept()
                nursery.start_soon(_serve_connection, conn, case, service, seen, slow, pause)
        while True:
            message = await listening.receive()
            if message.peer is None:
                continue
            request = message.data
            seen.requests.append(request)
            answer = _answer(service, request)
            seen.answers.append(answer)
            if case.behaviour == "silent" or (case.behaviour == "lose_first" and len(seen.requests) == 1):
                continue
            if case.behaviour == "slow":
                nursery.start_soon(_later, listening, answer, message.peer, slow)
                continue
            try:
                await listening.send_to(answer, message.peer)
            except NetlabError:
                pass


async def _later(endpoint: DatagramEndpoint, answer: bytes, peer: Peer, delay: float) -> None:
    await trio.sleep(delay)
    try:
        await endpoint.send_to(answer, peer)
    except NetlabError:
        pass


def _verdict(case: ClientCase, seen: _Seen, program: Program, finished: bool, wait: float,
             service: str) -> tuple[Outcome, str]:
    output = program.stdout()
    status = program.exit_status()
    tail = program.stderr_tail()
    if not seen.connected:
        if not finished:
            return "fail", f"the client never sent a request and was still running after {wait:g} s (stopped)"
        return "fail", (f"the client never sent a request to the reference server ({program.status_text()}"
                        + (f"; last stderr lines: {tail}" if tail else "") + ")")
    answer = seen.answers[0]
    got = _contains_answer(output, answer, service)
    if case.behaviour in ("plain", "split", "slow"):
        if not finished:
            hint = "; it reads until the server closes?" if case.behaviour != "slow" else ""
            return "fail", f"the client got {shown(answer)} but was still running after {wait:g} s (stopped){hint}"
        if got and status == 0:
            return "pass", f"sent {shown(seen.requests[0])}, printed the answer, exited 0"
        if got:
            return "fail", f"printed the answer but {program.status_text()}" + (f"; last stderr lines: {tail}" if tail
                                                                                else "")
        text = f"sent {shown(seen.requests[0])}, was answered {shown(answer)}, but printed {shown(output)}"
        if case.behaviour == "split":
            text += ": it reads once and takes what came as the whole reply; read until the newline"
        elif case.behaviour == "slow":
            text += f" ({program.status_text()}): its timeout is shorter than {wait - MARGIN:g} s, or it reads once"
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


def _contains_answer(output: bytes, answer: bytes, service: str) -> bool:
    if service == "echo":
        return answer.strip() in output
    want = numbers_in(answer)
    if not want or answer.startswith(b"ERR"):
        return False
    scale = max(abs(want[0]), decimal.Decimal(1))
    return any(abs(n - want[0]) <= decimal.Decimal("1e-9") * scale for n in numbers_in(output))


async def check_client(command: str, listen: Address | str, settings: CheckSettings = CheckSettings(), *,
                       stdin: bytes | None = None, cwd: str | None = None,
                       progress: Callable[[str, int, int], None] | None = None) -> CheckReport:
    """Run the client `command` once per case against a reference server at `listen`.

    Raises: what `Transport.listen` raises (the address is taken, not allowed)."""
    address = parse_address(listen)
    kind = get_transport(address.scheme).kind
    cases = [c for c in CLIENT_CASES if kind in c.kinds]
    if settings.only:
        cases = [c for c in cases if c.id in settings.only or c.group in settings.only]
    report = CheckReport(command, settings.service, "client", None)
    slow = min(2.0, settings.timeout / 2)
    pause = min(0.05, settings.timeout / 50)
    listening = await get_transport(address.scheme).listen(address)
    async with listening:
        assert isinstance(listening, (Listeners, DatagramEndpoint))
        for i, case in enumerate(cases):
            if progress is not None:
                progress(case.id, i, len(cases))
            report.cases.append(await _run_case(case, command, listening, settings, stdin, cwd, slow, pause))
    return report


async def _run_case(case: ClientCase, command: str, listening: Listeners[Connection] | DatagramEndpoint,
                    settings: CheckSettings, stdin: bytes | None, cwd: str | None, slow: float,
                    pause: float) -> CaseResult:
    started = trio.current_time()
    seen = _Seen([], [])
    program = Program(command, cwd=cwd, stdin=stdin)
    wait = settings.timeout + MARGIN + (slow if case.behaviour == "slow" else 0.0) + \
        (32 * pause if case.behaviour == "split" else 0.0)  # a reply of up to 32 bytes, a pause after each
    finished = False
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_serve, listening, case, settings.service, seen, slow, pause)
        program.start()
        with trio.move_on_after(wait):
            while program.running:
                await trio.sleep(0.02)
            finished = True
        verdict = _verdict(case, seen, program, finished, wait, settings.service)
        await program.stop(grace=0.5)
        program.close()
        nursery.cancel_scope.cancel()
    return CaseResult(case.id, case.group, verdict[0], verdict[1], trio.current_time() - started)


__all__ = ["CLIENT_CASES", "ClientCase", "check_client"]
