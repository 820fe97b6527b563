"""netlab's exceptions and the exit codes they mean: nothing else.

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

This module imports nothing but the standard library's ``typing``, so that the sans-IO
services can raise netlab errors without loading trio or socket.

OS errors become these errors in one place beside the transports,
`netlab.transports.oserrors.translate_os_errors` (``netlab.transports.translate_os_errors``
above them), which words each from the transport the address belongs to, never from the
address's text.
"""

from __future__ import annotations

from typing import ClassVar, cast

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


class ConnectionRefusedError(TransportError):  # deliberately netlab's own, shadowing the builtin
    pass


class ConnectionResetError(TransportError):  # netlab's own, as above
    pass


class MessageTooLargeError(TransportError):
    pass


class TimeoutError(TransportError):  # netlab's own, as above
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
