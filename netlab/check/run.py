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
from functools import partial

import trio

from ..errors import NetlabError, UsageError
from ..transports import Address, parse_address
from . import isolate, procnet
from .cases import select_cases
from .command import Command
from .context import CaseContext
from .exchange import sum_exchange
from .judge import AUTO_FORMATS, DEFAULT_FORMAT, PROFILES, RequestFormat
from .packets import NOT_TRACED, traced
from .procnet import ListeningSocket
from .program import Program
from .registry import Case, evaluate_skip
from .report import CaseResult, CheckReport
from .sandbox import RunAs, Workspace, for_submission, resolve_user
from .settings import CheckSettings, Outcome
from .wording import program_state
from .usage import check_usage

#: progress(what, done, total): called before each case
Progress = Callable[[str, int, int], None]
#: a case's deadline is enforced this long after the case's own (cases stop themselves first)
HARD_MARGIN = 1.0
#: how long a program that stopped listening is given to finish dying before the verdict
EXIT_GRACE = 3.0


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


def _startup_hint(stderr: str, *, waiting: int = 0) -> str:
    """Why a start failed, from its last stderr lines (and the TIME_WAIT count of its port)."""
    if "Cannot assign requested address" in stderr or "Errno 99" in stderr:
        return (": it binds an address this machine does not have (a hard-coded IP, likely another machine's); "
                "bind to 0.0.0.0 (or '') instead")
    if "Address already in use" in stderr or "Errno 98" in stderr:
        if waiting:
            return (f": {waiting} connection{'s' if waiting != 1 else ''} of its last run on that port "
                    f"{'are' if waiting != 1 else 'is'} in TIME_WAIT (the side that closes first keeps it for "
                    f"60 s), and a listener without SO_REUSEADDR cannot bind the port until they are gone; fix: "
                    f"server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1) before bind() "
                    f"(socket.create_server sets it)")
        return ": its port is taken by another program (a hard-coded port that something else uses?)"
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
                 fmt: RequestFormat | None, *, isolated: bool = False, progress: Progress | None = None,
                 host_netns: str | None = None) -> None:
        self.given = address
        self.program = program
        self.settings = settings
        self.fmt = fmt or RequestFormat(DEFAULT_FORMAT)
        self.results: list[CaseResult] = []
        self.ctx: CaseContext | None = None
        self.isolated = isolated
        self.progress = progress
        #: the inet port the program last listened on (to tell TIME_WAIT from a taken port)
        self.port: int | None = None
        #: isolated: the host's network namespace (a capture refuses it; `netlab.check.packets`)
        self.host_netns = host_netns

    def listening_note(self) -> str:
        """Which socket was tested, when the program listens on several, and why."""
        if self.program is None or self.ctx is None or self.ctx.listener is None:
            return ""
        return procnet.choice(self.program.listening(), self.ctx.listener)

    def listener_for(self, address: Address) -> ListeningSocket | None:
        if self.program is not None:
            found = self.program.listening()
            same = [s for s in found if str(s.client_address()) == str(address)]
            return (same or found)[0] if found else None
        return procnet.find_listener(address) if _local(address) else None

    async def start(self) -> str | None:
        """Start the program and find where it listens; the reason it does not, or None. On
        the host (not isolated), a start that fails because connections of the last run are in
        TIME_WAIT waits for them to go (up to a minute, saying so), then tries once more."""
        program = self.program
        if program is None:
            return None
        problem = await self._start_once()
        waiting = procnet.time_wait(self.port) if self.port is not None else 0
        if problem is not None and waiting and not self.isolated and "TIME_WAIT" in problem:
            await self._wait_time_wait()
            problem = await self._start_once()
        return problem

    async def _start_once(self) -> str | None:
        program = self.program
        assert program is not None
        program.start()
        sock = await program.wait_listening(self.settings.startup)
        if sock is None:
            if program.running:
                return (f"the program did not listen on any socket within {self.settings.startup:g} s "
                        f"(is it waiting for input, or a client?)")
            waiting = procnet.time_wait(self.port) if self.port is not None else 0
            hint = _startup_hint(program.stderr_tail(), waiting=waiting)
            return f"the program {program.death_note()} before listening{hint}"
        if sock.port is not None:
            self.port = sock.port
        return None

    async def _wait_time_wait(self) -> None:
        """On the host: wait (at most TIME_WAIT's 60 s and a little) for the port's TIME_WAIT
        connections to go, with a progress line."""
        assert self.port is not None
        with trio.move_on_after(65):
            while (left := procnet.time_wait(self.port)) > 0:
                if self.progress is not None:
                    self.progress(f"not isolated: waiting for {left} TIME_WAIT connection(s) on port {self.port} "
                                  f"to clear", 0, 0)
                await trio.sleep(0.5)

    def address(self) -> Address | None:
        """Where to connect: the address given, or where the program listens now (None: it
        does not, any more)."""
        if self.given is not None:
            return self.given
        assert self.program is not None
        found = self.program.listening()
        return found[0].client_address() if found else None

    async def ensure_up(self) -> str | None:
        """Restart the program if it died or stopped listening; why it could not be, or None.
        The case before is told what happened: restarted, or that restarting failed."""
        program = self.program
        if program is None or (program.running and program.listening()):
            return None
        state = program_state(self.ctx) if self.ctx is not None else None
        await program.stop(grace=0.5)
        problem = await self.start()
        if self.results and "restart" not in self.results[-1].detail:
            last = self.results[-1]
            told = state is None or "the program" in last.detail
            what = "it was restarted for the next case" if problem is None else f"restarting it failed ({problem})"
            self.results[-1] = dataclasses.replace(
                last, detail=f"{last.detail}; {what if told else f'afterwards {state}; {what}'}")
        return problem

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
            self.ctx = CaseContext(address, self.settings, self.fmt, self.program, isolated=self.isolated)
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

    async def run_case(self, case: Case[CaseContext]) -> CaseResult:
        """One case's result; with ``settings.trace`` (isolated), a failed one's packets too."""
        own = self.settings.timeout + case.extra(self.settings)
        return await traced(partial(self._run_case, case), trace=self.settings.trace, host_netns=self.host_netns,
                            seconds=own + HARD_MARGIN + 5,
                            unix=lambda: self.ctx is not None and self.ctx.address.is_unix)

    async def _run_case(self, case: Case[CaseContext]) -> CaseResult:
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
        skip = evaluate_skip(case, ctx)  # where it applies is decided before it runs
        with trio.move_on_at(ctx.deadline + HARD_MARGIN) as scope:
            if skip is not None:
                outcome, detail = "skip", skip
            else:
                outcome, detail = await case.run(ctx)
        if scope.cancelled_caught:
            outcome, detail = "fail", f"no verdict within the case's hard deadline ({own:g} s): the server never answered"
        state = await self.settled(ctx)
        if state and "the program" not in detail:
            detail += f"; {state} during this case"
        return CaseResult(case.id, case.group, outcome, detail, trio.current_time() - started)

    async def settled(self, ctx: CaseContext) -> str | None:
        """What became of the program during a case, once a program that stopped listening has
        exited, or `EXIT_GRACE` seconds have passed (at most until the case's deadline, at least
        a second): a program dying of an exception closes its sockets a moment before the kernel
        reports it gone, and "it exited with status 1 (ValueError)" is the true story, not "it
        closed its listener". One that closed its listener and lives on costs no more than that."""
        program = self.program
        if program is not None and program.running and not program.listening():
            now = trio.current_time()
            with trio.move_on_at(max(min(ctx.deadline + HARD_MARGIN, now + EXIT_GRACE), now + 1.0)):
                while program.running:
                    await trio.sleep(0.02)
        return program_state(ctx)


