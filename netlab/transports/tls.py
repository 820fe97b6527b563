"""TLS over TCP: ``tls:HOST:PORT``. A byte stream like ``tcp:``, encrypted and authenticated.

The TCP part is the ``tcp`` transport's own (resolution, options, errors); this module adds
`trio.SSLStream` on top and makes it honour the byte-stream contract
(`trio.abc.HalfCloseableStream`), which SSLStream alone does not:

* **Half-close.** SSLStream has no ``send_eof``. `TlsStream.send_eof` sends what is pending,
  then shuts down the TCP write side, with no TLS close_notify. Both ends set OpenSSL's
  ``OP_IGNORE_UNEXPECTED_EOF``, so a FIN without close_notify reads as end of stream (b"")
  and the other direction stays open for sending (trio's ``https_compatible=True`` reads
  it as b"" too, but then refuses to send). The trade-off: a truncation, an attacker's
  FIN mid-stream, is not detectable at the TLS layer; the service's own framing (a line
  without its ending, a short reply) is what tells. HTTPS lives with the same. `aclose`
  still sends close_notify when it can at once (without waiting for the peer's), so a
  strict peer such as ``openssl s_client`` sees a clean close.
* **Cancelling a send.** SSLStream is broken for good once a send is cancelled mid-record.
  Here the ciphertext it hands down is kept by a carrier under it (`_Carrier`) until the
  kernel has taken all of it, so a cancelled `send_all` leaves the stream whole: what it
  had encrypted goes out first at the next send.

The handshake happens at the first send or receive on either side, not in ``connect`` or
``accept``: a client connects before the server accepts (`open_pair` does exactly that),
and a server that handshook in ``accept`` would let one silent client stall every other.
A failed handshake is a netlab `TransportError` that names the fix (``?ca=FILE``, or
``?insecure=1``), never an `ssl.SSLError`. A client that speaks plain TCP to a TLS server
(``2 3\\n`` where a handshake record should be) is told so at once, in the server's log and in
one clear-text line to the client, instead of both waiting for a record that never comes.

Certificates need no set-up (`certificates.py`): a server given no ``?cert=FILE&key=FILE`` makes a throwaway CA
(one per process, with trustme), issues itself a certificate for its host, localhost,
127.0.0.1 and ::1, and writes the CA certificate to a private file removed at exit. Its
bound address carries ``?ca=PATH``: exactly what a client needs, so ``netlab serve``'s
``listening`` line is the address to connect to. A client verifies against ``?ca=FILE``,
or the system's trusted CAs without it; ``?insecure=1`` skips verification and says so
in a warning.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import operator
import os
import socket
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import replace

import trio

from ..errors import TransportError
from ._inet import inet_option_default
from .addresses import Address, format_sockaddr
from .base import Listeners, OptionDefault, Plan, SockInfo, StreamTransport
from .certificates import (
    TLS_DEFAULTS, TLS_OPTIONS, client_context, client_trust_calls, server_certificate_call, server_context,
    throwaway_ca,
)
from .tcp import TcpTransport, tcp_calls

__all__ = ["SEND_CHUNK", "TLS_OPTIONS", "TlsStream", "TlsTransport", "throwaway_ca"]

log = logging.getLogger("netlab.tls")

#: the first byte of every TLS connection a client opens: a handshake record (RFC 8446 5.1)
TLS_HANDSHAKE_RECORD = 0x16
#: what a server answers, in clear text, a client that speaks plain TCP to it
PLAINTEXT_REPLY = b"ERR this port speaks TLS: connect with TLS (a tls: address), not plain TCP\n"

#: `TlsStream.send_all` encrypts and sends this much at a time, so a large send holds one
#: chunk of ciphertext in memory, not a copy of all of it
SEND_CHUNK = 64 * 1024


# -- the stream ------------------------------------------------------------------------------


def _broken(exc: OSError) -> trio.BrokenResourceError | trio.ClosedResourceError:
    """What trio's SocketStream raises for `exc`."""
    if exc.errno in (errno.EBADF, errno.ENOTSOCK):
        return trio.ClosedResourceError("this socket was already closed")
    broken = trio.BrokenResourceError(f"socket connection broken: {exc}")
    broken.__cause__ = exc
    return broken


