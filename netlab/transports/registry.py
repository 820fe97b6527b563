"""The transport registry: the one list of transports, one line per scheme.

A new transport is one module and one line here; everything else reads what each transport
declares about itself (`base.Transport`): ``compare``, ``bench`` and the conformance suite
take the transports with a `compare_address` (`COMPARE_SCHEMES`), ``netlab resolve`` and
``netlab check`` name a kernel socket by `kernel_scheme`, ``netlab addr explain`` prints
each transport's own `plan`, and OS errors are worded from the address's transport.

`get_transport` is the one way from a name (an address's ``scheme``) to its transport.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping

from ..errors import TransportError, UnknownNameError
from .oserrors import describe_os_error as _describe_os_error
from .oserrors import translate_os_errors as _translate_os_errors
from .addresses import Address, parse_with
from .base import Transport
from .tcp import TcpTransport
from .tls import TlsTransport
from .udp import UdpTransport
from .unix import UnixStreamTransport
from .unix_dgram import UnixDatagramTransport
from .unix_seq import UnixSeqpacketTransport

TRANSPORTS: dict[str, Transport] = {
    "tcp": TcpTransport("tcp", None, compare="tcp:127.0.0.1:0"),
    "tcp4": TcpTransport("tcp4", socket.AF_INET),
    "tcp6": TcpTransport("tcp6", socket.AF_INET6, compare="tcp6:[::1]:0"),
    "tls": TlsTransport(compare="tls:127.0.0.1:0"),
    "udp": UdpTransport("udp", None, compare="udp:127.0.0.1:0"),
    "udp4": UdpTransport("udp4", socket.AF_INET),
    "udp6": UdpTransport("udp6", socket.AF_INET6, compare="udp6:[::1]:0"),
    "unix": UnixStreamTransport(),
    "unix-dgram": UnixDatagramTransport(),
    "unix-seq": UnixSeqpacketTransport(),
}


def get_transport(scheme: str) -> Transport:
    """The transport of a scheme: ``get_transport(address.scheme)``. Raises UnknownNameError."""
    try:
        return TRANSPORTS[scheme]
    except KeyError:
        raise UnknownNameError(f"unknown transport {scheme!r} (known: {', '.join(TRANSPORTS)})") from None


def parse_address(text: str | Address) -> Address:
    """Parse an address in any registered scheme (an `Address` is returned as is). Raises AddressError."""
    return parse_with(text, TRANSPORTS)


class _Compared(Mapping[str, str]):
    """`COMPARE_SCHEMES`: the registry, filtered on `Transport.compare_address`, read when used
    (a transport registered later is in it)."""

    def _items(self) -> dict[str, str]:
        return {name: t.compare_address for name, t in TRANSPORTS.items() if t.compare_address is not None}

    def __getitem__(self, name: str) -> str:
        return self._items()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())

    def __repr__(self) -> str:
        return f"COMPARE_SCHEMES({self._items()!r})"


#: one of each socket variant, as ``compare``, ``bench`` and the conformance suite put them
#: side by side: scheme -> address template (``{dir}`` is a private temporary directory)
COMPARE_SCHEMES: Mapping[str, str] = _Compared()


def kernel_scheme(family: int, socktype: int, protocol: int = 0) -> str | None:
    """The scheme that names a kernel socket of this family, type and protocol, as getaddrinfo
    and /proc/net list it (AF_INET6, SOCK_STREAM, IPPROTO_TCP: ``tcp6``); None when no
    transport has it. The first such transport in the registry: one of a fixed family (not
    ``tcp``, which follows the host) and that is the socket as it is (not ``tls``)."""
    for name, transport in TRANSPORTS.items():
        if (transport.family == family and transport.socktype == socktype and not transport.encrypted
                and transport.protocol == protocol):
            return name
    return None


def translate_os_errors(what: object, op: str, transport: Transport | None = None) -> _translate_os_errors:
    """`oserrors.translate_os_errors` for code above the transports: an `Address`'s own
    transport words the error, unless `transport` is given."""
    if transport is None and isinstance(what, Address):
        transport = TRANSPORTS.get(what.scheme)
    return _translate_os_errors(what, op, transport)


def describe_os_error(exc: OSError, what: object, op: str, transport: Transport | None = None) -> TransportError:
    """`oserrors.describe_os_error`, with an `Address`'s own transport when none is given."""
    if transport is None and isinstance(what, Address):
        transport = TRANSPORTS.get(what.scheme)
    return _describe_os_error(exc, what, op, transport)


__all__ = ["COMPARE_SCHEMES", "TRANSPORTS", "describe_os_error", "get_transport", "kernel_scheme", "parse_address",
           "translate_os_errors"]