async def check_server(address: Address | str | None = None, *, run: str | None = None, cwd: str | None = None,
                       settings: CheckSettings = CheckSettings(), progress: Progress | None = None,
                       stdin: bytes | None = None, isolated: bool = False,
                       host_netns: str | None = None, submission: str | None = None,
                       run_as: RunAs | None = None) -> CheckReport:
    """Check a server at `address`, or the program `run` starts (found where it listens, or at
    `address`), with every case of the settings' service and profile. `stdin` is what the
    program reads on its standard input. `run` is split into words and run without a shell
    unless it asks for one (`netlab.check.command`); with `submission`, each ``{}`` in it
    stands for that file, and the program runs in a private copy of the file's folder
    (`netlab.check.sandbox`). As root it runs as `run_as` (default: ``settings.user``, see
    `netlab.check.sandbox.resolve_user`), always with a minimal environment.

    A program netlab starts runs in namespaces of its own when this machine allows it
    (`netlab.check.isolate`; ``settings.namespaces=False`` keeps it on the host); the report's
    `isolation` says which. (`isolated` and `host_netns` are for the isolated child itself:
    this process is already inside the namespaces, made from the host's network namespace
    `host_netns`, which ``settings.trace``'s capture refuses.)

    Raises: UsageError for inputs or settings that do not go together (`check_usage`; the
    cases themselves never raise: every problem of the server under test is a case's result);
    NetlabError when the submission's folder cannot be copied."""
    check_usage(targets=() if address is None or run is not None else (str(address),), run=run,
                at=address if run is not None else None, stdin=stdin, kind="server", trace=settings.trace,
                namespaces=settings.namespaces)
    target = None if address is None else parse_address(address)
    fmt = request_format(settings)
    cases = select_cases(settings.service, settings.profile, settings.only)
    if run is not None:
        Command.parse(run, None if submission is None else submission)  # a bad template, before anything runs
    note = ""
    if run is not None and not isolated:
        found, run_as = isolate.where_to_run(settings, run_as)
        if found is not None and found.available:
            job = {"kind": "server", "command": run, "cwd": cwd, "address": None if target is None else str(target),
                   "stdin": None if stdin is None else stdin.hex(), "mode": found.mode,
                   "submission": None if submission is None else os.path.abspath(submission),
                   "run_as": run_as.as_json()}
            return await isolate.run_isolated(job, settings, len(cases), progress)
        note = ("not isolated: --no-namespaces" if found is None else found.describe()) + \
            " (verdicts were taken on the host: a restart may wait for TIME_WAIT, and a program that leaves " \
            "its process group may outlive the check)"
    space = None
    if run is not None:
        run_as = run_as if run_as is not None else RunAs()
        space = Workspace.make(run_as, submission)
        note = "; ".join(part for part in (note, how_it_ran(run_as, submission)) if part)
        if settings.trace and not isolated:
            note += NOT_TRACED
    try:
        program = Program(Command.parse(run, space.path if space else None), cwd=space.folder or cwd, stdin=stdin,
                          owner=isolated, run_as=run_as, home=space.home) if run is not None and space else None
        return await _check(target, program, settings, fmt, cases, note, isolated, progress, run,
                            host_netns if isolated else None)
    finally:
        if space is not None:
            space.remove()


