"""Shared fixtures: short private directories for unix paths, and real `netlab` processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest


@pytest.fixture
def short_dir() -> Iterator[str]:
    """A private directory under /tmp: short, so unix paths stay far below 107 bytes."""
    path = tempfile.mkdtemp(prefix="nlt-", dir="/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class NetlabProcess:
    """A `python -m netlab ...` child whose first stdout line is read before the test goes on."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "netlab", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.first_line = self.proc.stdout.readline().strip()  # type: ignore[union-attr]
        if not self.first_line:
            self.stop()
            raise RuntimeError(f"netlab {' '.join(args)} printed nothing: {self.proc.stderr.read()}")  # type: ignore[union-attr]

    @property
    def listening(self) -> str:
        """The address from a ``listening ADDR ...`` line."""
        words = self.first_line.split()
        assert words[0] == "listening", self.first_line
        return words[1]

    def signal(self, signum: int = signal.SIGINT) -> None:
        self.proc.send_signal(signum)

    def finish(self, timeout: float = 10) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(Exception):
                stream.close()  # type: ignore[union-attr]


@pytest.fixture
def netlab_process() -> Iterator[type[NetlabProcess]]:
    """Start netlab processes with ``netlab_process("serve", ...)``; all are stopped afterwards."""
    started: list[NetlabProcess] = []

    def start(*args: str) -> NetlabProcess:
        process = NetlabProcess(*args)
        started.append(process)
        return process

    yield start  # type: ignore[misc]
    for process in started:
        process.stop()
