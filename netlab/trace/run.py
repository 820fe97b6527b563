"""`netlab trace -- CMD`: run a command in a private network namespace and keep its packets.

::

    parent (netlab trace)                              events: JSON lines on the child's stdout
      │  job: JSON in argv; stdin kept open (the child exits when it closes)         ▲
      ▼                                                                                │
    unshare --net --pid --fork --mount-proc -- python -c '...run.child_main()' JOB ────┘
      1. refuses to run in the parent's network namespace; brings lo up (MTU as asked)
      2. starts the capture (`capture.Capture`), and a sampler of /proc/net/unix
      3. starts the servers asked for (``--serve ADDR``: ``netlab serve``), each waited for
         until it prints that it listens
      4. runs the command (stdin from /dev/null, stdout kept, stderr passed through), up to
         the time limit; then stops the servers (SIGTERM: they drain and close)
      5. sends every frame kept, then the result; exits, and with it the PID namespace
         (whatever the command left running dies) and the network namespace

Nothing escapes: the namespace has only its own ``lo``, so the command can reach nothing
outside it and nothing outside can reach the command; the capture sees only that ``lo``.

Unix sockets never reach the network stack: no frame is ever captured for them. What the
trace can show instead is their life as the kernel lists it: ``/proc/net/unix`` is sampled
(every `UNIX_SAMPLE` s) and each socket's appearance, state changes and disappearance are
kept (a socket that lives less than a sample may be missed, and the trace says so).
"""

from __future__ import annotations

import base64
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import NetlabError, PrivilegeError
from ..netns import current_netns, exit_with_parent, isolation, loopback_up, refuse_host, set_mtu, unshare_command
from .capture import Capture, Frame, Limits
from .ladder import Ladder

CHILD_CODE = "import sys; from netlab.trace.run import child_main; sys.exit(child_main(sys.argv[1]))"
#: how long a server given with --serve may take to say it listens
SERVER_START = 15.0
#: how long servers may take to drain after SIGTERM before they are killed
SERVER_STOP = 3.0
UNIX_SAMPLE = 0.0005
#: at most this many unix socket events are kept
UNIX_EVENTS = 2000
_UNIX_STATES = {"01": "unconnected", "02": "connecting", "03": "connected", "04": "disconnecting"}
_UNIX_TYPES = {"0001": "stream", "0002": "dgram", "0005": "seqpacket"}


@dataclass
class TraceSettings:
    command: list[str]
    serve: list[str] = field(default_factory=list)  # addresses netlab serves inside the trace
    service: str = "sum"
    limits: Limits = Limits()
    mtu: int | None = None  # lo's MTU in the namespace (None: the kernel's 64 KiB)


@dataclass
class TraceResult:
    settings: TraceSettings
    frames: list[Frame]
    exit_code: int | None = None
    timed_out: bool = False
    output: bytes = b""  # the command's stdout
    capture: dict[str, Any] = field(default_factory=dict)
    servers: list[str] = field(default_factory=list)  # what each server said when it listened
    unix: list[dict[str, Any]] = field(default_factory=list)
    isolation: str = ""
    started: float = 0.0

    def ladder(self) -> Ladder:
        return Ladder([_decode(f) for f in self.frames])

    def notes(self) -> list[str]:
        """Plain sentences on what the trace could not show, and why."""
        said = []
        if not self.frames and self.unix:
            said.append("unix sockets never reach the network stack: there are no packets to show. Above, what "
                        "the kernel listed of the named ones' lives (/proc/net/unix, sampled every "
                        f"{UNIX_SAMPLE * 1e3:g} ms: a socket that lived less than that may be missing; --json has "
                        "the unnamed ones too).")
        elif not self.frames:
            said.append("no packets: the command sent nothing over IP inside the trace's namespace (unix sockets "
                        "never reach the network stack; an address outside the namespace cannot be reached).")
        if "--kernel" in self.settings.command:
            said.append("the command made network namespaces of its own (--kernel): their packets are not in this "
                        "trace (`netlab experiment run loss --kernel --trace` captures inside them).")
        stopped = self.capture.get("stopped_by")
        if stopped:
            limit = {"packets": f"{self.settings.limits.packets:,} packets",
                     "bytes": f"{self.settings.limits.bytes:,} bytes",
                     "seconds": f"{self.settings.limits.seconds:g} s"}[stopped]
            said.append(f"the capture stopped at its limit of {limit}: later packets are not shown.")
        if self.capture.get("kernel_drops"):
            said.append(f"the capture missed {self.capture['kernel_drops']} frames (its buffer was full).")
        if self.timed_out:
            said.append(f"the command was stopped after {self.settings.limits.seconds:g} s (the trace's time limit).")
        return said

    def as_json(self) -> dict[str, Any]:
        ladder = self.ladder()
        return {"command": self.settings.command, "serve": self.settings.serve, "exit_code": self.exit_code,
                "timed_out": self.timed_out, "isolation": self.isolation, "mtu": self.settings.mtu,
                "capture": {**self.capture, "limits": asdict(self.settings.limits)},
                "output": self.output.decode("utf-8", "backslashreplace"), "servers": self.servers,
                "conversations": [c.facts() for c in ladder.conversations], "packets": ladder.as_json(),
                "unix": self.unix, "notes": self.notes()}


