"""Starting the servers of a run: netlab's (``netlab serve``, or ``netlab relay``), the
baselines from ``benchmarks/baselines/``, socat; each its own process, pinned before it
runs a line, all started together and stopped together."""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import BenchError
from .machine import pin_sets, pinned
from .modes import BASELINES, RELAY_BASELINES, RELAY_PEER, BenchSettings, Service
from .processes import ServerProcess, loadgen_target, tail
from .socat import spawn_socat


@dataclass(frozen=True)
class Tools:
    """What a run finds on this machine, once, before it starts."""

    baselines: Path  # the folder of the baseline scripts
    socat: str | None  # the socat program (None: not installed)
    iperf3: str | None  # the iperf3 program (None: not installed)


def baselines_dir(settings: BenchSettings) -> Path:
    if settings.baselines_dir:
        return Path(settings.baselines_dir)
    return Path(__file__).resolve().parent.parent.parent / "benchmarks" / "baselines"


def spawn_server(name: str, template: str, service: Service, settings: BenchSettings, workdir: Path, tools: Tools,
                 *, max_connections: int, to: str | None = None) -> Callable[[], ServerProcess]:
    """Start one server process on a fresh address (pinned before it runs a line of Python);
    returns the function that waits for the address it prints (so servers start together).
    With `to`, the "server" is a relay to that address (``relay`` mode): netlab's, or a
    baseline relay."""
    directory = workdir / name
    directory.mkdir(exist_ok=True)
    address = template.format(dir=directory)
    env = None
    if name == "socat" and to is not None:
        return spawn_socat(tools.socat, address, to, settings, directory)
    if name in ("netlab", "before"):
        if to is not None:
            argv = [sys.executable, "-m", "netlab", "relay", "--listen", address, "--to", to]
        else:
            argv = [sys.executable, "-m", "netlab", "serve", "--transport", address, "--service", service,
                    "--max-connections", str(max_connections), "--grace", "0"]
        if name == "before":  # the same command, importing netlab from the other tree
            env = {**os.environ, "PYTHONPATH": str(Path(settings.before or "").resolve()), "PYTHONSAFEPATH": "1"}
    else:
        what = "relay" if to is not None else "server"
        script = tools.baselines / (RELAY_BASELINES if to is not None else BASELINES)[name]
        if not script.is_file():
            raise BenchError(f"baseline {what} {script} not found (it lives in the source tree's benchmarks/ "
                             f"folder; run from a checkout)")
        argv = [sys.executable, str(script), address]
        if to is not None:
            argv.append(to)
        elif service == "discard":
            argv.append("--discard")
    log = directory / "stderr.log"
    server_cpus, _ = pin_sets(settings.pin)
    with open(log, "wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                preexec_fn=pinned(server_cpus), cwd=str(directory), env=env)

    return _ready_when_printed(name, address, proc, log)


def _ready_when_printed(name: str, address: str, proc: subprocess.Popen[bytes],
                        log: Path) -> Callable[[], ServerProcess]:
    def ready() -> ServerProcess:
        assert proc.stdout is not None
        line = b""
        readable, _, _ = select.select([proc.stdout], [], [], 20.0)
        if readable:
            line = proc.stdout.readline()
        text = line.decode(errors="replace").strip()
        if not text:
            proc.kill()
            proc.wait()
            raise BenchError(f"the {name} server did not start on {address}: {tail(log)}")
        bound = text.split()[1] if text.startswith("listening ") else text.split()[0]
        return ServerProcess(name, proc, bound, loadgen_target(bound), log)

    return ready


@contextlib.contextmanager
def relay_peer(settings: BenchSettings, template: str, service: Service, workdir: Path,
               tools: Tools) -> Iterator[str | None]:
    """A mode of relays: the peer every relay passes to (a baseline echo or discard server,
    not netlab's), its address; for the other modes, None."""
    if not settings.bench_mode.relays:
        yield None
        return
    (workdir / "peer").mkdir(parents=True, exist_ok=True)
    started = spawn_server(RELAY_PEER, template, service, settings, workdir / "peer", tools, max_connections=0)()
    try:
        yield started.address
    finally:
        started.stop()


@contextlib.contextmanager
def servers(settings: BenchSettings, template: str, service: Service, workdir: Path, tools: Tools,
            max_connections: int, only: str | None = None,
            to: str | None = None) -> Iterator[dict[str, ServerProcess | BenchError]]:
    """Start the servers on `template` (an address, ``{dir}`` for a directory of its own);
    a server that cannot start is there as its BenchError."""
    workdir.mkdir(parents=True, exist_ok=True)
    started: dict[str, ServerProcess | BenchError] = {}
    waiting: dict[str, Callable[[], ServerProcess]] = {}
    try:
        for who in settings.servers:
            if only is None or who == only:
                try:
                    waiting[who] = spawn_server(who, template, service, settings, workdir, tools,
                                                max_connections=max_connections, to=to)
                except BenchError as exc:
                    started[who] = exc
        for who, ready in waiting.items():
            try:
                started[who] = ready()
            except BenchError as exc:
                started[who] = exc
        started = {who: started[who] for who in settings.servers if who in started}
        yield started
    finally:
        for server in started.values():
            if isinstance(server, ServerProcess):
                server.stop()


def running(server: ServerProcess | BenchError) -> ServerProcess:
    """The server, still running; else the error that stopped it, raised."""
    if isinstance(server, BenchError):
        raise server
    server.check()
    return server


__all__ = ["Tools", "baselines_dir", "relay_peer", "running", "servers", "spawn_server"]
