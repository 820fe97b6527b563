"""Running the cases against one server, or against a folder of submissions.

`check_server` is the whole of ``netlab check ADDR`` and ``netlab check --run CMD``::

    start the program (--run), wait until the kernel shows it listening   (Program, procnet)
    resolve the request format (--request auto: try each on a fresh connection)
    for each case:
        the program died or stopped listening?  restart it, and note it on the case before
        run the case under a hard deadline (timeout + the case's extra time)
        the program died during it?             note it, with its last stderr lines
    stop the whole process group

A case that overruns its deadline fails and the run goes on, so a server that accepts and
never answers costs each case its timeout, never the whole run. Without ``--run``, a server
that refuses the first connection gets every later case skipped (there is nothing to test).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import shlex
from collections.abc import Callable, Sequence

import trio

from ..errors import UsageError
from ..transports import Address, parse_address
from . import procnet
from .cases import Case, CaseContext, CheckSettings, Outcome, program_state, select_cases, sum_exchange
from .judge import AUTO_FORMATS, DEFAULT_FORMAT, PROFILES, RequestFormat
from .procnet import ListeningSocket
from .program import Program
from .report import CaseResult, CheckReport

#: progress(what, done, total): called before each case
Progress = Callable[[str, int, int], None]
#: a case's deadline is enforced this long after the case's own (cases stop themselves first)
HARD_MARGIN = 1.0


def request_format(settings: CheckSettings) -> RequestFormat | None:
    """The format the settings ask for; None for ``auto``.

    Raises: UsageError for a format the service or profile does not take."""
    if settings.profile not in PROFILES:
        raise UsageError(f"unknown profile {settings.profile!r} (known: {', '.join(PROFILES)})")
    if settings.service not in ("sum", "echo"):
        raise UsageError(f"netlab check knows the services sum and echo, not {settings.service!r}")
    if settings.request is not None:
        if settings.service != "sum":
            raise UsageError("--request is for the sum service: echo sends bytes as they are")
        if settings.profile == "netlab":
            raise UsageError("the netlab profile speaks netlab's line protocol ('{a} {b}\\n'): "
                             "--request goes with --profile assignment")
        if settings.request == "auto":
            return None
        return RequestFormat(settings.request)
    return RequestFormat(DEFAULT_FORMAT)


def _startup_hint(stderr: str) -> str:
    if "Cannot assign requested address" in stderr or "Errno 99" in stderr:
        return (": it binds an address this machine does not have (a hard-coded IP, likely another machine's); "
                "bind to 0.0.0.0 (or '') instead")
    if "Address already in use" in stderr or "Errno 98" in stderr:
        return ": its port is taken (another copy still running? a hard-coded port?)"
    return ""


def _local(address: Address) -> bool:
    if address.is_unix:
        return True
    if address.host in ("localhost", None):
        return True
    try:
        return ipaddress.ip_address(address.host).is_loopback
    except ValueError:
        return False


class _Run:
    """One check in progress: the program, where it listens, the results so far."""

    def __init__(self, address: Address | None, program: Program | None, settings: CheckSettings,
                 fmt: RequestFormat | None) -> None:
        self.given = address
        self.program = program
        self.settings = settings
        self.fmt = fmt or RequestFormat(DEFAULT_FORMAT)
        self.results: list[CaseResult] = []
        self.ctx: CaseContext | None = None

    def listener_for(self, address: Address) -> ListeningSocket | None:
        if self.program is not None:
            found = self.program.listening()
            same = [s for s in found if str(s.client_address()) == str(address)]
            return (same or found)[0] if found else None
        return procnet.find_listener(address) if _local(address) else None

    async def start(self) -> str | None:
        """Start the program and find where it listens; the reason it does not, or None."""
        program = self.program
        if program is None:
            return None
        program.start()
        sock = await program.wait_listening(self.settings.startup)
        if sock is None:
            if program.running:
                return (f"the program did not listen on any socket within {self.settings.startup:g} s "
                        f"(is it waiting for input, or a client?)")
            return f"the program {program.death_note()} before listening{_startup_hint(program.stderr_tail())}"
        return None

    def address(self) -> Address | None:
        """Where to connect: the address given, or where the program listens now (None: it
        does not, any more)."""
        if self.given is not None:
            return self.given
        assert self.program is not None
        found = self.program.listening()
        return found[0].client_address() if found else None

    async def ensure_up(self) -> str | None:
        """Restart the program if it died or stopped listening; why it could not be, or None."""
        program = self.program
        if program is None or (program.running and program.listening()):
            return None
        state = program_state(self.ctx) if self.ctx is not None else None
        if self.results and "restarted" not in self.results[-1].detail:
            last = self.results[-1]
            told = state is None or "the program" in last.detail
            self.results[-1] = dataclasses.replace(
                last, detail=f"{last.detail}; {'restarted' if told else f'afterwards {state}; restarted'}")
        await program.stop(grace=0.5)
        return await self.start()

    async def ready(self) -> CaseContext | str:
        """The program up (restarted if it died or stopped listening) and the context to talk
        to it with; or why it could not be brought up. The program runs on its own, so it may
        stop listening between the check and the look that follows (a server that closes its
        listener after a client, seen late on a loaded machine): then it is restarted again."""
        for _ in range(3):
            problem = await self.ensure_up()
            if problem is not None:
                return problem
            address = self.address()
            if address is not None:
                return self._context(address)
        return "it stopped listening each time it was started"

    def _context(self, address: Address) -> CaseContext:
        if self.ctx is None:
            self.ctx = CaseContext(address, self.settings, self.fmt, self.program)
        self.ctx.address = address
        self.ctx.listener = self.listener_for(address)
        return self.ctx

    async def detect_format(self) -> str:
        """Try each common request format on a fresh connection; keep the first one the
        server answers rightly. Returns a sentence saying which."""
        for template in AUTO_FORMATS:
            ready = await self.ready()
            if isinstance(ready, str):
                break
            ctx = ready
            ctx.fmt = RequestFormat(template)
            ctx.deadline = trio.current_time() + self.settings.timeout / 2
            verdict, _ = await sum_exchange(ctx, "12", "30")
            if verdict[0] == "pass":
                self.fmt = ctx.fmt
                return f"understood requests written as {ctx.fmt}"
        self.fmt = RequestFormat(DEFAULT_FORMAT)
        if self.ctx is not None:
            self.ctx.fmt = self.fmt
        return (f"understood none of the request formats tried ({', '.join(repr(t) for t in AUTO_FORMATS)}); "
                f"cases use {self.fmt}")

    async def run_case(self, case: Case) -> CaseResult:
        started = trio.current_time()
        ready = await self.ready()
        if isinstance(ready, str):
            return CaseResult(case.id, case.group, "fail", f"could not restart it: {ready}",
                              trio.current_time() - started)
        ctx = ready
        own = self.settings.timeout + case.extra(self.settings)
        ctx.deadline = trio.current_time() + own
        outcome: Outcome = "fail"
        detail = ""
        with trio.move_on_at(ctx.deadline + HARD_MARGIN) as scope:
            outcome, detail = await case.run(ctx)
        if scope.cancelled_caught:
            outcome, detail = "fail", f"no verdict within the case's hard deadline ({own:g} s): the server never answered"
        state = program_state(ctx)
        if state and "the program" not in detail:
            detail += f"; {state} during this case (restarted for the next)"
        return CaseResult(case.id, case.group, outcome, detail, trio.current_time() - started)


async def check_server(address: Address | str | None = None, *, run: str | None = None, cwd: str | None = None,
                       settings: CheckSettings = CheckSettings(), progress: Progress | None = None) -> CheckReport:
    """Check a server at `address`, or the program `run` starts (found where it listens, or at
    `address`), with every case of the settings' service and profile.

    Raises: UsageError for settings that do not go together (the cases themselves never raise:
    every problem of the server under test is a case's result)."""
    if address is None and run is None:
        raise UsageError("give the server's address, or --run CMD to start it")
    target = None if address is None else parse_address(address)
    fmt = request_format(settings)
    cases = select_cases(settings.service, settings.profile, settings.only)
    program = Program(run, cwd=cwd) if run is not None else None
    state = _Run(target, program, settings, fmt)
    report = CheckReport(run if run is not None else str(target), settings.service, settings.profile,
                         None if settings.service != "sum" else str(state.fmt))
    try:
        problem = await state.start()
        if problem is not None:
            first = cases[0] if cases else None
            for case in cases:
                result = (CaseResult(case.id, case.group, "fail", problem, 0.0) if case is first else
                          CaseResult(case.id, case.group, "skip", "the server never started", 0.0))
                report.cases.append(result)
            return report
        note = None
        if fmt is None:
            if progress is not None:
                progress("request formats", 0, len(cases))
            note = await state.detect_format()
            report.request = str(state.fmt)
        for i, case in enumerate(cases):
            if progress is not None:
                progress(case.id, i, len(cases))
            result = await state.run_case(case)
            if note is not None and case.id == "connect":
                result = dataclasses.replace(result, detail=f"{result.detail}; {note}")
            state.results.append(result)
            if result.outcome == "pass" and state.ctx is not None:
                state.ctx.passed.add(case.id)
            if case.id == "connect" and result.outcome == "fail" and program is None:
                for rest in cases[i + 1:]:
                    state.results.append(CaseResult(rest.id, rest.group, "skip", "could not connect (see connect)",
                                                    0.0))
                break
        report.cases = state.results
        return report
    finally:
        if program is not None:
            await program.stop()
            program.close()


def submission_command(template: str, submission: str) -> tuple[str, str]:
    """``--run 'python3 {}'`` for one submission: the command (``{}`` replaced by the file's
    absolute path, shell-quoted) and the directory it runs in (the file's own)."""
    path = os.path.abspath(submission)
    return template.replace("{}", shlex.quote(path)), os.path.dirname(path)


async def grade(template: str, submissions: Sequence[str], settings: CheckSettings,
                progress: Progress | None = None) -> list[tuple[str, CheckReport]]:
    """Check each submission in turn with ``--run TEMPLATE`` (``{}`` is the submission).

    Raises: UsageError when the template has no ``{}``, or a submission is not a file."""
    if "{}" not in template:
        raise UsageError("to check several submissions, put {} in --run where each file goes: --run 'python3 {}'")
    missing = [s for s in submissions if not os.path.isfile(s)]
    if missing:
        raise UsageError(f"not a file: {missing[0]}")
    graded = []
    for n, submission in enumerate(submissions):
        command, directory = submission_command(template, submission)

        def each(what: str, done: int, total: int, *, _name: str = submission, _n: int = n) -> None:
            if progress is not None:
                progress(f"{_name} ({_n + 1}/{len(submissions)}): {what}", done, total)

        report = await check_server(run=command, cwd=directory, settings=settings, progress=each)
        report.target = submission
        graded.append((submission, report))
    return graded


__all__ = ["check_server", "grade", "request_format", "submission_command"]
