"""Where a program listens, read from the kernel: its sockets' inodes against ``/proc/net``.

A process's open sockets show up as links ``/proc/PID/fd/N -> socket:[INODE]``; the kernel's
socket tables (``/proc/PID/net/{tcp,tcp6,udp,udp6,unix}``, which show the network namespace
that process is in) list every socket with its inode, bound address and state. Matching the
two finds the listening sockets of a process group without asking the program anything, so a
hard-coded port needs no flag.

What counts as listening (`ListeningSocket`):

* tcp/tcp6 in state LISTEN (``0A``);
* udp/udp6 bound to a port and not connected (state ``07``);
* unix stream and seqpacket sockets with ``__SO_ACCEPTCON`` (they called ``listen``);
* unix datagram sockets bound to a name.

Addresses in ``/proc/net/tcp`` are hexadecimal in the host's byte order, one 32-bit word at a
time (four words for IPv6); ports are big-endian hexadecimal.

Everything here is read as untrusted: a row that does not parse is skipped, never raised on.
The inet tables hold only figures, but ``/proc/net/unix`` ends each row with the socket's name,
written raw, and any local user can bind an abstract name holding a newline and a whole forged
row after it (pointing, say, at someone else's server, with the inode of the binder's own
socket). So unix sockets are read from the kernel's ``sock_diag`` netlink interface, which
gives each name as bytes (`unix_diag`), wherever the process asked about shares this one's
network namespace; only elsewhere, or where the kernel lacks it, from ``/proc/net/unix``, and
then every inode listed more than once is dropped (one of its rows is forged). A program's
listening sockets are only ever those whose inodes its own processes hold (`sockets_of`).
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import NetlabError
from ..transports import Address, get_transport, kernel_scheme, parse_address

_TCP_LISTEN = "0A"
_UDP_UNCONNECTED = "07"
_SO_ACCEPTCON = 0x10000
_UNCONNECTED = 1  # SS_UNCONNECTED in /proc/net/unix's St column
#: the order a program's listening sockets are preferred in, when it has several
_PREFERENCE = ("tcp4", "tcp6", "unix", "unix-seq", "udp4", "udp6", "unix-dgram")


@dataclass(frozen=True)
class ListeningSocket:
    """One listening (or bound datagram) socket, as the kernel lists it."""

    kind: str  # tcp4, tcp6, udp4, udp6, unix, unix-seq, unix-dgram
    host: str | None  # inet: the bound IP as text ("0.0.0.0", "::", "127.0.0.1")
    port: int | None
    path: str | None  # unix: a path, or "@name" for an abstract name
    inode: int
    pid: int | None = None  # the process that holds it, when known

    @property
    def inet(self) -> bool:
        return self.host is not None

    @property
    def tcp(self) -> bool:
        """A TCP socket: ``/proc/net/tcp`` (tcp6) lists its connections and its accept queue."""
        return _tcp(self.kind)

    @property
    def bound_text(self) -> str:
        """The bound address as a person reads it: ``0.0.0.0:50000``, ``[::1]:7``, a path."""
        if self.host is None:
            return str(self.path)
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def client_address(self) -> Address:
        """Where a client on this machine connects to reach it: the wildcard becomes the
        loopback address of its family; a specific address stays itself."""
        if self.host is None:
            scheme = self.kind
            assert self.path is not None
            return parse_address(f"{scheme}:{self.path}")
        ip = ipaddress.ip_address(self.host)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip.is_unspecified:
            ip = ipaddress.ip_address("::1" if ip.version == 6 else "127.0.0.1")
        transport = get_transport(self.kind)
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        scheme = kernel_scheme(family, transport.socktype, transport.protocol) or self.kind
        if ip.version == 6:
            return parse_address(f"{scheme}:[{ip}]:{self.port}")
        return parse_address(f"{scheme}:{ip}:{self.port}")


def _tcp(kind: str) -> bool:
    """Whether sockets the kernel names `kind` (tcp4, udp6, unix, ...) are TCP's."""
    return get_transport(kind).protocol == socket.IPPROTO_TCP


