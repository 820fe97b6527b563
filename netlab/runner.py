"""Serve a service on a transport, and talk to it: the glue between the two.

Server side::

    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve, "sum", "tcp:127.0.0.1:0")
        print(server.bound[0])          # tcp:127.0.0.1:41234, the port the kernel gave

Client side::

    async with open_client("tcp:127.0.0.1:41234", service="sum") as client:
        assert await client.request(b"2 3") == b"5\\n"

The stream adapter feeds a service session every chunk it reads (``b""`` at end of
stream) and writes back what it returns; the datagram adapter answers each datagram
with one datagram. Neither lets a bad request or a vanished peer stop the server: a
datagram that was truncated, or came from a sender with no address, is counted and
logged, never served.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial

import trio

from .errors import ConnectionResetError, NetlabError, TimeoutError, TransportError, translate_os_errors
from .services import Service, get_service
from .transports import (
    Address, DatagramSocket, DatagramTransport, MessageStream, SeqpacketTransport, StreamTransport, Transport,
    parse_address,
)

log = logging.getLogger("netlab.server")

#: bytes asked for per read on a stream
RECEIVE_SIZE = 64 * 1024
#: how long a datagram server waits to hand a reply to a peer that is not reading
REPLY_TIMEOUT = 1.0


@dataclass
class ServerStats:
    connections: int = 0  # stream connections accepted
    active: int = 0  # stream connections open now
    datagrams: int = 0  # datagrams received
    truncated: int = 0  # datagrams dropped because they did not fit the read buffer
    unanswerable: int = 0  # datagrams from a sender with no address (unbound unix-dgram)
    reply_failures: int = 0  # replies that could not be delivered


@dataclass
class Server:
    """What `serve` hands to ``nursery.start``: where it listens, and what it has seen."""

    service: Service
    transport: Transport
    requested: Address
    bound: list[Address]
    stats: ServerStats = field(default_factory=ServerStats)

    @property
    def address(self) -> Address:
        """The first bound address (the only one, unless a name resolved to several)."""
        return self.bound[0]


async def serve(
    service: Service | str,
    address: Address | str,
    *,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `service` on `address` until cancelled. Use with ``nursery.start``.

    Raises (before ``started``): AddressError, AddressInUseError, PermissionDeniedError,
    AddressUnavailableError, ResolveError.
    """
    service = get_service(service)
    address = parse_address(address)
    transport = address.transport
    if isinstance(transport, (StreamTransport, SeqpacketTransport)):
        await _serve_connections(service, transport, address, task_status)
    else:
        assert isinstance(transport, DatagramTransport)
        await _serve_datagram(service, transport, address, task_status)


async def _serve_connections(service: Service, transport: StreamTransport | SeqpacketTransport,
                             address: Address, task_status) -> None:
    listeners = await transport.open_listeners(address)
    server = Server(service, transport, address, [transport.listener_address(lis, address) for lis in listeners])
    try:
        async with trio.open_nursery() as nursery:
            if isinstance(transport, StreamTransport):
                handler = partial(_handle_connection, server)
            else:
                handler = partial(_handle_messages, server)
            await nursery.start(partial(trio.serve_listeners, handler, listeners, handler_nursery=nursery))
            task_status.started(server)
    finally:
        with trio.CancelScope(shield=True):
            for listener in listeners:
                await listener.aclose()


async def _handle_connection(server: Server, stream: trio.SocketStream) -> None:
    stats = server.stats
    stats.connections += 1
    stats.active += 1
    peer = "?"
    try:
        with contextlib.suppress(OSError):
            peer = server.transport.format_peer(stream.socket.getpeername())
        log.debug("connection from %s", peer)
        session = server.service.new_session()
        async with stream:
            while True:
                data = await stream.receive_some(RECEIVE_SIZE)
                reply = session.receive_data(data)
                if reply:
                    await stream.send_all(reply)
                if not data:
                    break
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        log.debug("connection from %s ended abruptly: %s", peer, exc.__cause__ or exc)
    except Exception:  # a bug in a service must cost one connection, not the server
        log.exception("connection from %s failed", peer)
    finally:
        stats.active -= 1


async def _handle_messages(server: Server, conn: MessageStream) -> None:
    """A seqpacket connection: each message is answered like a datagram, in order."""
    stats = server.stats
    stats.connections += 1
    stats.active += 1
    try:
        async with conn:
            while (message := await conn.receive()) is not None:
                stats.datagrams += 1
                if message.truncated:
                    stats.truncated += 1
                    log.warning("dropped a %d+-byte message: larger than the read buffer (truncated)",
                                len(message.data))
                    continue
                reply = server.service.handle_datagram(message.data)
                if reply:  # an empty reply cannot be sent: it would read as end of stream
                    await conn.send(reply)
    except TransportError as exc:
        log.debug("seqpacket connection ended abruptly: %s", exc)
    except Exception:
        log.exception("seqpacket connection failed")
    finally:
        stats.active -= 1