def _decode(frame: Frame) -> Any:
    from .packets import decode

    return decode(frame.data, frame.time, frame.interface)


# -- the parent ------------------------------------------------------------------------------


def child_command(job: dict[str, Any]) -> list[str]:
    return unshare_command([sys.executable, "-c", CHILD_CODE, json.dumps(job)], pid=True)


def run_trace(settings: TraceSettings, on_output: Callable[[bytes], None] | None = None) -> TraceResult:
    """Run `settings.command` in a private network (and PID) namespace and capture its packets.

    Raises PrivilegeError when no namespace can be made here (not root and no user
    namespaces), NetlabError when the child fails (a server that does not start)."""
    found = isolation()
    if found.mode is None:
        raise PrivilegeError(f"netlab trace captures inside a private network namespace, and none can be made here: "
                             f"{found.detail}")
    job = {"settings": {"command": settings.command, "serve": settings.serve, "service": settings.service,
                        "limits": asdict(settings.limits), "mtu": settings.mtu},
           "parent_netns": current_netns()}
    argv = child_command(job)
    result = TraceResult(settings, [], isolation=found.describe().replace("isolated: ", ""), started=time.time())
    final: dict[str, Any] = {}
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None)
    assert proc.stdout is not None and proc.stdin is not None
    give_up = time.monotonic() + settings.limits.seconds + SERVER_START * max(1, len(settings.serve)) + 60
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            buffer = b""
            while True:
                left = give_up - time.monotonic()
                if left <= 0:
                    raise NetlabError("the trace's namespace did not finish in time; it was stopped")
                if not selector.select(min(left, 1.0)):
                    continue
                chunk = os.read(proc.stdout.fileno(), 1 << 20)
                if not chunk:
                    break
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    _event(line, result, final)
    finally:
        proc.stdin.close()  # the child exits when its stdin closes
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    if final.get("event") == "error":
        raise NetlabError(final["message"])
    if final.get("event") != "result":
        raise NetlabError(f"the trace's namespace ended without a result (exit status {proc.returncode})")
    result.exit_code, result.timed_out = final["exit_code"], final["timed_out"]
    result.output = base64.b64decode(final["output"])
    result.capture, result.unix = final["capture"], final["unix"]
    result.frames.sort(key=lambda f: f.time)
    return result


def _event(line: bytes, result: TraceResult, final: dict[str, Any]) -> None:
    try:
        event = json.loads(line)
    except ValueError:
        return  # not one of ours
    kind = event.get("event")
    if kind == "frame":
        result.frames.append(Frame(event["t"], event["if"], base64.b64decode(event["data"]), event["out"]))
    elif kind == "server":
        result.servers.append(event["line"])
    elif kind in ("result", "error"):
        final.update(event)


