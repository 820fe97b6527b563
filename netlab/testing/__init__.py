"""pytest fixtures for testing with netlab, registered as a pytest plugin (``pytest11``).

Installed with netlab, they are there in every pytest-trio test, no import needed::

    from netlab import open_client

    async def test_sum_over_udp(netlab_server):
        server = await netlab_server("sum", "udp:127.0.0.1:0")
        async with open_client(server.address, "sum") as client:
            assert await client.request(b"2 3") == b"5"

* ``netlab_server(service="echo", address="tcp:127.0.0.1:0", limits=None)`` starts a netlab
  server in the test's nursery and returns it (``.address`` is the bound address, ``.stats``
  what it saw); `limits` is a `netlab.Limits` (default: the server's defaults). In a
  unix address, ``{dir}`` is a short private directory made for the test.
* ``netlab_relay(to, listen=None, seed=1, **impairments)`` puts an impairing relay in front
  of ``to`` (an address or a server) and returns it; `listen` defaults to a fresh address of
  the same scheme. Impairments are `netlab.impair.decisions.Impairments` fields (``loss=0.1``,
  ``delay=0.005``, ...) for both directions, or ``forward=``/``backward=`` Impairments.
* ``netlab_dir`` is that short directory (AF_UNIX paths may have at most 107 bytes, which a
  deep pytest tmp_path can exceed).

A client's ``request()`` (`netlab.runner.Client.request`) waits at most 10 s for its reply
(``timeout=``; ``timeout=None`` for ever) and then raises `netlab.errors.TimeoutError`, so a
test through a relay that loses the request fails rather than hangs.

Everything is torn down when the test ends: the nursery is cancelled, socket files go.

``check_message_channel(maker)`` checks the `MessageChannel` contract on the pairs `maker`
opens (whole messages, the size limit, end of stream, closing), as trio's
``check_half_closeable_stream`` checks a byte stream: the conformance suite runs it on every
message transport, and a new one passes it or learns where it does not.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from ..impair.decisions import Impairments
from ..impair.relay import Relay, run_relay
from ..logs import forget_repeats
from ..server import Limits, Server, serve
from ..services import Service
from ..transports import COMPARE_SCHEMES, Address, parse_address
from ._check_channels import ChannelMaker, check_message_channel


@pytest.fixture(autouse=True)
def _netlab_logs_afresh() -> None:
    """netlab logs a repeated warning once per 10 s (`netlab.logs`): each test starts
    afresh, so that its own first warning is logged whatever the tests before it logged."""
    forget_repeats()


@pytest.fixture
def netlab_dir() -> Iterator[Path]:
    """A short private directory under /tmp, removed after the test: AF_UNIX paths may have
    at most 107 bytes, which a deep pytest tmp_path can exceed."""
    path = tempfile.mkdtemp(prefix="nl-", dir="/tmp")
    try:
        yield Path(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _fresh(template: str, directory: Path) -> str:
    return template.format(dir=tempfile.mkdtemp(prefix="", dir=directory))


@pytest.fixture
def netlab_server(nursery: trio.Nursery, netlab_dir: Path) -> Callable[..., Awaitable[Server]]:
    async def start(service: Service | str = "echo", address: Address | str = "tcp:127.0.0.1:0", *,
                    limits: Limits | None = None) -> Server:
        if isinstance(address, str) and "{dir}" in address:
            address = _fresh(address, netlab_dir)
        server: Server = await nursery.start(partial(serve, service, address, limits=limits or Limits()))
        return server

    return start


@pytest.fixture
def netlab_relay(nursery: trio.Nursery, netlab_dir: Path) -> Callable[..., Awaitable[Relay]]:
    async def start(to: Server | Address | str, listen: Address | str | None = None, *, seed: int = 1,
                    forward: Impairments | None = None, backward: Impairments | None = None,
                    **impairments: Any) -> Relay:
        target = to.address if isinstance(to, Server) else parse_address(to)
        if listen is None:
            template = COMPARE_SCHEMES.get(target.scheme, f"{target.scheme}:127.0.0.1:0")
            if target.is_unix and target.scheme not in COMPARE_SCHEMES:
                template = f"{target.scheme}:{{dir}}/relay.sock"
            listen = _fresh(template, netlab_dir) if "{dir}" in template else template
        elif isinstance(listen, str) and "{dir}" in listen:
            listen = _fresh(listen, netlab_dir)
        settings = Impairments(**impairments)
        fwd = forward if forward is not None else settings
        back = backward if backward is not None else (forward if forward is not None else settings)
        relay: Relay = await nursery.start(partial(run_relay, listen, target, forward=fwd, backward=back, seed=seed))
        return relay

    return start


__all__ = ["ChannelMaker", "check_message_channel", "netlab_dir", "netlab_relay", "netlab_server"]
