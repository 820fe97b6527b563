"""A program under test (``netlab check --run CMD``): started, watched, restarted, stopped.

The command runs under ``/bin/sh -c`` in a session and process group of its own, so that
stopping it stops everything it started (a shell, the interpreter, its children): SIGTERM
to the group, then SIGKILL to whatever is left a second later. Its stdout and stderr go to
temporary files, never pipes (a program that prints a lot must not block on a full pipe),
and the last lines of stderr explain a crash. Where it listens comes from the kernel
(`netlab.check.procnet`), not from the program.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from typing import IO

import trio

from . import procnet
from .procnet import ListeningSocket

#: how often the kernel's tables are read while waiting for a program to listen
POLL = 0.02


class Program:
    """One command, started on demand, in a process group of its own.

    `prefix` runs the shell under another program first (``nsenter -t PID -n --`` to start it
    inside a network namespace)."""

    def __init__(self, command: str, *, cwd: str | None = None, prefix: Sequence[str] = (),
                 stdin: bytes | None = None) -> None:
        self.command = command
        self.cwd = cwd
        self.prefix = list(prefix)
        self.stdin = stdin  # what the program reads on stdin (default: nothing, at once end of file)
        self.starts = 0
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
        self._close_files()
        self._stderr = tempfile.TemporaryFile()
        self._stdout = tempfile.TemporaryFile()
        with tempfile.TemporaryFile() as stdin:
            stdin.write(self.stdin or b"")
            stdin.seek(0)
            self._proc = subprocess.Popen([*self.prefix, "/bin/sh", "-c", self.command], cwd=self.cwd,
                                          stdin=stdin, stdout=self._stdout, stderr=self._stderr,
                                          start_new_session=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.starts += 1

    def members(self) -> list[int]:
        """The processes of its group that are still alive."""
        return [] if self._proc is None else procnet.group_members(self._proc.pid)

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

    async def stop(self, grace: float = 1.0) -> None:
        """SIGTERM to the whole group; SIGKILL to what is left after `grace` seconds."""
        proc = self._proc
        if proc is None:
            return
        with trio.CancelScope(shield=True):
            self._signal(signal.SIGTERM)
            with trio.move_on_after(grace):
                while proc.poll() is None or self.members():
                    await trio.sleep(POLL)
            self._signal(signal.SIGKILL)
            with trio.move_on_after(grace):
                while proc.poll() is None:
                    await trio.sleep(POLL)
        self._close_files(keep_stderr=True)

    def kill(self) -> None:
        """SIGKILL the whole group at once (for cleanup where nothing may wait)."""
        self._signal(signal.SIGKILL)
        if self._proc is not None:
            self._proc.poll()

    def _signal(self, signum: int) -> None:
        if self._proc is None:
            return
        try:
            os.killpg(self._proc.pid, signum)  # the group we made with start_new_session
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


__all__ = ["Program"]
