"""`netlab bench`: how fast netlab's server is, measured against baselines in the same run.

Process layout. Nothing measured shares an interpreter with anything else:

* every **server** is its own process: netlab's (``python -m netlab serve``, the command a
  user runs, with ``--max-connections`` raised), and the baselines in
  ``benchmarks/baselines/`` — a blocking-socket server with a thread per connection
  (standard library), a minimal hand-written trio server (the cost floor for trio) and an
  asyncio server (protocol callbacks). For ``stream`` on TCP, iperf3 too, when installed;
* the **load generator** (`netlab.bench.loadgen`) is a process of its own, started afresh
  for every measurement, with plain blocking or epoll sockets; it reads its own CPU time
  and the server's at the edges of the measured window;
* this process only starts, pins and stops the others, and adds up what they report.

Encrypted transports (``tls``): the run makes one throwaway CA and one server certificate
(`certificate_options`), which every server presents, netlab's and the baselines' alike,
so their handshakes cost the same; the load generator verifies it against that CA. Every
connection it opens makes a full handshake (no session resumption), so ``connect`` on
``tls`` beside ``tcp`` shows what the handshake costs.

Pinning (``pin``): ``same`` puts the server and the load generator on one core, ``split``
on two different cores, ``none`` leaves them to the scheduler. Children are pinned with
``os.sched_setaffinity`` as they start (before ``exec``), so every thread they ever make
inherits it; the affinity actually in force is read back and recorded. On loopback,
sharing a core or not changes ping-pong figures about tenfold, which is why only ratios
measured in one run are compared, never absolute figures from different runs.

Method. For each transport all servers are started, then each repeat runs every server
once, in an order rotated from repeat to repeat (so slow drifts in the machine's load do
not favour whoever goes first). Each run has its own warm-up, which is discarded. A figure
is the median of the repeats, with their minimum and maximum. A **ratio** is computed per
repeat between runs made moments apart (netlab ÷ baseline for rates, baseline ÷ netlab for
latencies: above 1 means netlab did better), and reported as the median of those ratios
with their spread.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from ..errors import BenchError
from ..experiments.base import ResultTable
from ..experiments.measure import environment as base_environment
from ..experiments.measure import latency_percentiles
from ..transports import COMPARE_SCHEMES, Transport, get_transport, parse_address

MODES: dict[str, str] = {
    "pingpong": "closed loop: each connection sends one message and waits for its reply",
    "rate": "open loop at a fixed rate; latency from each message's due time (coordinated omission corrected)",
    "stream": "one-way bulk transfer into a discard server (connection transports)",
    "datagrams": "datagrams a discard server takes per second, flat out, and where the rest went",
    "connect": "connections per second: connect, a 1-byte echo, close (connection transports)",
    "concurrency": "ping-pong at 1, 10, 100, 1000 connections, and how many idle connections one server holds",
    "relay": "through a relay to a plain peer, no impairment: datagrams passed at --rate (default 20,000/s) "
             "and MB/s on connections; netlab relay against a minimal select relay and socat",
}

#: the baseline servers, each a script in benchmarks/baselines/
BASELINES: dict[str, str] = {
    "trio": "trio_echo.py",
    "asyncio": "asyncio_echo.py",
    "threads": "threads_echo.py",
}
#: the baseline relays of ``relay`` mode: a script in benchmarks/baselines/, or a program
RELAY_BASELINES: dict[str, str] = {
    "select": "select_relay.py",
    "socat": "socat",
}
#: ``relay`` mode: the peer behind every relay (a baseline server: not netlab's)
RELAY_PEER = "threads"
#: the offered rate of ``relay`` mode on datagrams when --rate is not given
RELAY_RATE = 20_000.0
DEFAULT_RATE = 5000.0
BASELINE_TEXT = {
    "netlab": "netlab serve (the server under test)",
    "trio": "minimal trio server: serve_listeners + async for / send_all (the cost floor for trio)",
    "asyncio": "asyncio protocol callbacks (data_received -> write)",
    "threads": "blocking sockets, one thread per connection (standard library)",
    "iperf3": "iperf3 -s / -c (its own client; stream mode, TCP only)",
    "before": "netlab serve from another source tree (--before): the same command, older code",
    "select": "a minimal select() relay (benchmarks/baselines/select_relay.py): the floor for a relay in Python",
    "socat": "socat LISTEN,fork (Debian's package), one process per client",
}
PINS = ("same", "split", "none")
#: the kinds of transport each mode can run on
_MODE_KINDS = {
    "pingpong": {"stream", "datagram", "seqpacket"},
    "rate": {"stream", "datagram", "seqpacket"},
    "stream": {"stream", "seqpacket"},
    "datagrams": {"datagram", "seqpacket"},
    "connect": {"stream", "seqpacket"},
    "concurrency": {"stream", "datagram", "seqpacket"},
    "relay": {"stream", "datagram", "seqpacket"},
}
_NOT_APPLICABLE = {
    "stream": "no connection to stream over: see the datagrams mode",
    "datagrams": "a byte stream has no datagrams: see the stream mode",
    "connect": "connectionless: nothing to accept",
}
#: (metric, unit, higher is better) per mode
_METRIC = {
    "pingpong": ("round trips/s", "rt/s", True),
    "concurrency": ("round trips/s", "rt/s", True),
    "rate": ("p99 latency", "µs", False),
    "stream": ("throughput", "MB/s", True),
    "datagrams": ("datagrams taken/s", "dgram/s", True),
    "connect": ("connections/s", "conn/s", True),
    "hold": ("server memory per connection held", "KiB", False),
    "relay-datagrams": ("datagrams passed/s", "dgram/s", True),
    "relay-stream": ("throughput through the relay", "MB/s", True),
}


@dataclass(frozen=True)
class BenchSettings:
    mode: str
    transports: tuple[str, ...] = tuple(COMPARE_SCHEMES)
    baselines: tuple[str, ...] = tuple(BASELINES)
    duration: float = 2.0  # seconds measured per run
    warmup: float = 0.5  # seconds before each run, discarded
    repeats: int = 3
    size: int = 64  # message (or datagram) bytes
    connections: int = 1  # pingpong, rate
    rate: float | None = None  # rate: messages per second, in all (None: 5,000; relay mode 20,000)
    levels: tuple[int, ...] = (1, 10, 100, 1000)  # concurrency
    hold: int = 10_000  # concurrency: idle connections to hold (0: skip)
    chunk: int = 128 * 1024  # stream: bytes per write (iperf3's default for TCP)
    timeout: float = 0.2  # datagram reply timeout (pingpong, rate)
    pin: str = "same"
    iperf3: bool = True  # stream: run iperf3 too, when installed
    baselines_dir: str | None = None  # where the baseline scripts are (default: benchmarks/baselines)
    before: str | None = None  # another netlab source tree, run too as the server "before"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r} (known: {', '.join(MODES)})")
        if self.rate is None:
            object.__setattr__(self, "rate", RELAY_RATE if self.mode == "relay" else DEFAULT_RATE)
        known = RELAY_BASELINES if self.mode == "relay" else BASELINES
        if self.mode == "relay" and self.baselines == tuple(BASELINES):  # the servers' default: the relays'
            object.__setattr__(self, "baselines", tuple(RELAY_BASELINES))
        unknown = [t for t in self.transports if t not in COMPARE_SCHEMES]
        if unknown or not self.transports:
            raise ValueError(f"unknown transport {(unknown or [''])[0]!r} (known: {', '.join(COMPARE_SCHEMES)})")
        unknown = [b for b in self.baselines if b not in known]
        if unknown:
            raise ValueError(f"unknown baseline {unknown[0]!r} for {self.mode} (known: {', '.join(known)})")
        if self.pin not in PINS:
            raise ValueError(f"--pin must be one of {', '.join(PINS)}, not {self.pin!r}")
        if self.duration <= 0 or self.warmup < 0 or self.timeout <= 0:
            raise ValueError("duration and timeout must be positive, warm-up not negative")
        if self.repeats < 1 or self.connections < 1:
            raise ValueError("repeats and connections must be at least 1")
        if self.size < 8:
            raise ValueError("size must be at least 8 bytes (a message carries its sequence number)")
        if self.size > 65000 and self.mode in ("pingpong", "rate", "datagrams", "concurrency"):
            raise ValueError("size must be at most 65000 bytes (it must fit one UDP datagram)")
        if self.rate is None or self.rate <= 0:
            raise ValueError("rate must be positive")
        if not self.levels or min(self.levels) < 1:
            raise ValueError("concurrency levels must be at least 1")
        if self.hold < 0:
            raise ValueError("hold must not be negative")
        if self.chunk < 1 or self.chunk > 200_000:
            raise ValueError("chunk must be 1..200000 bytes (a unix-seq message must fit the send buffer)")
        if self.pin == "split" and len(_usable_cpus()) < 2:
            raise ValueError("--pin split needs two cores; this process may use only one")
        if self.before is not None and not (Path(self.before) / "netlab" / "__main__.py").is_file():
            raise ValueError(f"--before {self.before}: not a netlab source tree (no netlab/__main__.py in it)")

    @property
    def servers(self) -> tuple[str, ...]:
        return ("netlab", *self.baselines) + (("before",) if self.before else ())

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["servers"] = list(self.servers)
        return data


@dataclass
class Run:
    """One load generator run against one server."""

    mode: str
    transport: str
    server: str
    repeat: int
    level: int | None = None
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def value(self) -> float | None:
        """The mode's headline figure for this run."""
        r = self.result
        if self.error or not r:
            return None
        if self.mode in ("pingpong", "concurrency", "connect", "datagrams", "relay-datagrams"):
            return r["count"] / r["elapsed"] if r.get("elapsed") else None
        if self.mode == "rate":
            h = decode(r.get("histogram"))
            return None if h is None else h.get_value_at_percentile(99) / 1e3
        if self.mode in ("stream", "relay-stream"):
            return r["bytes"] / r["elapsed"] / 1e6 if r.get("elapsed") else None
        if self.mode == "hold":
            per = r.get("rss_per_connection")
            return per / 1024 if per and r.get("answering") == r.get("held") else None
        raise AssertionError(self.mode)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["value"] = self.value
        return data