async def _serve_datagram(service: Service, transport: DatagramTransport, address: Address, task_status) -> None:
    sock = await transport.bind(address)
    server = Server(service, transport, address, [sock.local])
    async with sock:
        task_status.started(server)
        await _datagram_loop(server, sock)


async def _datagram_loop(server: Server, sock: DatagramSocket) -> None:
    stats = server.stats
    while True:
        try:
            datagram = await sock.receive()
        except TransportError as exc:
            log.warning("receive failed: %s", exc)
            continue
        stats.datagrams += 1
        if datagram.truncated:
            stats.truncated += 1
            log.warning(
                "dropped a datagram from %s: larger than the %d-byte read buffer (truncated)",
                server.transport.format_peer(datagram.peer), len(datagram.data),
            )
            continue
        if datagram.peer is None:
            stats.unanswerable += 1
            level = logging.WARNING if stats.unanswerable == 1 else logging.DEBUG
            log.log(level, "a %d-byte datagram came from an unbound sender: it has no address, so no "
                    "reply can reach it (the client must bind; netlab clients autobind)", len(datagram.data))
            continue
        try:
            reply = server.service.handle_datagram(datagram.data)
        except Exception:
            log.exception("service %s failed on a datagram", server.service.name)
            continue
        if reply is None:
            continue
        with trio.move_on_after(REPLY_TIMEOUT) as scope:
            try:
                await sock.send_to(reply, datagram.peer)
            except TransportError as exc:
                stats.reply_failures += 1
                log.info("could not reply: %s", exc)
        if scope.cancelled_caught:
            stats.reply_failures += 1
            log.warning("dropped a reply to %s: it is not reading", server.transport.format_peer(datagram.peer))


# -- clients --------------------------------------------------------------------------


class Client:
    """A connection to a server, speaking `service`'s framing. Use `open_client`."""

    def __init__(self, address: Address, service: Service) -> None:
        self.address = address
        self.service = service

    async def request(self, message: bytes, *, timeout: float | None = None) -> bytes:
        """Send one request; return its complete reply (for line services, with the line ending).

        Raises:
            TimeoutError: no complete reply within `timeout` seconds.
            ConnectionRefusedError, ConnectionResetError, MessageTooLargeError, TransportError
        """
        try:
            with trio.fail_after(timeout if timeout is not None else float("inf")):
                return await self._request(message)
        except trio.TooSlowError:
            raise TimeoutError(f"no reply from {self.address} within {timeout:g} s") from None

    async def _request(self, message: bytes) -> bytes:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError


class StreamClient(Client):
    def __init__(self, address: Address, service: Service, stream: trio.SocketStream) -> None:
        super().__init__(address, service)
        self.stream = stream
        self._reader = service.new_reply_reader()
        self._ready: list[bytes] = []

    async def send(self, data: bytes) -> None:
        with translate_os_errors(self.address, "send to"):
            await self.stream.send_all(data)

    async def _request(self, message: bytes) -> bytes:
        wire = self.service.encode_request(message, stream=True)
        wanted = self._reader.expect(wire)
        self._ready.extend(self._reader.feed(b""))
        await self.send(wire)
        while len(self._ready) < wanted:
            with translate_os_errors(self.address, "receive from"):
                data = await self.stream.receive_some(RECEIVE_SIZE)
            if not data:
                raise ConnectionResetError(f"{self.address} closed the connection before replying")
            self._ready.extend(self._reader.feed(data))
        replies, self._ready = self._ready[:wanted], self._ready[wanted:]
        return b"".join(replies)

    async def aclose(self) -> None:
        await self.stream.aclose()


class DatagramClient(Client):
    def __init__(self, address: Address, service: Service, sock: DatagramSocket) -> None:
        super().__init__(address, service)
        self.socket = sock

    async def _request(self, message: bytes) -> bytes:
        await self.socket.send(self.service.encode_request(message, stream=False))
        reply = await self.socket.receive()
        if reply.truncated:
            raise TransportError(
                f"the reply from {self.address} was larger than the {self.socket.buffer_size}-byte "
                f"receive buffer and was cut short (MSG_TRUNC)"
            )
        return reply.data

    async def aclose(self) -> None:
        await self.socket.aclose()


