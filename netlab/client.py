"""Talk to a server: a request/reply client (`open_client`) and the lab's interactive
client (`run_chat`), over either connection contract.

::

    async with open_client("tcp:127.0.0.1:41234", service="sum") as client:
        assert await client.request(b"2 3") == b"5\\n"

A `ByteStream` carries requests framed by the service and replies reassembled from
whatever the reads give; a `MessageChannel` carries one message per request and one per
reply.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import AsyncIterator, Callable

import trio

from .errors import ConnectionResetError, TimeoutError, TransportError, UsageError
from .services import Service, get_service
from .transports import Address, ByteStream, Connection, MessageChannel, get_transport, parse_address, translate_os_errors

#: bytes asked for per read on a stream
RECEIVE_SIZE = 64 * 1024
#: how long `Client.request` waits for a reply unless told otherwise
REQUEST_TIMEOUT = 10.0


class Client(abc.ABC):
    """A connection to a server, speaking `service`'s framing. Use `open_client`.

    ``connection`` is the transport's connection under it (a `ByteStream` or a
    `MessageChannel`), for tests and experiments that look below the service."""

    connection: Connection

    def __init__(self, address: Address, service: Service) -> None:
        self.address = address
        self.service = service

    async def request(self, message: bytes, *, timeout: float | None = REQUEST_TIMEOUT, newline: bool = True,
                      half_close: bool = False) -> bytes:
        """Send one request; return its complete reply (for line services, with the line ending).
        A reply that does not come within `timeout` seconds (default `REQUEST_TIMEOUT`, 10 s:
        a test through a lossy relay fails instead of hanging) raises TimeoutError; ``None``
        waits for ever.

        To behave like clients written without framing in mind: ``newline=False`` sends the
        message as it is, without the line ending a line service wants on a stream;
        ``half_close=True`` half-closes the stream after it (``shutdown(SHUT_WR)``), which
        ends the request on a server with eof framing, and the connection's last line on
        any line server. Then no further request can go on this client.

        Raises:
            TimeoutError: no complete reply within `timeout` seconds.
            UsageError: `half_close` on a connection that is not a byte stream.
            ConnectionRefusedError, ConnectionResetError, MessageTooLargeError, TransportError
        """
        try:
            with trio.fail_after(timeout if timeout is not None else float("inf")):
                return await self._request(message, newline, half_close)
        except trio.TooSlowError:
            why = ""
            if not newline and not half_close and self.service.encode_request(message, stream=True) != message:
                why = (" (the request went without a line ending and the write side stayed open: a server "
                       "that reads lines is still waiting for the end of it)")
            raise TimeoutError(f"no reply from {self.address} within {timeout:g} s{why}") from None

    @abc.abstractmethod
    async def _request(self, message: bytes, newline: bool = True, half_close: bool = False) -> bytes:
        """One request and its reply, without the timeout."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close the connection."""

    @abc.abstractmethod
    async def _chat(self, lines: AsyncIterator[bytes], write: Callable[[bytes], None], timeout: float,
                    newline: bool, half_close: bool) -> None:
        """`run_chat` on this connection: the lines go out as they are, framed by no service."""


class StreamClient(Client):
    """A client over a byte stream: requests framed by the service, replies reassembled."""

    def __init__(self, address: Address, service: Service, stream: ByteStream) -> None:
        super().__init__(address, service)
        self.stream = stream
        self.connection: Connection = stream
        self._reader = service.new_reply_reader()
        self._ready: list[bytes] = []

    async def send(self, data: bytes) -> None:
        with translate_os_errors(self.address, "send to"):
            await self.stream.send_all(data)

    async def _request(self, message: bytes, newline: bool = True, half_close: bool = False) -> bytes:
        wire = self.service.encode_request(message, stream=True) if newline else message
        wanted = self._reader.expect(wire)
        self._ready.extend(self._reader.feed(b""))
        await self.send(wire)
        if half_close:
            with translate_os_errors(self.address, "half-close"):
                await self.stream.send_eof()
        while len(self._ready) < wanted:
            with translate_os_errors(self.address, "receive from"):
                data = await self.stream.receive_some(RECEIVE_SIZE)
            if not data:
                raise ConnectionResetError(f"{self.address} closed the connection before replying")
            self._ready.extend(self._reader.feed(bytes(data)))
        replies, self._ready = self._ready[:wanted], self._ready[wanted:]
        return b"".join(replies)

    async def aclose(self) -> None:
        await self.stream.aclose()

    async def _chat(self, lines: AsyncIterator[bytes], write: Callable[[bytes], None], timeout: float,
                    newline: bool, half_close: bool) -> None:
        address, stream = self.address, self.stream
        async with trio.open_nursery() as nursery:

            async def receive() -> None:
                with translate_os_errors(address, "receive from"):
                    while data := await stream.receive_some(RECEIVE_SIZE):
                        write(bytes(data))
                nursery.cancel_scope.cancel()  # the server closed: we are done

            nursery.start_soon(receive)
            with translate_os_errors(address, "send to"):
                async for line in lines:
                    if not newline:
                        await stream.send_all(line.rstrip(b"\r\n"))
                    else:
                        await stream.send_all(line if line.endswith(b"\n") else line + b"\n")
                if half_close:
                    await stream.send_eof()
            await trio.sleep(timeout)  # the server did not close after our EOF: stop waiting
            nursery.cancel_scope.cancel()


