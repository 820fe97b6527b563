"""``netlab addr explain``: how netlab reads an address, what it will do, what the kernel applies.

Three parts:

1. **reading**: scheme, family, type, protocol, host and port (or path, or abstract name),
   and every option the scheme takes, with its value or default;
2. **plan**: the socket calls a server (`netlab serve`) and a client (`netlab send`) make
   for it, in order: the transport's own `Transport.plan`, written beside the calls it
   describes (a TLS plan has its certificates and handshake, a unix-dgram server its
   larger send buffer);
3. **kernel**: what a throwaway socket, set up with the transports' own helpers
   (``_inet.resolve``, ``_inet.prepare_socket``, ``unix.bind_unix``), actually gets: the
   bound address, ``IPV6_V6ONLY`` and ``SO_RCVBUF``/``SO_SNDBUF`` read back with
   ``getsockopt``, and, from /proc, the values that cap them.

The throwaway socket is never listened on and is closed at once. Where it binds:

* **inet**: the address's own host and port, so "port in use" shows up as a fact. If the
  port is busy (EADDRINUSE) or privileged and not ours to bind (EACCES), it binds the same
  host with port 0 instead, and says so.
* **unix path**: never at the user's path. It binds in a private temporary directory
  (removed afterwards) with the same options, so ``?mode=`` is applied for real. The
  user's path is only looked at: ``lstat``, and a ``connect`` if it is a socket, which is
  how stale is told from live (a live server sees one empty connection). Nothing is created
  or removed there, not even a stale socket file.
* **unix abstract name**: a ``connect`` tells whether the name is held; the throwaway
  socket takes a fresh name by Linux autobind (``bind("")``), never the user's.

The backlog is not reported by the kernel (no ``getsockopt`` reads it back): the figure is
``min(requested, net.core.somaxconn)``, which is what ``listen()`` applies, and says so.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import stat
import tempfile
from dataclasses import dataclass, field, replace
from typing import Any

import trio

from ..errors import NetlabError
from ..transports import Transport, describe_os_error, get_transport, parse_address
from ..transports._inet import SockInfo, prepare_socket, resolve
from ..transports._sockopts import apply_buffer_options
from ..transports.addresses import OPTIONS, UNIX_PATH_MAX, Address, format_sockaddr
from ..transports.unix import PathProbe, bind_unix, probe_abstract, probe_path
from .constants import name_of

PROC = "/proc/sys/net"
SOMAXCONN_FILE = f"{PROC}/core/somaxconn"
PORT_RANGE_FILE = f"{PROC}/ipv4/ip_local_port_range"
UNPRIVILEGED_FILE = f"{PROC}/ipv4/ip_unprivileged_port_start"
BINDV6ONLY_FILE = f"{PROC}/ipv6/bindv6only"
RMEM_MAX_FILE = f"{PROC}/core/rmem_max"
WMEM_MAX_FILE = f"{PROC}/core/wmem_max"


@dataclass(frozen=True)
class Fact:
    value: object
    source: str = ""
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"value": self.value, "source": self.source, "note": self.note}


@dataclass
class Probe:
    """One throwaway socket: where it bound, and what the kernel applied to it."""

    family: str
    tried: str  # what it tried to bind, as netlab text
    bound: str | None = None  # what it got (getsockname), as netlab text
    facts: dict[str, Fact] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"family": self.family, "tried": self.tried, "bound": self.bound,
                "facts": {k: v.as_dict() for k, v in self.facts.items()}, "notes": self.notes,
                "error": self.error}


@dataclass
class Explanation:
    given: str  # the text as typed
    address: str  # its canonical form
    reading: dict[str, Fact]
    options: dict[str, Fact]
    server_calls: list[str]
    client_calls: list[str]
    system: dict[str, Fact]
    target: dict[str, Fact]  # unix: the path or abstract name as it is now; inet: empty
    probes: list[Probe]
    notes: list[str]

    def as_dict(self) -> dict[str, object]:
        def facts(d: dict[str, Fact]) -> dict[str, object]:
            return {k: v.as_dict() for k, v in d.items()}

        return {"given": self.given, "address": self.address, "reading": facts(self.reading),
                "options": facts(self.options),
                "plan": {"server": self.server_calls, "client": self.client_calls},
                "system": facts(self.system), "target": facts(self.target),
                "probes": [p.as_dict() for p in self.probes], "notes": self.notes}


def read_proc(path: str) -> str | None:
    try:
        with open(path) as file:
            return file.read().strip()
    except OSError:
        return None


def read_proc_int(path: str) -> int | None:
    text = read_proc(path)
    try:
        return int(text.split()[0]) if text else None
    except ValueError:
        return None


def port_range() -> tuple[int, int] | None:
    text = read_proc(PORT_RANGE_FILE)
    if not text:
        return None
    low, high = (int(part) for part in text.split()[:2])
    return low, high


def effective_backlog(requested: int) -> Fact:
    """What listen(requested) gets: the kernel silently caps it at net.core.somaxconn."""
    cap = read_proc_int(SOMAXCONN_FILE)
    if cap is None:
        return Fact(requested, "requested (net.core.somaxconn unreadable)",
                    "the kernel does not report the backlog")
    note = "the kernel does not report the backlog; listen() silently caps it at somaxconn"
    if requested > cap:
        note += f": {requested} was cut to {cap}"
    return Fact(min(requested, cap), f"min(requested {requested}, net.core.somaxconn {cap} from {SOMAXCONN_FILE})",
                note)


# -- 1. reading ------------------------------------------------------------------------


def _protocol(transport: Transport) -> str:
    if transport.protocol == 0:
        return "0 (the only protocol AF_UNIX has)"
    return name_of("IPPROTO_", transport.protocol, prefer=("IPPROTO_TCP", "IPPROTO_UDP"))


def _family(address: Address) -> Fact:
    transport = get_transport(address.scheme)
    if transport.family is not None:
        how = f"the {transport.scheme}: scheme"
        if address.host_family is not None:
            how += " (and the host literal)"
        return Fact(transport.family.name, how)
    if address.host_family is not None:
        return Fact(address.host_family.name, f"the host is an IPv{4 if address.host_family == socket.AF_INET else 6} literal")
    if address.host == "*":
        return Fact("AF_INET and AF_INET6", "'*' means every interface, in both families (where available)")
    return Fact("AF_INET or AF_INET6", "whatever the name resolves to (getaddrinfo decides)")


def _reading(address: Address, given: str) -> dict[str, Fact]:
    transport = get_transport(address.scheme)
    reading: dict[str, Fact] = {
        "scheme": Fact(address.scheme, "", transport.summary),
        "family": _family(address),
        "type": Fact(transport.socktype.name, f"{transport.kind} transport"),
        "protocol": Fact(_protocol(transport)),
        "delivery": Fact(", ".join([
            "reliable" if transport.reliable else "unreliable (may lose or duplicate)",
            "ordered" if transport.ordered else "unordered",
            "message boundaries kept" if transport.boundaries else "no message boundaries",
        ])),
    }
    if address.abstract is not None:
        size = len(address.abstract.encode("utf-8", "surrogateescape"))
        reading["abstract"] = Fact("@" + address.abstract, "", "Linux abstract name: no file, gone when the socket closes")
        reading["length"] = Fact(size, f"bytes of at most {UNIX_PATH_MAX} (sun_path is 108, one byte is the leading NUL)")
    elif address.path is not None:
        size = len(address.path.encode("utf-8", "surrogateescape"))
        note = "" if os.path.isabs(address.path) else f"relative to the current directory: {os.path.abspath(address.path)}"
        reading["path"] = Fact(address.path, "", note)
        reading["length"] = Fact(size, f"bytes of at most {UNIX_PATH_MAX} (sun_path is 108 bytes including the NUL)",
                                 f"{UNIX_PATH_MAX - size} bytes to spare")
    else:
        host = address.host
        if host == "*":
            note = "every interface: getaddrinfo(None, ..., AI_PASSIVE) gives 0.0.0.0 and ::"
        elif address.is_wildcard:
            note = "every interface of this family"
        elif address.host_family is not None:
            note = f"an IPv{4 if address.host_family == socket.AF_INET else 6} literal: no lookup"
        else:
            note = "a name: getaddrinfo looks it up (/etc/hosts, then DNS)"
        if _wrote_no_host(given):
            note = "no host was given: netlab means loopback, never every interface"
        reading["host"] = Fact(host, "", note)
        port_note = "the kernel picks a free ephemeral port" if address.port == 0 else ""
        reading["port"] = Fact(address.port, "", port_note)
    if given.strip() != str(address):
        reading["canonical"] = Fact(str(address), "", "how netlab prints this address back; it parses to itself")
    return reading


def _wrote_no_host(given: str) -> bool:
    scheme, _, rest = given.partition(":")
    target = rest.partition("?")[0]
    return bool(target) and ":" not in target and not target.startswith("[") and target.isdigit()


def _options(address: Address) -> dict[str, Fact]:
    transport = get_transport(address.scheme)
    options: dict[str, Fact] = {}
    for name in sorted(transport.options):
        value = address.option(name)
        meaning = OPTIONS[name].help
        if value is not None:
            shown = OPTIONS[name].show(value) if name == "mode" else (int(value) if isinstance(value, bool) else value)
            options[name] = Fact(shown, "given", meaning)
            continue
        default = transport.option_default(name, address)
        if default is not None:  # None: the option does not apply to this address
            options[name] = Fact(default[0], default[1], meaning)
    return options


# -- 3. kernel -------------------------------------------------------------------------


def _buffer_facts(sock: socket.socket, address: Address) -> dict[str, Fact]:
    facts: dict[str, Fact] = {}
    for name, option, cap_file in (("SO_RCVBUF", socket.SO_RCVBUF, RMEM_MAX_FILE),
                                   ("SO_SNDBUF", socket.SO_SNDBUF, WMEM_MAX_FILE)):
        value = sock.getsockopt(socket.SOL_SOCKET, option)
        requested = address.int_option(name[3:].lower())
        source = f"getsockopt(SOL_SOCKET, {name})"
        if requested is None:
            facts[name] = Fact(value, source, "not set: the kernel's default for this kind of socket")
            continue
        cap = read_proc_int(cap_file)
        if value == 2 * requested:
            note = f"requested {requested}; the kernel doubled it (half is for its own bookkeeping)"
        elif cap is not None and requested > cap and value == 2 * cap:
            note = f"requested {requested}; capped at {cap_file.rsplit('/', 1)[1]} = {cap}, then doubled"
        else:
            note = f"requested {requested}; the kernel applied its minimum or limits"
        facts[name] = Fact(value, source, note)
    return facts


def _bind_inet(sock: socket.socket, sockaddr: tuple[Any, ...], address: Address, probe: Probe) -> bool:
    """Bind the throwaway socket at `sockaddr`; fall back to port 0 if busy or privileged."""
    port = sockaddr[1]
    unprivileged = read_proc_int(UNPRIVILEGED_FILE)
    try:
        sock.bind(sockaddr)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE and port != 0:
            probe.notes.append(f"port {port} is in use here (a server would fail: address already in use); "
                               f"the probe bound {sockaddr[0]} with port 0 instead")
        elif exc.errno in (errno.EACCES, errno.EPERM) and port != 0:
            probe.notes.append(f"port {port} is privileged (below net.ipv4.ip_unprivileged_port_start = "
                               f"{unprivileged}) and this process may not bind it; the probe bound "
                               f"{sockaddr[0]} with port 0 instead")
        else:
            probe.error = str(describe_os_error(exc, format_sockaddr(address.scheme, sockaddr), "bind",
                                                get_transport(address.scheme)))
            return False
        try:
            sock.bind((sockaddr[0], 0, *sockaddr[2:]))
        except OSError as again:
            probe.error = str(describe_os_error(again, format_sockaddr(address.scheme, sockaddr), "bind",
                                                get_transport(address.scheme)))
            return False
        return True
    if port and unprivileged is not None and port < unprivileged:
        probe.notes.append(f"port {port} is privileged (below net.ipv4.ip_unprivileged_port_start = "
                           f"{unprivileged}); this process may bind it (root or CAP_NET_BIND_SERVICE)")
    elif port and address.port != 0:
        probe.notes.append(f"port {port} is free here: the probe bound it for a moment")
    return True


def _ephemeral_fact(port: int) -> Fact:
    span = port_range()
    if span is None:
        return Fact(port, "getsockname()")
    low, high = span
    inside = "inside" if low <= port <= high else "outside"
    return Fact(port, f"getsockname(); ephemeral range {low}-{high} from {PORT_RANGE_FILE}",
                f"the kernel's pick, {inside} the ephemeral range")


async def _probe_inet(address: Address) -> tuple[list[Probe], list[SockInfo] | None, str | None]:
    transport = get_transport(address.scheme)
    stream = transport.connected  # listens, accepts
    try:
        infos = await resolve(address, transport, passive=True)
    except NetlabError as exc:
        return [], None, str(exc)
    targets = infos if stream else infos[:1]
    probes: list[Probe] = []
    first_port: int | None = None
    for family, sockaddr in targets:
        assert isinstance(sockaddr, tuple)
        if address.port == 0 and first_port is not None:
            sockaddr = (sockaddr[0], first_port, *sockaddr[2:])
        probe = Probe(family=family.name, tried=format_sockaddr(address.scheme, sockaddr))
        probes.append(probe)
        with socket.socket(family, transport.socktype) as sock:
            try:
                prepare_socket(sock, family, address, several=stream and len(targets) > 1, server=stream)
            except OSError as exc:
                probe.error = str(describe_os_error(exc, address, "set options on"))
                continue
            v6only_before = (sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
                             if family == socket.AF_INET6 else None)
            if not _bind_inet(sock, sockaddr, address, probe):
                continue
            name = sock.getsockname()
            probe.bound = format_sockaddr(address.scheme, name)
            if first_port is None:
                first_port = name[1]
            if name[1] != sockaddr[1]:
                probe.facts["port"] = _ephemeral_fact(name[1])
            if stream:
                probe.facts["SO_REUSEADDR"] = Fact(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR),
                                                   "getsockopt(SOL_SOCKET, SO_REUSEADDR)",
                                                   "set by servers: a restart can bind while old connections are in TIME_WAIT")
            if family == socket.AF_INET6:
                v6only = sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
                given = address.bool_option("v6only")
                if given is not None:
                    why = f"?v6only={int(bool(given))}"
                elif stream and len(targets) > 1:
                    why = "set to 1 because this server binds several addresses ([::] next to 0.0.0.0)"
                else:
                    why = f"not set: the kernel default, net.ipv6.bindv6only = {read_proc(BINDV6ONLY_FILE)}"
                meaning = "IPv6 only" if v6only else "IPv4 peers too, seen as ::ffff:a.b.c.d"
                if v6only != v6only_before:
                    why += (f"; it read {v6only_before} before bind: the kernel makes a socket bound to one "
                            f"IPv6 address (not ::) IPv6-only, whatever was set")
                probe.facts["IPV6_V6ONLY"] = Fact(v6only, "getsockopt(IPPROTO_IPV6, IPV6_V6ONLY) after bind",
                                                  f"{meaning}; {why}")
            probe.facts.update(_buffer_facts(sock, address))
            probe.facts.update(_kind_facts(sock, address))
    return probes, infos, None


def _private_dir() -> str:
    """A fresh directory short enough for sun_path (TMPDIR may be deep)."""
    for base in (None, "/tmp"):
        path = tempfile.mkdtemp(prefix="netlab-explain-", dir=base)
        if len(os.path.join(path, "s").encode()) <= UNIX_PATH_MAX:
            return path
        os.rmdir(path)
    raise NetlabError("no temporary directory short enough for a unix socket path")


def _probe_unix(address: Address) -> Probe:
    transport = get_transport(address.scheme)
    with socket.socket(socket.AF_UNIX, transport.socktype) as sock:
        if address.abstract is not None:
            probe = Probe(family="AF_UNIX", tried="unix autobind: bind('')")
            try:
                apply_buffer_options(sock, address)
                sock.bind("")
            except OSError as exc:
                probe.error = str(describe_os_error(exc, address, "bind"))
                return probe
            probe.bound = format_sockaddr(address.scheme, sock.getsockname())
            probe.notes.append(f"the probe took a fresh autobind name ({probe.bound}); "
                               f"nothing was bound at @{address.abstract}")
            facts_from(sock, address, probe)
            return probe
        private = _private_dir()
        stand_in_path = os.path.join(private, "s")
        stand_in = replace(address, path=stand_in_path)
        probe = Probe(family="AF_UNIX", tried=str(stand_in))
        try:
            try:
                cleanup = bind_unix(sock, stand_in)
            except NetlabError as exc:
                probe.error = str(exc)
                return probe
            try:
                probe.bound = format_sockaddr(address.scheme, sock.getsockname())
                mode = stat.S_IMODE(os.lstat(stand_in_path).st_mode)
                probe.facts["file mode"] = Fact(f"{mode:04o}", "lstat() of the probe's socket file",
                                                "what ?mode= gave the file (umask narrowed around bind)")
                facts_from(sock, address, probe)
            finally:
                cleanup()
        finally:
            shutil.rmtree(private, ignore_errors=True)
        probe.notes.append(f"the probe bound in a private temporary directory ({private}, now removed); "
                           f"nothing was created or removed at {address.path}")
        return probe


def facts_from(sock: socket.socket, address: Address, probe: Probe) -> None:
    probe.facts.update(_buffer_facts(sock, address))
    probe.facts.update(_kind_facts(sock, address))


def _kind_facts(sock: socket.socket, address: Address) -> dict[str, Fact]:
    """What a listening socket gets (the backlog), or how large a message may be."""
    transport = get_transport(address.scheme)
    facts: dict[str, Fact] = {}
    if transport.connected:
        facts["backlog"] = effective_backlog(address.int_option("backlog", socket.SOMAXCONN))
    limit = transport.message_limit(sock)
    if limit is not None:
        name = "max message" if transport.connected else "max datagram"
        facts[name] = Fact(limit[0], "", limit[1])
    return facts


_AFTER = {
    "missing": "a server binds here and creates the socket file",
    "stale": "`netlab serve` would remove it and bind anew (explain leaves it alone)",
    "live": "`netlab serve` would refuse: already in use by a running server",
    "not-socket": "`netlab serve` refuses to bind here and never removes it",
    "unknown": "`netlab serve` would fail; see the detail",
}


def _target(address: Address) -> tuple[dict[str, Fact], PathProbe]:
    socktype = get_transport(address.scheme).socktype
    if address.abstract is not None:
        found = probe_abstract(address.abstract, socktype)
        after = {"missing": "a server can take this name", "live": "a server would fail: address already in use"}
        return {"state": Fact("free" if found.state == "missing" else found.state,
                              f"connect() to @{address.abstract}", found.detail),
                "then": Fact(after.get(found.state, _AFTER["unknown"]))}, found
    path = address.path
    assert path is not None
    found = probe_path(path, socktype)
    facts = {
        "exists": Fact(None if found.state == "unknown" and not found.kind else found.state != "missing",
                       f"lstat({path!r})"),
        "kind": Fact(found.kind or "-", f"lstat({path!r})"),
        "state": Fact(found.state, "lstat(), then connect() if it is a socket (a live server sees one empty "
                      "connection)" if found.kind == "socket" else "lstat()", found.detail),
        "then": Fact(_AFTER[found.state]),
    }
    directory = os.path.dirname(os.path.abspath(path))
    blocked = ""
    if not os.path.isdir(directory):
        facts["directory"] = Fact(directory, "os.path.isdir()", "does not exist")
        blocked = "bind would fail: the directory does not exist (ENOENT)"
    elif not os.access(directory, os.W_OK | os.X_OK):
        facts["directory"] = Fact(directory, "os.access(W_OK | X_OK)", "not writable by this user")
        blocked = "bind would fail: this user may not create files in the directory (EACCES)"
    else:
        facts["directory"] = Fact(directory, "os.access(W_OK | X_OK)", "exists and is writable by this user")
    if blocked and found.state in ("missing", "stale"):
        facts["then"] = Fact(blocked)
    return facts, found


def _system(address: Address) -> dict[str, Fact]:
    transport = get_transport(address.scheme)
    system: dict[str, Fact] = {}
    if transport.connected:  # listens, accepts
        system["net.core.somaxconn"] = Fact(read_proc_int(SOMAXCONN_FILE), SOMAXCONN_FILE, "the cap on listen()'s backlog")
    if transport.uses_ip:  # ports
        span = port_range()
        system["ephemeral ports"] = Fact(f"{span[0]}-{span[1]}" if span else None, PORT_RANGE_FILE,
                                         "where port 0 binds, and where clients' source ports come from")
        system["unprivileged ports from"] = Fact(read_proc_int(UNPRIVILEGED_FILE), UNPRIVILEGED_FILE,
                                                 "lower ports need root or CAP_NET_BIND_SERVICE")
    system["net.core.rmem_max"] = Fact(read_proc_int(RMEM_MAX_FILE), RMEM_MAX_FILE, "the cap on ?rcvbuf= (before doubling)")
    system["net.core.wmem_max"] = Fact(read_proc_int(WMEM_MAX_FILE), WMEM_MAX_FILE, "the cap on ?sndbuf= (before doubling)")
    return system


async def explain(text: str | Address) -> Explanation:
    """Explain an address: reading, plan, and what a throwaway socket gets from the kernel.

    Never creates or removes anything at a unix path (see the module docstring). A host
    that does not resolve, or a bind that fails, is reported in the result, not raised.

    Raises:
        AddressError: `text` does not parse.
    """
    given = text if isinstance(text, str) else str(text)
    address = parse_address(text)
    transport = get_transport(address.scheme)
    notes: list[str] = []
    target: dict[str, Fact] = {}
    infos: list[SockInfo] | None = None
    if transport.uses_ip:  # a host to resolve and a port to bind
        probes, infos, failure = await _probe_inet(address)
        if failure:
            notes.append(failure)
    else:
        target, _found = _target(address)
        probes = [_probe_unix(address)]
        await trio.lowlevel.checkpoint()
    plan = transport.plan(address, infos)
    return Explanation(
        given=given,
        address=str(address),
        reading=_reading(address, given),
        options=_options(address),
        server_calls=plan.server,
        client_calls=plan.client,
        system=_system(address),
        target=target,
        probes=probes,
        notes=notes,
    )

__all__ = ["Explanation", "Fact", "Probe", "effective_backlog", "explain"]