@dataclass
class Row:
    """One server on one transport (at one concurrency level): the repeats summed up."""

    mode: str
    transport: str
    server: str
    level: int | None
    metric: str
    unit: str
    higher_is_better: bool
    median: float | None = None
    low: float | None = None
    high: float | None = None
    values: list[float] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    ratios: dict[str, dict[str, float]] = field(default_factory=dict)  # netlab rows: per baseline
    #: netlab rows: per baseline, the ratio of server CPU time per message (baseline ÷ netlab:
    #: above 1, netlab's server costs less), which wake-up latencies do not blur
    cost_ratios: dict[str, dict[str, float]] = field(default_factory=dict)
    histogram: str | None = None  # all repeats' latencies (ns), an encoded HdrHistogram
    count: int = 0  # messages (or bytes, or connections) counted over all repeats
    error: str | None = None
    note: str | None = None


@dataclass
class BenchResult:
    settings: BenchSettings
    environment: dict[str, Any]
    runs: list[Run]
    rows: list[Row]
    skipped: list[dict[str, str]]
    targets: list[dict[str, Any]]

    @property
    def failed(self) -> list[str]:
        return [f"{r.transport}/{r.server}: {r.error}" for r in self.rows if r.error]


# -- the machine ---------------------------------------------------------------------------


def _usable_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def raise_nofile() -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def iperf3_path() -> str | None:
    return shutil.which("iperf3")


def environment(settings: BenchSettings | None = None) -> dict[str, Any]:
    """What the figures depend on: versions, cores, pinning, loopback MTU, socket buffers."""
    env: dict[str, Any] = base_environment()
    model = None
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if line.startswith("model name"):
            model = line.partition(":")[2].strip()
            break
    sysctl = {name: _read(f"/proc/sys/{name.replace('.', '/')}") for name in (
        "net.core.rmem_default", "net.core.wmem_default", "net.core.rmem_max", "net.core.wmem_max",
        "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem", "net.unix.max_dgram_qlen", "net.core.somaxconn",
        "net.ipv4.ip_local_port_range")}
    probe = {}
    for name, family, kind in (("tcp", socket.AF_INET, socket.SOCK_STREAM), ("udp", socket.AF_INET, socket.SOCK_DGRAM),
                               ("unix", socket.AF_UNIX, socket.SOCK_STREAM),
                               ("unix-dgram", socket.AF_UNIX, socket.SOCK_DGRAM)):
        with socket.socket(family, kind) as s:
            probe[name] = {"SO_RCVBUF": s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
                           "SO_SNDBUF": s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)}
    iperf3 = iperf3_path()
    iperf3_version = None
    if iperf3:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            iperf3_version = subprocess.run([iperf3, "--version"], capture_output=True, text=True,
                                            timeout=5).stdout.splitlines()[0].strip()
    env.update({
        "cpu_model": model, "usable_cpus": _usable_cpus(), "implementation": platform.python_implementation(),
        "loopback_mtu": int(_read("/sys/class/net/lo/mtu") or 0) or None,
        "sysctl": sysctl, "default_socket_buffers": probe,
        "rlimit_nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "loadavg": _read("/proc/loadavg"), "iperf3": iperf3_version,
    })
    if settings is not None:
        server_cpus, client_cpus = pin_sets(settings.pin)
        env["pin"] = {"mode": settings.pin, "server_cpus": server_cpus, "client_cpus": client_cpus}
    return env


def pin_sets(pin: str) -> tuple[list[int] | None, list[int] | None]:
    """(server cores, load generator cores) for a pin mode; None: not pinned."""
    cpus = _usable_cpus()
    if pin == "same":
        return [cpus[0]], [cpus[0]]
    if pin == "split":
        return [cpus[0]], [cpus[1]]
    return None, None


def _pinned(cpus: list[int] | None) -> Callable[[], None] | None:
    if cpus is None:
        return None

    def pin() -> None:
        os.sched_setaffinity(0, cpus)

    return pin


def _affinity(pid: int) -> list[int] | None:
    try:
        return sorted(os.sched_getaffinity(pid))
    except OSError:
        return None


