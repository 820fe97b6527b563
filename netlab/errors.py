"""netlab's exceptions, and the one place where OS errors become netlab errors.

The tree::

    NetlabError                    every error netlab raises on purpose (the CLI exits 1)
    ├── UsageError                 the command asked for something it cannot have (the CLI exits 2)
    │   ├── AddressError (ValueError)  an address string that does not parse or is not allowed
    │   ├── ImpairmentError (ValueError)  an impairment setting out of range, or for the wrong kind
    │   └── ServiceOptionError (ValueError)  a service option (--framing, --accept) that does not
    │                              parse, or that the service or transport does not take
    ├── UnknownNameError (LookupError)  a name not in its registry: service, transport, constant prefix
    ├── TransportError             a socket operation failed; the message says why
    │   ├── ResolveError           getaddrinfo could not resolve a host or service
    │   ├── AddressInUseError      bind: the address, path or abstract name is taken
    │   ├── PermissionDeniedError  EACCES / EPERM (a privileged port, a directory we cannot write)
    │   ├── AddressUnavailableError  EADDRNOTAVAIL: that address is not on this machine
    │   ├── ConnectionRefusedError connect/send: nothing listens there (TCP RST, ICMP port
    │   │                          unreachable on a connected UDP socket, ECONNREFUSED/ENOENT on unix)
    │   ├── ConnectionResetError   the peer reset or vanished mid-conversation
    │   ├── MessageTooLargeError   a datagram over the transport's limit (EMSGSIZE)
    │   └── TimeoutError           no reply within the caller's timeout
    ├── KernelModeError            --kernel cannot run here; the message says what is missing
    │   ├── PrivilegeError         not root, and no CAP_NET_ADMIN + CAP_SYS_ADMIN
    │   └── MissingToolError       unshare, nft, ip or tc is not installed (names the package)
    ├── BenchError                 the bench could not run: a server did not start, the load
    │                              generator failed
    └── OutputError                a --json or --plot file cannot be written

    KeyboardInterrupt
    └── Interrupted                a second SIGINT/SIGTERM stopped a drain at once (the CLI exits 130)

Exit codes come from this tree, nowhere else: `exit_code` maps a `UsageError` to 2, every
other `NetlabError` to 1, and an interruption (Ctrl-C, `Interrupted`) to 130. Each message
names the address involved and, where the OS error is cryptic, what it means in practice.

This module imports only the standard library's ``errno`` at its top, so that the sans-IO
services can raise netlab errors without loading trio or socket; the translation below
imports them when it runs.

OS errors are translated in exactly one place, `translate_os_errors`, a context manager
the transports wrap around their socket calls. It also unwraps trio's
`BrokenResourceError`, whose ``__cause__`` holds the OSError that broke the stream, and
the ``UnicodeError`` that ``getaddrinfo`` raises for a host name IDNA cannot encode (a
label over 63 characters, an empty label). Code that reports a failure as a fact instead
of raising it (``netlab host``) gets the same words from `describe_os_error`.
"""

from __future__ import annotations

import errno
from typing import ClassVar, Literal, cast

__all__ = [
    "NetlabError",
    "UsageError",
    "AddressError",
    "ImpairmentError",
    "ServiceOptionError",
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
    "KernelModeError",
    "PrivilegeError",
    "MissingToolError",
    "BenchError",
    "OutputError",
    "Interrupted",
    "exit_code",
    "netlab_error",
    "translate_os_errors",
    "describe_os_error",
    "missing_directory",
]


class NetlabError(Exception):
    """Base class of every error netlab raises on purpose: a runtime failure (exit 1)."""

    #: what the `netlab` command exits with when this error stops it
    exit_code: ClassVar[int] = 1


class UsageError(NetlabError):
    """The command asked for something it cannot have, found before or once running (exit 2)."""

    exit_code: ClassVar[int] = 2


class AddressError(UsageError, ValueError):
    """An address that does not follow the grammar, or asks for something not allowed."""


class ImpairmentError(UsageError, ValueError):
    """An impairment setting out of range, or one the transport's kind cannot take
    (loss on a stream relay; a kernel rule that cannot be made)."""


class ServiceOptionError(UsageError, ValueError):
    """A service option that does not parse (``--framing quiet:x``), or that this service or
    transport does not take (framing for echo, or on datagrams)."""


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