class SeqpacketClient(Client):
    def __init__(self, address: Address, service: Service, conn: MessageStream) -> None:
        super().__init__(address, service)
        self.conn = conn
        #: like `DatagramClient.socket`: send(), receive(), max_message, and .socket the raw one
        self.socket = conn

    async def _request(self, message: bytes) -> bytes:
        await self.conn.send(self.service.encode_request(message, stream=False))
        reply = await self.conn.receive()
        if reply is None:
            raise ConnectionResetError(f"{self.address} closed the connection before replying")
        if reply.truncated:
            raise TransportError(f"the reply from {self.address} was larger than the {self.conn.buffer_size}-byte "
                                 f"receive buffer and was cut short (MSG_TRUNC)")
        return reply.data

    async def aclose(self) -> None:
        await self.conn.aclose()


@contextlib.asynccontextmanager
async def open_client(
    address: Address | str, service: Service | str = "sum", *, timeout: float | None = None
) -> AsyncIterator[Client]:
    """Connect to `address`. `service` picks the framing (default: one line per request).

    Raises:
        ConnectionRefusedError, ResolveError, TimeoutError (connecting took over `timeout`)
    """
    address = parse_address(address)
    svc = get_service(service)
    transport = address.transport
    client: Client
    try:
        with trio.fail_after(timeout if timeout is not None else float("inf")):
            if isinstance(transport, StreamTransport):
                client = StreamClient(address, svc, await transport.connect(address))
            elif isinstance(transport, SeqpacketTransport):
                client = SeqpacketClient(address, svc, await transport.connect(address))
            else:
                assert isinstance(transport, DatagramTransport)
                client = DatagramClient(address, svc, await transport.connect(address))
    except trio.TooSlowError:
        raise TimeoutError(f"could not connect to {address} within {timeout:g} s") from None
    try:
        yield client
    finally:
        with trio.CancelScope(shield=True):
            await client.aclose()


async def run_chat(
    address: Address | str,
    lines: AsyncIterator[bytes],
    write: Callable[[bytes], None],
    *,
    timeout: float = 5.0,
) -> None:
    """The lab's interactive client: send each line, hand whatever comes back to `write`.

    On a stream, lines go out as they are (with a ``\n`` added to a last line without
    one); after the last, the client half-closes and prints until the server closes, or
    `timeout` s pass. On datagrams, each line (without its ending) is one datagram, and
    each reply is written as a line; after the last, it waits up to `timeout` s for the
    missing replies.

    Raises:
        TimeoutError: datagrams whose reply never came. ConnectionRefusedError, TransportError.
    """
    address = parse_address(address)
    transport = address.transport
    if isinstance(transport, StreamTransport):
        stream = await transport.connect(address)
        async with stream, trio.open_nursery() as nursery:

            async def receive() -> None:
                with translate_os_errors(address, "receive from"):
                    while data := await stream.receive_some(RECEIVE_SIZE):
                        write(data)
                nursery.cancel_scope.cancel()  # the server closed: we are done

            nursery.start_soon(receive)
            with translate_os_errors(address, "send to"):
                async for line in lines:
                    await stream.send_all(line if line.endswith(b"\n") else line + b"\n")
                await stream.send_eof()
            await trio.sleep(timeout)  # the server did not close after our EOF: stop waiting
            nursery.cancel_scope.cancel()
        return
    assert isinstance(transport, (DatagramTransport, SeqpacketTransport))
    # datagrams carry the line without its ending; a seqpacket message keeps it, since an
    # empty message would read as end of stream
    keep_ending = isinstance(transport, SeqpacketTransport)
    sent = received = 0
    done = trio.Event()
    async with await transport.connect(address) as conn, trio.open_nursery() as nursery:

        async def receive_messages() -> None:
            nonlocal received
            while (message := await conn.receive()) is not None:
                data = message.data
                write(data if data.endswith(b"\n") else data + b"\n")
                received += 1
                if done.is_set() and received >= sent:
                    break
            nursery.cancel_scope.cancel()

        nursery.start_soon(receive_messages)
        async for line in lines:
            await conn.send(line if keep_ending else line.rstrip(b"\r\n"))
            sent += 1
        done.set()
        if received >= sent:
            nursery.cancel_scope.cancel()
        await trio.sleep(timeout)
        nursery.cancel_scope.cancel()
    if received < sent:
        raise TimeoutError(f"{sent - received} of {sent} datagrams got no reply within {timeout:g} s "
                           f"of the last one")


__all__ = ["Client", "run_chat", "NetlabError", "Server", "ServerStats", "open_client", "serve"]
