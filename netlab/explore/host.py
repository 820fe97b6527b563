"""This machine: its host name, what the resolver makes of it, and its interfaces' addresses.

The lecture's first three calls (``gethostname``, ``gethostbyname``, ``gethostbyname_ex``),
plus what they leave out: the addresses the interfaces actually have. A host name with no
``/etc/hosts`` entry (and no DNS record) is common on containers and VMs; that is reported
as a fact (``ok: false`` and the resolver's message), never raised.

Where the interface facts come from, with no third-party packages:

* names and indexes: ``socket.if_nameindex()``;
* IPv6: ``/proc/net/if_inet6`` (address, index, prefix length, scope, flags per line);
* IPv4: ``ip -j addr`` when the ``ip`` command exists (every address, with its scope);
  otherwise an ``ioctl(SIOCGIFADDR)`` per interface, which only knows the *primary* IPv4
  address, so secondary ones are missing and the source says so;
* up or down: ``ioctl(SIOCGIFFLAGS)``.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import shutil
import socket
import struct
import subprocess
from dataclasses import asdict, dataclass, field

from ..transports import describe_os_error

IF_INET6 = "/proc/net/if_inet6"
SIOCGIFFLAGS = 0x8913
SIOCGIFADDR = 0x8915
SIOCGIFNETMASK = 0x891B
IFF_UP = 0x1

#: scope field of /proc/net/if_inet6 (the kernel's IPV6_ADDR_SCOPE_MASK bits)
IPV6_SCOPES = {0x00: "global", 0x10: "host", 0x20: "link", 0x40: "site", 0x80: "compat"}
#: flags field of /proc/net/if_inet6 (IFA_F_*)
IPV6_FLAGS = {0x01: "secondary", 0x02: "nodad", 0x04: "optimistic", 0x08: "dadfailed", 0x10: "homeaddress",
              0x20: "deprecated", 0x40: "tentative", 0x80: "permanent"}


@dataclass(frozen=True)
class InterfaceAddress:
    address: str
    prefixlen: int | None
    scope: str  # host, link, site, global
    flags: tuple[str, ...] = ()


@dataclass
class Interface:
    name: str
    index: int
    up: bool | None  # None: could not ask
    ipv4: list[InterfaceAddress] = field(default_factory=list)
    ipv6: list[InterfaceAddress] = field(default_factory=list)


@dataclass(frozen=True)
class Lookup:
    """One resolver call on the host name: its result, or the reason it failed."""

    call: str  # "gethostbyname('vm')"
    ok: bool
    address: str | None = None  # gethostbyname
    canonical: str | None = None  # gethostbyname_ex
    aliases: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        record: dict[str, object] = {"call": self.call, "ok": self.ok}
        if not self.ok:
            record["error"] = self.error
        elif self.address is not None:
            record["address"] = self.address
        else:
            record.update(canonical=self.canonical, aliases=list(self.aliases), addresses=list(self.addresses))
        return record


@dataclass
class HostInfo:
    hostname: str
    gethostbyname: Lookup
    gethostbyname_ex: Lookup
    interfaces: list[Interface]
    sources: dict[str, str]

    def as_dict(self) -> dict[str, object]:
        return {"hostname": self.hostname, "gethostbyname": self.gethostbyname.as_dict(),
                "gethostbyname_ex": self.gethostbyname_ex.as_dict(),
                "interfaces": [asdict(interface) for interface in self.interfaces], "sources": self.sources}


def _lookup(function: str, hostname: str) -> Lookup:
    call = f"{function}({hostname!r})"
    try:
        result = getattr(socket, function)(hostname)
    except OSError as exc:
        reason = str(describe_os_error(exc, hostname, "resolve"))
        if exc.errno == socket.EAI_NONAME or isinstance(exc, socket.herror):
            reason += " (no /etc/hosts entry or DNS record for it)"
        return Lookup(call, False, error=reason)
    except UnicodeError:
        return Lookup(call, False, error=f"cannot resolve {hostname}: not a valid host name")
    if isinstance(result, str):
        return Lookup(call, True, address=result)
    canonical, aliases, addresses = result
    return Lookup(call, True, canonical=canonical, aliases=tuple(aliases), addresses=tuple(addresses))


def _ifreq(name: str) -> bytes:
    return struct.pack("256s", name.encode()[:15])


def _ioctl(sock: socket.socket, request: int, name: str) -> bytes | None:
    try:
        return fcntl.ioctl(sock.fileno(), request, _ifreq(name))
    except OSError:  # EADDRNOTAVAIL: no IPv4 address; ENODEV: gone meanwhile
        return None


def _scope_of_ipv4(address: str) -> str:
    ip = ipaddress.IPv4Address(address)
    if ip.is_loopback:
        return "host"
    if ip.is_link_local:
        return "link"
    return "global"


def ipv4_by_ioctl(names: list[str]) -> dict[str, list[InterfaceAddress]]:
    """The primary IPv4 address of each interface, by SIOCGIFADDR and SIOCGIFNETMASK."""
    found: dict[str, list[InterfaceAddress]] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for name in names:
            reply = _ioctl(sock, SIOCGIFADDR, name)
            if reply is None:
                continue
            address = socket.inet_ntoa(reply[20:24])
            mask = _ioctl(sock, SIOCGIFNETMASK, name)
            prefixlen = None
            if mask is not None:
                prefixlen = ipaddress.IPv4Network(f"0.0.0.0/{socket.inet_ntoa(mask[20:24])}").prefixlen
            found.setdefault(name, []).append(InterfaceAddress(address, prefixlen, _scope_of_ipv4(address)))
    return found


def ipv4_by_ip_command() -> dict[str, list[InterfaceAddress]] | None:
    """Every IPv4 address per interface from ``ip -j addr``; None if ``ip`` is missing or fails."""
    ip = shutil.which("ip")
    if ip is None:
        return None
    try:
        done = subprocess.run([ip, "-j", "addr"], capture_output=True, text=True, timeout=5, check=True)
        links = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    found: dict[str, list[InterfaceAddress]] = {}
    for link in links:
        for info in link.get("addr_info", []):
            if info.get("family") == "inet" and "local" in info:
                found.setdefault(link["ifname"], []).append(
                    InterfaceAddress(info["local"], info.get("prefixlen"), info.get("scope", "?")))
    return found


def ipv6_from_proc(path: str = IF_INET6) -> dict[str, list[InterfaceAddress]] | None:
    """Every IPv6 address per interface from /proc/net/if_inet6; None if it is missing (IPv6 off)."""
    try:
        with open(path) as lines:
            text = lines.read()
    except OSError:
        return None
    found: dict[str, list[InterfaceAddress]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 6:
            continue
        hexaddr, _index, prefixlen, scope, flags, name = fields
        address = str(ipaddress.IPv6Address(bytes.fromhex(hexaddr)))
        scope_bits, flag_bits = int(scope, 16), int(flags, 16)
        found.setdefault(name, []).append(InterfaceAddress(
            address, int(prefixlen, 16), IPV6_SCOPES.get(scope_bits, f"0x{scope_bits:02x}"),
            tuple(label for bit, label in IPV6_FLAGS.items() if flag_bits & bit)))
    return found


def _is_up(names: list[str]) -> dict[str, bool | None]:
    states: dict[str, bool | None] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for name in names:
            reply = _ioctl(sock, SIOCGIFFLAGS, name)
            states[name] = None if reply is None else bool(struct.unpack("H", reply[16:18])[0] & IFF_UP)
    return states


def host_info(hostname: str | None = None, *, use_ip_command: bool = True) -> HostInfo:
    """Host name, its lookups, and every interface with its addresses. Never raises for a lookup.

    `hostname` defaults to ``socket.gethostname()``; `use_ip_command=False` forces the
    ioctl path for IPv4 (what happens on a machine without ``ip``).
    """
    name = hostname if hostname is not None else socket.gethostname()
    interfaces = [Interface(ifname, index, None) for index, ifname in socket.if_nameindex()]
    names = [interface.name for interface in interfaces]
    sources = {"hostname": "socket.gethostname()", "interfaces": "socket.if_nameindex()",
               "up": "ioctl SIOCGIFFLAGS"}
    ipv4 = ipv4_by_ip_command() if use_ip_command else None
    if ipv4 is not None:
        sources["ipv4"] = "ip -j addr"
    else:
        ipv4 = ipv4_by_ioctl(names)
        sources["ipv4"] = "ioctl SIOCGIFADDR (the primary address of each interface only)"
    ipv6 = ipv6_from_proc()
    sources["ipv6"] = IF_INET6 if ipv6 is not None else f"{IF_INET6} is missing: IPv6 is off in this kernel"
    ipv6 = ipv6 or {}
    up = _is_up(names)
    for interface in interfaces:
        interface.up = up.get(interface.name)
        interface.ipv4 = ipv4.get(interface.name, [])
        interface.ipv6 = ipv6.get(interface.name, [])
    return HostInfo(
        hostname=name,
        gethostbyname=_lookup("gethostbyname", name),
        gethostbyname_ex=_lookup("gethostbyname_ex", name),
        interfaces=interfaces,
        sources=sources,
    )


__all__ = ["HostInfo", "Interface", "InterfaceAddress", "Lookup", "host_info"]
