"""A program under test (``netlab check --run CMD``): started, watched, restarted, stopped.

The command (`netlab.check.command`: split into words, run without a shell unless it asks for
one) runs in a session and process group of its own, so that stopping it stops everything it
started (a shell, the interpreter, its children): SIGTERM to the group, then SIGKILL to
whatever is left a second later. It runs as the user `netlab.check.sandbox.RunAs` says, with a
minimal environment. Its stdout and stderr go to temporary files, never pipes (a program that
prints a lot must not block on a full pipe), and the last lines of stderr explain a crash.
Where it listens comes from the kernel (`netlab.check.procnet`), not from the program.

Every program started and not yet stopped is known to `kill_all`, which a netlab being
stopped itself (SIGTERM, SIGHUP, a second Ctrl-C) calls last, so that no program outlives it.

A process group is no wall: ``setsid()`` or ``setpgid()`` leaves it. Where netlab isolates the
program (`netlab.check.isolate`), the checker is the first process of a PID namespace of its
own, and `Program` is made with ``owner=True``: then every other process in the namespace
belongs to the program, escaped or not, and `stop` ends them all and says what it had to clean
up. Resource `Limits` (``prlimit``) apply to every start, isolated or not.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Protocol

import trio

from .. import netns
from . import procnet
from .command import Command
from .procnet import ListeningSocket
from .sandbox import RunAs

#: how often the kernel's tables are read while waiting for a program to listen
POLL = 0.02


@dataclass(frozen=True)
class Limits:
    """What one program start may use (``prlimit``; each process inherits them). Processes
    (threads included) are counted per user: as root, each program runs as a user of its own
    (`netlab.check.sandbox`), so the count is its own; as a normal user, it is shared with your
    other processes. The limit does not bind a program run as root (``--user root``): then
    only the PID namespace ends a fork bomb, with the check. Each limit a program runs into is
    named in the report (`Program.limits_hit`)."""

    processes: int = 256
    memory: int = 2 << 30  # bytes of address space per process
    file_size: int = 64 << 20  # bytes per file written (its stdout and stderr included)
    open_files: int = 1024

    def prefix(self) -> list[str]:
        found = shutil.which("prlimit", path=os.pathsep.join([os.environ.get("PATH", ""), *netns.SBIN]))
        if found is None:
            return []
        return [found, f"--nproc={self.processes}", f"--as={self.memory}", f"--fsize={self.file_size}",
                f"--nofile={self.open_files}", "--core=0", "--"]

    def describe(self) -> str:
        return (f"{self.processes} processes, {self.memory >> 20} MiB of memory per process, "
                f"{self.file_size >> 20} MiB per file written, {self.open_files} open files")


DEFAULT_LIMITS = Limits()
#: what a program's stderr says when it ran into a limit (Python's, and C's, words)
_MEMORY = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "out of memory")
_PROCESSES = ("can't start new thread", "fork: retry", "fork: Resource temporarily unavailable")
#: EAGAIN, which means the process limit only where a fork or a thread is named beside it (a
#: non-blocking socket says the same)
_EAGAIN = "Resource temporarily unavailable"
_FILES = ("Too many open files",)


class Killable(Protocol):
    def kill(self) -> None: ...


#: every program started and not stopped yet, and every isolated check's child (`kill_all`)
_LIVE: weakref.WeakSet[Killable] = weakref.WeakSet()


def track(thing: Killable) -> None:
    """Have `kill_all` kill `thing` (a process netlab started) until `untrack`."""
    _LIVE.add(thing)


def untrack(thing: Killable) -> None:
    _LIVE.discard(thing)


def kill_all() -> int:
    """SIGKILL every program netlab started and has not stopped, and every isolated check's
    child (which takes its namespace with it): for a netlab that is being stopped itself.
    How many there were."""
    live = list(_LIVE)
    for thing in live:
        thing.kill()
    return len(live)


class Program:
    """One command, started on demand, in a process group of its own.

    `prefix` runs the shell under another program first (``nsenter -t PID -n --`` to start it
    inside a network namespace)."""

    def __init__(self, command: str | Command, *, cwd: str | None = None, prefix: Sequence[str] = (),
                 stdin: bytes | None = None, owner: bool = False, exclude: set[int] | None = None,
                 limits: Limits | None = DEFAULT_LIMITS, run_as: RunAs | None = None,
                 home: str | None = None) -> None:
        self.argv = (Command.parse(command) if isinstance(command, str) else command).argv
        self.command = command if isinstance(command, str) else command.text
        self.cwd = cwd
        #: who it runs as, and with what environment (None: as this process, with its environment)
        self.run_as = run_as
        self.home = home
        self.prefix = list(prefix)
        self.stdin = stdin  # what the program reads on stdin (default: nothing, at once end of file)
        self.starts = 0
        #: this process is the first of a PID namespace made for the program: every other
        #: process in it (but those in `exclude`, the checker's own helpers) is the program's
        self.owner = owner
        self.exclude = exclude if exclude is not None else set()
        self.limits = limits
        #: what `stop` had to clean up, one sentence each, over every start
        self.cleanup: list[str] = []
        #: the limits it ran into, one sentence each, over every start (`Limits`)
        self.limits_hit: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._stdout: IO[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self) -> None:
        """Start (or start again, after `stop`) the command."""
        self._note_limits()
        self._close_files()
        self._stderr = tempfile.TemporaryFile()
        self._stdout = tempfile.TemporaryFile()
        run_as = self.run_as
        if run_as is None:
            env, extra, switch = dict(os.environ, PYTHONUNBUFFERED="1"), [], {}
        else:
            env = run_as.environment(self.home or tempfile.gettempdir())
            extra, switch = run_as.prefix(), run_as.popen()
        with tempfile.TemporaryFile() as stdin:
            stdin.write(self.stdin or b"")
            stdin.seek(0)
            limits = self.limits.prefix() if self.limits is not None else []
            argv = [*self.prefix, *limits, *extra, *self.argv]
            try:
                self._proc = subprocess.Popen(argv, cwd=self.cwd, stdin=stdin, stdout=self._stdout,
                                              stderr=self._stderr, start_new_session=True, env=env,
                                              **switch)  # type: ignore[call-overload]  # user/group only where setpriv is missing
            except OSError as exc:  # no such program (there is no shell to say so): a start that failed
                self._stderr.write(f"netlab: cannot run {self.argv[0]}: {exc.strerror or exc}\n".encode())
                self._proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(127)"],
                                              stdin=subprocess.DEVNULL, start_new_session=True)
        _LIVE.add(self)
        self.starts += 1

    def wait_exit(self, seconds: float) -> None:
        """Block up to `seconds` for the program's first process to exit (a program that is
        dying: its sockets are closed a moment before the kernel reports it gone)."""
        if self._proc is not None:
            try:
                self._proc.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                pass

    def members(self) -> list[int]:
        """Its processes that are still alive: its process group, or (``owner``) every process
        in its PID namespace but the checker's own."""
        if self._proc is None:
            return []
        if self.owner:
            return [pid for pid in netns.other_processes() if pid not in self.exclude]
        return procnet.group_members(self._proc.pid)

    def listening(self) -> list[ListeningSocket]:
        """The sockets it listens on now, best first."""
        return procnet.sockets_of(self.members())

    def exit_status(self) -> int | None:
        """Its exit status once it has exited (negative: killed by that signal), else None."""
        return None if self._proc is None else self._proc.poll()

    def status_text(self) -> str:
        status = self.exit_status()
        if status is None:
            return "is running"
        if status < 0:
            try:
                name = signal.Signals(-status).name
            except ValueError:
                name = f"signal {-status}"
            return f"was killed by {name}"
        return f"exited with status {status}"

    def stdout(self, limit: int = 65536) -> bytes:
        """The first `limit` bytes it wrote on stdout."""
        if self._stdout is None:
            return b""
        self._stdout.flush()
        self._stdout.seek(0)
        return self._stdout.read(limit)

    def stderr(self, limit: int = 65536) -> bytes:
        """The first `limit` bytes it wrote on stderr (a client may log its reply there)."""
        if self._stderr is None:
            return b""
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read(limit)

    def stderr_tail(self, lines: int = 3) -> str:
        """Its last `lines` lines of stderr, joined with " | " (empty if it printed none)."""
        if self._stderr is None:
            return ""
        self._stderr.flush()
        self._stderr.seek(0, os.SEEK_END)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - 8192))
        text = self._stderr.read().decode("utf-8", "replace")
        kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(kept)

    def death_note(self) -> str:
        """"exited with status 1; last stderr lines: ..." """
        tail = self.stderr_tail()
        return f"{self.status_text()}" + (f"; last stderr lines: {tail}" if tail else "; it printed nothing on stderr")

    def cpu_seconds(self) -> float:
        return procnet.cpu_seconds(self.members())

    async def wait_listening(self, timeout: float) -> ListeningSocket | None:
        """The socket it listens on, once it does; None if it exited first or `timeout` passed."""
        with trio.move_on_after(timeout):
            while self.running:
                found = self.listening()
                if found:
                    return found[0]
                await trio.sleep(POLL)
        return None

    async def stop(self, grace: float = 1.0, signum: int = signal.SIGTERM) -> None:
        """`signum` (SIGTERM) to the whole group; SIGKILL to what is left after `grace` seconds.
        With ``owner``, also to every process that left the group; what needed more than the
        first signal, or had left the group, is noted in `cleanup`."""
        proc = self._proc
        if proc is None:
            return
        with trio.CancelScope(shield=True):
            tasks = _tasks(self.members())
            escaped = self._escaped()
            names = {pid: netns.command_line(pid) for pid in escaped}
            self._signal(signum)
            with trio.move_on_after(grace):
                while proc.poll() is None or self.members():
                    await trio.sleep(POLL)
            stubborn = [pid for pid in self.members() if pid not in escaped]
            names.update({pid: netns.command_line(pid) for pid in stubborn})
            self._signal(signal.SIGKILL)
            with trio.move_on_after(grace):
                while proc.poll() is None or (self.owner and self.members()):
                    await trio.sleep(POLL)
            if escaped:
                self.cleanup.append(f"killed {_processes(escaped, names)} that had left the program's process "
                                    f"group (setsid/setpgid, a daemon)")
            if stubborn:
                self.cleanup.append(f"killed {_processes(stubborn, names)} still running "
                                    f"{grace:g} s after {signal.Signals(signum).name}")
        self._note_limits(tasks)
        _LIVE.discard(self)
        self._close_files(keep_stderr=True)

    def _note_limits(self, tasks: int = 0) -> None:
        """Note in `limits_hit` each limit this start shows signs of having run into: killed
        by SIGXFSZ or an output file at the file-size limit; its stderr telling of memory,
        processes or open files running out; `tasks` (processes and threads) at the limit."""
        if self._proc is None or self.limits is None:
            return
        limits = self.limits
        found: list[str] = []
        sizes = {name: _size(f) for name, f in (("stdout", self._stdout), ("stderr", self._stderr))}
        full = [name for name, size in sizes.items() if size >= limits.file_size]
        if self._proc.poll() == -signal.SIGXFSZ or full:
            where = " and ".join(full) or "a file"
            found.append(f"it wrote {limits.file_size >> 20} MiB on {where}, netlab's limit on one file "
                         f"(it was stopped there, by SIGXFSZ); print less")
        tail = self.stderr_tail(50)
        if any(word in tail for word in _MEMORY):
            found.append(f"it ran out of memory: netlab allows {limits.memory >> 20} MiB of address space per "
                         f"process")
        forked = _EAGAIN in tail and any(word in tail for word in ("fork", "thread", "spawn", "clone"))
        if any(word in tail for word in _PROCESSES) or forked or tasks >= limits.processes:
            found.append(f"it could not start another process or thread: netlab allows {limits.processes} "
                         f"processes and threads")
        if any(word in tail for word in _FILES):
            found.append(f"it ran out of file descriptors: netlab allows {limits.open_files} open files per process")
        for line in found:
            if line not in self.limits_hit:
                self.limits_hit.append(line)

    def _escaped(self) -> list[int]:
        """Its processes outside its process group (only visible with ``owner``)."""
        if self._proc is None or not self.owner:
            return []
        group = set(procnet.group_members(self._proc.pid))
        return [pid for pid in self.members() if pid not in group]

    def kill(self) -> None:
        """SIGKILL the whole group at once (for cleanup where nothing may wait)."""
        self._signal(signal.SIGKILL)
        if self._proc is not None:
            self._proc.poll()

    def send_signal(self, signum: int) -> None:
        """`signum` to its whole process group (``owner``: to every process of the program), as a
        terminal's Ctrl-C (SIGINT) reaches every process in the foreground group."""
        self._signal(signum)

    def _signal(self, signum: int) -> None:
        if self._proc is None:
            return
        try:
            os.killpg(self._proc.pid, signum)  # the group we made with start_new_session
        except (ProcessLookupError, PermissionError):
            pass
        if self.owner:
            for pid in self.members():
                try:
                    os.kill(pid, signum)
                except (ProcessLookupError, PermissionError):
                    pass

    def _close_files(self, keep_stderr: bool = False) -> None:
        files = [self._stdout] if keep_stderr else [self._stdout, self._stderr]
        for f in files:
            if f is not None:
                f.close()
        self._stdout = None
        if not keep_stderr:
            self._stderr = None

    def close(self) -> None:
        """Forget the output files (after `stop`)."""
        self._close_files()


def _tasks(pids: Sequence[int]) -> int:
    """How many tasks (processes and their threads) `pids` are."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"Threads:"):
                        total += int(line.split()[1])
                        break
        except (OSError, ValueError, IndexError):
            continue
    return total


def _size(f: IO[bytes] | None) -> int:
    if f is None:
        return 0
    try:
        return os.fstat(f.fileno()).st_size
    except (OSError, ValueError):
        return 0


def _processes(pids: Sequence[int], names: dict[int, str]) -> str:
    shown = ", ".join(f"{pid} ({names.get(pid, '?')})" for pid in pids[:3])
    more = f" and {len(pids) - 3} more" if len(pids) > 3 else ""
    return f"{len(pids)} process{'es' if len(pids) != 1 else ''} [{shown}{more}]"


__all__ = ["DEFAULT_LIMITS", "Limits", "Program", "kill_all", "track", "untrack"]