# -- processes -----------------------------------------------------------------------------


def baselines_dir(settings: BenchSettings) -> Path:
    if settings.baselines_dir:
        return Path(settings.baselines_dir)
    return Path(__file__).resolve().parent.parent.parent / "benchmarks" / "baselines"


@dataclass
class ServerProcess:
    name: str
    proc: subprocess.Popen[bytes]
    address: str  # as the server printed it
    target: dict[str, Any]  # what the load generator connects to
    log: Path
    #: the server forks a process per client (socat): they are stopped with it, as a group
    group: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"the {self.name} server exited ({self.proc.returncode}): {_tail(self.log)}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.group:  # its children outlive it otherwise (a UDP one never sees an end)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(nothing on stderr)"


def loadgen_target(address_text: str) -> dict[str, Any]:
    """How the load generator reaches a server: family, socket type, sockaddr; for an
    encrypted transport also ``tls``: the CA file the server's bound address names
    (``?ca=PATH``) and the host name to check its certificate against."""
    address = parse_address(address_text)
    transport = get_transport(address.scheme)
    if address.is_unix:
        sockaddr: Any = address.unix_sockaddr()
        if isinstance(sockaddr, bytes):
            sockaddr = sockaddr.decode("utf-8", "surrogateescape")
        family = socket.AF_UNIX
    else:
        family = socket.AF_INET6 if ":" in (address.host or "") else socket.AF_INET
        sockaddr = [address.host, address.port]
    target: dict[str, Any] = {"family": int(family), "type": int(transport.socktype), "address": sockaddr}
    if transport.encrypted:
        ca = address.str_option("ca")
        if ca is None:
            raise BenchError(f"{address_text}: the server printed no ?ca=FILE: the load generator cannot "
                             f"verify its certificate")
        target["tls"] = {"ca": ca, "server_hostname": address.host}
    return target


def certificate_options(directory: Path) -> str:
    """``?cert=FILE&key=FILE&ca=FILE`` for the servers of an encrypted transport: a throwaway
    CA and one certificate from it (for localhost, 127.0.0.1 and ::1), made once in
    `directory` and presented by every server of the run, so their handshakes cost the same."""
    files = {name: directory / f"{name}.pem" for name in ("cert", "key", "ca")}
    if not all(path.is_file() for path in files.values()):
        import trustme

        directory.mkdir(parents=True, exist_ok=True)
        authority = trustme.CA(organization_name="netlab bench throwaway CA")
        leaf = authority.issue_cert("localhost", "127.0.0.1", "::1")
        authority.cert_pem.write_to_path(str(files["ca"]))
        leaf.private_key_pem.write_to_path(str(files["key"]))
        files["cert"].write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
    return "?" + "&".join(f"{name}={urllib.parse.quote(str(path))}" for name, path in files.items())