class KernelModeError(NetlabError):
    """Kernel mode (a private network namespace with nftables/tc) cannot run here."""


class PrivilegeError(KernelModeError):
    """A private namespace cannot be made here: not root, and no user namespaces (`netlab.netns`)."""


class MissingToolError(KernelModeError):
    """A program kernel mode runs (unshare, nft, ip, tc) is not installed."""


class BenchError(NetlabError):
    """The bench could not run: a server did not start, the load generator failed..."""


class OutputError(NetlabError):
    """A --json or --plot file cannot be written (its directory is missing, the disk is full)."""


class Interrupted(KeyboardInterrupt):
    """A second SIGINT/SIGTERM stopped a drain at once. A KeyboardInterrupt, as Ctrl-C is to
    Python: what was stopped was already said, so the CLI prints nothing more (exit 130)."""


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def netlab_error(exc: BaseException) -> NetlabError | None:
    """The netlab error `exc` is, or, for an exception group (what trio raises out of a
    nursery), its first when every exception in it is one; else None."""
    leaves = _leaves(exc)
    if all(isinstance(leaf, NetlabError) for leaf in leaves):
        return cast(NetlabError, leaves[0])  # the check above, which mypy cannot carry over
    return None


def exit_code(exc: BaseException) -> int | None:
    """The `netlab` command's exit status for `exc`: 2 for a `UsageError`, 1 for any other
    `NetlabError`, 130 for an interruption (every exception of a group must agree); None
    for anything else: a bug, whose traceback should show."""
    if all(isinstance(leaf, KeyboardInterrupt) for leaf in _leaves(exc)):
        return 130
    error = netlab_error(exc)
    return None if error is None else error.exit_code


def missing_directory(path: str) -> str | None:
    """Why no file can be made at `path` for want of its directory, naming the first part of
    the path that is missing (or is not a directory); None when its directory is there."""
    import os

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


def _loopback_hint(where: object) -> str:
    """For "refused" from an inet address that is not loopback: the server may listen on
    loopback only, which no other address reaches. Empty for loopback and non-inet targets."""
    import ipaddress

    host, port, scheme = (getattr(where, name, None) for name in ("host", "port", "scheme"))
    if not isinstance(host, str) or host in ("localhost", "*"):
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


def _describe(exc: OSError, what: str, op: str, where: object = None) -> TransportError:
    """Map one OSError to the netlab error that explains it. `what` is the address text,
    `where` the address itself when there is one (its host or path sharpens the message)."""
    import socket  # here, not at the top: the sans-IO services import this module

    code = exc.errno
    reason = exc.strerror or str(exc)
    if isinstance(exc, socket.gaierror):
        hint = ""
        if code == socket.EAI_SERVICE:
            hint = " (no such service name for this socket type in /etc/services)"
        return ResolveError(f"cannot resolve {what}: {reason}{hint}", errno=code)
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
        return ConnectionRefusedError(f"connection refused by {what}: {why}{_loopback_hint(where)}", errno=code)
    path = getattr(where, "path", None)
    if code in (errno.ENOENT, errno.ENOTDIR) and (isinstance(path, str) or what.startswith("unix")):
        missing = missing_directory(path) if isinstance(path, str) else None
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


def describe_os_error(exc: OSError, what: object, op: str) -> TransportError:
    """The netlab error that explains `exc` (without raising it): same words as `translate_os_errors`."""
    return _describe(exc, str(what), op, what)


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

    def __exit__(self, etype: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> Literal[False]:
        if exc is None or isinstance(exc, NetlabError):
            return False
        import trio  # loaded already by whoever makes socket calls; a dict lookup from here

        if isinstance(exc, trio.BrokenResourceError):
            cause = exc.__cause__
            if isinstance(cause, OSError):
                raise _describe(cause, str(self.what), self.op, self.what) from exc
            raise ConnectionResetError(f"connection to {self.what} is broken") from exc
        if isinstance(exc, OSError):
            raise _describe(exc, str(self.what), self.op, self.what) from exc
        if isinstance(exc, UnicodeError) and self.op == "resolve":
            # getaddrinfo IDNA-encodes host names before asking the resolver
            raise ResolveError(f"cannot resolve {self.what}: not a valid host name "
                               f"(each dot-separated label must be 1 to 63 characters)") from exc
        return False