# -- the child, in the namespace ---------------------------------------------------------------


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class UnixWatch:
    """Samples /proc/net/unix: each socket's appearance, state changes and disappearance."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="netlab-unix-watch", daemon=True)
        self._thread.start()

    @staticmethod
    def table() -> dict[str, tuple[str, str, str]]:
        """inode -> (type, state, path) of every unix socket in this namespace."""
        found = {}
        try:
            with open("/proc/net/unix", "rb") as f:
                lines = f.read().decode("utf-8", "backslashreplace").split("\n")[1:]
        except OSError:
            return {}
        for line in lines:
            fields = line.split(maxsplit=7)
            if len(fields) < 7:
                continue
            flags, kind, state, inode = fields[3], fields[4], fields[5], fields[6]
            path = fields[7] if len(fields) > 7 else ""
            listening = int(flags, 16) & 0x10000
            found[inode] = (_UNIX_TYPES.get(kind, kind), "listening" if listening else _UNIX_STATES.get(state, state),
                            path.replace("\x00", "@"))
        return found

    def _run(self) -> None:
        known: dict[str, tuple[str, str, str]] = self.table()
        while not self._stop.wait(UNIX_SAMPLE):
            now, table = time.time(), self.table()
            for inode, (kind, state, path) in table.items():
                if known.get(inode) != (kind, state, path):
                    what = "appeared" if inode not in known else "changed"
                    self._add({"time": now, "inode": int(inode), "type": kind, "state": state, "path": path,
                               "what": what})
            for inode in known.keys() - table.keys():
                kind, state, path = known[inode]
                self._add({"time": now, "inode": int(inode), "type": kind, "state": "closed", "path": path,
                           "what": "closed"})
            known = table

    def _add(self, event: dict[str, Any]) -> None:
        if len(self.events) < UNIX_EVENTS:
            self.events.append(event)

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        self._thread.join()
        return self.events


def _start_server(address: str, service: str, deadline: float) -> tuple[subprocess.Popen[bytes], str]:
    log = tempfile.TemporaryFile()  # the server's stderr, read only if it fails to start
    proc = subprocess.Popen([sys.executable, "-m", "netlab", "serve", "--transport", address, "--service", service],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        said = b""
        while b"\n" not in said:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                proc.kill()
                raise NetlabError(f"--serve {address}: the server did not say it listens within {SERVER_START:g} s")
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                proc.wait()
                log.seek(0)
                why = log.read().decode(errors="replace").strip().splitlines()
                raise NetlabError(f"--serve {address}: the server did not start: "
                                  f"{why[-1] if why else f'exit status {proc.returncode}'}")
            said += chunk
    return proc, said.split(b"\n")[0].decode(errors="replace")


def _stop_servers(servers: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in servers:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    give_up = time.monotonic() + SERVER_STOP
    for proc in servers:
        try:
            proc.wait(timeout=max(0.0, give_up - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run_command(argv: list[str], seconds: float) -> tuple[int | None, bool, bytes]:
    """(exit status, whether it ran out of time, its stdout)."""
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=None)
    except OSError as exc:
        raise NetlabError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    try:
        out, _ = proc.communicate(timeout=seconds)
        return proc.returncode, False, out
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        return None, True, out


def child_main(job_text: str) -> int:
    """Entry point inside the namespace: the job in argv, JSON events on stdout."""
    job = json.loads(job_text)
    exit_with_parent()
    try:
        refuse_host(job["parent_netns"])
        s = job["settings"]
        limits = Limits(**s["limits"])
        loopback_up()
        if s.get("mtu"):
            set_mtu("lo", int(s["mtu"]))
        deadline = time.monotonic() + limits.seconds
        capture = Capture(limits)
        watch = UnixWatch()
        servers: list[subprocess.Popen[bytes]] = []
        try:
            for address in s["serve"]:
                proc, line = _start_server(address, s["service"], time.monotonic() + SERVER_START)
                servers.append(proc)
                _emit({"event": "server", "line": line})
            code, timed_out, output = _run_command(_argv(s["command"]), max(0.1, deadline - time.monotonic()))
        finally:
            _stop_servers(servers)
            frames = capture.stop()
            unix = watch.stop()
        for frame in frames.frames:
            _emit({"event": "frame", "t": frame.time, "if": frame.interface, "out": frame.outgoing,
                   "data": base64.b64encode(frame.data).decode()})
        _emit({"event": "result", "exit_code": code, "timed_out": timed_out,
               "output": base64.b64encode(output).decode(), "capture": frames.summary(), "unix": unix})
    except NetlabError as exc:
        _emit({"event": "error", "message": str(exc)})
        return 1
    except OSError as exc:
        _emit({"event": "error", "message": f"inside the trace's namespace: {exc}"})
        return 1
    return 0


def _argv(command: list[str]) -> list[str]:
    """``netlab ...`` runs this netlab (the same Python), whatever PATH says."""
    if command and command[0] == "netlab":
        return [sys.executable, "-m", "netlab", *command[1:]]
    return command


__all__ = ["TraceResult", "TraceSettings", "child_main", "run_trace"]
