"""What a transport is: the contracts only (after trio's ``_abc.py`` and anyio's ``abc/_sockets.py``).

Every transport opens the same way, ``await transport.listen(address)`` for a server and
``await transport.connect(address)`` for a client, and what comes back honours one of two
connection contracts::

    Connection = ByteStream | MessageChannel

    ByteStream       trio.abc.HalfCloseableStream: bytes in order, no message boundaries,
                     send_eof() half-closes.              tcp, tcp4, tcp6, unix, tls
    MessageChannel   whole messages with one peer: send(), try_send(), receive() -> Message
                     (None at end of stream, where the kind has one), max_message, aclose().
                     Over a seqpacket connection (unix-seq: `seqpacket.MessageStream`) or a
                     datagram socket connected to its peer (udp, udp4, udp6, unix-dgram
                     clients: `datagram.ConnectedDatagram`).

and what a server holds (a `Listening`: ``bound`` is what the kernel actually gave)::

    Listening
      Listeners[C]       listen() of a connection kind: trio Listeners whose accept()
                         gives the kind's Connection C            stream and seqpacket kinds
      DatagramEndpoint   listen() of a datagram kind: one unconnected socket; receive()
                         gives a Message with its peer, send_to(peer) answers it

``kind`` says which: ``"stream"`` (ByteStream connections), ``"seqpacket"`` (MessageChannel
connections) or ``"datagram"`` (a DatagramEndpoint, and MessageChannel clients). These are
the kernel's own distinctions: SOCK_STREAM, SOCK_SEQPACKET, SOCK_DGRAM.

A transport also *describes* itself, as data, so that nothing above ``transports/`` keeps a
copy of what it is: whether it is reliable, ordered and keeps message boundaries (unix
datagrams are reliable and ordered on Linux, UDP is neither: not implied by the class
name), the IP protocol the kernel lists its sockets under (and `uses_ip`: whether its packets
cross an interface, netfilter and /proc/net/snmp at all), its limits (`limit_summary`,
`message_limit`), the socket calls it makes (`plan`, what ``netlab addr explain`` prints),
what an option not given means (`option_default`), the address ``compare`` and the
conformance suite use for it (`compare_address`), socat's name for it (`socat`, bench's
relay baseline) and why a connection to it is refused (`refused_why`). The registry
(`registry.TRANSPORTS`) is the one list of transports; everything else filters it on these.

Where the pieces live: the batched receive in `batch`; the message sockets in `datagram`
and `seqpacket`; OS-error translation in `oserrors`; code that works with either contract
(`open_pair`, `receive_data`, ...) in `connections`. Transports know nothing of services.
"""

from __future__ import annotations

import abc
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypeAlias, TypeVar

import trio

from .addresses import Address, format_sockaddr

#: the most messages one `receive_batch` takes: enough that a flood costs one trip through
#: trio's scheduler per 64 datagrams instead of one per datagram, few enough (~64 x 5 µs)
#: that other tasks still run every fraction of a millisecond (see `batch.receive_queued`)
BATCH = 64

Kind = Literal["stream", "seqpacket", "datagram"]

#: a socket as trio wraps it, or the standard library's (explain probes with the latter)
AnySocket: TypeAlias = "trio.socket.SocketType | socket.socket"

#: a peer's address as the kernel gives it: (host, port[, flow, scope]) for inet, a path
#: (str) or an abstract name (bytes starting with NUL) for unix
Peer: TypeAlias = "tuple[Any, ...] | str | bytes"

#: one getaddrinfo result a transport binds or connects: (family, sockaddr)
SockInfo: TypeAlias = "tuple[socket.AddressFamily, Peer]"

#: the byte-stream contract: trio's own (SocketStream for tcp and unix; for tls, tls.TlsStream,
#: a trio.SSLStream made half-closeable)
ByteStream: TypeAlias = trio.abc.HalfCloseableStream


@dataclass(frozen=True)
class Message:
    """One message as received: a datagram, or a seqpacket message."""

    data: bytes
    peer: Peer | None  # the kernel's address of the sender; None for an unbound unix sender or a connection
    truncated: bool = False  # it was larger than the read buffer (MSG_TRUNC): never serve it as whole