def _inet_host(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    # each 32-bit word is in host byte order
    words = b"".join(raw[i:i + 4][::-1] if sys.byteorder == "little" else raw[i:i + 4]
                     for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def _read_lines(path: str) -> list[str]:
    """A kernel table's rows, after its header: split at newlines only (a unix socket's name
    may hold any other byte, none of which ends a row), bytes that are not UTF-8 kept as
    surrogates."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    return data.decode("utf-8", "surrogateescape").split("\n")[1:]


def parse_inet_table(lines: Iterable[str], kind: str) -> list[ListeningSocket]:
    """The listening sockets in the lines of ``/proc/net/tcp`` (udp, tcp6, udp6) after its header."""
    wanted = _TCP_LISTEN if _tcp(kind) else _UDP_UNCONNECTED
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) < 10 or fields[3] != wanted:
            continue
        local_host, _, local_port = fields[1].partition(":")
        try:
            port = int(local_port, 16)
            host, inode = _inet_host(local_host), int(fields[9])
        except ValueError:
            continue
        if port == 0:
            continue
        found.append(ListeningSocket(kind, host, port, None, inode))
    return found


#: a row of /proc/net/unix as the kernel writes it: "Num: RefCount Protocol Flags Type St Inode
#: [Path]"; anything else is a piece of a name that held a newline
_UNIX_ROW = re.compile(r"[0-9a-fA-F]+: [0-9a-fA-F]{8} [0-9a-fA-F]{8} [0-9a-fA-F]{8} [0-9a-fA-F]{4} [0-9a-fA-F]{2} "
                       r"[0-9]+(?: (.*))?\Z")


def parse_unix_table(lines: Iterable[str]) -> list[ListeningSocket]:
    """The listening (or bound, unconnected datagram) sockets in ``/proc/net/unix``'s lines.

    A name may hold a newline, and what follows it then reads as a row of its own: lines
    that are not rows are skipped, and an inode listed more than once is dropped altogether
    (one of its rows was forged inside a name, and which one cannot be told)."""
    rows: list[tuple[int, int, int, int, str]] = []
    for line in lines:
        match = _UNIX_ROW.match(line)
        if match is None or match.group(1) is None:
            continue  # not a row, or no name: an unbound socket
        fields = line.split(None, 7)
        rows.append((int(fields[3], 16), int(fields[4], 16), int(fields[5], 16), int(fields[6]), match.group(1)))
    counts: dict[int, int] = {}
    for row in rows:
        counts[row[3]] = counts.get(row[3], 0) + 1
    found = []
    for flags, socktype, state, inode, name in rows:
        kind = kernel_scheme(socket.AF_UNIX, socktype)
        if kind is None or counts[inode] > 1:
            continue
        # a bound datagram socket is listed as connected (03) once a connected client has
        # written to it; stream and seqpacket listeners are unconnected and accepting
        if get_transport(kind).connected and (state != _UNCONNECTED or not flags & _SO_ACCEPTCON):
            continue
        found.append(ListeningSocket(kind, None, None, name, inode))
    return found


# -- unix sockets from sock_diag (netlink): names as bytes, nothing to forge ---------------------

_NETLINK_SOCK_DIAG, _SOCK_DIAG_BY_FAMILY = 4, 20
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_UDIAG_SHOW_NAME, _UNIX_DIAG_NAME = 0x1, 0
_TCP_LISTEN_STATE = 10  # sk_state of a unix socket that called listen()


def parse_unix_diag(data: bytes) -> tuple[list[ListeningSocket], bool]:
    """The listening (or bound datagram) sockets in netlink messages answering a unix_diag
    dump, and whether the dump is complete (its NLMSG_DONE came). Raises ValueError for an
    error message (no unix_diag in this kernel)."""
    found: list[ListeningSocket] = []
    offset = 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if length < 16 or offset + length > len(data):
            break
        body = data[offset + 16:offset + length]
        offset += (length + 3) & ~3
        if kind == _NLMSG_DONE:
            return found, True
        if kind == _NLMSG_ERROR:
            code = struct.unpack_from("=i", body)[0] if len(body) >= 4 else 0
            raise ValueError(f"sock_diag: {os.strerror(-code) if code else 'error'}")
        if kind != _SOCK_DIAG_BY_FAMILY or len(body) < 16:
            continue
        _family, socktype, state, _pad, inode = struct.unpack_from("=BBBBI", body)
        name: bytes | None = None
        at = 16
        while at + 4 <= len(body):
            size, attr = struct.unpack_from("=HH", body, at)
            if size < 4:
                break
            if attr == _UNIX_DIAG_NAME:
                name = body[at + 4:at + size]
            at += (size + 3) & ~3
        sock_kind = kernel_scheme(socket.AF_UNIX, socktype)
        if sock_kind is None or not name:
            continue
        if get_transport(sock_kind).connected and state != _TCP_LISTEN_STATE:
            continue
        text = "@" + name[1:].decode("utf-8", "surrogateescape") if name[:1] == b"\0" else \
            name.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        found.append(ListeningSocket(sock_kind, None, None, text, inode))
    return found, False


def unix_diag() -> list[ListeningSocket] | None:
    """The listening unix sockets of this process's network namespace, from sock_diag; None
    where the kernel does not answer (no unix_diag)."""
    request = struct.pack("=BBHIII", socket.AF_UNIX, 0, 0, 0xFFFFFFFF, 0, _UDIAG_SHOW_NAME) + b"\xff" * 8
    header = struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0)
    found: list[ListeningSocket] = []
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG) as sock:
            sock.settimeout(5.0)
            sock.sendto(header + request, (0, 0))
            for _ in range(100_000):  # a dump of any size, in messages of up to 64 KiB each
                part, done = parse_unix_diag(sock.recv(1 << 16))
                found += part
                if done:
                    return found
    except (OSError, ValueError):
        return None
    return None


def _same_netns(pid: int | str) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net")
    except OSError:
        return False


def unix_listening(pid: int | str = "self") -> list[ListeningSocket]:
    """The listening unix sockets in `pid`'s network namespace: from sock_diag where that is
    this process's own and the kernel has it, else from ``/proc/PID/net/unix``."""
    if _same_netns(pid):
        found = unix_diag()
        if found is not None:
            return found
    return parse_unix_table(_read_lines(f"/proc/{pid}/net/unix"))


def listening_sockets(pid: int | str = "self") -> list[ListeningSocket]:
    """Every listening socket in the network namespace of process `pid` (default: ours)."""
    base = f"/proc/{pid}/net"
    found: list[ListeningSocket] = []
    for name, kind in (("tcp", "tcp4"), ("tcp6", "tcp6"), ("udp", "udp4"), ("udp6", "udp6")):
        found += parse_inet_table(_read_lines(f"{base}/{name}"), kind)
    found += unix_listening(pid)
    return found


def time_wait(port: int, pid: int | str = "self") -> int:
    """How many TCP connections with local port `port` are in TIME_WAIT (state 06) in the
    network namespace of process `pid`: while any are, a listener without SO_REUSEADDR cannot
    bind that port."""
    count = 0
    for name in ("tcp", "tcp6"):
        for line in _read_lines(f"/proc/{pid}/net/{name}"):
            fields = line.split()
            if len(fields) < 4 or fields[3] != "06":
                continue
            try:
                if int(fields[1].rpartition(":")[2], 16) == port:
                    count += 1
            except ValueError:
                continue
    return count


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets process `pid` holds open (empty if it is gone)."""
    inodes: set[int] = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:[") and target.endswith("]") and target[8:-1].isdigit():
            inodes.add(int(target[8:-1]))
    return inodes


def group_members(pgid: int) -> list[int]:
    """The processes in process group `pgid`."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _stat_fields(int(entry))
        if stat is not None and int(stat[2]) == pgid:
            members.append(int(entry))
    return members


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` after the command name: state, ppid, pgrp, ... (None if gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def cpu_seconds(pids: Iterable[int]) -> float:
    """User plus system CPU time the processes have used, every thread included."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def sockets_of(pids: Iterable[int]) -> list[ListeningSocket]:
    """The listening sockets the processes hold, best first (tcp, then unix, then datagrams)."""
    found: list[ListeningSocket] = []
    seen: set[int] = set()
    for pid in pids:
        inodes = socket_inodes(pid)
        if not inodes:
            continue
        for sock in listening_sockets(pid):
            if sock.inode in inodes and sock.inode not in seen and _reachable(sock):
                seen.add(sock.inode)
                found.append(ListeningSocket(sock.kind, sock.host, sock.port, sock.path, sock.inode, pid))
    return sorted(found, key=lambda s: _PREFERENCE.index(s.kind))


def _reachable(sock: ListeningSocket) -> bool:
    """Whether netlab can name the socket as an address to connect to (a unix name may be
    any bytes: one that no address can spell is not tested)."""
    try:
        sock.client_address()
    except (NetlabError, ValueError):
        return False
    return True


def choice(found: list[ListeningSocket], tested: ListeningSocket) -> str:
    """Which of a program's several listening sockets was tested, and why (empty for one)."""
    if len(found) < 2:
        return ""
    shown = ", ".join(f"{s.kind} {s.bound_text}" for s in found[:6]) + (", ..." if len(found) > 6 else "")
    why = ("the address given" if tested.inode != found[0].inode else
           "the first in netlab's order: tcp, then unix streams, then datagrams")
    return f"it listens on {len(found)} sockets ({shown}): tested {tested.kind} {tested.bound_text}, {why}"


def _endpoint(field: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    """``0100007F:C350`` as (IP, port); an IPv4-mapped IPv6 address as its IPv4 address."""
    host, _, port = field.partition(":")
    ip = ipaddress.ip_address(_inet_host(host))
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip, int(port, 16)


def _tcp_lines(pid: int | str) -> list[str]:
    return _read_lines(f"/proc/{pid}/net/tcp") + _read_lines(f"/proc/{pid}/net/tcp6")


def parse_accepted(lines: Iterable[str], server_port: int, client: tuple[str, int]) -> bool | None:
    """From ``/proc/net/tcp`` lines: whether the server's side of the connection from `client`
    (host, port) to `server_port` was accepted. A connection the kernel completed but the
    program has not accepted waits in the listener's accept queue with no socket file, so its
    inode is 0; once accepted it has one. None if no such connection is listed."""
    want = (ipaddress.ip_address(client[0]), client[1])
    if isinstance(want[0], ipaddress.IPv6Address) and want[0].ipv4_mapped is not None:
        want = (want[0].ipv4_mapped, want[1])
    for line in lines:
        fields = line.split()
        if len(fields) < 10 or fields[3] == _TCP_LISTEN:
            continue
        try:
            local, remote = _endpoint(fields[1]), _endpoint(fields[2])
        except ValueError:
            continue
        if local[1] == server_port and remote == want:
            return int(fields[9]) != 0
    return None


def accepted(server_port: int, client: tuple[str, int], pid: int | str = "self") -> bool | None:
    """`parse_accepted` on the TCP tables of `pid`'s network namespace."""
    return parse_accepted(_tcp_lines(pid), server_port, client)


def parse_accept_queue(lines: Iterable[str], inode: int) -> int | None:
    """From ``/proc/net/tcp`` lines: how many completed connections wait in the accept queue
    of the listening socket `inode` (for a listener, the kernel shows that in rx_queue)."""
    for line in lines:
        fields = line.split()
        if len(fields) >= 10 and fields[3] == _TCP_LISTEN and fields[9] == str(inode):
            try:
                return int(fields[4].partition(":")[2], 16)
            except ValueError:
                return None
    return None


def accept_queue(inode: int, pid: int | str = "self") -> int | None:
    """`parse_accept_queue` on the TCP tables of `pid`'s network namespace."""
    return parse_accept_queue(_tcp_lines(pid), inode)


def find_listener(address: Address, pid: int | str = "self") -> ListeningSocket | None:
    """The listening socket that a client of `address` reaches, in `pid`'s namespace: the same
    path (unix), or the same port and protocol (inet), of the address's family first (a
    program may listen on both 0.0.0.0 and [::])."""
    if address.is_unix:
        name = f"@{address.abstract}" if address.is_abstract else address.path
        return next((s for s in listening_sockets(pid) if s.path == name and s.kind == address.scheme), None)
    transport = get_transport(address.scheme)
    kinds = {kernel_scheme(family, transport.socktype, transport.protocol)
             for family in (socket.AF_INET, socket.AF_INET6)}
    matches = [s for s in listening_sockets(pid) if s.port == address.port and s.kind in kinds]
    six = address.host_family == socket.AF_INET6 or address.scheme.endswith("6")
    matches.sort(key=lambda s: s.kind.endswith("6") != six)
    return matches[0] if matches else None


__all__ = ["ListeningSocket", "accept_queue", "accepted", "choice", "cpu_seconds", "find_listener",
           "group_members", "listening_sockets", "parse_accept_queue", "parse_accepted", "parse_inet_table",
           "parse_unix_diag", "parse_unix_table", "socket_inodes", "sockets_of", "time_wait", "unix_diag",
           "unix_listening"]
