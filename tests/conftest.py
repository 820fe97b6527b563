"""Fixtures shared by the whole suite.

This is the ONE place that parametrizes over transports. Every test that asks for
`transport_name` (directly, or through `make_address` / `start_server`) runs once per
socket variant in `netlab.transports.COMPARE_SCHEMES` (the registry's transports that declare a
`compare_address`); a new transport joins the whole suite by its one registry line.

A test narrows the set with a marker instead of a second parameter list::

    @pytest.mark.transports(kind="stream")          # tcp, tcp6, tls, unix
    @pytest.mark.transports(kind="datagram")        # udp, udp6, unix-dgram
    @pytest.mark.transports(kind="seqpacket")       # unix-seq
    @pytest.mark.transports(boundaries=True)        # every message transport: datagrams and unix-seq
    @pytest.mark.transports(target="unix")          # unix, unix-dgram, unix-seq
    @pytest.mark.transports(encrypted=False)        # every transport a plain socket client can talk to
    @pytest.mark.transports(kind="datagram", target="inet")
    @pytest.mark.transports(kind=("stream", "seqpacket"))  # every connection transport

Servers run in pytest-trio's `nursery` fixture, which is cancelled when the test ends.
So do relays (`netlab.experiments.relay`): `start_relay` puts one in front of any server,
listening on a fresh address of the transport under test, and `relay` is a transparent
one in front of `echo_server`::

    async def test_something(relay: Relay, echo_server: Server) -> None:
        async with open_client(relay.address, "echo") as client: ...

Tests that start a process (a ``netlab`` child, a student's program, ``unshare``, a
``pytester`` run) carry ``@pytest.mark.process`` (or ``pytestmark`` for a whole module):
``make test-quick`` leaves them out (``-m "not process"``), ``make test`` runs them all. An
unmarked test that starts one fails, saying so (`_processes_only_where_marked`), so the
quick run stays what it claims to be.

Hypothesis runs under a profile chosen with the ``HYPOTHESIS_PROFILE`` environment
variable: ``ci`` (the default: a bounded number of examples, so the suite stays fast),
``quick`` (fewer: ``make test-quick``), ``dev`` (more), ``soak`` (many more, for a long
run). Property tests take their example count from the profile, never from a fixed number
of their own, except where a test asks for at least some number
(``max(1000, settings.default.max_examples)``).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import shutil
import signal
import subprocess
import _posixsubprocess
import sys
import tempfile
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
import trio
from hypothesis import HealthCheck, settings

from netlab.experiments.impair import Impairments
from netlab.experiments.relay import Relay, run_relay
from netlab.runner import Limits, Server
from netlab.services import Service
from netlab.transports import COMPARE_SCHEMES, Address, Transport, get_transport, parse_address

from heap import Heap
from helpers import LogWatch, watching

settings.register_profile("quick", max_examples=50, deadline=None)
settings.register_profile("ci", max_examples=300, deadline=None)
settings.register_profile("dev", max_examples=2_000, deadline=None)
settings.register_profile("soak", max_examples=50_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
HYPOTHESIS_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(HYPOTHESIS_PROFILE)


def pytest_report_header(config: pytest.Config) -> str:
    return f"hypothesis profile: {HYPOTHESIS_PROFILE} (max_examples={settings.default.max_examples})"


#: every socket variant the conformance suite covers, in registry order
TRANSPORT_NAMES: list[str] = list(COMPARE_SCHEMES)


def transport_of(name: str) -> Transport:
    """The transport behind a COMPARE_SCHEMES entry."""
    return get_transport(name)


def pytest_configure(config: pytest.Config) -> None:
    if os.geteuid() == 0 and config.option.basetemp is None:
        # as root, netlab check runs programs as other users, which must reach the tests'
        # files: pytest's own /tmp/pytest-of-root is made 0700 again by every pytest that
        # starts on the machine, so the tests' temporary directories live elsewhere
        # (`_temporary_directories_open_to_programs`), removed at the end
        config.option.basetemp = tempfile.mkdtemp(prefix="netlab-pytest-")
        config._netlab_basetemp = config.option.basetemp  # type: ignore[attr-defined]  # ours, for pytest_unconfigure
    config.addinivalue_line(
        "markers",
        "transports(kind=None, target=None, boundaries=None): run only on the transports of that "
        "kind ('stream'/'datagram'/'seqpacket', or a tuple of them), target ('inet'/'unix'), and/or "
        "that keep message boundaries",
    )


class UnmarkedProcessError(BaseException):
    """A test not marked ``process`` started one. A BaseException, so that no handler in the
    code under test takes it for an ordinary failure to start a program."""


#: what an unmarked test tried to start, for its report
_STARTED = pytest.StashKey[list[str]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[object]:
    """While a test not marked ``process`` runs (its fixtures too, whatever their scope),
    starting a process (subprocess, fork, posix_spawn) raises `UnmarkedProcessError`:
    ``make test-quick`` runs exactly the unmarked tests, and they start none."""
    if item.get_closest_marker("process") is not None:
        return (yield)
    started = item.stash[_STARTED] = []

    def refuse(what: str) -> Callable[..., object]:
        def refused(*args: object, **kwargs: object) -> object:
            started.append(what)
            raise UnmarkedProcessError(
                f"{item.nodeid} starts a process ({what}) but is not marked @pytest.mark.process: "
                f"mark it, so that `make test-quick` leaves it out")
        return refused

    patch = pytest.MonkeyPatch()
    patch.setattr(subprocess.Popen, "_execute_child", refuse("subprocess"))
    patch.setattr(_posixsubprocess, "fork_exec", refuse("fork_exec"))
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            patch.setattr(os, name, refuse(f"os.{name}"))
    try:
        return (yield)
    finally:
        patch.undo()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """A test that tried to start a process fails, even where the code under test caught the error."""
    report: pytest.TestReport = yield
    started = item.stash.get(_STARTED, None)
    if started and report.passed and report.when == "call":
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} tried to start a process ({', '.join(started)}) but is not marked "
                           f"@pytest.mark.process: mark it, so that `make test-quick` leaves it out")
    return report


def pytest_unconfigure(config: pytest.Config) -> None:
    made = getattr(config, "_netlab_basetemp", None)
    if made is not None:
        shutil.rmtree(made, ignore_errors=True)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "transport_name" not in metafunc.fixturenames:
        return
    names = TRANSPORT_NAMES
    marker = metafunc.definition.get_closest_marker("transports")
    if marker is not None:
        kind = marker.kwargs.get("kind")
        target = marker.kwargs.get("target")
        boundaries = marker.kwargs.get("boundaries")
        encrypted = marker.kwargs.get("encrypted")  # False: the test talks plain sockets to the server
        kinds = (kind,) if isinstance(kind, str) else kind
        names = [
            n for n in names
            if (kinds is None or transport_of(n).kind in kinds)
            and (target is None or transport_of(n).target == target)
            and (boundaries is None or transport_of(n).boundaries == boundaries)
            and (encrypted is None or transport_of(n).encrypted == encrypted)
        ]
        assert names, f"no transport matches {marker}"
    metafunc.parametrize("transport_name", names)


@pytest.fixture(scope="session", autouse=True)
def _temporary_directories_open_to_programs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """When the tests run as root, every temporary directory pytest makes (`tmp_path`, and
    `tmp_path_factory.mktemp`) is open to every user: netlab check runs a program as another
    user then (`netlab.check.sandbox`), and the programs the tests write there must be
    readable, and the files they write writable, by it. (pytest makes them 0700; each becomes
    0777, each directory above it passable.)"""
    if os.geteuid() != 0:
        yield
        return
    original = tmp_path_factory.mktemp

    def mktemp(basename: str, numbered: bool = True) -> Path:
        path = original(basename, numbered)
        path.chmod(0o777)
        for parent in path.parents:
            if parent == Path(tempfile.gettempdir()) or parent == parent.parent:
                break
            parent.chmod(parent.stat().st_mode | 0o111)
        return path

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tmp_path_factory, "mktemp", mktemp)
        yield


@pytest.fixture
def transport(transport_name: str) -> Transport:
    return transport_of(transport_name)


@pytest.fixture
def make_address(transport_name: str, netlab_dir: Path) -> Callable[[], Address]:
    """A function returning a fresh address on the transport under test each call:
    port 0 on loopback for inet, a new socket path under `netlab_dir` for unix."""
    counter = itertools.count()
    template = COMPARE_SCHEMES[transport_name]

    def make() -> Address:
        directory = netlab_dir / str(next(counter))
        directory.mkdir()
        return parse_address(template.format(dir=directory))

    return make


StartServer = Callable[..., Awaitable[Server]]


@pytest.fixture
async def start_server(netlab_server: StartServer, make_address: Callable[[], Address]) -> StartServer:
    """``server = await start_server("sum")``: serve a service on a fresh address of the
    transport under test, in the test's nursery. ``server.address`` is the bound address;
    ``limits=Limits(...)`` overrides the server's limits.
    (Built on the ``netlab_server`` fixture that netlab's pytest plugin gives every user.)"""

    async def start(service: Service | str = "echo", address: Address | str | None = None, *,
                    limits: Limits | None = None) -> Server:
        return await netlab_server(service, address if address is not None else make_address(), limits=limits)

    return start


@pytest.fixture
async def echo_server(start_server: StartServer) -> Server:
    return await start_server("echo")


@pytest.fixture
async def sum_server(start_server: StartServer) -> Server:
    return await start_server("sum")


@pytest.fixture
def server_log() -> Iterator[LogWatch]:
    """Every record the servers log (``netlab.server``, debug level up), to wait on:
    ``await server_log.wait_for("began a request")``."""
    with watching("netlab.server") as watch:
        yield watch


@pytest.fixture
def heap() -> Iterator[Heap]:
    """Measures of the netlab-attributed Python heap (`heap.Heap`); tracing stops afterwards."""
    try:
        yield Heap()
    finally:
        tracemalloc.stop()
        gc.unfreeze()


StartRelay = Callable[..., Awaitable[Relay]]


@pytest.fixture
async def start_relay(nursery: trio.Nursery, make_address: Callable[[], Address]) -> StartRelay:
    """``relay = await start_relay(server.address, forward=Impairments(loss=0.1), seed=1)``:
    a relay in front of `to` (a server's address, or any address of the same kind), in the
    test's nursery. It listens on a fresh address of the transport under test unless given
    `listen`; `backward` defaults to `forward`, as in `run_relay`. ``relay.address`` is where
    clients go, ``relay.stats`` what it did."""

    async def start(
        to: Address | str,
        *,
        forward: Impairments = Impairments(),
        backward: Impairments | None = None,
        seed: int = 1,
        listen: Address | str | None = None,
    ) -> Relay:
        where = listen if listen is not None else make_address()
        return await nursery.start(partial(run_relay, where, to, forward=forward, backward=backward, seed=seed))

    return start


@pytest.fixture
async def relay(start_relay: StartRelay, echo_server: Server) -> Relay:
    """A relay with no impairment in front of `echo_server`, on the transport under test."""
    return await start_relay(echo_server.address)


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