def how_it_ran(run_as: RunAs, submission: str | None) -> str:
    """"ran as uid N (...), in a private copy of its folder", for the report."""
    return run_as.describe() + (", in a private copy of its folder" if submission is not None else "")


async def _check(target: Address | None, program: Program | None, settings: CheckSettings,
                 fmt: RequestFormat | None, cases: list[Case[CaseContext]], note: str, isolated: bool,
                 progress: Progress | None, run: str | None, host_netns: str | None) -> CheckReport:
    state = _Run(target, program, settings, fmt, isolated=isolated, progress=progress, host_netns=host_netns)
    report = CheckReport(run if run is not None else str(target), settings.service, settings.profile,
                         None if settings.service != "sum" else str(state.fmt), isolation=note)
    try:
        problem = await state.start()
        if problem is not None:
            first = cases[0] if cases else None
            for case in cases:
                result = (CaseResult(case.id, case.group, "fail", problem, 0.0) if case is first else
                          CaseResult(case.id, case.group, "skip", "the server never started", 0.0))
                report.cases.append(result)
            return report
        detected = None
        if fmt is None:
            if progress is not None:
                progress("request formats", 0, len(cases))
            detected = await state.detect_format()
            report.request = str(state.fmt)
        for i, case in enumerate(cases):
            if progress is not None:
                progress(case.id, i, len(cases))
            result = await state.run_case(case)
            if case.id == "connect":
                notes = [note for note in (detected, state.listening_note()) if note]
                if notes:
                    result = dataclasses.replace(result, detail="; ".join([result.detail, *notes]))
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
            report.cleanup = list(program.cleanup)
            report.limits = list(program.limits_hit)


