"""Each check in namespaces of its own: the program, and the checker's probes beside it.

Why: almost every student server hard-codes port 50000 and sets no ``SO_REUSEADDR``. On the
host, a server that dies once leaves its closed connections in TIME_WAIT, its restart fails
with "Address already in use", and every later case fails; the next submission in a folder
finds the port taken. A network namespace has its own port space and its own TIME_WAIT table,
so a check made inside one is the same whoever ran before it, and several run at once::

    parent (netlab check --run / --client, grade --jobs N)
      │  job (one JSON line on stdin; stdin stays open)          events (JSON lines on stdout)
      ▼                                                                         ▲
    unshare [--user --map-root-user] --net --pid --fork --mount-proc --kill-child│
      python -c '...isolate.child_main()'   (PID 1 of the new PID namespace) ───┘
        1. lo up; net.ipv4.tcp_max_tw_buckets = 0: the kernel keeps no TIME_WAIT here, so a
           restart after a crash binds at once (the restart case turns it back on, to see)
        2. check_server / check_client, exactly as on the host: the program, its restarts
           and the probes all live in this namespace
        3. the report; then the program is stopped, and whatever it left running (forked,
           setsid'd, ignoring SIGTERM) is killed and named in the report
        4. the child exits: the kernel ends every process left in the PID namespace

The child also exits when its stdin closes (netlab stopped, or died), so nothing outlives
the parent. Where namespaces cannot be made (`netlab.netns.isolation`), the check runs on
the host and the report says so.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import trio

from .. import netns
from ..errors import NetlabError
from .program import track, untrack
from .settings import CheckSettings
from .report import CheckReport
from .sandbox import RunAs, remove_tree, resolve_user, temporary_root

Progress = Callable[[str, int, int], None]
#: the child (`netlab.check.inside`), named here as text: it imports the runner, which imports this
CHILD = "import sys; from netlab.check.inside import child_main; sys.exit(child_main())"
#: netns.isolation() is probed once; tests may set it off
_forced_off: list[str] = []
#: the longest line of the child's taken as an event (a report is a few KiB)
MAX_EVENT = 16 << 20


def isolation() -> netns.Isolation:
    """How programs are isolated here (or why they are not)."""
    if _forced_off:
        return netns.Isolation(None, _forced_off[-1])
    return netns.isolation()


def where_to_run(settings: CheckSettings, run_as: RunAs | None) -> tuple[netns.Isolation | None, RunAs]:
    """How a check started here is isolated (None: ``--no-namespaces``) and who its program
    runs as (`run_as`, or the user the settings and the isolation call for)."""
    found = isolation() if settings.namespaces else None
    if run_as is None:
        run_as = resolve_user(settings.user, isolation_mode=found.mode if found else None, folder=False,
                              env=settings.env)
    assert run_as is not None  # folder=False always resolves
    return found, run_as


def budget(settings: CheckSettings, cases: int) -> float:
    """The most a whole check may take: every case at its deadline, each with a restart (a
    guard against a child that never reports, never reached by a working check)."""
    return 60.0 + settings.startup * 2 + cases * (2 * settings.timeout + settings.startup + settings.idle_window + 5)


async def run_isolated(job: dict[str, Any], settings: CheckSettings, cases: int,
                       progress: Progress | None = None) -> CheckReport:
    """Run one check (``job["kind"]``: ``server`` or ``client``, of `cases` cases) in a fresh
    network and PID namespace; its report. Raises NetlabError if the namespace cannot be made."""
    token = secrets.token_hex(8)
    # the programs' private directories go in here, removed below however the child ends
    workspace = temporary_root()
    line = json.dumps({**job, "settings": asdict(settings), "token": token, "workspace": workspace,
                       "parent_netns": netns.current_netns()}).encode() + b"\n"
    command = netns.unshare_command(netns.python_command(CHILD), pid=True)
    report: CheckReport | None = None
    errors: list[bytes] = []
    try:
        process = await trio.lowlevel.open_process(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                   stderr=subprocess.PIPE, start_new_session=True)
    except BaseException:
        remove_tree(workspace)
        raise
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    stderr = process.stderr
    child = _Child(process.pid)
    track(child)
    try:
        await process.stdin.send_all(line)
        with trio.move_on_after(budget(settings, cases)) as guard:
            async with trio.open_nursery() as nursery:

                async def collect_stderr() -> None:
                    async for chunk in stderr:
                        if sum(map(len, errors)) < 65536:
                            errors.append(bytes(chunk))

                nursery.start_soon(collect_stderr)
                buffer = b""
                async for chunk in process.stdout:
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    if len(buffer) > MAX_EVENT:  # no event of the child's is this long
                        buffer = b""
                    for raw in lines:
                        event = _event(raw, token)
                        if event is None:
                            continue
                        if event.get("event") == "progress" and progress is not None:
                            progress(str(event["what"]), int(event["done"]), int(event["total"]))
                        elif event.get("event") == "report":
                            report = CheckReport.from_json(event["report"])
                        elif event.get("event") == "error":
                            raise NetlabError(str(event["message"]))
        if guard.cancelled_caught:
            raise NetlabError(f"the isolated check gave no report within {budget(settings, cases):.0f} s")
    finally:
        with trio.CancelScope(shield=True):
            await process.stdin.aclose()
            with trio.move_on_after(10):
                await process.wait()
            if process.returncode is None:
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
            untrack(child)
            remove_tree(workspace)
    if report is None:
        text = b"".join(errors).decode("utf-8", "replace").strip().splitlines()
        raise NetlabError(f"the isolated check ended without a report (exit {process.returncode}): "
                          f"{text[-1] if text else 'no output'}")
    return report


class _Child:
    """The isolated child's process group, for `netlab.check.program.kill_all`."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid

    def kill(self) -> None:
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except OSError:
            pass


def _event(raw: bytes, token: str) -> dict[str, Any] | None:
    """One of the child's events, or None for anything else (a line without the run's token)."""
    try:
        event = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("token") != token:
        return None
    return event


__all__ = ["CHILD", "budget", "isolation", "run_isolated", "where_to_run"]
