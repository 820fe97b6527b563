"""Addresses: one grammar for every transport, one canonical form that parses to itself.

::

    address := scheme ":" target [ "?" option *( "&" option ) ]
    target  := [ host ":" ] port  |  path  |  "@" abstract-name
    host    := ipv4 | "[" ipv6 [ "%" zone ] "]" | dns-name | "*"
    option  := name "=" value

Examples: ``tcp:127.0.0.1:7000``, ``tcp6:[::1]:0``, ``udp:*:9999``,
``unix:/tmp/sum.sock?mode=0660``, ``unix-dgram:@netlab-echo``.

Rules, and why:

* IPv6 literals go in brackets (as in URLs, systemd and nc), so the last ``:`` always
  starts the port. ``tcp:[::1]:7000`` is IPv6; ``tcp:::1:7000`` is an error that says so.
* With no host (``tcp:7000``), inet addresses mean loopback (127.0.0.1, or ::1 for the
  ``*6`` schemes). Listening on every interface must be asked for: ``*``, ``0.0.0.0``, ``[::]``.
* ``tcp4``/``udp4`` take only IPv4 hosts and ``tcp6``/``udp6`` only IPv6 ones; plain
  ``tcp``/``udp`` follow the host (a name may resolve to both).
* Options follow ``?`` and are separated by ``&``, which never collide with paths or IPv6
  literals. Each option is valid only for the schemes that declare it (see `OPTIONS`).
* Unix paths are percent-decoded; the canonical form escapes ``%``, ``?``, white space and
  control characters so a path always prints back to something that parses to itself. A
  path must fit ``sun_path``: at most 107 bytes (108 with the terminating NUL). Abstract
  names (Linux) start with ``@`` and have no file, so no ``mode``.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, overload

from ..errors import AddressError

#: sun_path is 108 bytes on Linux, including the terminating NUL
UNIX_PATH_MAX = 107

_DNS_NAME = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?\Z")


def _shown(text: str) -> str:
    """`text` for an error message: at most 24 characters, so a huge number stays one line."""
    return text if len(text) <= 24 else f"{text[:12]}...({len(text)} characters)"


def _whole_number(text: str, high: int) -> int | None:
    """The value of `text` if it is ASCII digits and at most `high`, else None. A number
    with more digits than `high` is refused before `int()` sees it: int() of a string
    over 4300 digits raises Python's own ValueError ("Exceeds the limit...")."""
    if not text.isascii() or not text.isdigit():
        return None
    significant = text.lstrip("0") or "0"
    if len(significant) > len(str(high)):
        return high + 1
    return int(significant)


