"""Adding a transport is one module and one registry line: this module is the module.

`TcpKeepaliveTransport` is a transport netlab does not have, ``tcpka:``: TCP whose every
connection has SO_KEEPALIVE on, server side and client side. It is defined here, outside
netlab, and `register` is its one registry line. With nothing else changed:

* the conformance suite and check's own-profile test run on it (in a child pytest that
  loads this module as a plugin: ``-p test_one_module_transport``, whose one hook is that
  line), and pass;
* ``compare`` runs it by default and sends its workload through it;
* ``addr explain`` prints its own plan (with its SO_KEEPALIVE calls), read from it;
* ``check`` checks a server over it; ``netlab transports`` lists it; ``resolve`` and
  ``/proc/net`` still call its sockets tcp4/tcp6, which is what the kernel sees.

If any of these kept a list of its own, the new scheme would be missing from it and a
test here would fail.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path

import pytest
import trio

from netlab.check.cases import CheckSettings
from netlab.check.run import check_server
from netlab.experiments.compare import CompareSettings, run_compare
from netlab.explore.explain import explain
from netlab.runner import Server
from netlab.transports import COMPARE_SCHEMES, TRANSPORTS, Address, Listeners, Plan, Transport, kernel_scheme, open_pair
from netlab.transports.base import SockInfo
from netlab.transports.tcp import TcpTransport

TESTS = Path(__file__).parent
KEEPALIVE = "setsockopt(SOL_SOCKET, SO_KEEPALIVE, 1)"


class TcpKeepaliveTransport(TcpTransport):
    """``tcpka:``: TCP (IPv4 or IPv6, by host) with SO_KEEPALIVE on every connection. The
    listening sockets get it, and Linux hands it on to each connection they accept."""

    def __init__(self) -> None:
        super().__init__("tcpka", None, compare="tcpka:127.0.0.1:0")
        self.summary = "TCP with keepalive: reliable, ordered byte stream whose idle peers are probed"
        self.socat = None

    async def listen(self, address: Address) -> Listeners[trio.SocketStream]:
        listeners = await super().listen(address)
        for listener in listeners.listeners:
            assert isinstance(listener, trio.SocketListener)
            listener.socket.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        return listeners

    async def connect(self, address: Address) -> trio.SocketStream:
        stream = await super().connect(address)
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        return stream

    def plan(self, address: Address, resolved: Sequence[SockInfo] | None) -> Plan:
        plan = super().plan(address, resolved)
        server = [call for listen in plan.server
                  for call in ([listen, KEEPALIVE] if listen.startswith("listen(") else [listen])]
        client = [call for connect in plan.client
                  for call in ([connect, f"  {KEEPALIVE}"] if connect.strip() == "connect(sockaddr)" else [connect])]
        return Plan(server, client)


def register(registry: dict[str, Transport]) -> None:
    registry["tcpka"] = TcpKeepaliveTransport()  # the one line


def pytest_load_initial_conftests() -> None:
    """As a plugin (``-p test_one_module_transport``): register before conftest.py reads
    the registry. (A hook in a test module collected as usual is never called.)"""
    register(TRANSPORTS)


@pytest.fixture
def tcpka() -> Iterator[Transport]:
    registry = dict(TRANSPORTS)
    register(TRANSPORTS)
    try:
        yield TRANSPORTS["tcpka"]
    finally:
        TRANSPORTS.clear()
        TRANSPORTS.update(registry)


@pytest.mark.process
def test_the_suites_run_on_it_unchanged() -> None:
    """The conformance suite and check's own-profile test, on tcpka alone, in a child pytest."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "test_one_module_transport",
         "tests/test_conformance.py", "tests/test_check.py::test_netlab_passes_its_own_profile_everywhere",
         "-k", "tcpka"],
        cwd=TESTS.parent, env=env, capture_output=True, text=True, timeout=600,
    )
    assert child.returncode == 0, child.stdout[-3000:] + child.stderr[-3000:]
    summary = child.stdout.strip().splitlines()[-1]
    passed = int(summary.split(" passed")[0].split()[-1])
    assert passed >= 20 and "failed" not in summary and "error" not in summary, summary


async def test_its_sockets_keep_alive(tcpka: Transport) -> None:
    async with open_pair("tcpka:127.0.0.1:0") as pair:
        for end in (pair.client, pair.server):
            assert isinstance(end, trio.SocketStream)
            assert end.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1


async def test_explain_prints_its_own_plan(tcpka: Transport) -> None:
    told = await explain("tcpka:127.0.0.1:0")
    assert told.reading["scheme"].note == tcpka.summary
    assert told.server_calls[told.server_calls.index("listen(4096)") + 1] == KEEPALIVE
    assert f"  {KEEPALIVE}" in told.client_calls
    assert "backlog" in told.options and told.probes and told.probes[0].error is None


async def test_compare_runs_it_by_default(tcpka: Transport) -> None:
    assert "tcpka" in COMPARE_SCHEMES and "tcpka" in CompareSettings().transports
    results = await run_compare(CompareSettings(transports=("tcpka",), messages=50))
    assert [(r.transport, r.service) for r in results] == [("tcpka", "echo"), ("tcpka", "sum")]
    assert all(r.error is None and r.verified == 50 for r in results), results


async def test_check_checks_a_server_over_it(tcpka: Transport, netlab_server: Callable[..., Awaitable[Server]]) -> None:
    server: Server = await netlab_server("echo", "tcp:127.0.0.1:0")
    report = await check_server(f"tcpka:127.0.0.1:{server.address.port}",
                                settings=CheckSettings(service="echo", profile="netlab", timeout=3.0))
    assert report.failed == [], [c for c in report.cases if c.outcome == "fail"]
    assert report.summary["pass"] >= 7


def test_the_cli_lists_it_and_the_kernel_names_stay(tcpka: Transport) -> None:
    from helpers import invoke

    listed = json.loads(invoke(["transports", "--json"]).stdout)
    assert "tcpka" in [t["scheme"] for t in listed]
    # a tcpka socket is a TCP socket: getaddrinfo rows and /proc/net name it tcp4/tcp6
    assert kernel_scheme(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) == "tcp4"
    assert kernel_scheme(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP) == "tcp6"
