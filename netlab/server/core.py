"""`serve` a service on a transport, and the `Server` it hands to ``nursery.start``.

What the transport declares decides how the server works: a connected kind listens with
`Listeners` that accept connections, each admitted (`Admission`) and handed to the handler
of its contract (a `ByteStream` to `StreamHandler`, a `MessageChannel` to
`MessageHandler`); a datagram kind listens with one `DatagramEndpoint` that answers every
peer (`serve_datagrams`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import socket
from collections.abc import Awaitable, Callable

import trio

from ..errors import AddressError, ServiceOptionError
from ..logs import summarise_accept_errors
from ..services import Service, get_service
from ..services.framing import Framing
from ..transports import (
    Address, Connection, DatagramEndpoint, Listeners, Listening, MessageChannel, Transport, get_transport,
    listen_connections, listen_datagrams, parse_address,
)
from . import messages, streams
from .admission import Admission
from .datagrams import serve_datagrams
from .limits import Limits, ServerStats


@dataclass
class Server:
    """What `serve` hands to ``nursery.start``: where it listens, and what it has seen.

    `drain` stops accepting and gives requests in flight ``limits.grace`` seconds; cancelling
    the task that runs `serve` stops everything at once. Either way listeners close and
    socket files are removed.
    """

    service: Service
    transport: Transport
    requested: Address
    bound: list[Address]
    limits: Limits = field(default_factory=Limits)
    stats: ServerStats = field(default_factory=ServerStats)
    _stop_accepting: trio.CancelScope = field(default_factory=trio.CancelScope, repr=False)
    _everything: trio.CancelScope = field(default_factory=trio.CancelScope, repr=False)
    _listening: Listening | None = field(default=None, repr=False)
    draining: bool = False

    @property
    def address(self) -> Address:
        """The first bound address (the only one, unless a name resolved to several)."""
        return self.bound[0]

    async def drain(self) -> None:
        """Stop accepting; wait up to ``limits.grace`` s for open connections, then close them."""
        self.draining = True
        self._stop_accepting.cancel()
        # refuse new connections from this moment, before any other task runs: left to the
        # serving task, the listeners would close a few scheduling rounds later, and a client
        # connecting meanwhile would be queued by the kernel, then reset (the serving task
        # still closes them properly, and removes socket files)
        if self._listening is not None:
            self._listening.refuse()
        with trio.move_on_after(self.limits.grace):
            while self.stats.active:
                await trio.sleep(0.01)
        self._everything.cancel()

    async def _run(self, listening: Listening, serving: Callable[[], Awaitable[None]]) -> None:
        """Serve from `listening` (`serving` does) until drained or cancelled, then close it."""
        self._listening = listening
        try:
            with self._everything:
                await serving()
        finally:
            await listening.aclose()

    async def _serve_datagrams(self, endpoint: DatagramEndpoint, task_status: trio.TaskStatus[Server]) -> None:
        task_status.started(self)
        with self._stop_accepting:
            await serve_datagrams(self, endpoint)
        # draining: a datagram server has no requests in flight between datagrams

    async def _serve_connections(self, listening: Listeners[Connection], task_status: trio.TaskStatus[Server]) -> None:
        admission = Admission(self)
        on_stream, on_messages = streams.StreamHandler(self), messages.MessageHandler(self)

        async def admit(conn: Connection) -> None:
            if isinstance(conn, MessageChannel):
                await admission.admit(conn, on_messages, messages.BUSY)
            else:
                await admission.admit(conn, on_stream, streams.BUSY)

        async with trio.open_nursery() as handlers:
            with self._stop_accepting:
                async with trio.open_nursery() as acceptors:
                    await acceptors.start(partial(trio.serve_listeners, admit, listening.listeners,
                                                  handler_nursery=handlers))
                    task_status.started(self)
            # draining: no more accepting; the listeners (and socket files) go now
            await listening.aclose()
            await trio.sleep_forever()  # until drain() or our caller cancels


async def serve(
    service: Service | str,
    address: Address | str,
    *,
    limits: Limits = Limits(),
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `service` on `address` until cancelled or drained. Use with ``nursery.start``.

    Raises (before ``started``): AddressError (e.g. allow-uid on a non-unix address),
    AddressInUseError, PermissionDeniedError, AddressUnavailableError, ResolveError.
    """
    address = parse_address(address)
    transport = get_transport(address.scheme)
    if (limits.allow_uids is not None or limits.allow_gids is not None) and (
        transport.family != socket.AF_UNIX or not transport.connected  # where the kernel has SO_PEERCRED
    ):
        raise AddressError(f"allow-uid/allow-gid check peer credentials (SO_PEERCRED), which only unix stream "
                           f"and unix-seq sockets have; {address.scheme}: has none")
    if not isinstance(service, Service):
        service = get_service(service, max_line=limits.max_line)
    summarise_accept_errors()
    if transport.boundaries and service.framing not in (None, Framing()):
        raise ServiceOptionError(f"framing {service.framing} is for byte streams (tcp, tcp6, unix, tls); "
                                 f"on {address.scheme}: each message is one request already")
    if transport.connected:  # declared: connections to accept, each a ByteStream or a MessageChannel
        listeners = await listen_connections(address)
        server = Server(service, transport, address, listeners.bound, limits)
        await server._run(listeners, partial(server._serve_connections, listeners, task_status))
    else:  # one socket for every peer
        endpoint = await listen_datagrams(address)
        server = Server(service, transport, address, endpoint.bound, limits)
        await server._run(endpoint, partial(server._serve_datagrams, endpoint, task_status))