class MessageChannel(trio.abc.AsyncResource):
    """The message contract: whole messages, in both directions, with one peer.

    Each `send` arrives as exactly one `receive` (or not at all, where the kind is
    unreliable), never merged with another or split.

    Raises (every method): MessageTooLargeError (over `max_message`), ConnectionRefusedError,
    TransportError; `trio.ClosedResourceError` after `aclose`.
    """

    transport: MessageTransport
    #: the kernel socket, for getsockopt (SO_SNDBUF, SO_PEERCRED) and nothing else
    socket: trio.socket.SocketType
    #: the peer, for error texts
    remote: object
    #: the largest message `receive` can return whole
    buffer_size: int
    #: True where the kind has an end of stream (seqpacket): `receive` returns None then
    has_eof: ClassVar[bool]
    #: messages the kernel dropped on this socket's full receive queue, as of the last one
    #: received (SO_RXQ_OVFL); None unless `count_drops` said True
    kernel_drops: int | None = None

    def count_drops(self) -> bool:
        """Ask the kernel to report receive-queue overflows with each message (SO_RXQ_OVFL).

        Returns False where it does not offer it, or the kind never drops (a seqpacket
        connection holds its sender back instead)."""
        return False

    @property
    @abc.abstractmethod
    def max_message(self) -> int:
        """The largest message this channel can send."""

    @abc.abstractmethod
    async def send(self, data: bytes) -> None:
        """Send one whole message."""

    @abc.abstractmethod
    def try_send(self, data: bytes) -> bool:
        """`send` at once if the kernel takes the message now; False if it would have to wait
        (then call `send`). Not a checkpoint: a loop calls it between two receives, which are."""

    @abc.abstractmethod
    async def receive(self) -> Message | None:
        """The next message; None at end of stream (only where `has_eof`)."""

    async def receive_batch(self, limit: int = BATCH) -> Sequence[Message | None]:
        """The messages already queued, at least one and at most `limit`, in order, waiting
        only for the first; None, last, at end of stream. One trip through the scheduler for
        the lot (see `DatagramEndpoint.receive_batch`); here, one message per call."""
        return [await self.receive()]

    async def send_eof(self) -> None:
        """End of stream, where the kind has one; a datagram has none, so nothing is sent."""
        await trio.lowlevel.checkpoint()


#: what `Transport.connect` returns, and what a `Listeners` accepts
Connection: TypeAlias = "ByteStream | MessageChannel"

#: the connection a `Listeners` accepts (covariant, as trio's `Listener[T]`)
C_co = TypeVar("C_co", bound="ByteStream | MessageChannel", covariant=True)


class Listening(trio.abc.AsyncResource):
    """What `Transport.listen` returns: a server's bound sockets. ``bound`` lists the addresses
    the kernel actually gave (the real port, the autobind name), one per socket."""

    requested: Address
    bound: list[Address]

    def refuse(self) -> None:
        """Refuse new connections at once, where the kind has connections."""


class Listeners(Listening, Generic[C_co]):
    """A connection kind's listening sockets: ``listeners`` accept the kind's connection `C_co`
    (``Listeners[trio.SocketStream]`` for tcp, ``Listeners[MessageStream]`` for unix-seq)."""

    def __init__(self, transport: Transport, requested: Address,
                 listeners: list[trio.abc.Listener[C_co]], bound: list[Address]) -> None:
        self.transport = transport
        self.requested = requested
        self.listeners = listeners
        self.bound = bound

    def refuse(self) -> None:
        """Refuse new connections from this moment: close the listening sockets at once,
        without waiting for a checkpoint (`aclose` still closes the listeners properly and
        removes socket files)."""
        for listener in self.listeners:
            sock: trio.socket.SocketType = getattr(listener, "socket")  # every netlab listener has one; trio's Listener ABC does not declare it
            sock.close()

    async def aclose(self) -> None:
        """Close every listener (unix socket files go with them)."""
        for listener in self.listeners:
            with trio.CancelScope(shield=True):
                await listener.aclose()


