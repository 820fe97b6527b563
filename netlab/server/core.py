"""`serve` a service on a transport, and the `Server` it hands to ``nursery.start``.

The listening sockets the transport opens decide how the server works: `Listeners` accept
connections, each admitted (`Admission`) and handed to the handler of its contract (a
`ByteStream` to `StreamHandler`, a `MessageChannel` to `MessageHandler`); a
`DatagramEndpoint` answers every peer from one socket (`serve_datagrams`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import trio

from ..errors import AddressError, ServiceOptionError
from ..logs import summarise_accept_errors
from ..services import Service, get_service
from ..services.framing import Framing
from ..transports import (
    Address, Connection, DatagramEndpoint, Listeners, Listening, MessageChannel, Transport, get_transport, parse_address,
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

    async def _run(self, listening: Listening, task_status: trio.TaskStatus[Server]) -> None:
        """Serve from `listening` until drained or cancelled, then close it."""
        self._listening = listening
        try:
            with self._everything:
                if isinstance(listening, DatagramEndpoint):
                    task_status.started(self)
                    with self._stop_accepting:
                        await serve_datagrams(self, listening)
                    # draining: a datagram server has no requests in flight between datagrams
                elif isinstance(listening, Listeners):
                    await self._serve_connections(listening, task_status)
                else:
                    raise TypeError(f"cannot serve from {listening!r}: neither Listeners nor a DatagramEndpoint")
        finally:
            await listening.aclose()

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
        transport.target != "unix" or not transport.connected
    ):
        raise AddressError(f"allow-uid/allow-gid check peer credentials (SO_PEERCRED), which only unix stream "
                           f"and unix-seq sockets have; {address.scheme}: has none")
    if not isinstance(service, Service):
        service = get_service(service, max_line=limits.max_line)
    summarise_accept_errors()
    if transport.boundaries and service.framing not in (None, Framing()):
        raise ServiceOptionError(f"framing {service.framing} is for byte streams (tcp, tcp6, unix, tls); "
                                 f"on {address.scheme}: each message is one request already")
    listening = await transport.listen(address)
    server = Server(service, transport, address, listening.bound, limits)
    await server._run(listening, task_status)