def _parse_int(name: str, low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        number = _whole_number(value, high)
        if number is None:
            raise AddressError(f"option {name}= takes a whole number, not {_shown(value)!r}")
        if not low <= number <= high:
            raise AddressError(f"option {name}={_shown(value)} is out of range ({low} to {high})")
        return number

    return parse


def _parse_mode(value: str) -> int:
    text = value[2:] if value.lower().startswith("0o") else value
    if not re.fullmatch(r"[0-7]{3,4}", text):
        raise AddressError(f"option mode= takes octal permissions like 0600 or 660, not {value!r}")
    mode = int(text, 8)
    if mode > 0o777:
        raise AddressError(f"option mode={value}: only permission bits (up to 0777) are allowed")
    return mode


def _parse_bool(name: str) -> Callable[[str], bool]:
    def parse(value: str) -> bool:
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise AddressError(f"option {name}= takes 0 or 1, not {value!r}")

    return parse


def _parse_path(name: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        path = _unquote(value)
        if "\0" in path:
            raise AddressError(f"option {name}= takes a file path, and paths may not contain NUL")
        return path

    return parse


def _show_path(path: str) -> str:
    """A file path as an option value: percent-escaped where it would end the option."""
    return urllib.parse.quote(path, safe="/:@+,", errors="surrogateescape")


@dataclass(frozen=True)
class Option:
    parse: Callable[[str], object]
    show: Callable[[Any], str]
    help: str


#: every option any transport may declare; a transport lists the ones it takes
OPTIONS: dict[str, Option] = {
    "backlog": Option(_parse_int("backlog", 1, 65535), str,
                      "listen() backlog (the kernel caps it at net.core.somaxconn)"),
    "mode": Option(_parse_mode, lambda m: f"{m:04o}",
                   "permissions of the socket file (default 0600: owner only)"),
    "v6only": Option(_parse_bool("v6only"), lambda b: "1" if b else "0",
                     "IPV6_V6ONLY on an IPv6 socket (0: also accept IPv4 as ::ffff:a.b.c.d)"),
    "rcvbuf": Option(_parse_int("rcvbuf", 1, 1 << 30), str, "SO_RCVBUF in bytes (the kernel doubles it)"),
    "sndbuf": Option(_parse_int("sndbuf", 1, 1 << 30), str, "SO_SNDBUF in bytes (the kernel doubles it)"),
    "cert": Option(_parse_path("cert"), _show_path,
                   "TLS server: its certificate chain, PEM (without cert and key: a throwaway CA and certificate)"),
    "key": Option(_parse_path("key"), _show_path, "TLS server: the private key of cert, PEM"),
    "ca": Option(_parse_path("ca"), _show_path,
                 "TLS client: verify the server against this CA certificate, PEM (default: the system's CAs)"),
    "insecure": Option(_parse_bool("insecure"), lambda b: "1" if b else "0",
                       "TLS client: 1 skips verifying the server's certificate (and warns that it does)"),
}


class Scheme(Protocol):
    """What the grammar needs to know of a scheme: a transport, as the registry holds it
    (`parse_with` is given the registry; this module never imports it)."""

    @property
    def scheme(self) -> str: ...
    @property
    def target(self) -> Literal["inet", "unix"]: ...
    @property
    def family(self) -> socket.AddressFamily | None: ...
    @property
    def options(self) -> frozenset[str]: ...


@dataclass(frozen=True)
class Address:
    """A parsed address: plain data. ``str(address)`` is its canonical form. Its transport
    is the registry's business: ``netlab.transports.get_transport(address.scheme)``."""

    scheme: str
    host: str | None = None  # inet: IPv4/IPv6 literal (no brackets), DNS name, or "*"
    port: int | None = None
    path: str | None = None  # unix: filesystem path
    abstract: str | None = None  # unix: abstract name, without the leading "@"
    options: tuple[tuple[str, object], ...] = field(default=())

    # -- what it is -------------------------------------------------------------------
    @property
    def is_unix(self) -> bool:
        return self.path is not None or self.abstract is not None

    @property
    def is_abstract(self) -> bool:
        return self.abstract is not None

    @property
    def is_wildcard(self) -> bool:
        return self.host in ("*", "0.0.0.0", "::")

    @property
    def host_family(self) -> socket.AddressFamily | None:
        """AF_INET or AF_INET6 when the host is a literal; None for names and ``*``."""
        if self.host is None:
            return None
        try:
            ip = ipaddress.ip_address(self.host)
        except ValueError:
            return None
        return socket.AF_INET6 if ip.version == 6 else socket.AF_INET

    def option(self, name: str, default: object = None) -> object:
        for key, value in self.options:
            if key == name:
                return value
        return default

    @overload
    def int_option(self, name: str) -> int | None: ...
    @overload
    def int_option(self, name: str, default: int) -> int: ...
    def int_option(self, name: str, default: int | None = None) -> int | None:
        """A whole-number option (backlog, mode, rcvbuf, sndbuf), or `default`."""
        value = self.option(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else default

    def bool_option(self, name: str) -> bool | None:
        """A 0/1 option (v6only, insecure), or None when not given."""
        value = self.option(name)
        return value if isinstance(value, bool) else None

    def str_option(self, name: str) -> str | None:
        """A text option (a file path: cert, key, ca), or None when not given."""
        value = self.option(name)
        return value if isinstance(value, str) else None

    def unix_sockaddr(self) -> str | bytes:
        """What ``bind``/``connect`` take for this unix address."""
        if self.abstract is not None:
            return b"\0" + self.abstract.encode("utf-8", "surrogateescape")
        assert self.path is not None
        return self.path

    def with_port(self, port: int) -> Address:
        return replace(self, port=port)

    # -- text ------------------------------------------------------------------------
    def target_text(self) -> str:
        if self.abstract is not None:
            return "@" + _quote(self.abstract)
        if self.path is not None:
            return _quote_path(self.path)
        host = self.host or ""
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        text = f"{self.scheme}:{self.target_text()}"
        if self.options:
            text += "?" + "&".join(f"{k}={OPTIONS[k].show(v)}" for k, v in self.options)
        return text


def _quote(text: str) -> str:
    return urllib.parse.quote(text, safe="/@:+,=~!$&'()*;[]", errors="surrogateescape")


def _quote_path(path: str) -> str:
    """A unix path as address text; a leading "@" is escaped so it does not read as abstract."""
    text = _quote(path)
    return "%40" + text[1:] if text.startswith("@") else text


def _unquote(text: str) -> str:
    return urllib.parse.unquote(text, errors="surrogateescape")


def _parse_options(query: str, transport: Scheme, address: Address) -> tuple[tuple[str, object], ...]:
    parsed: dict[str, object] = {}
    for part in query.split("&"):
        if not part:
            raise AddressError("empty option: use ?name=value&name=value")
        name, eq, value = part.partition("=")
        if not eq or not value:
            raise AddressError(f"option {name!r} needs a value: {name}=VALUE")
        if name not in OPTIONS:
            raise AddressError(f"unknown option {name!r} (known: {', '.join(OPTIONS)})")
        if name not in transport.options:
            takes = ", ".join(sorted(transport.options)) or "none"
            raise AddressError(f"option {name!r} does not apply to {transport.scheme}: addresses (they take: {takes})")
        if name in parsed:
            raise AddressError(f"option {name!r} given twice")
        parsed[name] = OPTIONS[name].parse(value)
    if "mode" in parsed and address.abstract is not None:
        raise AddressError("option mode= does not apply to abstract names: they have no file")
    if "v6only" in parsed and address.host_family == socket.AF_INET:
        raise AddressError("option v6only= applies only to IPv6 addresses")
    return tuple(sorted(parsed.items()))


def _parse_host(text: str, scheme: str, family: socket.AddressFamily | None) -> str:
    if text.startswith("["):
        if not text.endswith("]"):
            raise AddressError(f"unclosed '[' in host {text!r}: write IPv6 as [::1]")
        inner = text[1:-1]
        literal, _, zone = inner.partition("%")
        try:
            ip = ipaddress.IPv6Address(literal)
        except ValueError:
            raise AddressError(f"malformed IPv6 address {inner!r}") from None
        if zone and not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", zone):
            raise AddressError(f"malformed IPv6 zone {zone!r}")
        if family == socket.AF_INET:
            raise AddressError(f"{scheme}: takes IPv4 hosts only; use {scheme[:-1]}6: for {text}")
        text = f"::ffff:{ip.ipv4_mapped}" if ip.ipv4_mapped else ip.compressed
        return f"{text}%{zone}" if zone else text
    if text == "*":
        return "*"
    if ":" in text:
        raise AddressError(f"IPv6 addresses need brackets: {scheme}:[{text}]:PORT")
    if re.fullmatch(r"[0-9.]+", text):
        try:
            ip4 = ipaddress.IPv4Address(text)
        except ValueError:
            raise AddressError(f"malformed IPv4 address {text!r}") from None
        if family == socket.AF_INET6:
            raise AddressError(
                f"{scheme}: takes IPv6 hosts only; use {scheme[:-1]}4: for {text}, or [::ffff:{text}]"
            )
        return str(ip4)
    if not _DNS_NAME.match(text):
        raise AddressError(f"not a valid host name or address: {text!r}")
    return text.lower()


def _parse_port(text: str) -> int:
    if not text:
        raise AddressError("missing port: add :PORT (0 asks the kernel for a free one)")
    port = _whole_number(text, 65535)
    if port is None:
        raise AddressError(f"port must be a number from 0 to 65535, not {_shown(text)!r}")
    if port > 65535:
        raise AddressError(f"port {_shown(text)} is out of range (0 to 65535)")
    return port


def _parse_inet(scheme: str, target: str, transport: Scheme) -> Address:
    family = transport.family
    if target.startswith("["):
        close = target.find("]")
        if close < 0:
            raise AddressError(f"unclosed '[' in {target!r}: write IPv6 as [::1]:PORT")
        host_text, rest = target[: close + 1], target[close + 1 :]
        if not rest.startswith(":"):
            raise AddressError(f"missing port after {host_text}: write {host_text}:PORT")
        port_text = rest[1:]
    elif ":" in target:
        host_text, _, port_text = target.rpartition(":")
        if ":" in host_text:
            raise AddressError(f"IPv6 addresses need brackets: {scheme}:[{host_text}]:{port_text}")
    elif re.fullmatch(r"[0-9]*", target):
        host_text, port_text = "", target
    else:
        raise AddressError(f"missing port: write {scheme}:{target}:PORT (0 asks the kernel for a free one)")
    if host_text:
        host = _parse_host(host_text, scheme, family)
    else:
        host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    return Address(scheme=scheme, host=host, port=_parse_port(port_text))


def _encoded_size(text: str, what: str) -> int:
    """Bytes `text` takes in sun_path. Lone surrogates other than surrogateescape's are refused."""
    try:
        return len(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError as exc:
        raise AddressError(f"{what} {text!r} cannot be encoded as bytes: {exc.reason}") from None


def _parse_unix(scheme: str, target: str) -> Address:
    if not target:
        raise AddressError(f"missing path: {scheme}:/path/to.sock or {scheme}:@abstract-name")
    if target.startswith("@"):
        name = _unquote(target[1:])
        if not name:
            raise AddressError("empty abstract name after '@'")
        if "\0" in name:
            raise AddressError("abstract names may not contain NUL")
        size = _encoded_size(name, "abstract name")
        if size > UNIX_PATH_MAX:
            raise AddressError(
                f"abstract name is {size} bytes; Linux allows at most {UNIX_PATH_MAX} "
                f"(sun_path is 108 bytes, one taken by the leading NUL)"
            )
        return Address(scheme=scheme, abstract=name)
    path = _unquote(target)
    if "\0" in path:
        raise AddressError("unix socket paths may not contain NUL")
    size = _encoded_size(path, "unix socket path")
    if size > UNIX_PATH_MAX:
        raise AddressError(
            f"unix socket path is {size} bytes; Linux allows at most {UNIX_PATH_MAX} "
            f"(sun_path is 108 bytes including the terminating NUL). Use a shorter path, "
            f"a relative one, or an abstract name (@name)"
        )
    return Address(scheme=scheme, path=path)


def parse_with(text: str | Address, schemes: Mapping[str, Scheme]) -> Address:
    """Parse an address string whose scheme is one of `schemes` (an `Address` is returned as
    is). ``netlab.transports.parse_address`` is this with the registry. Raises `AddressError`."""
    if isinstance(text, Address):
        return text
    if not isinstance(text, str):
        raise AddressError(f"an address must be text, not {type(text).__name__}")
    scheme, colon, rest = text.partition(":")
    if not colon:
        raise AddressError(f"{text!r} has no scheme: write SCHEME:TARGET, e.g. tcp:127.0.0.1:7000")
    transport = schemes.get(scheme)
    if transport is None:
        raise AddressError(f"unknown scheme {scheme!r} (known: {', '.join(schemes)})")
    target, _, query = rest.partition("?")
    if transport.target == "unix":
        address = _parse_unix(scheme, target)
    else:
        address = _parse_inet(scheme, target, transport)
    if query or rest.endswith("?"):
        address = replace(address, options=_parse_options(query, transport, address))
    return address


def format_sockaddr(scheme: str, sockaddr: object) -> str:
    """A kernel socket address (from getsockname, getpeername, recvfrom) as netlab text."""
    if sockaddr is None or sockaddr in ("", b""):
        return "(unbound)"
    if isinstance(sockaddr, bytes):
        if sockaddr.startswith(b"\0"):
            return f"{scheme}:@" + _quote(sockaddr[1:].decode("utf-8", "surrogateescape"))
        return f"{scheme}:" + _quote_path(sockaddr.decode("utf-8", "surrogateescape"))
    if isinstance(sockaddr, str):
        if sockaddr.startswith("\0"):
            return f"{scheme}:@" + _quote(sockaddr[1:])
        return f"{scheme}:" + _quote_path(sockaddr)
    assert isinstance(sockaddr, tuple)
    host, port = sockaddr[0], sockaddr[1]
    if ":" in host:
        scope = sockaddr[3] if len(sockaddr) > 3 else 0
        if scope and "%" not in host:
            try:
                host = f"{host}%{socket.if_indextoname(scope)}"
            except OSError:
                host = f"{host}%{scope}"
        return f"{scheme}:[{host}]:{port}"
    return f"{scheme}:{host}:{port}"


def bound_address(requested: Address, sockaddr: object) -> Address:
    """The address a socket actually got, in the requested scheme, keeping its options."""
    if requested.is_unix:
        if isinstance(sockaddr, bytes) and sockaddr.startswith(b"\0"):
            return replace(requested, path=None, abstract=sockaddr[1:].decode("utf-8", "surrogateescape"))
        if isinstance(sockaddr, str) and sockaddr.startswith("\0"):
            return replace(requested, path=None, abstract=sockaddr[1:])
        return requested
    assert isinstance(sockaddr, tuple)
    host = sockaddr[0]
    return replace(requested, host=host, port=sockaddr[1])