class DatagramEndpoint(Listening):
    """A datagram server's socket: bound, not connected. `receive` gives each datagram with
    its sender, `send_to` answers a sender. (`datagram.SocketDatagramEndpoint` is the one
    implementation.)"""

    transport: MessageTransport
    #: the kernel socket, for getsockopt and nothing else
    socket: trio.socket.SocketType
    #: the address the kernel gave this socket
    local: Address
    #: the largest datagram `receive` returns whole
    buffer_size: int
    #: datagrams the kernel dropped because this socket's receive queue was full, as of the
    #: last datagram received (SO_RXQ_OVFL); None unless `count_drops` said True
    kernel_drops: int | None

    @abc.abstractmethod
    def count_drops(self) -> bool:
        """Ask the kernel to report receive-queue overflows with each datagram (SO_RXQ_OVFL).

        Returns False where the kernel does not offer it for this socket."""

    @property
    @abc.abstractmethod
    def max_message(self) -> int:
        """The largest datagram this socket can send."""

    @abc.abstractmethod
    async def receive(self) -> Message:
        """Wait for one datagram. ``truncated`` is set when it did not fit the buffer."""

    @abc.abstractmethod
    async def receive_batch(self, limit: int = BATCH) -> list[Message]:
        """The datagrams already queued, at least one and at most `limit`, in the order the
        kernel queued them (so each peer's are in the order it sent them); waits only for
        the first. A server loop serves them all, then calls again: one trip through the
        scheduler per batch, not per datagram, and at most `limit` between two."""

    @abc.abstractmethod
    async def send_to(self, data: bytes, peer: Peer) -> None:
        """Send one datagram to a peer address as the kernel gave it (from `receive`)."""

    @abc.abstractmethod
    def try_send_to(self, data: bytes, peer: Peer) -> bool:
        """`send_to` at once if the kernel takes the datagram now; False if it would have to
        wait (then call `send_to`). Not a checkpoint: a server loop calls it between two
        receives, which are. Raises what `send_to` raises."""

    @abc.abstractmethod
    def connect_back(self, client: MessageChannel) -> MessageChannel:
        """This socket, connected to `client`'s address: the server's end of a datagram pair
        (`connections.open_pair`). The endpoint is spent; closing the channel closes the
        socket (and removes a unix socket file)."""


# -- transports ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """The socket calls a server (`netlab serve`) and a client (`netlab send`) make for one
    address, in order, as `netlab addr explain` prints them. Written beside the code that
    makes the calls, in each transport's module."""

    server: list[str]
    client: list[str]


#: what an option that is not given means: (the value that applies, where it comes from)
OptionDefault: TypeAlias = "tuple[object, str]"


class Transport(abc.ABC):
    """One socket kind, reachable by one scheme name. `listen` and `connect` open it; the
    rest describes it (see the module docstring)."""

    scheme: str
    kind: ClassVar[Kind]
    target: ClassVar[Literal["inet", "unix"]]
    #: AF_INET, AF_INET6, AF_UNIX; None for "tcp"/"udp"/"tls", which follow the host
    family: socket.AddressFamily | None
    socktype: ClassVar[socket.SocketKind]
    #: the protocol of its sockets, as getaddrinfo and /proc/net give it: IPPROTO_TCP,
    #: IPPROTO_UDP; 0 for AF_UNIX, which has only one
    protocol: ClassVar[int]
    reliable: ClassVar[bool]
    ordered: ClassVar[bool]
    boundaries: ClassVar[bool]
    options: ClassVar[frozenset[str]]
    summary: str
    #: a listener accepts connections (stream and seqpacket), rather than one socket
    #: receiving from every peer (datagram)
    connected: ClassVar[bool]
    #: the bytes are encrypted (TLS): a client needs the server's CA (``?ca=FILE``) and a
    #: handshake before the first byte, a server a certificate (``?cert=FILE&key=FILE``)
    encrypted: ClassVar[bool] = False
    #: one of each socket variant is compared (``netlab compare``, ``bench``, the conformance
    #: suite): the address each uses, ``{dir}`` a private directory; None for a transport that
    #: is another's twin (tcp4 is tcp with IPv4 hosts only)
    compare_address: str | None = None
    #: how socat names it, where socat can relay it and pass replies back (bench's relay
    #: baseline): (listening address type, connecting one, options both take, or "");
    #: None where it cannot
    socat: tuple[str, str, str] | None = None
    #: why a connection to it is refused, in words: "connection refused by ADDR: <this>"
    refused_why: ClassVar[str] = "nothing is listening there"

    @property
    def family_name(self) -> str:
        if self.family is None:
            return "AF_INET/6"
        return self.family.name

    @property
    def uses_ip(self) -> bool:
        """Its sockets are IP sockets (AF_INET/AF_INET6): they have ports, and their packets
        cross an interface (lo here), where netfilter and the interface's qdisc act on them
        and /proc/net/snmp counts them. AF_UNIX traffic never leaves the socket layer: no
        port, no packet, no rule or qdisc on its way."""
        return self.target == "inet"

    def format_peer(self, sockaddr: object) -> str:
        return format_sockaddr(self.scheme, sockaddr)

    def message_limit(self, sock: AnySocket) -> tuple[int, str] | None:
        """The largest message `sock` can send and that limit in words, where the kind
        carries messages; None for a byte stream."""
        return None

    def limit_summary(self, address: Address) -> str | None:
        """The largest message for `address`, in a few words and without a socket (a sentence
        like "a message carries at most ..."); None for a byte stream."""
        return None

    def option_default(self, name: str, address: Address) -> OptionDefault | None:
        """What option `name` (one of `options`) is when `address` does not give it; None
        where the option does not apply to this address (mode on an abstract name)."""
        if name == "backlog":
            return socket.SOMAXCONN, "default: socket.SOMAXCONN"
        return None, "not set: the kernel default"

    @abc.abstractmethod
    def plan(self, address: Address, resolved: Sequence[SockInfo] | None) -> Plan:
        """The socket calls a server and a client make for `address`, in order. `resolved`:
        what getaddrinfo gave a server for it (None: unknown, each address is a placeholder);
        unix kinds have nothing to resolve."""

    @abc.abstractmethod
    async def listen(self, address: Address) -> Listening:
        """Bind (and listen, for a connection kind): what a server serves from.

        Raises:
            AddressInUseError, PermissionDeniedError, AddressUnavailableError, ResolveError
        """

    @abc.abstractmethod
    async def connect(self, address: Address) -> Connection:
        """Open a client connection: a `ByteStream` for the stream kind, a `MessageChannel`
        for the others (a datagram client is bound, so replies can reach it).

        Raises:
            ConnectionRefusedError, ResolveError, TransportError
        """