def unchecked(run: str, settings: CheckSettings, problem: Exception) -> CheckReport:
    """The report of a submission netlab could not check (its folder could not be copied, its
    isolated check ended without a report): the first case fails saying why, the others are
    skipped, so the row says so and scores nothing."""
    cases = select_cases(settings.service, settings.profile, settings.only)
    report = CheckReport(run, settings.service, settings.profile)
    for i, case in enumerate(cases):
        report.cases.append(CaseResult(case.id, case.group, "fail" if i == 0 else "skip",
                                       f"netlab could not check this submission: {problem}" if i == 0 else
                                       "not checked (see the first case)", 0.0))
    return report


def submission_command(template: str, submission: str) -> tuple[str, str]:
    """``--run 'python3 {}'`` for one submission: the command (``{}`` replaced by the file's
    absolute path, shell-quoted) and the directory it runs in (the file's own)."""
    path = os.path.abspath(submission)
    return template.replace("{}", shlex.quote(path)), os.path.dirname(path)


def default_jobs() -> int:
    """How many submissions are checked at once by default: one per core."""
    return max(1, len(os.sched_getaffinity(0)))


async def grade(template: str, submissions: Sequence[str], settings: CheckSettings,
                progress: Progress | None = None, *, jobs: int | None = None,
                stdin: bytes | None = None) -> list[tuple[str, CheckReport]]:
    """Check every submission with ``--run TEMPLATE`` (``{}`` is the submission), `jobs` at a
    time (default: one per core), each in namespaces of its own, so each gets the verdicts it
    gets checked alone, whatever ran before or beside it. The result is in submission order.
    Where programs cannot be isolated, submissions are checked one after another (two could not
    listen on the same hard-coded port at once).

    `progress` is called with ("N/M done: name: case", done, total) over all submissions.

    Raises: UsageError for inputs that do not go together (`check_usage`: the template has no
    ``{}``, there are no submissions, `jobs` is below 1), or when a submission is not a file."""
    check_usage(targets=submissions, run=template, stdin=stdin, jobs=jobs, kind="folder", trace=settings.trace,
                namespaces=settings.namespaces)
    missing = [s for s in submissions if not os.path.isfile(s)]
    if missing:
        raise UsageError(f"not a file: {missing[0]}")
    width = jobs or default_jobs()
    if not (settings.namespaces and isolate.isolation().available):
        width = 1
    results: dict[int, CheckReport] = {}
    per = max(1, len(select_cases(settings.service, settings.profile, settings.only)))
    done_cases: dict[int, int] = {}
    limiter = trio.CapacityLimiter(width)

    Command.parse(template, "submission")  # a bad template, before anything runs
    found = isolate.isolation() if settings.namespaces else None
    chosen = resolve_user(settings.user, isolation_mode=found.mode if found else None, folder=True, env=settings.env)
    taken: set[int] = set()

    async def one(n: int, submission: str) -> None:
        run_as = for_submission(chosen, taken, settings.env)

        def each(what: str, done: int, total: int) -> None:
            done_cases[n] = min(done, per)
            if progress is not None:
                finished = len(results)
                progress(f"{finished}/{len(submissions)} done: {submission}: {what}",
                         sum(done_cases.values()), per * len(submissions))

        async with limiter:
            try:
                report = await check_server(run=template, settings=settings, progress=each, stdin=stdin,
                                            submission=submission, run_as=run_as)
            except NetlabError as exc:  # this submission could not be checked: the others still are
                report = unchecked(template, settings, exc)
        report.target = submission
        results[n] = report
        done_cases[n] = per
        if progress is not None:
            progress(f"{len(results)}/{len(submissions)} done: {submission}", sum(done_cases.values()),
                     per * len(submissions))

    async with trio.open_nursery() as nursery:
        for n, submission in enumerate(submissions):
            nursery.start_soon(one, n, submission)
    return [(submission, results[n]) for n, submission in enumerate(submissions)]


__all__ = ["check_server", "default_jobs", "grade", "how_it_ran", "request_format", "submission_command", "unchecked"]
