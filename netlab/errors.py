"""netlab's exceptions, and the one place where OS errors become netlab errors.

The tree::

    NetlabError                    every error netlab raises on purpose
    ├── AddressError (ValueError)  an address string that does not parse or is not allowed
    ├── UnknownNameError (KeyError-like lookups: unknown service, unknown transport)
    └── TransportError             a socket operation failed; the message says why
        ├── ResolveError           getaddrinfo could not resolve a host or service
        ├── AddressInUseError      bind: the address, path or abstract name is taken
        ├── PermissionDeniedError  EACCES / EPERM (a privileged port, a directory we cannot write)
        ├── AddressUnavailableError  EADDRNOTAVAIL: that address is not on this machine
        ├── ConnectionRefusedError connect/send: nothing listens there (TCP RST, ICMP port
        │                          unreachable on a connected UDP socket, ECONNREFUSED/ENOENT on unix)
        ├── ConnectionResetError   the peer reset or vanished mid-conversation
        ├── MessageTooLargeError   a datagram over the transport's limit (EMSGSIZE)
        └── TimeoutError           no reply within the caller's timeout

`AddressError` is a usage error (the CLI exits 2); every `TransportError` is a runtime
failure (the CLI exits 1). Each message names the address involved and, where the OS error
is cryptic, what it means in practice.

OS errors are translated in exactly one place, `translate_os_errors`, a context manager
the transports wrap around their socket calls. It also unwraps trio's
`BrokenResourceError`, whose ``__cause__`` holds the OSError that broke the stream.
"""

from __future__ import annotations

import errno
import socket

import trio

__all__ = [
    "NetlabError",
    "AddressError",
    "UnknownNameError",
    "TransportError",
    "ResolveError",
    "AddressInUseError",
    "PermissionDeniedError",
    "AddressUnavailableError",
    "ConnectionRefusedError",
    "ConnectionResetError",
    "MessageTooLargeError",
    "TimeoutError",
    "translate_os_errors",
]


class NetlabError(Exception):
    """Base class of every error netlab raises on purpose."""


class AddressError(NetlabError, ValueError):
    """An address that does not follow the grammar, or asks for something not allowed."""


class UnknownNameError(NetlabError, LookupError):
    """A name (service, transport scheme) that is not in its registry."""


class TransportError(NetlabError):
    """A socket operation failed. ``errno`` holds the OS error number when there was one."""

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class ResolveError(TransportError):
    pass


class AddressInUseError(TransportError):
    pass


class PermissionDeniedError(TransportError):
    pass


class AddressUnavailableError(TransportError):
    pass


class ConnectionRefusedError(TransportError):  # noqa: A001 - deliberately netlab's own
    pass


class ConnectionResetError(TransportError):  # noqa: A001
    pass


class MessageTooLargeError(TransportError):
    pass


class TimeoutError(TransportError):  # noqa: A001
    pass


def _describe(exc: OSError, what: str, op: str) -> TransportError:
    """Map one OSError to the netlab error that explains it. `what` is the address text."""
    code = exc.errno
    reason = exc.strerror or str(exc)
    if isinstance(exc, socket.gaierror):
        return ResolveError(f"cannot resolve {what}: {reason}", errno=code)
    if code == errno.EADDRINUSE:
        return AddressInUseError(f"cannot bind {what}: address already in use", errno=code)
    if code in (errno.EACCES, errno.EPERM):
        hint = ""
        if op == "bind" and ("tcp" in what or "udp" in what):
            hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        return PermissionDeniedError(f"cannot {op} {what}: permission denied{hint}", errno=code)
    if code == errno.EADDRNOTAVAIL:
        return AddressUnavailableError(
            f"cannot {op} {what}: that address is not available on this machine", errno=code
        )
    if code == errno.ECONNREFUSED:
        if what.startswith("udp"):
            why = "port unreachable (ICMP): nothing is listening there"
        else:
            why = "nothing is listening there"
        return ConnectionRefusedError(f"connection refused by {what}: {why}", errno=code)
    if code == errno.ENOENT and what.startswith("unix"):
        return ConnectionRefusedError(
            f"cannot {op} {what}: no such socket file (is the server running?)", errno=code
        )
    if code in (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN):
        return ConnectionResetError(f"connection to {what} was reset by the peer", errno=code)
    if code == errno.EMSGSIZE:
        return MessageTooLargeError(f"datagram too large for {what}: {reason}", errno=code)
    if code in (errno.ETIMEDOUT,):
        return TimeoutError(f"{op} {what} timed out", errno=code)
    if code in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return ConnectionRefusedError(f"cannot {op} {what}: {reason}", errno=code)
    return TransportError(f"cannot {op} {what}: {reason}", errno=code)


class translate_os_errors:  # noqa: N801 - used like a function: ``with translate_os_errors(...)``
    """Run a block of socket calls; re-raise OS errors as netlab errors naming `what`.

    `what` is usually an `Address` (its canonical text is used); `op` is the verb for the
    message ("bind", "connect", "send to", "receive from").

    A class rather than a generator-based context manager: it wraps every datagram a
    server receives, and entering and leaving this costs a third of what a
    ``@contextlib.contextmanager`` does.
    """

    __slots__ = ("what", "op")

    def __init__(self, what: object, op: str) -> None:
        self.what = what
        self.op = op

    def __enter__(self) -> None:
        return None

    def __exit__(self, etype: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if exc is None or isinstance(exc, NetlabError):
            return False
        if isinstance(exc, trio.BrokenResourceError):
            cause = exc.__cause__
            if isinstance(cause, OSError):
                raise _describe(cause, str(self.what), self.op) from exc
            raise ConnectionResetError(f"connection to {self.what} is broken") from exc
        if isinstance(exc, OSError):
            raise _describe(exc, str(self.what), self.op) from exc
        return False