class MessageClient(Client):
    """A client over a message channel (datagrams, seqpacket): one message per request, one
    per reply."""

    def __init__(self, address: Address, service: Service, channel: MessageChannel) -> None:
        super().__init__(address, service)
        self.channel = channel
        self.connection: Connection = channel

    async def _request(self, message: bytes, newline: bool = True, half_close: bool = False) -> bytes:
        if half_close:
            raise UsageError(f"half-close ends a request on a byte stream; on {self.address.scheme}: each "
                             f"message is a whole request already")
        await self.channel.send(self.service.encode_request(message, stream=False))
        if not self.service.replies:  # a sink (discard): nothing will come back
            return b""
        reply = await self.channel.receive()
        if reply is None:
            raise ConnectionResetError(f"{self.address} closed the connection before replying")
        if reply.truncated:
            raise TransportError(
                f"the reply from {self.address} was larger than the {self.channel.buffer_size}-byte "
                f"receive buffer and was cut short (MSG_TRUNC)"
            )
        return reply.data

    async def aclose(self) -> None:
        await self.channel.aclose()

    async def _chat(self, lines: AsyncIterator[bytes], write: Callable[[bytes], None], timeout: float,
                    newline: bool, half_close: bool) -> None:
        conn = self.channel
        # datagrams carry the line without its ending; a message on a channel with an end of
        # stream keeps it, since an empty message would read as end of stream
        keep_ending = conn.has_eof and newline
        sent = received = 0
        done = trio.Event()
        async with trio.open_nursery() as nursery:

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


def _client(address: Address, service: Service, connection: Connection) -> Client:
    """The client for `connection`'s contract."""
    if isinstance(connection, MessageChannel):
        return MessageClient(address, service, connection)
    return StreamClient(address, service, connection)


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
    transport = get_transport(address.scheme)
    try:
        with trio.fail_after(timeout if timeout is not None else float("inf")):
            client = _client(address, svc, await transport.connect(address))
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
    newline: bool = True,
    half_close: bool = True,
) -> None:
    """The lab's interactive client: send each line, hand whatever comes back to `write`.

    On a stream, lines go out as they are (with a ``\n`` added to a last line without
    one); after the last, the client half-closes and prints until the server closes, or
    `timeout` s pass. On datagrams, each line (without its ending) is one datagram, and
    each reply is written as a line; after the last, it waits up to `timeout` s for the
    missing replies.

    Like a client written without framing in mind: ``newline=False`` sends each line
    without its line ending; ``half_close=False`` keeps the write side open after the last
    line (so the client waits the whole `timeout` for replies). Both are for streams.

    Raises:
        TimeoutError: datagrams whose reply never came. ConnectionRefusedError, TransportError.
    """
    address = parse_address(address)
    # (the service is the client's framing for requests; chat frames nothing: any would do)
    client = _client(address, get_service("sum"), await get_transport(address.scheme).connect(address))
    try:
        await client._chat(lines, write, timeout, newline, half_close)
    finally:
        await client.aclose()


__all__ = ["RECEIVE_SIZE", "REQUEST_TIMEOUT", "Client", "MessageClient", "StreamClient", "open_client", "run_chat"]
