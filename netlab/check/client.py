"""Checking a client (``netlab check --client CMD --listen ADDR``).

netlab serves a lenient reference at ADDR (`netlab.check.reference`: for sum, the first two
numbers in whatever the client sent, whatever separates them; the reply is the sum and a
newline; for echo: the bytes back) and runs the client once per case, each time misbehaving
in one way a real server or network does. Each case below is declared with ``@case(...)``,
as a server's are (`netlab.check.registry`), with the transports it runs on (a reply in
pieces needs a byte stream, a lost reply datagrams); ``netlab check --list`` lists them.

A case is an async function of a `ClientRun`: it serves the client with the reference's way
of replying to each request (``await run.serve(lambda reply: reply.send_late())``), which
starts the client and waits for it to exit, then judges what the client did.

Judged by the client's exit status and whether its output holds the answer: stdout *or*
stderr (the course's skeleton logs what it receives on stderr), read by
`netlab.check.judge.printed_answer`, which does not take the client's log of its own
request (``sending "hello"``) for the reply and accepts a reply printed in pieces. A client
is said to read once only when it truly stopped: it closed its connection before the whole
reply had been sent. A client still running at its deadline is stopped (its whole process
group) and fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import trio

from ..transports import Address, get_transport, parse_address
from . import isolate
from .command import Command
from .judge import printed_answer, shown
from .packets import NOT_TRACED, traced
from .program import Program
from .reference import KEEP, UNFINISHED, Reference, Reply, ReplyWith, _Seen, reference
from .registry import BYTE_STREAMS, CONNECTIONS, DATAGRAMS, SUM, Case, CaseList
from .report import CaseResult, CheckReport
from .sandbox import RunAs, Workspace
from .settings import CheckSettings, Verdict
from .usage import check_usage


#: a client may take this long beyond its case's wait to start up and exit
MARGIN = 2.0


def _slow(settings: CheckSettings) -> float:
    """How late a slow reply comes: 2 s, or half the timeout if less."""
    return min(2.0, settings.timeout / 2)


def _pause(settings: CheckSettings) -> float:
    """The pause after each byte of a reply in pieces."""
    return min(0.05, settings.timeout / 50)


@dataclass
class ClientRun:
    """One run of the client under test against the reference server: what a client case
    works with. `serve` runs it; then `seen` is what the reference saw, `finished` whether the
    client exited by itself within `wait` seconds, and `ended` when it was seen to exit."""

    settings: CheckSettings
    program: Program
    reference: Reference
    nursery: trio.Nursery
    #: how long the client may run: the timeout, a margin, and the case's extra time
    wait: float
    seen: _Seen
    finished: bool = False
    ended: float | None = None

    @property
    def service(self) -> str:
        return self.settings.service

    @property
    def slow(self) -> float:
        return _slow(self.settings)

    @property
    def pause(self) -> float:
        return _pause(self.settings)

    async def serve(self, reply_with: ReplyWith, *, line: bool = False) -> None:
        """Serve with `reply_with` (read each request as a line, with `line`), start the client,
        and wait until it exits, at most `wait` s (or until it has been seen waiting on a
        request with no end, with `line`). The reference serves on until the case is over."""
        self.nursery.start_soon(partial(self.reference.serve, line=line), reply_with, self.seen)
        self.program.start()
        with trio.move_on_after(self.wait):
            while self.program.running and not self.seen.unfinished_seen.is_set():
                await trio.sleep(0.02)
            self.finished = not self.seen.unfinished_seen.is_set()
            self.ended = trio.current_time() if self.finished else None

    async def sent_in_pieces(self) -> None:
        """Wait until a reply in pieces has all been sent, or the client was found gone: a
        client that stopped reading exits while the pieces are still being sent, and whether
        it closed before the last one is known once they all have been."""
        if self.seen.connected:
            with trio.move_on_after(len(self.seen.answers[0]) * self.pause + self.slow + 1.0):
                await self.seen.split_done.wait()


# -- judging what the client did ------------------------------------------------------------


def _never_asked(run: ClientRun) -> Verdict | None:
    """The verdict on a client that never sent a request; None if it sent one."""
    if run.seen.connected:
        return None
    if not run.finished:
        return "fail", f"the client never sent a request and was still running after {run.wait:g} s (stopped)"
    tail = run.program.stderr_tail()
    return "fail", (f"the client never sent a request to the reference server ({run.program.status_text()}"
                    + (f"; last stderr lines: {tail}" if tail else "") + ")")


def _printed(run: ClientRun) -> list[str]:
    """Which of the client's outputs (stdout, stderr) hold the reference's answer."""
    outputs = {"stdout": run.program.stdout(), "stderr": run.program.stderr()}
    return [name for name, output in outputs.items()
            if printed_answer(output, run.seen.answers[0], run.seen.requests, echo=run.service == "echo")]


def _answered(run: ClientRun, *, reads_to_close: bool = True,
              missed: Callable[[str], str] = lambda text: text) -> Verdict:
    """The verdict where the reference answered (at once, late, in pieces): the client prints
    the answer and exits 0. `missed` words a miss (the reason the case knows)."""
    seen, program = run.seen, run.program
    answer = seen.answers[0]
    if not run.finished:
        hint = "; it reads until the server closes?" if reads_to_close else ""
        return "fail", f"the client got {shown(answer)} but was still running after {run.wait:g} s (stopped){hint}"
    found = _printed(run)
    tail = program.stderr_tail()
    where = "" if "stdout" in found else " (on stderr)"
    if found and program.exit_status() == 0:
        return "pass", f"sent {shown(seen.requests[0])}, printed the answer{where}, exited 0"
    if found:
        return "fail", (f"printed the answer{where} but {program.status_text()}"
                        + (f"; last stderr lines: {tail}" if tail else ""))
    outputs = {"stdout": program.stdout(), "stderr": program.stderr()}
    text = (f"sent {shown(seen.requests[0])}, was answered {shown(answer)}, but its output does not hold the "
            f"answer (stdout {shown(outputs['stdout'])}" + (f"; last stderr lines: {tail}" if tail else "")
            + ")")
    if run.service == "echo" and any(answer.strip() and answer.strip() in output for output in outputs.values()):
        text += "; its log of the request it sent (\"sending ...\") does not count as the reply"
    return "fail", missed(text)


def _gave_up(run: ClientRun, *, retries: bool = False) -> Verdict:
    """The verdict where no answer came (or not to the first request): the client gives up,
    or tries again (`retries`), without hanging and without a traceback."""
    program = run.program
    if not run.finished:
        return "fail", (f"the client was still waiting after {run.wait:g} s (stopped): it has no timeout; set one "
                        f"(sock.settimeout(5)) and report the failure")
    tail = program.stderr_tail()
    if "Traceback" in tail or "Traceback" in program.stderr_tail(50):
        return "warn", (f"the client stopped ({program.status_text()}) but with a traceback ({tail}): catch the "
                        f"error and print a message")
    if retries and len(run.seen.requests) > 1:
        got = bool(_printed(run))
        return "pass", f"the client sent again and {'got' if got else 'missed'} the answer ({program.status_text()})"
    return "pass", f"the client gave up on its own ({program.status_text()})"


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


# -- the cases --------------------------------------------------------------------------------

case = CaseList[ClientRun]()


@case("client.plain", "an ordinary reply: the client prints the answer and exits 0")
async def client_plain(run: ClientRun) -> Verdict:
    await run.serve(lambda reply: reply.send())
    return _never_asked(run) or _answered(run)


@case("client.split_reply", "the reply in 1-byte pieces with pauses: the client reads all of it", on=(BYTE_STREAMS,),
      extra=lambda settings: 32 * _pause(settings))  # a reply of up to 32 bytes, a pause after each
async def client_split_reply(run: ClientRun) -> Verdict:
    await run.serve(lambda reply: reply.send_in_pieces())
    await run.sent_in_pieces()
    size = len(run.seen.answers[0]) if run.seen.connected else 0
    return _never_asked(run) or _answered(run, missed=lambda text: text + _stopped_reading(run.seen, size,
                                                                                             run.service))


@case("client.slow_reply", "the reply comes late (2 s): the client waits for it", extra=_slow)
async def client_slow_reply(run: ClientRun) -> Verdict:
    await run.serve(lambda reply: reply.send_late())
    return _never_asked(run) or _answered(run, reads_to_close=False, missed=lambda text: _too_early(run) or text)


def _too_early(run: ClientRun) -> str | None:
    """client.slow_reply: the client gave up before the reply was sent; None if it did not."""
    seen = run.seen
    if seen.replied_at is not None or seen.asked_at is None:
        return None
    waited = (run.ended if run.ended is not None else trio.current_time()) - seen.asked_at
    return (f"sent {shown(seen.requests[0])} and gave up {waited:.1f} s later ({run.program.status_text()}), "
            f"before the reply, which was to come {run.slow:g} s after the request: its timeout is shorter than "
            f"that; wait longer for a reply (sock.settimeout(5))")


@case("client.server_closes", "the server closes without replying: the client exits, without hanging",
      on=(CONNECTIONS,))
async def client_server_closes(run: ClientRun) -> Verdict:
    await run.serve(lambda reply: reply.close())
    return _never_asked(run) or _gave_up(run)


@case("client.no_reply", "the server never replies: the client gives up within --timeout")
async def client_no_reply(run: ClientRun) -> Verdict:
    await run.serve(lambda reply: reply.hold())
    return _never_asked(run) or _gave_up(run)


async def _lose_first(reply: Reply) -> None:
    """The first reply is lost (never sent); later requests are answered."""
    if not reply.first:
        await reply.send()


@case("client.lost_reply", "the first reply is lost: the client retries or gives up, without hanging",
      on=(DATAGRAMS,))
async def client_lost_reply(run: ClientRun) -> Verdict:
    await run.serve(_lose_first)
    return _never_asked(run) or _gave_up(run, retries=True)


@case("client.request_end", "the request ends (a newline, or shutdown(SHUT_WR)), so a server that reads a line sees "
      "it whole (a warning)", services=SUM, on=(BYTE_STREAMS,))
async def client_request_end(run: ClientRun) -> Verdict:
    """The reference reads a line, as netlab serve does: a request with no newline and no
    half-close waits there for ever (a warning)."""
    await run.serve(lambda reply: reply.send(), line=True)
    seen = run.seen
    if seen.unfinished is not None:
        return "warn", _unfinished(seen.unfinished)
    never = _never_asked(run)
    if never is not None:
        return never
    how = {"newline": "a newline", "long": f"its size (netlab reads at most {KEEP:,} bytes of a request)"}.get(
        seen.ends[0], "the end of its stream (it shut down its sending side, or closed)")
    return "pass", f"sent {shown(seen.requests[0])}, ended by {how}: a server that reads a line sees it whole"


#: every case of a client, in the order they run
CLIENT_CASES: list[Case[ClientRun]] = list(case)
#: a client's case (before cases of servers and clients were one declaration)
ClientCase = Case[ClientRun]


# -- running them -----------------------------------------------------------------------------


async def check_client(command: str, listen: Address | str, settings: CheckSettings = CheckSettings(), *,
                       stdin: bytes | None = None, cwd: str | None = None,
                       progress: Callable[[str, int, int], None] | None = None, owner: bool = False,
                       host_netns: str | None = None, run_as: RunAs | None = None) -> CheckReport:
    """Run the client `command` once per case against a reference server at `listen`.

    The client and the reference server run in namespaces of their own where this machine
    allows it (`netlab.check.isolate`; ``settings.namespaces=False`` keeps them on the host), so
    a student's server that just left TIME_WAIT on the port does not stop the reference server
    from binding. (`owner`: this process is the isolated child itself, made from the host's
    network namespace `host_netns`, which ``settings.trace``'s capture refuses.)

    Raises: UsageError for settings that do not go together (`check_usage`); what
    `Transport.listen` raises (the address is taken, not allowed)."""
    address = parse_address(listen)
    check_usage(client=command, listen=address, stdin=stdin, trace=settings.trace, namespaces=settings.namespaces)
    Command.parse(command)  # a bad command, before anything runs
    note = ""
    if not owner:
        found, run_as = isolate.where_to_run(settings, run_as)
        if found is not None and found.available:
            job = {"kind": "client", "command": command, "listen": str(address), "cwd": cwd,
                   "stdin": None if stdin is None else stdin.hex(), "mode": found.mode, "run_as": run_as.as_json()}
            return await isolate.run_isolated(job, settings, len(CLIENT_CASES), progress)
        if found is not None and settings.trace:
            note = found.describe()
    run_as = run_as if run_as is not None else RunAs()
    space = Workspace.make(run_as)
    try:
        report = await _check_client(command, address, settings, stdin, cwd, progress, owner, host_netns, run_as,
                                     space.home)
    finally:
        space.remove()
    report.isolation = "; ".join(part for part in (note, run_as.describe()) if part) + (NOT_TRACED if note else "")
    return report


async def _check_client(command: str, address: Address, settings: CheckSettings, stdin: bytes | None,
                        cwd: str | None, progress: Callable[[str, int, int], None] | None, owner: bool,
                        host_netns: str | None, run_as: RunAs, home: str) -> CheckReport:
    transport = get_transport(address.scheme)
    cases = [c for c in CLIENT_CASES if c.applies(settings.service, transport=transport)]
    if settings.only:
        cases = [c for c in cases if c.id in settings.only or c.group in settings.only]
    report = CheckReport(command, settings.service, "client", None)
    ref = await reference(address, settings.service, _slow(settings), _pause(settings))
    async with ref.listening:
        for i, case in enumerate(cases):
            if progress is not None:
                progress(case.id, i, len(cases))
            run = partial(_run_case, case, command, ref, settings, stdin, cwd, owner, report, run_as, home)
            report.cases.append(await traced(run, trace=settings.trace, host_netns=host_netns if owner else None,
                                             seconds=settings.timeout + MARGIN + case.extra(settings) + 5,
                                             unix=lambda: address.is_unix))
    return report


async def _run_case(case: Case[ClientRun], command: str, ref: Reference, settings: CheckSettings,
                    stdin: bytes | None, cwd: str | None, owner: bool, report: CheckReport, run_as: RunAs,
                    home: str) -> CaseResult:
    started = trio.current_time()
    program = Program(command, cwd=cwd, stdin=stdin, owner=owner, run_as=run_as, home=home)
    await ref.drain()
    async with trio.open_nursery() as nursery:
        run = ClientRun(settings, program, ref, nursery, settings.timeout + MARGIN + case.extra(settings), _Seen([], []))
        verdict = await case.run(run)
        await program.stop(grace=0.5)
        program.close()
        report.cleanup += [f"{case.id}: {line}" for line in program.cleanup]
        report.limits += [f"{case.id}: {line}" for line in program.limits_hit]
        nursery.cancel_scope.cancel()
    return CaseResult(case.id, case.group, verdict[0], verdict[1], trio.current_time() - started)


__all__ = ["CLIENT_CASES", "ClientCase", "ClientRun", "check_client"]
