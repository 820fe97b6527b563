"""``getaddrinfo`` as the lecture's ``get_address_info``, with every row in netlab's address syntax.

Each row of `resolve` is one ``getaddrinfo`` result: family, type and protocol by name, the
canonical name (only asked for with ``canonical=True``, i.e. ``AI_CANONNAME``; the resolver
puts it on the first row only), the socket address as the kernel gives it, and the same
address as netlab text. The scheme is chosen so the row pastes back into ``--transport``
exactly: ``tcp4``/``tcp6`` for SOCK_STREAM + IPPROTO_TCP, ``udp4``/``udp6`` for SOCK_DGRAM +
IPPROTO_UDP. A row netlab has no transport for (glibc adds a SOCK_RAW row for a numeric
port) has no address, and says why.

``family="unix"``: ``getaddrinfo`` only knows AF_INET and AF_INET6 (asking it for AF_UNIX
fails with EAI_FAMILY). A unix socket address needs no lookup: it *is* the path (or, after
``@``, the abstract name). So HOST is taken as that path and the rows are the two unix
transports that could use it, ``unix:`` and ``unix-dgram:``, with a note saying no resolver
was asked. A SERVICE makes no sense there and is refused.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import trio

from ..errors import AddressError, ResolveError
from ..transports import kernel_scheme, parse_address, translate_os_errors
from ..transports.addresses import format_sockaddr
from .constants import name_of

#: ``--family`` spellings -> address family
FAMILIES: dict[str, socket.AddressFamily] = {
    "4": socket.AF_INET, "inet": socket.AF_INET, "ipv4": socket.AF_INET,
    "6": socket.AF_INET6, "inet6": socket.AF_INET6, "ipv6": socket.AF_INET6,
    "unix": socket.AF_UNIX,
}
#: ``--type`` spellings -> socket type
TYPES: dict[str, socket.SocketKind] = {"stream": socket.SOCK_STREAM, "dgram": socket.SOCK_DGRAM}

UNIX_NOTE = ("getaddrinfo does not resolve AF_UNIX: a unix socket's address is its path (or @abstract "
             "name), so HOST was taken as that, and no resolver was asked")


@dataclass(frozen=True)
class ResolveRow:
    family: str  # "AF_INET6"
    type: str  # "SOCK_DGRAM"
    protocol: str  # "IPPROTO_UDP"
    canonname: str
    sockaddr: object  # as getaddrinfo returns it: (host, port) or (host, port, flowinfo, scope_id) or a path
    address: str | None  # netlab text that pastes into --transport; None if netlab has no such transport
    numbers: tuple[int, int, int]  # family, type, protocol as numbers
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        sockaddr = list(self.sockaddr) if isinstance(self.sockaddr, tuple) else self.sockaddr
        return {"family": self.family, "type": self.type, "protocol": self.protocol,
                "canonname": self.canonname, "sockaddr": sockaddr, "address": self.address,
                "numbers": dict(zip(("family", "type", "protocol"), self.numbers)), "note": self.note}


@dataclass(frozen=True)
class Resolution:
    host: str
    service: str | None
    call: str  # the getaddrinfo call made, as Python
    rows: tuple[ResolveRow, ...]
    notes: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        return {"host": self.host, "service": self.service, "call": self.call,
                "rows": [row.as_dict() for row in self.rows], "notes": list(self.notes)}


def parse_family(value: str | int | None) -> socket.AddressFamily | None:
    """``"4"``, ``"6"``, ``"unix"`` (or inet, inet6, ipv4, ipv6, or an AF_ number) -> family; None for any."""
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, int):
        return socket.AddressFamily(value)
    try:
        return FAMILIES[value.lower()]
    except KeyError:
        raise AddressError(f"unknown family {value!r}: use 4, 6 or unix") from None


def parse_type(value: str | int | None) -> socket.SocketKind | None:
    """``"stream"`` or ``"dgram"`` (or a SOCK_ number) -> type; None for any."""
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, int):
        return socket.SocketKind(value)
    try:
        return TYPES[value.lower()]
    except KeyError:
        raise AddressError(f"unknown socket type {value!r}: use stream or dgram") from None


def protocol_name(number: int) -> str:
    # IPPROTO_IP and IPPROTO_HOPOPTS are both 0; in a getaddrinfo row 0 means "the default"
    return name_of("IPPROTO_", number, prefer=("IPPROTO_IP",))


def _row(family: int, socktype: int, proto: int, canonname: str, sockaddr: object) -> ResolveRow:
    scheme = kernel_scheme(family, socktype, proto)  # the scheme the row pastes back as
    note = ""
    if scheme is None:
        note = f"netlab has no transport for {name_of('SOCK_', socktype)} + {protocol_name(proto)}"
    return ResolveRow(
        family=name_of("AF_", family, prefer=("AF_INET", "AF_INET6", "AF_UNIX")),
        type=name_of("SOCK_", socktype),
        protocol=protocol_name(proto),
        canonname=canonname,
        sockaddr=sockaddr,
        address=format_sockaddr(scheme, sockaddr) if scheme else None,
        numbers=(int(family), int(socktype), int(proto)),
        note=note,
    )


def _unix_rows(path: str, service: str | None, socktype: socket.SocketKind | None) -> Resolution:
    if service is not None:
        raise AddressError(f"a unix socket address has no port or service (got {service!r}); "
                           f"give only the path: netlab resolve {path} --family unix")
    sockaddr = "\0" + path[1:] if path.startswith("@") else path
    rows = []
    for kind in TYPES.values():
        scheme = kernel_scheme(socket.AF_UNIX, kind)
        if scheme is None or socktype is not None and socktype != kind:
            continue
        address = parse_address(format_sockaddr(scheme, sockaddr))  # checks the 107-byte limit
        rows.append(ResolveRow(family="AF_UNIX", type=kind.name, protocol="0", canonname="",
                               sockaddr=path, address=str(address),
                               numbers=(int(socket.AF_UNIX), int(kind), 0)))
    call = "(none: " + UNIX_NOTE.split(":", 1)[0] + ")"
    return Resolution(host=path, service=None, call=call, rows=tuple(rows), notes=(UNIX_NOTE,))


async def resolve(
    host: str,
    service: str | int | None = None,
    *,
    family: str | int | None = None,
    socktype: str | int | None = None,
    canonical: bool = False,
) -> Resolution:
    """One row per ``getaddrinfo(host, service, family, socktype, 0, flags)`` result.

    `service` is a name from /etc/services (``"http"``) or a port (``80``, ``"80"``).
    `family` is ``"4"``, ``"6"`` or ``"unix"`` (see the module docstring for unix);
    `socktype` is ``"stream"`` or ``"dgram"``; both filter through getaddrinfo's own hints.

    Raises:
        ResolveError: the resolver's own message (unknown host, unknown service, no address
            in that family).
        AddressError: a bad family or type, or a SERVICE with ``family="unix"``.
    """
    fam = parse_family(family)
    kind = parse_type(socktype)
    if fam == socket.AF_UNIX:
        await trio.lowlevel.checkpoint()
        return _unix_rows(host, None if service is None else str(service), kind)
    query_host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    port = None if service is None else str(service)
    flags = socket.AI_CANONNAME if canonical else 0
    call = (f"getaddrinfo({query_host!r}, {port!r}, {fam.name if fam else 'AF_UNSPEC'}, "
            f"{kind.name if kind else 0}, 0, {'AI_CANONNAME' if canonical else 0})")
    what = host if port is None else f"{host} (service {port})"
    if not query_host:
        raise ResolveError("cannot resolve an empty host name")
    with translate_os_errors(what, "resolve"):
        infos = await trio.socket.getaddrinfo(query_host, port, fam or 0, kind or 0, 0, flags)
    rows = tuple(_row(f, t, p, c, a) for f, t, p, c, a in infos)
    return Resolution(host=host, service=port, call=call, rows=rows)


__all__ = ["FAMILIES", "TYPES", "ResolveRow", "Resolution", "parse_family", "parse_type", "resolve"]