class StreamTransport(Transport):
    """SOCK_STREAM: `Listeners` that accept `ByteStream` connections."""

    kind = "stream"
    connected = True
    reliable = True
    ordered = True
    boundaries = False

    @abc.abstractmethod
    async def listen(self, address: Address) -> Listeners[ByteStream]: ...

    @abc.abstractmethod
    async def connect(self, address: Address) -> ByteStream: ...


class MessageTransport(Transport):
    """A kind whose connections carry whole messages, and the limit on their size."""

    boundaries = True

    @abc.abstractmethod
    async def connect(self, address: Address) -> MessageChannel: ...

    def make_room(self, sock: AnySocket, size: int) -> None:
        """Raise the socket's send limit so a message of `size` bytes fits, if needed."""

    def hard_limit(self, sock: AnySocket) -> int | None:
        """A limit known before sending (checked up front), or None to let the kernel say."""
        return None

    @abc.abstractmethod
    def max_message_for(self, sock: AnySocket) -> int:
        """The largest message this socket can send."""

    @abc.abstractmethod
    def limit_text(self, sock: AnySocket) -> str:
        """The limit, stated for an error message."""

    @abc.abstractmethod
    def limit_summary(self, address: Address) -> str: ...

    def message_limit(self, sock: AnySocket) -> tuple[int, str]:
        return self.max_message_for(sock), self.limit_text(sock)


class SeqpacketTransport(MessageTransport):
    """SOCK_SEQPACKET: `Listeners` that accept `MessageChannel` connections; reliable, ordered."""

    kind = "seqpacket"
    connected = True
    reliable = True
    ordered = True

    @abc.abstractmethod
    async def listen(self, address: Address) -> Listeners[MessageChannel]: ...


class DatagramTransport(MessageTransport):
    """SOCK_DGRAM: a `DatagramEndpoint` for servers, `MessageChannel` clients (connected sockets)."""

    kind = "datagram"
    connected = False

    @abc.abstractmethod
    async def listen(self, address: Address) -> DatagramEndpoint: ...


__all__ = [
    "BATCH", "AnySocket", "ByteStream", "Connection", "DatagramEndpoint", "DatagramTransport", "Kind", "Listeners",
    "Listening", "Message", "MessageChannel", "MessageTransport", "OptionDefault", "Peer", "Plan",
    "SeqpacketTransport", "SockInfo", "StreamTransport", "Transport",
]