class _Carrier(trio.abc.HalfCloseableStream):
    """The TCP stream under the TLS layer, which keeps what SSLStream sends until it is sent.

    After the handshake (`eager` False), `send_all` never waits: it gives the kernel what it
    takes at once and keeps the rest in `pending`, which `flush` sends. SSLStream thus never
    sees a send cancelled halfway through a record; `TlsStream` calls `flush`, and cancelling
    that keeps the unsent bytes for the next flush. During the handshake `send_all` waits
    for all of it, as SocketStream does (a cancelled handshake is broken anyway).
    """

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.pending = bytearray()
        self.eager = True
        self._flushing = False

    def _push(self) -> None:
        """Send what the kernel takes now, without waiting."""
        if self._flushing or not self.pending:
            return
        fd = self.stream.socket.fileno()
        if fd < 0:
            raise trio.ClosedResourceError("this socket was already closed")
        try:
            sent = os.write(fd, self.pending)
        except BlockingIOError:
            return
        except OSError as exc:
            raise _broken(exc) from None
        del self.pending[:sent]

    async def flush(self) -> None:
        """Send everything pending. Cancelled, it keeps what is not sent yet."""
        sock = self.stream.socket
        self._flushing = True
        try:
            while self.pending:
                fd = sock.fileno()
                if fd < 0:
                    raise trio.ClosedResourceError("this socket was already closed")
                try:
                    sent = os.write(fd, self.pending)
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(sock)
                    continue
                except OSError as exc:
                    raise _broken(exc) from None
                del self.pending[:sent]
        finally:
            self._flushing = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.pending += data
        if self.eager:
            await self.flush()
            return
        self._push()
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await self.flush()
        await self.stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.flush()
        await self.stream.send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        self._push()  # anything a read produced (a key update) and nobody flushed
        return await self.stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.stream.aclose()


def _is_eof(exc: BaseException | None) -> bool:
    """The peer closed (or reset) before the handshake finished, rather than TLS refusing it."""
    if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)):
        return True
    if isinstance(exc, ssl.SSLError):
        return "EOF" in str(exc).upper()
    return isinstance(exc, OSError) or exc is None


