"""The one place where OS errors become netlab errors (after trio's
``_highlevel_socket.py::_translate_socket_errors_to_stream_errors`` and httpx's
``map_httpcore_exceptions``).

`translate_os_errors` is a context manager the transports wrap around their socket calls;
code that reports a failure as a fact instead of raising it (``netlab host``, ``netlab addr
explain``) gets the same words from `describe_os_error`. Each message names the address
involved and, where the OS error is cryptic, what it means in practice. What it means
depends on the *transport*, never on the address's text: a transport with ports
(``target == "inet"``) is told that ports below 1024 need root; one with socket files
(``target == "unix"``) is told which directory or file is missing; a refusal is worded
by the transport itself (`Transport.refused_why`: UDP hears it as ICMP port unreachable).

Inside ``transports/`` each call passes its transport; code above passes an `Address` and
lets ``netlab.transports.translate_os_errors`` find the transport in the registry (this
module cannot: the transports import it).

It also unwraps trio's `BrokenResourceError`, whose ``__cause__`` holds the OSError that
broke the stream, and the ``UnicodeError`` that ``getaddrinfo`` raises for a host name IDNA
cannot encode (a label over 63 characters, an empty label).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from typing import Literal

import trio

from ..errors import (
    AddressInUseError, AddressUnavailableError, ConnectionRefusedError, ConnectionResetError, MessageTooLargeError,
    NetlabError, PermissionDeniedError, ResolveError, TimeoutError, TransportError,
)
from .addresses import Address
from .base import Transport


def missing_directory(path: str) -> str | None:
    """Why no file can be made at `path` for want of its directory, naming the first part of
    the path that is missing (or is not a directory); None when its directory is there."""
    parent = os.path.dirname(path) or "."
    if os.path.isdir(parent):
        return None
    first_missing, above = None, parent
    while not os.path.lexists(above):
        first_missing, up = above, os.path.dirname(above)
        if not up or up == above:
            break
        above = up
    if os.path.lexists(above) and not os.path.isdir(above):
        return f"{above} is not a directory"
    if first_missing is None or first_missing == parent:
        return f"directory {parent} does not exist"
    return f"directory {first_missing} does not exist (nor {parent} in it)"


def _loopback_hint(where: object, transport: Transport | None) -> str:
    """For "refused" from an inet address that is not loopback: the server may listen on
    loopback only, which no other address reaches. Empty for loopback and non-inet targets."""
    if transport is None or transport.target != "inet" or not isinstance(where, Address):
        return ""
    host, port, scheme = where.host, where.port, where.scheme
    if host is None or host in ("localhost", "*"):
        return ""
    try:
        if ipaddress.ip_address(host.partition("%")[0]).is_loopback:
            return ""
        every = "[::]" if ":" in host else "0.0.0.0"
    except ValueError:  # a host name: it may name this machine's or another's outside address
        every = "0.0.0.0"
    return (f"; if the server listens on loopback only (127.0.0.1, ::1, or no host: {scheme}:{port}), it cannot "
            f"be reached at {host}: serve on every interface with {scheme}:{every}:{port} (then anyone who can "
            f"reach that machine can connect)")


def _describe(exc: OSError, what: str, op: str, where: object, transport: Transport | None) -> TransportError:
    """Map one OSError to the netlab error that explains it. `what` is the address text,
    `where` the address itself when there is one (its host or path sharpens the message),
    `transport` the transport it belongs to, when known (the hints depend on it)."""
    code = exc.errno
    reason = exc.strerror or str(exc)
    target = transport.target if transport is not None else None
    if isinstance(exc, socket.gaierror):
        hint = ""
        if code == socket.EAI_SERVICE:
            hint = " (no such service name for this socket type in /etc/services)"
        return ResolveError(f"cannot resolve {what}: {reason}{hint}", errno=code)
    if code == errno.EADDRINUSE:
        return AddressInUseError(f"cannot bind {what}: address already in use", errno=code)
    if code in (errno.EACCES, errno.EPERM):
        hint = ""
        if op == "bind" and target == "inet":
            hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        return PermissionDeniedError(f"cannot {op} {what}: permission denied{hint}", errno=code)
    if code == errno.EADDRNOTAVAIL:
        return AddressUnavailableError(
            f"cannot {op} {what}: that address is not available on this machine", errno=code
        )
    if code == errno.ECONNREFUSED:
        why = transport.refused_why if transport is not None else Transport.refused_why
        return ConnectionRefusedError(f"connection refused by {what}: {why}{_loopback_hint(where, transport)}",
                                      errno=code)
    path = where.path if isinstance(where, Address) else None
    if code in (errno.ENOENT, errno.ENOTDIR) and (path is not None or target == "unix"):
        missing = missing_directory(path) if path is not None else None
        error = ConnectionRefusedError if op in ("connect to", "send to") else TransportError
        if missing is not None:
            return error(f"cannot {op} {what}: {missing}", errno=code)
        return error(f"cannot {op} {what}: no such socket file (is the server running?)", errno=code)
    if code in (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN):
        return ConnectionResetError(f"connection to {what} was reset by the peer", errno=code)
    if code == errno.EMSGSIZE:
        return MessageTooLargeError(f"datagram too large for {what}: {reason}", errno=code)
    if code in (errno.ETIMEDOUT,):
        return TimeoutError(f"{op} {what} timed out", errno=code)
    if code in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return ConnectionRefusedError(f"cannot {op} {what}: {reason}", errno=code)
    return TransportError(f"cannot {op} {what}: {reason}", errno=code)


def describe_os_error(exc: OSError, what: object, op: str, transport: Transport | None = None) -> TransportError:
    """The netlab error that explains `exc` (without raising it): same words as `translate_os_errors`."""
    return _describe(exc, str(what), op, what, transport)


class translate_os_errors:  # lower case: used like a function: ``with translate_os_errors(...)``
    """Run a block of socket calls; re-raise OS errors as netlab errors naming `what`.

    `what` is usually an `Address` (its canonical text is used); `op` is the verb for the
    message ("bind", "connect", "send to", "receive from"); `transport` is the transport
    the socket belongs to (None: the hints that depend on it are left out).

    A class rather than a generator-based context manager: it wraps every datagram a
    server receives, and entering and leaving this costs a third of what a
    ``@contextlib.contextmanager`` does.
    """

    __slots__ = ("what", "op", "transport")

    def __init__(self, what: object, op: str, transport: Transport | None = None) -> None:
        self.what = what
        self.op = op
        self.transport = transport

    def __enter__(self) -> None:
        return None

    def __exit__(self, etype: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> Literal[False]:
        if exc is None or isinstance(exc, NetlabError):
            return False
        if isinstance(exc, trio.BrokenResourceError):
            cause = exc.__cause__
            if isinstance(cause, OSError):
                raise _describe(cause, str(self.what), self.op, self.what, self.transport) from exc
            raise ConnectionResetError(f"connection to {self.what} is broken") from exc
        if isinstance(exc, OSError):
            raise _describe(exc, str(self.what), self.op, self.what, self.transport) from exc
        if isinstance(exc, UnicodeError) and self.op == "resolve":
            # getaddrinfo IDNA-encodes host names before asking the resolver
            raise ResolveError(f"cannot resolve {self.what}: not a valid host name "
                               f"(each dot-separated label must be 1 to 63 characters)") from exc
        return False


__all__ = ["describe_os_error", "missing_directory", "translate_os_errors"]
