"""The isolated check's child: runs inside the namespaces `netlab.check.isolate` makes.

It reads its job (one JSON line) on stdin, brings ``lo`` up, makes the kernel keep no
TIME_WAIT, runs `check_server` or `check_client` as on the host (the program, its restarts and
every probe live in this namespace; with ``--trace``, each case's packets are captured here:
`netlab.check.packets`), and writes JSON events (progress, then the report) on
the stdout it was given; the programs it runs write to files of their own, and its own fd 1
is /dev/null. It exits when its stdin closes; being the first process of its PID namespace,
it takes every process left in the namespace with it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import trio

from .. import netns
from ..errors import NetlabError
from .settings import CheckSettings
from .client import check_client
from .report import CheckReport
from .run import check_server
from .guard import not_dumpable
from .sandbox import RunAs, remove_tree


def _read_job() -> dict[str, Any]:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(0, 65536)
        if not chunk:
            break
        data += chunk
    job: dict[str, Any] = json.loads(data)
    return job


def child_main() -> int:
    """Entry point inside the namespaces: the job on stdin, JSON events on stdout."""
    try:
        job = _read_job()
    except ValueError:
        print("netlab.check.isolate: this is netlab check's isolated child: run `netlab check --run ...`",
              file=sys.stderr)
        return 2
    token = job["token"]
    if job.get("workspace"):  # netlab's own directory for the programs' files: it removes it, whatever happens here
        tempfile.tempdir = job["workspace"]
    guard_channel()
    channel = os.fdopen(os.dup(1), "w")
    # the programs get files of their own; nothing else may write on the channel
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)

    def emit(event: dict[str, Any]) -> None:
        channel.write(json.dumps({**event, "token": token}) + "\n")
        channel.flush()

    workspace = job.get("workspace")
    netns.exit_with_parent(0, before=None if not workspace else (lambda: remove_tree(workspace)))
    try:
        netns.refuse_host(job["parent_netns"])
        netns.loopback_up()
        problem = netns.write_sysctl(netns.TW_BUCKETS, 0)
        report = trio.run(_child_check, job, emit, problem)
    except KeyboardInterrupt:
        return 130
    except NetlabError as exc:
        emit({"event": "error", "message": str(exc)})
        return 1
    emit({"event": "report", "report": report.as_json()})
    return 0


async def _child_check(job: dict[str, Any], emit: Callable[[dict[str, Any]], None],
                       tw_problem: str | None) -> CheckReport:
    settings = CheckSettings(**{**job["settings"], "only": tuple(job["settings"]["only"]),
                                "env": tuple(job["settings"]["env"])})

    def progress(what: str, done: int, total: int) -> None:
        emit({"event": "progress", "what": what, "done": done, "total": total})

    stdin = bytes.fromhex(job["stdin"]) if job.get("stdin") is not None else None
    how = isolation_note(job["mode"])
    if tw_problem is not None:
        how += f" (TIME_WAIT is kept: {tw_problem})"
    run_as = RunAs.from_json(job.get("run_as") or {})
    if job["kind"] == "client":
        report = await check_client(job["command"], job["listen"], settings, stdin=stdin, cwd=job.get("cwd"),
                                    progress=progress, owner=True, host_netns=job["parent_netns"], run_as=run_as)
    else:
        report = await check_server(job.get("address"), run=job["command"], cwd=job.get("cwd"), settings=settings,
                                    progress=progress, stdin=stdin, isolated=True, host_netns=job["parent_netns"],
                                    submission=job.get("submission"), run_as=run_as)
    report.isolation = "; ".join(part for part in (how, report.isolation) if part)
    return report


def guard_channel() -> None:
    """Keep the program away from this process, and so from the channel to netlab and the
    run's token: not dumpable (its /proc/PID/fd, mem and environ open only to a process with
    CAP_SYS_PTRACE in its user namespace, which the program never has: it runs as another
    user, or without capabilities, `netlab.check.sandbox.RunAs`), and deaf to the signals
    the program could send it: each has a handler that does nothing (it ends when its stdin
    closes). A handler, not SIG_IGN: an ignored signal stays ignored in every program this
    process starts, and a program that ignores SIGTERM and SIGINT without asking would be
    stopped by SIGKILL and said to have ignored them; a handler is undone by exec."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, _deaf)
    not_dumpable()


def _deaf(signum: int, frame: object) -> None:
    """A signal the program sent the checker: nothing happens."""


def isolation_note(mode: str | None) -> str:
    """How the child was isolated, for the report."""
    if mode == "root":
        return netns.Isolation("root", "").describe()
    return netns.Isolation("user", "").describe()



__all__ = ["child_main"]