def _reason(exc: BaseException | None) -> str:
    """OpenSSL's reason in words: WRONG_VERSION_NUMBER -> wrong version number."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str):
        return reason.lower().replace("_", " ")
    return str(exc) if exc is not None else "the connection broke"


class TlsStream(trio.abc.HalfCloseableStream):
    """A TLS connection: `trio.SSLStream` over TCP, with the byte-stream contract whole
    (``send_eof``, a cancelled ``send_all`` that leaves the stream usable).

    ``transport_stream`` is the TCP `trio.SocketStream` under it (what `socket_of` reaches);
    ``socket``, ``setsockopt`` and ``getsockopt`` are that stream's, as on a SocketStream.
    """

    def __init__(self, tcp: trio.SocketStream, context: ssl.SSLContext, *, server_side: bool,
                 server_hostname: str | None = None, address: Address | None = None) -> None:
        self.transport_stream = tcp
        self._carrier = _Carrier(tcp)
        # https_compatible=False: aclose sends close_notify. A FIN without one still reads
        # as end of stream: OP_IGNORE_UNEXPECTED_EOF makes OpenSSL take it as a clean close
        self._ssl = trio.SSLStream(self._carrier, context, server_side=server_side,
                                   server_hostname=server_hostname, https_compatible=False)
        self._server_side = server_side
        self._address = address  # the client's: what it connected to
        self._handshook = False
        self._peeked = False  # a server has looked at the client's first bytes (`_refuse_plaintext`)
        self._sending = False
        self._eof_sent = False
        self._closed = False

    @property
    def socket(self) -> trio.socket.SocketType:
        return self.transport_stream.socket

    def setsockopt(self, level: int, option: int, value: int | bytes) -> None:
        self.transport_stream.setsockopt(level, option, value)

    def getsockopt(self, level: int, option: int, buffersize: int = 0) -> int | bytes:
        return self.transport_stream.getsockopt(level, option, buffersize)

    def version(self) -> str | None:
        """The TLS version agreed ("TLSv1.3"); None before the handshake."""
        if not self._handshook:
            return None
        version: str | None = self._ssl.version()
        return version

    def cipher(self) -> tuple[str, str, int] | None:
        """The cipher agreed: (name, protocol, secret bits); None before the handshake."""
        if not self._handshook:
            return None
        cipher: tuple[str, str, int] | None = self._ssl.cipher()
        return cipher

    # -- the handshake ------------------------------------------------------------------

    async def handshake(self) -> bool:
        """Finish the handshake if it is not done. False when the peer (a client) left
        before it began; TransportError, naming the fix, when it failed."""
        if self._handshook:
            return True
        if self._server_side and not self._peeked:
            self._peeked = True
            await self._refuse_plaintext()
        try:
            await self._ssl.do_handshake()
        except trio.BrokenResourceError as exc:
            cause = exc.__cause__
            if _is_eof(cause):
                if self._server_side:
                    return False  # a client that left before saying anything
                # the peer vanished: the stream contract's BrokenResourceError, whose cause
                # translate_os_errors reads as a reset
                broken = trio.BrokenResourceError(f"{self._address} closed the connection during the TLS "
                                                  f"handshake (is it a TLS server?)")
                broken.__cause__ = OSError(errno.ECONNRESET, str(broken))
                raise broken from None
            error = self._handshake_error(cause)
            if self._server_side:
                log.info("%s", error)
            raise error from exc
        self._handshook = True
        self._carrier.eager = False
        return True

    async def _refuse_plaintext(self) -> None:
        """A server's first look at what a client sent: a TLS connection begins with a
        handshake record (byte 0x16). Anything else is a client speaking plain TCP to this TLS
        port ("2 3\\n"), which OpenSSL would take for the start of a record and wait on for
        ever, the client waiting with it: say so in the log, tell the client in clear text,
        and close. Raises TransportError then."""
        try:
            first = await self.transport_stream.socket.recv(64, socket.MSG_PEEK)
        except OSError:
            return  # the handshake will find the same
        if not first or first[0] == TLS_HANDSHAKE_RECORD:
            return
        error = TransportError(f"{self._peer()} sent plaintext to this TLS port ({first[:24]!r}): it does not "
                               f"speak TLS; connect with TLS (a tls: address), or serve plain tcp: for it")
        log.warning("%s", error)
        with contextlib.suppress(OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            with trio.move_on_after(1.0):
                await self.transport_stream.send_all(PLAINTEXT_REPLY)
        raise error

    def _peer(self) -> str:
        try:
            return format_sockaddr("tls", self.transport_stream.socket.getpeername())
        except OSError:
            return "a peer that is gone"

    def _handshake_error(self, cause: BaseException | None) -> TransportError:
        """What a handshake that TLS refused (not one the peer left) means, and its fix."""
        why = _reason(cause)
        if self._server_side:
            return TransportError(f"TLS handshake with {self._peer()} failed: {why} (does the client speak TLS, "
                                  f"and trust this server's CA?)")
        where = str(self._address)
        if isinstance(cause, ssl.SSLCertVerificationError):
            ca = self._address.str_option("ca") if self._address is not None else None
            if ca is None:
                hint = ("checked against this system's trusted CAs: pass ?ca=FILE with the CA that signed "
                        "it (a netlab server prints its own in its address), or ?insecure=1 to skip the check")
            else:
                hint = f"is {ca} the CA that signed this server's certificate? (a netlab server prints its own)"
            return TransportError(f"cannot verify the server {where}: certificate verify failed: "
                                  f"{cause.verify_message}; {hint}")
        return TransportError(f"TLS handshake with {where} failed: {why} (is it a TLS server? one that "
                              f"speaks plain TCP answers in clear text)")

    # -- the byte-stream contract -------------------------------------------------------

    @contextlib.contextmanager
    def _send_side(self) -> Iterator[None]:
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this stream")
        self._sending = True
        try:
            yield
        finally:
            self._sending = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with self._send_side():
            if self._closed:
                raise trio.ClosedResourceError("this stream was already closed")
            if self._eof_sent:
                raise trio.ClosedResourceError("cannot send after send_eof")
            if not await self.handshake():
                raise trio.BrokenResourceError("the peer closed the connection before the TLS handshake")
            if len(data) <= SEND_CHUNK:
                await self._ssl.send_all(data)
                await self._carrier.flush()
                return
            view = memoryview(data)
            for start in range(0, len(view), SEND_CHUNK):
                await self._ssl.send_all(view[start : start + SEND_CHUNK])
                await self._carrier.flush()

    async def wait_send_all_might_not_block(self) -> None:
        with self._send_side():
            if self._closed:
                raise trio.ClosedResourceError("this stream was already closed")
            await self._carrier.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        """Send what is pending, then shut down the TCP write side (no close_notify: see the
        module docstring). The peer reads end of stream, and may go on sending."""
        with self._send_side():
            if self._closed:
                raise trio.ClosedResourceError("this stream was already closed")
            if self._eof_sent:
                await trio.lowlevel.checkpoint()
                return
            await self.handshake()  # a FIN before it would cost the server its handshake
            self._eof_sent = True
            await self._carrier.send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if max_bytes is not None:
            max_bytes = operator.index(max_bytes)
            if max_bytes < 1:
                raise ValueError("max_bytes must be >= 1")
        if self._closed:
            raise trio.ClosedResourceError("this stream was already closed")
        if not self._handshook and not await self.handshake():
            await trio.lowlevel.checkpoint()
            return b""
        return await self._ssl.receive_some(max_bytes)

    async def aclose(self) -> None:
        """Send close_notify where it can go at once (after the handshake, before send_eof,
        with no send in progress), then close the TCP connection; never waits for the peer."""
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        if self._handshook and not self._eof_sent and not self._sending:
            await self._ssl.aclose()
        else:
            await self._carrier.aclose()


class _TlsListener(trio.abc.Listener[TlsStream]):
    """A TCP listener whose connections come out as `TlsStream` (the handshake comes later,
    in the connection's own task)."""

    def __init__(self, tcp: trio.SocketListener, context: ssl.SSLContext) -> None:
        self.tcp = tcp
        self.socket = tcp.socket  # for Listeners.refuse
        self.context = context

    async def accept(self) -> TlsStream:
        return TlsStream(await self.tcp.accept(), self.context, server_side=True)

    async def aclose(self) -> None:
        await self.tcp.aclose()


class TlsTransport(StreamTransport):
    """``tls:``: TCP (IPv4 or IPv6, by host) and TLS on top, by composition with `TcpTransport`."""

    target = "inet"
    socktype = socket.SOCK_STREAM
    protocol = socket.IPPROTO_TCP
    options = TcpTransport.options | TLS_OPTIONS
    encrypted = True

    def __init__(self, scheme: str = "tls", *, compare: str | None = None) -> None:
        self.scheme = scheme
        self._tcp = TcpTransport(scheme, None)
        self.family = self._tcp.family
        self.summary = "TLS over TCP (IPv4 or IPv6, by host): reliable, ordered, encrypted byte stream"
        self.compare_address = compare

    async def listen(self, address: Address) -> Listeners[TlsStream]:
        context, ca = server_context(address)
        tcp = await self._tcp.listen(address)
        listeners: list[trio.abc.Listener[TlsStream]] = []
        for listener in tcp.listeners:
            assert isinstance(listener, trio.SocketListener)  # the tcp transport's
            listeners.append(_TlsListener(listener, context))
        return Listeners(self, address, listeners, [_for_clients(bound, ca) for bound in tcp.bound])

    async def connect(self, address: Address) -> TlsStream:
        context = client_context(address)
        tcp = await self._tcp.connect(address)
        host = (address.host or "").partition("%")[0]  # an IP is checked against the IP SANs
        return TlsStream(tcp, context, server_side=False, server_hostname=host, address=address)

    def option_default(self, name: str, address: Address) -> OptionDefault | None:
        return TLS_DEFAULTS.get(name) or inet_option_default(self, name, address)

    def plan(self, address: Address, resolved: Sequence[SockInfo] | None) -> Plan:
        """`TcpTransport`'s calls, with the certificates before and the handshake after."""
        server, client = tcp_calls(self._tcp, address, resolved)
        server = [server_certificate_call(address), *server,
                  "accept() in a loop (trio.serve_listeners); each connection is served on its own",
                  "TLS handshake in the connection's own task, at its first receive or send (do_handshake): "
                  "presents the certificate; a client that leaves before it is not an error",
                  "receive_some() / send_all(): TLS records over the TCP connection; close: close_notify when "
                  "it can go at once, then close()"]
        if address.host != "*":
            trust, check = client_trust_calls(address)
            client = [trust, *client, f"TLS handshake at the first send or receive (do_handshake): {check}",
                      "send_all() / receive_some(): TLS records over the TCP connection; shutdown(SHUT_WR) to "
                      "half-close, with no close_notify (the peer reads end of stream and may still send)"]
        return Plan(server, client)


def _for_clients(bound: Address, ca: str | None) -> Address:
    """A server's bound address as a client needs it: no cert/key, the CA file when known."""
    options = dict((k, v) for k, v in bound.options if k not in ("cert", "key", "ca"))
    if ca is not None:
        options["ca"] = ca
    return replace(bound, options=tuple(sorted(options.items())))