def spawn_server(name: str, template: str, service: str, settings: BenchSettings, workdir: Path,
                 *, max_connections: int, to: str | None = None) -> Callable[[], ServerProcess]:
    """Start one server process on a fresh address (pinned before it runs a line of Python);
    returns the function that waits for the address it prints (so servers start together).
    With `to`, the "server" is a relay to that address (``relay`` mode): netlab's, or a
    baseline relay."""
    directory = workdir / name
    directory.mkdir(exist_ok=True)
    address = template.format(dir=directory)
    env = None
    if to is not None:
        if name == "socat":
            return _spawn_socat(address, to, settings, directory)
        if name in ("netlab", "before"):
            argv = [sys.executable, "-m", "netlab", "relay", "--listen", address, "--to", to]
            if name == "before":  # the same command, importing netlab from the other tree
                env = {**os.environ, "PYTHONPATH": str(Path(settings.before or "").resolve()), "PYTHONSAFEPATH": "1"}
        else:
            script = baselines_dir(settings) / RELAY_BASELINES[name]
            if not script.is_file():
                raise BenchError(f"baseline relay {script} not found (it lives in the source tree's benchmarks/ "
                                 f"folder; run from a checkout)")
            argv = [sys.executable, str(script), address, to]
    elif name in ("netlab", "before"):
        argv = [sys.executable, "-m", "netlab", "serve", "--transport", address, "--service", service,
                "--max-connections", str(max_connections), "--grace", "0"]
        if name == "before":  # the same command, importing netlab from the other tree
            env = {**os.environ, "PYTHONPATH": str(Path(settings.before or "").resolve()),
                   "PYTHONSAFEPATH": "1"}
    else:
        script = baselines_dir(settings) / BASELINES[name]
        if not script.is_file():
            raise BenchError(f"baseline server {script} not found (it lives in the source tree's benchmarks/ "
                             f"folder; run from a checkout)")
        argv = [sys.executable, str(script), address] + (["--discard"] if service == "discard" else [])
    log = directory / "stderr.log"
    server_cpus, _ = pin_sets(settings.pin)
    with open(log, "wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                preexec_fn=_pinned(server_cpus), cwd=str(directory), env=env)

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
            raise BenchError(f"the {name} server did not start on {address}: {_tail(log)}")
        bound = text.split()[1] if text.startswith("listening ") else text.split()[0]
        return ServerProcess(name, proc, bound, loadgen_target(bound), log)

    return ready


def socat_path() -> str | None:
    return shutil.which("socat")


def _spawn_socat(address_text: str, to_text: str, settings: BenchSettings,
                 directory: Path) -> Callable[[], ServerProcess]:
    """socat as a relay (``LISTEN,fork``: a process per client). It prints no address, so the
    port is chosen here (bound and released: a race no other user of this machine's
    loopback is likely to win), and it is ready once it accepts (or, UDP, once bound)."""
    path = socat_path()
    if path is None:
        raise BenchError("socat is not installed (apt-get install socat): no socat figure")
    address, to = parse_address(address_text), parse_address(to_text)
    transport = get_transport(address.scheme)
    if transport.socat is None or to.scheme != address.scheme:
        raise BenchError(f"socat has no fork mode that passes replies back on {address.scheme}: not run")
    listen_type, connect_type, options = transport.socat
    if address.is_unix:
        assert address.path is not None and to.path is not None
        extra = f",{options}" if options else ""
        listen, connect = f"{listen_type}:{address.path},fork{extra}", f"{connect_type}:{to.path}{extra}"
        bound = address_text
    else:
        family = transport.family or socket.AF_INET
        kind = transport.socktype
        with socket.socket(family, kind) as probe:
            probe.bind((address.host, 0))
            port = probe.getsockname()[1]
        host = f"[{address.host}]" if family == socket.AF_INET6 else address.host
        listen = f"{listen_type}:{port},bind={host},reuseaddr,fork"
        connect = f"{connect_type}:{host}:{to.port}"
        bound = f"{address.scheme}:{host}:{port}"
    log = directory / "stderr.log"
    server_cpus, _ = pin_sets(settings.pin)
    with open(log, "wb") as err:
        proc = subprocess.Popen([path, listen, connect], stdout=subprocess.DEVNULL, stderr=err,
                                stdin=subprocess.DEVNULL, preexec_fn=_pinned(server_cpus), cwd=str(directory),
                                start_new_session=True)  # a group of its own: its children stop with it
    target = loadgen_target(bound)

    def ready() -> ServerProcess:
        give_up = time.monotonic() + 20
        while time.monotonic() < give_up and proc.poll() is None:
            if _socat_listening(target):
                return ServerProcess("socat", proc, bound, target, log, group=True)
            time.sleep(0.02)
        proc.kill()
        proc.wait()
        raise BenchError(f"socat did not start on {bound}: {_tail(log)}")

    return ready


def _socat_listening(target: dict[str, Any]) -> bool:
    sockaddr = tuple(target["address"]) if isinstance(target["address"], list) else target["address"]
    if target["type"] == socket.SOCK_DGRAM:
        from .loadgen import udp_socket_state

        return udp_socket_state(target["family"], sockaddr) is not None
    with socket.socket(target["family"], target["type"]) as probe:
        try:
            probe.connect(sockaddr)
        except OSError:
            return False
    return True


def run_loadgen(spec: dict[str, Any], settings: BenchSettings, *, timeout: float) -> dict[str, Any]:
    """Run the load generator once; its JSON result (raises BenchError on failure)."""
    _, client_cpus = pin_sets(settings.pin)
    argv = [sys.executable, "-m", "netlab.bench.loadgen", json.dumps(spec)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            preexec_fn=_pinned(client_cpus), text=True)
    affinity = _affinity(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise BenchError(f"the load generator did not finish within {timeout:.0f} s") from None
    lines = out.strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise BenchError(f"the load generator failed: {(err.strip().splitlines() or ['no output'])[-1]}") from None
    if "error" in result:
        raise BenchError(result["error"])
    result["client_affinity"] = affinity
    return result


def run_iperf3(settings: BenchSettings, host: str) -> dict[str, Any]:
    """One iperf3 TCP run on loopback (server and client pinned like the others)."""
    iperf3 = iperf3_path()
    assert iperf3 is not None
    server_cpus, client_cpus = pin_sets(settings.pin)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([iperf3, "-s", "-1", "-B", host, "-p", str(port), "--forceflush"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              preexec_fn=_pinned(server_cpus))
    try:
        assert server.stdout is not None
        give_up = time.monotonic() + 10
        said = b""
        fd = server.stdout.fileno()
        while b"listening" not in said:  # "Server listening on PORT" once it listens
            ready, _, _ = select.select([fd], [], [], max(0.0, give_up - time.monotonic()))
            chunk = os.read(fd, 4096) if ready else b""
            if not chunk:
                raise BenchError(f"iperf3 -s did not start: {said.decode(errors='replace').strip()}")
            said += chunk
        seconds = max(1, round(settings.duration))
        argv = [iperf3, "-c", host, "-p", str(port), "-t", str(seconds), "-J"]
        if settings.warmup > 0:
            argv += ["-O", str(max(1, math.ceil(settings.warmup)))]
        client = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + settings.warmup + 30,
                                preexec_fn=_pinned(client_cpus))
        try:
            data = json.loads(client.stdout)
        except json.JSONDecodeError:
            raise BenchError(f"iperf3 -c failed: {client.stderr.strip() or client.stdout.strip()}") from None
        if data.get("error"):
            raise BenchError(f"iperf3: {data['error']}")
        received = data["end"]["sum_received"]
        cpu = data["end"].get("cpu_utilization_percent", {})
        return {"bytes": received["bytes"], "elapsed": received["seconds"], "count": 0,
                "bits_per_second": received["bits_per_second"],
                "client_cpu": cpu.get("host_total", 0) / 100 * received["seconds"],
                "server_cpu": cpu.get("remote_total", 0) / 100 * received["seconds"],
                "iperf3_seconds": seconds}
    finally:
        server.kill()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()


# -- running a mode -------------------------------------------------------------------------


def _transport(name: str) -> Transport:
    return get_transport(name)


def _spec(settings: BenchSettings, mode: str, server: ServerProcess, level: int | None) -> dict[str, Any]:
    spec: dict[str, Any] = {**server.target, "mode": mode, "server_pid": server.pid, "size": settings.size,
                            "warmup": settings.warmup, "duration": settings.duration, "timeout": settings.timeout}
    if server.name == "socat":  # a process per client: its own CPU time is not the relay's
        spec["server_pid"] = None
    if mode == "relay-datagrams":
        spec["mode"], spec["connections"], spec["rate"], spec["count_drops"] = "rate", 1, settings.rate, True
    if mode == "relay-stream":
        spec["mode"], spec["chunk"] = "stream", settings.chunk
    if mode in ("pingpong", "rate"):
        spec["connections"] = settings.connections
    if mode == "concurrency":
        spec["mode"], spec["connections"] = "pingpong", level
    if mode == "rate":
        spec["rate"] = settings.rate
    if mode == "stream":
        spec["chunk"] = settings.chunk
    if mode == "hold":
        spec["hold"] = settings.hold
    return spec


def planned_runs(settings: BenchSettings) -> int:
    """How many times `run_bench` will call its progress callback."""
    servers = len(settings.servers) + (1 if settings.mode == "stream" and settings.iperf3 and iperf3_path() else 0)
    levels = len(settings.levels) if settings.mode == "concurrency" else 1
    total = 0
    for name in settings.transports:
        transport = _transport(name)
        if transport.kind not in _MODE_KINDS[settings.mode] or (settings.mode == "relay" and transport.encrypted):
            continue
        total += servers * levels * settings.repeats
        if settings.mode == "concurrency" and settings.hold and transport.connected:
            total += len(settings.servers)
    return total


Progress = Callable[[str], None]


def run_bench(settings: BenchSettings, progress: Progress = lambda label: None) -> BenchResult:
    """Run one mode over the chosen transports, netlab and every baseline; sum it all up.

    `progress(label)` is called after each load generator run. Failures of single runs
    are recorded in their rows; BenchError only when nothing can run at all.
    """
    raise_nofile()
    env = environment(settings)
    runs: list[Run] = []
    skipped: list[dict[str, str]] = []
    workdir = Path(tempfile.mkdtemp(prefix="nlb-", dir="/tmp"))
    max_connections = max(1024, 2 * settings.hold, 2 * max(settings.levels), 2 * settings.connections)
    try:
        for name in settings.transports:
            transport = _transport(name)
            if transport.kind not in _MODE_KINDS[settings.mode]:
                skipped.append({"transport": name, "reason": _NOT_APPLICABLE[settings.mode]})
                continue
            if settings.mode == "relay" and transport.encrypted:
                skipped.append({"transport": name, "reason": "a relay of TLS is two TLS sessions (it decrypts "
                                "and encrypts again): not measured"})
                continue
            levels: Sequence[int | None] = settings.levels if settings.mode == "concurrency" else (None,)
            template = COMPARE_SCHEMES[name]
            if transport.encrypted:
                template += certificate_options(workdir / "certificate")
            run_mode = _run_mode(settings.mode, transport)
            service = "discard" if run_mode in ("stream", "datagrams", "relay-stream") else "echo"
            with _relay_peer(settings, template, service, workdir / name) as to, \
                    _servers(settings, template, service, workdir / name, max_connections, to=to) as servers:
                contenders: list[str] = list(servers)
                host = None
                if settings.mode == "stream" and settings.iperf3 and name in ("tcp", "tcp6"):
                    if iperf3_path():
                        contenders.append("iperf3")
                        host = "::1" if name == "tcp6" else "127.0.0.1"
                    elif not any(s.get("transport") == "iperf3" for s in skipped):
                        skipped.append({"transport": "iperf3", "reason": "iperf3 is not installed "
                                        "(apt-get install iperf3): no iperf3 figure"})
                for level in levels:
                    for repeat in range(settings.repeats):
                        shift = repeat % len(contenders)
                        for who in contenders[shift:] + contenders[:shift]:
                            run = Run(run_mode, name, who, repeat, level)
                            try:
                                if who == "iperf3":
                                    assert host is not None
                                    run.result = run_iperf3(settings, host)
                                else:
                                    spec = _spec(settings, run_mode, _started(servers[who]), level)
                                    run.result = run_loadgen(spec, settings, timeout=_timeout(settings, level))
                            except BenchError as exc:
                                run.error = str(exc)
                            runs.append(run)
                            progress(f"{settings.mode} {name} {who}" + (f" x{level}" if level else ""))
            if settings.mode == "concurrency" and settings.hold and transport.connected:
                for who in settings.servers:  # each alone, on a fresh server: its memory is what we read
                    with _servers(settings, template, service, workdir / f"{name}-hold-{who}", max_connections,
                                  only=who) as servers:
                        run = Run("hold", name, who, 0, settings.hold)
                        try:
                            run.result = run_loadgen(_spec(settings, "hold", _started(servers[who]), None),
                                                     settings, timeout=120 + settings.hold / 100)
                        except BenchError as exc:
                            run.error = str(exc)
                        runs.append(run)
                        progress(f"hold {name} {who}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    env["loadavg_end"] = _read("/proc/loadavg")
    rows = summarize(settings, runs)
    return BenchResult(settings, env, runs, rows, skipped, evaluate_targets(rows, settings.pin))


def _run_mode(mode: str, transport: Transport) -> str:
    """What a run of `mode` on `transport` measures: ``relay`` is datagrams passed on a
    datagram kind, and a bulk transfer on a connection kind."""
    if mode != "relay":
        return mode
    return "relay-datagrams" if transport.kind == "datagram" else "relay-stream"


@contextlib.contextmanager
def _relay_peer(settings: BenchSettings, template: str, service: str, workdir: Path) -> Iterator[str | None]:
    """``relay`` mode: the peer every relay passes to (a baseline echo or discard server, not
    netlab's), its address; for the other modes, None."""
    if settings.mode != "relay":
        yield None
        return
    (workdir / "peer").mkdir(parents=True, exist_ok=True)
    started = spawn_server(RELAY_PEER, template, service, settings, workdir / "peer", max_connections=0)()
    try:
        yield started.address
    finally:
        started.stop()


def _timeout(settings: BenchSettings, level: int | None) -> float:
    return settings.warmup + settings.duration + 30 + (level or 0) / 50


@contextlib.contextmanager
def _servers(settings: BenchSettings, template: str, service: str, workdir: Path, max_connections: int,
             only: str | None = None, to: str | None = None) -> Iterator[dict[str, ServerProcess | BenchError]]:
    """Start the servers on `template` (an address, ``{dir}`` for a directory of its own);
    a server that cannot start is there as its BenchError."""
    workdir.mkdir(parents=True, exist_ok=True)
    started: dict[str, ServerProcess | BenchError] = {}
    waiting: dict[str, Callable[[], ServerProcess]] = {}
    try:
        for who in settings.servers:
            if only is None or who == only:
                try:
                    waiting[who] = spawn_server(who, template, service, settings, workdir,
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


def _started(server: ServerProcess | BenchError) -> ServerProcess:
    if isinstance(server, BenchError):
        raise server
    server.check()
    return server


# -- summing up ------------------------------------------------------------------------------


def decode(encoded: str | None) -> HdrHistogram | None:
    if not encoded:
        return None
    return HdrHistogram.decode(encoded.encode() if isinstance(encoded, str) else encoded)


def _merge(encoded: list[str | None]) -> HdrHistogram | None:
    merged: HdrHistogram | None = None
    for item in encoded:
        h = decode(item)
        if h is None:
            continue
        if merged is None:
            merged = HdrHistogram(1, 3_600_000_000_000, 3)
        merged.add(h)
    return merged


def _median_of(runs: list[Run], key: Callable[[dict[str, Any]], float | None]) -> float | None:
    values = [v for v in (key(r.result) for r in runs if not r.error) if v is not None]
    return statistics.median(values) if values else None


def _per_message(cpu_key: str) -> Callable[[dict[str, Any]], float | None]:
    def get(r: dict[str, Any]) -> float | None:
        cpu = r.get(cpu_key)
        return None if cpu is None or not r.get("count") else cpu / r["count"] * 1e6
    return get


#: (mode, transport, level, server): the runs of one row
_Key = tuple[str, str, int | None, str]


def summarize(settings: BenchSettings, runs: list[Run]) -> list[Row]:
    """One row per (mode, transport, server, level), with ratios on netlab's rows."""
    groups: dict[_Key, list[Run]] = {}
    for run in runs:
        groups.setdefault((run.mode, run.transport, run.level, run.server), []).append(run)
    rows: list[Row] = []
    for (mode, transport, level, server), group in groups.items():
        metric, unit, higher = _METRIC[mode]
        row = Row(mode, transport, server, level, metric, unit, higher)
        values = [v for v in (r.value for r in group) if v is not None]
        errors = [r.error for r in group if r.error]
        if errors and not values:
            row.error = errors[0]
        elif errors:
            row.note = f"{len(errors)} of {len(group)} runs failed: {errors[0]}"
        if values:
            row.values = values
            row.median, row.low, row.high = statistics.median(values), min(values), max(values)
        ok = [r for r in group if not r.error]
        row.count = sum(r.result.get("count", 0) for r in ok)
        histogram = _merge([r.result.get("histogram") for r in ok])
        if histogram is not None:
            row.histogram = histogram.encode().decode()
            row.details.update(latency_percentiles(histogram, per_us=1000.0))
            row.details["histogram_count"] = histogram.get_total_count()
        d = row.details
        elapsed = _median_of(group, lambda r: r.get("elapsed"))
        d["client_cpu_pct"] = _median_of(group, lambda r: 100 * r["client_cpu"] / r["elapsed"]
                                         if r.get("elapsed") and r.get("client_cpu") is not None else None)
        d["server_cpu_pct"] = _median_of(group, lambda r: 100 * r["server_cpu"] / r["elapsed"]
                                         if r.get("elapsed") and r.get("server_cpu") is not None else None)
        if mode in ("pingpong", "concurrency", "rate", "datagrams", "connect", "relay-datagrams"):
            d["server_cpu_us_per_msg"] = _median_of(group, _per_message("server_cpu"))
            d["client_cpu_us_per_msg"] = _median_of(group, _per_message("client_cpu"))
        if mode in ("pingpong", "concurrency", "rate", "relay-datagrams"):
            d["lost"] = sum(r.result.get("lost", 0) for r in ok)
            d["mismatched"] = sum(r.result.get("mismatched", 0) for r in ok)
            d["client"] = ok[0].result.get("client") if ok else None
        if mode in ("rate", "relay-datagrams"):
            d["sent"] = sum(r.result.get("sent", 0) for r in ok)
            d["answered"] = row.count
            d["loss_pct"] = 100 * d["lost"] / d["sent"] if d["sent"] else None
            d["achieved_rate"] = _median_of(group, lambda r: r["sent"] / r["elapsed"] if r.get("elapsed") else None)
            d["send_lag_p99_us"] = _median_of(group, lambda r: r.get("send_lag_p99_us"))
        if mode == "relay-datagrams":
            d["kernel_drops"] = sum(r.result.get("front_drops") or 0 for r in ok)
            d["rcvbuf_errors"] = sum(r.result.get("rcvbuf_errors") or 0 for r in ok)
            d["drops_counted"] = any(r.result.get("front_drops") is not None for r in ok)
        if mode in ("stream", "relay-stream"):
            d["gbit_s"] = row.median * 8 / 1000 if row.median is not None else None
            d["bytes"] = sum(r.result.get("bytes", 0) for r in ok)
        if mode == "datagrams":
            d["sent"] = sum(r.result.get("sent", 0) for r in ok)
            d["dropped"] = sum(r.result.get("dropped", 0) for r in ok)
            d["send_failed"] = sum(r.result.get("send_failed", 0) for r in ok)
            d["drop_pct"] = 100 * d["dropped"] / d["sent"] if d["sent"] else None
            d["sent_per_s"] = _median_of(group, lambda r: r["sent"] / r["sending_s"] if r.get("sending_s") else None)
            counters: dict[str, int] = {}
            for r in ok:
                for k, v in (r.result.get("udp_counters") or {}).items():
                    counters[k] = counters.get(k, 0) + v
            d["udp_counters"] = counters or None
        if mode == "connect":
            d["failures"] = sum(r.result.get("failures", 0) for r in ok)
        if mode == "hold" and ok:
            held = ok[0].result
            d.update({k: held.get(k) for k in ("wanted", "held", "answering", "stopped_by", "opened_s", "check_s",
                                             "server_rss_before", "server_rss_held", "rss_per_connection")})
        d["elapsed_s"] = elapsed
        rows.append(row)
    _ratios(rows, runs)
    order = {name: i for i, name in enumerate((*COMPARE_SCHEMES, "iperf3"))}
    servers = {name: i for i, name in enumerate(("netlab", *BASELINES, *RELAY_BASELINES, "before", "iperf3"))}
    rows.sort(key=lambda r: (r.mode != settings.mode, order.get(r.transport, 99), r.level or 0,
                             servers.get(r.server, 99)))
    return rows


def _ratios(rows: list[Row], runs: list[Run]) -> None:
    """On each netlab row: per baseline, the median (and spread) of per-repeat ratios, of
    the headline figure and of the server's CPU time per message."""
    by_key: dict[_Key, dict[int, float]] = {}
    cost: dict[_Key, dict[int, float]] = {}
    for run in runs:
        key = (run.mode, run.transport, run.level, run.server)
        value = run.value
        if value is not None:
            by_key.setdefault(key, {})[run.repeat] = value
        r = run.result
        if not run.error and r.get("server_cpu") and r.get("count") and run.mode not in ("hold", "stream",
                                                                                            "relay-stream"):
            cost.setdefault(key, {})[run.repeat] = r["server_cpu"] / r["count"]
    for row in rows:
        if row.server != "netlab":
            continue
        for table, target, higher in ((by_key, row.ratios, row.higher_is_better), (cost, row.cost_ratios, False)):
            mine = table.get((row.mode, row.transport, row.level, "netlab"), {})
            for other in ("trio", "asyncio", "threads", "iperf3", "before", *RELAY_BASELINES):
                theirs = table.get((row.mode, row.transport, row.level, other), {})
                pairs = [(mine[k], theirs[k]) for k in mine.keys() & theirs.keys()]
                ratios = [(a / b if higher else b / a) for a, b in pairs if a > 0 and b > 0]
                if ratios:
                    target[other] = {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
                                     "pairs": len(ratios)}


# -- targets ---------------------------------------------------------------------------------

TARGETS = {
    "trio_floor": "netlab's echo server within 5 % of the minimal trio server on ping-pong (ratio >= 0.95)",
    "iperf3": "stream on TCP reaches at least 25 % of iperf3's loopback figure",
    "unix_beats_tcp": "unix stream ping-pong beats TCP loopback ping-pong",
    "hold_10k": "10,000 concurrent TCP connections held by one netlab server, each answering",
    "relay_select": "netlab relay passes at least as many datagrams as the minimal select relay, with no "
                    "kernel drops (ratio >= 1.0)",
}


def evaluate_targets(rows: list[Row], pin: str = "same") -> list[dict[str, Any]]:
    """The issue's targets, judged on this run's figures (only those this run measured)."""
    out: list[dict[str, Any]] = []
    netlab = [r for r in rows if r.server == "netlab"]
    for r in netlab:
        if (r.mode == "pingpong" or (r.mode == "concurrency" and r.level == 1)) and "trio" in r.ratios:
            ratio, cost = r.ratios["trio"], r.cost_ratios.get("trio")
            out.append({"target": "trio_floor", "text": TARGETS["trio_floor"], "transport": r.transport,
                        "mode": r.mode, "value": ratio["median"], "spread": [ratio["min"], ratio["max"]],
                        "cost_ratio": cost["median"] if cost else None, "met": ratio["median"] >= 0.95})
        if r.mode == "stream" and r.transport == "tcp" and "iperf3" in r.ratios:
            ratio = r.ratios["iperf3"]
            out.append({"target": "iperf3", "text": TARGETS["iperf3"], "transport": "tcp", "mode": "stream",
                        "value": ratio["median"], "spread": [ratio["min"], ratio["max"]],
                        "met": ratio["median"] >= 0.25})
        if r.mode == "relay-datagrams" and "select" in r.ratios:
            ratio = r.ratios["select"]
            drops = r.details.get("kernel_drops", 0) if r.details.get("drops_counted") else 0
            out.append({"target": "relay_select", "text": TARGETS["relay_select"], "transport": r.transport,
                        "mode": "relay", "value": ratio["median"], "spread": [ratio["min"], ratio["max"]],
                        "cost_ratio": (r.cost_ratios.get("select") or {}).get("median"),
                        "met": ratio["median"] >= 1.0 and drops == 0 and r.details.get("lost", 0) == 0})
        if r.mode == "hold" and r.transport == "tcp":
            d = r.details
            out.append({"target": "hold_10k", "text": TARGETS["hold_10k"], "transport": "tcp", "mode": "concurrency",
                        "value": d.get("answering"), "held": d.get("held"), "wanted": d.get("wanted"),
                        "met": (d.get("answering") or 0) >= 10_000 and d.get("answering") == d.get("held")})
    for mode in ("pingpong", "concurrency"):
        found = {r.transport: r.median for r in netlab if r.mode == mode and r.level in (None, 1)
                 and r.median is not None}
        unix, tcp = found.get("unix"), found.get("tcp")
        if unix is not None and tcp is not None:
            out.append({"target": "unix_beats_tcp", "text": TARGETS["unix_beats_tcp"], "mode": mode,
                        "transport": "unix vs tcp", "value": unix / tcp,
                        "unix": unix, "tcp": tcp, "met": unix > tcp})
    for target in out:
        target["pin"] = pin
    return out


# -- output ----------------------------------------------------------------------------------


def report(result: BenchResult, error: str | None = None) -> dict[str, Any]:
    """The results in the shape of iperf3's ``-J``: start, intervals (every run), end, error."""
    return {
        "start": {"environment": result.environment, "settings": result.settings.as_dict(),
                  "servers": {name: BASELINE_TEXT[name] for name in (*result.settings.servers, "iperf3")}},
        "intervals": [run.as_dict() for run in result.runs],
        "end": {"results": [asdict(row) for row in result.rows], "skipped": result.skipped,
                "targets": result.targets},
        "error": error,
    }


def _fmt(value: float | None, digits: int | None = None) -> str:
    if value is None:
        return "-"
    if digits is None:
        digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
    return f"{value:,.{digits}f}"


def _spread(row: Row) -> str:
    if row.median is None:
        return f"failed: {row.error}" if row.error else "-"
    if len(row.values) < 2:
        return _fmt(row.median)
    return f"{_fmt(row.median)} ({_fmt(row.low)}–{_fmt(row.high)})"


def _ratio_text(ratio: dict[str, float] | None) -> str:
    if not ratio:
        return "-"
    if ratio.get("pairs", 1) < 2:
        return f"{ratio['median']:.2f}"
    return f"{ratio['median']:.2f} ({ratio['min']:.2f}–{ratio['max']:.2f})"


def tables(result: BenchResult) -> list[ResultTable]:
    """The figures as tables (for the terminal and for RESULTS.md): the headline figure per
    transport with netlab's ratio to each baseline, then the details per server."""
    settings = result.settings
    out: list[ResultTable] = []
    servers = list(settings.servers)
    has_iperf3 = any(r.server == "iperf3" for r in result.rows)
    for mode in dict.fromkeys(r.mode for r in result.rows):
        mode_rows = [r for r in result.rows if r.mode == mode]
        metric, unit, higher = _METRIC[mode]
        who = servers + (["iperf3"] if mode == "stream" and has_iperf3 else [])
        others = [w for w in who if w != "netlab"]
        keys = list(dict.fromkeys((r.transport, r.level) for r in mode_rows))
        columns = ["transport"] + (["conns"] if mode in ("concurrency",) else []) + \
            [f"{w} {unit}" for w in who] + [f"netlab/{w}" for w in others]
        rows = []
        for transport, level in keys:
            cells = [transport] + ([str(level)] if mode == "concurrency" else [])
            by_server = {r.server: r for r in mode_rows if r.transport == transport and r.level == level}
            if mode == "hold":
                cells += [_hold_cell(by_server.get(w)) for w in who]
            else:
                cells += [_spread(by_server[w]) if w in by_server else "-" for w in who]
            mine = by_server.get("netlab")
            cells += [_ratio_text(mine.ratios.get(w)) if mine else "-" for w in others]
            rows.append(cells)
        title = {"hold": f"hold: {settings.hold:,} idle connections per server, then each answers an echo"}.get(
            mode, f"{mode}: {metric}, median of {settings.repeats} (min–max)")
        if mode == "hold":
            columns = ["transport"] + [f"{w} held/answering (RSS per conn)" for w in who] + \
                [f"netlab/{w}" for w in others]
        out.append(ResultTable(title + (" — ratio above 1: netlab does better" if others else ""), columns, rows))
        out.append(_details(mode, mode_rows))
    if result.skipped:
        out.append(ResultTable("not run", ["transport", "why"], [[s["transport"], s["reason"]]
                                                                   for s in result.skipped]))
    if result.targets:
        out.append(ResultTable("targets", ["target", "where", "measured", "met"], [
            [t["text"], f"{t['mode']} {t['transport']}, pin {t['pin']}", target_text(t), "yes" if t["met"] else "NO"]
            for t in result.targets]))
    return out


def target_text(t: dict[str, Any]) -> str:
    if t["target"] == "unix_beats_tcp":
        return f"unix {t['unix']:,.0f} vs tcp {t['tcp']:,.0f} rt/s (x{t['value']:.2f})"
    if t["target"] == "hold_10k":
        return f"{t['held']:,} held, {t['value']:,} answering of {t['wanted']:,}"
    text = f"{t['value']:.2f} ({t['spread'][0]:.2f}–{t['spread'][1]:.2f})"
    if t.get("cost_ratio") is not None:
        text += f"; server CPU per message: {t['cost_ratio']:.2f}"
    return text


def _hold_cell(row: Row | None) -> str:
    if row is None:
        return "-"
    if row.error:
        return f"failed: {row.error}"
    d = row.details
    per = d.get("rss_per_connection")
    text = f"{d.get('held', 0):,}/{d.get('answering', 0):,}"
    if per is not None:
        text += f" ({per / 1024:.1f} KiB)"
    if d.get("stopped_by"):
        text += f"; stopped: {d['stopped_by']}"
    return text


def _details(mode: str, rows: list[Row]) -> ResultTable:
    if mode in ("pingpong", "concurrency", "rate", "connect"):
        columns = ["transport"] + (["conns"] if mode == "concurrency" else []) + [
            "server", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs"]
        columns += {"rate": ["achieved/s", "lost", "send lag p99 µs"], "connect": ["failures"]}.get(mode, ["lost"])
        columns += ["server CPU µs/msg", "client CPU %"]
        body = []
        for r in rows:
            d = r.details
            cells = [r.transport] + ([str(r.level)] if mode == "concurrency" else []) + [r.server] + [
                _fmt(d.get(k), 1) for k in ("p50_us", "p90_us", "p99_us", "p999_us", "max_us")]
            if mode == "rate":
                loss = d.get("loss_pct")
                cells += [_fmt(d.get("achieved_rate")),
                          f"{d.get('lost', 0)} ({loss:.2f}%)" if loss else str(d.get("lost", 0)),
                          _fmt(d.get("send_lag_p99_us"), 1)]
            elif mode == "connect":
                cells += [str(d.get("failures", 0))]
            else:
                cells += [str(d.get("lost", 0))]
            cells += [_fmt(d.get("server_cpu_us_per_msg"), 1), _fmt(d.get("client_cpu_pct"))]
            body.append(cells)
        return ResultTable(f"{mode}: latency (all repeats) and CPU (medians)", columns, body)
    if mode == "relay-datagrams":
        body = []
        for r in rows:
            d = r.details
            drops = f"{d.get('kernel_drops', 0):,}" if d.get("drops_counted") else "-"
            body.append([r.transport, r.server, _fmt(d.get("achieved_rate")), f"{d.get('sent', 0):,}",
                         f"{r.count:,}", str(d.get("lost", 0)), drops, f"{d.get('rcvbuf_errors', 0):,}",
                         _fmt(d.get("p99_us"), 1), _fmt(d.get("server_cpu_us_per_msg"), 1)])
        return ResultTable("relay, datagrams: where they went (kernel drops: the relay's listening socket, "
                           "/proc/net/udp; RcvbufErrors: machine-wide, every socket on the way)",
                           ["transport", "relay", "offered/s", "sent", "came back", "lost", "kernel drops",
                            "RcvbufErrors", "p99 µs", "relay CPU µs/dgram"], body)
    if mode == "relay-stream":
        return ResultTable("relay, streams: details", ["transport", "relay", "Gb/s", "relay CPU %", "client CPU %"], [
            [r.transport, r.server, _fmt(r.details.get("gbit_s"), 2), _fmt(r.details.get("server_cpu_pct")),
             _fmt(r.details.get("client_cpu_pct"))] for r in rows])
    if mode == "stream":
        return ResultTable("stream: details", ["transport", "server", "Gb/s", "server CPU %", "client CPU %"], [
            [r.transport, r.server, _fmt(r.details.get("gbit_s"), 2), _fmt(r.details.get("server_cpu_pct")),
             _fmt(r.details.get("client_cpu_pct"))] for r in rows])
    if mode == "datagrams":
        body = []
        for r in rows:
            d = r.details
            counters = d.get("udp_counters") or {}
            body.append([r.transport, r.server, _fmt(d.get("sent_per_s")), f"{d.get('sent', 0):,}",
                         f"{d.get('dropped', 0):,}" + (f" ({d['drop_pct']:.1f}%)" if d.get("drop_pct") else ""),
                         f"{counters['RcvbufErrors']:,}" if "RcvbufErrors" in counters else "-",
                         f"{d.get('send_failed', 0):,}", _fmt(d.get("server_cpu_us_per_msg"), 1)])
        return ResultTable("datagrams: where they went (dropped = the server socket's drop counter, as "
                           "SO_RXQ_OVFL reports it; RcvbufErrors: machine-wide)",
                           ["transport", "server", "sent/s", "sent", "dropped at server", "RcvbufErrors",
                            "send failed", "server CPU µs/dgram"], body)
    # hold
    return ResultTable("hold: details", ["transport", "server", "held", "answering", "opened in s",
                                         "all answered in s", "server RSS before → held", "RSS per conn",
                                         "stopped by"], [
        [r.transport, r.server, f"{r.details.get('held') or 0:,}", f"{r.details.get('answering') or 0:,}",
         _fmt(r.details.get("opened_s"), 2), _fmt(r.details.get("check_s"), 2),
         _rss(r.details.get("server_rss_before"), r.details.get("server_rss_held")),
         f"{r.details['rss_per_connection'] / 1024:.1f} KiB" if r.details.get("rss_per_connection") else "-",
         r.error or r.details.get("stopped_by") or "-"] for r in rows])


def _rss(before: int | None, after: int | None) -> str:
    if before is None or after is None:
        return "-"
    return f"{before / 2**20:.1f} → {after / 2**20:.1f} MiB"


def plot(result: BenchResult, path: str) -> None:
    """Latency distributions, throughput by transport, and ping-pong against concurrency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..experiments.measure import cdf

    rows = [r for r in result.rows if r.mode == result.settings.mode]
    servers = list(dict.fromkeys(r.server for r in rows))
    transports = list(dict.fromkeys(r.transport for r in rows))
    with_latency = [t for t in transports if any(r.histogram for r in rows if r.transport == t)]
    panels = 1 + bool(with_latency) * len(with_latency) + (result.settings.mode == "concurrency")
    cols = min(3, panels)
    nrows = math.ceil(panels / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 4.2 * nrows), squeeze=False)
    flat = list(axes.flat)
    colours = {name: f"C{i}" for i, name in enumerate(("netlab", *BASELINES, "iperf3", "before"))}
    metric, unit, _ = _METRIC[result.settings.mode]
    ax = flat.pop(0)
    level = min(result.settings.levels) if result.settings.mode == "concurrency" else None
    width = 0.8 / max(1, len(servers))
    for i, server in enumerate(servers):
        xs: list[float] = []
        heights: list[float] = []
        errs: list[list[float]] = [[], []]
        for j, transport in enumerate(transports):
            row = next((r for r in rows if r.transport == transport and r.server == server and r.level == level), None)
            if row is None or row.median is None:
                continue
            xs.append(j + (i - (len(servers) - 1) / 2) * width)
            heights.append(row.median)
            errs[0].append(row.median - (row.low or row.median))
            errs[1].append((row.high or row.median) - row.median)
        ax.bar(xs, heights, width, yerr=errs, label=server, color=colours.get(server))
    ax.set_xticks(range(len(transports)), transports, rotation=30, ha="right")
    ax.set_ylabel(unit)
    ax.set_title(f"{result.settings.mode}: {metric}" + (f" at {level} conn" if level else ""))
    ax.legend(fontsize="small")
    ax.grid(True, axis="y", alpha=0.3)
    if result.settings.mode == "concurrency":
        ax = flat.pop(0)
        shown = [t for t in ("tcp", "unix") if t in transports] or transports[:1]
        for transport, style in zip(shown, ("-", "--")):
            for server in servers:
                pts = sorted((r.level, r.median) for r in rows if r.transport == transport and r.server == server
                             and r.median is not None and r.level is not None)
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=colours.get(server),
                            linestyle=style, label=f"{server} {transport}", alpha=0.85)
        ax.set_xscale("log")
        ax.set_xlabel("concurrent connections (the other transports: in the tables)")
        ax.set_ylabel("round trips/s")
        ax.set_title("ping-pong against concurrency")
        ax.legend(fontsize="small")
        ax.grid(True, which="both", alpha=0.3)
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    cdf_level = max(result.settings.levels) if result.settings.mode == "concurrency" else None
    for transport in with_latency:
        ax = flat.pop(0)
        for server in servers:
            row = next((r for r in rows if r.transport == transport and r.server == server and r.level == cdf_level
                        and r.histogram), None)
            h = decode(row.histogram) if row else None
            if h is None:
                continue
            xs, ys = cdf(h, per_us=1000.0)
            ax.plot(xs, ys, label=server, color=colours.get(server))
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("latency µs (log)")
        ax.set_ylabel("fraction of messages")
        ax.set_title(f"{transport}: latency CDF" + (f" at {cdf_level} conns" if cdf_level else ""))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    for ax in flat:
        ax.axis("off")
    env = result.environment
    fig.suptitle(f"netlab bench {result.settings.mode} — pin={result.settings.pin}, {env.get('cores')} cores, "
                 f"Linux {env.get('kernel')}, Python {env.get('python')}, trio {env.get('trio')}", fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


__all__ = ["BASELINES", "MODES", "PINS", "BenchError", "BenchResult", "BenchSettings", "Row", "Run", "environment",
           "evaluate_targets", "plot", "report", "run_bench", "summarize", "tables", "target_text"]
