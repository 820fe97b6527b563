"""The socket module's constants by prefix, every name kept: the lecture's ``get_constants``, fixed.

The lecture builds ``{value: name}`` with a dict comprehension, so when several names share a
value only the last one survives (``IPPROTO_IP`` and ``IPPROTO_HOPOPTS`` are both 0;
``AF_ROUTE`` and ``AF_NETLINK`` both 16). `constants` groups names by value instead.

A shared value is not always an alias. ``SO_REUSEADDR`` and ``SO_J1939_PROMISC`` are both 2,
but the first is a ``SOL_SOCKET`` option and the second a ``SOL_CAN_J1939`` one: an option
number means nothing without its level. ``IP_DEFAULT_MULTICAST_TTL`` is a default *value*,
not an option number at all. The meanings below say so where it matters.

Prefix matching is case-insensitive (``af`` finds ``AF_DECnet`` too). A prefix without a
trailing underscore gets one when that matches something, so ``SO`` means ``SO_`` (not
``SOCK_``, ``SOL_`` and ``SOMAXCONN`` as well); otherwise it is used as given, so ``E``
finds ``EAGAIN``, ``EBADF`` and the ``EAI_`` codes.

Meanings are written by hand for the common names. The rest say "no description" rather
than guess.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType

from ..errors import UnknownNameError

NO_DESCRIPTION = "no description"

#: one line per name; where the value matters in a way the name hides, the line says so
MEANINGS: dict[str, str] = {
    # -- address families ------------------------------------------------------------
    "AF_UNSPEC": "any family: getaddrinfo returns IPv4 and IPv6 results",
    "AF_UNIX": "local (unix domain) sockets: a filesystem path or a Linux abstract name",
    "AF_INET": "IPv4: (host, port)",
    "AF_INET6": "IPv6: (host, port, flowinfo, scope_id)",
    "AF_PACKET": "raw link-layer (Ethernet) frames",
    "AF_NETLINK": "netlink: talk to the kernel (routes, interfaces, ...)",
    "AF_ROUTE": "BSD name for the routing socket; on Linux an alias of AF_NETLINK",
    "AF_BLUETOOTH": "Bluetooth",
    "AF_CAN": "Controller Area Network (vehicle buses)",
    "AF_TIPC": "TIPC: cluster-wide inter-process communication",
    "AF_ALG": "the kernel crypto API",
    "AF_VSOCK": "virtual machine <-> host sockets",
    "AF_RDS": "Reliable Datagram Sockets",
    "AF_QIPCRTR": "Qualcomm IPC router",
    "AF_KEY": "IPsec key management (PF_KEY v2)",
    "AF_APPLETALK": "AppleTalk (historic)",
    "AF_IPX": "Novell IPX (historic)",
    "AF_DECnet": "DECnet (historic)",
    "AF_SNA": "IBM SNA (historic)",
    "AF_X25": "X.25 packet switching (historic)",
    "AF_AX25": "AX.25 amateur packet radio",
    "AF_NETROM": "NET/ROM amateur radio",
    "AF_ROSE": "ROSE amateur radio",
    "AF_IRDA": "infrared (IrDA)",
    "AF_LLC": "IEEE 802.2 Logical Link Control",
    "AF_BRIDGE": "multiprotocol bridge",
    "AF_ATMPVC": "ATM permanent virtual circuits",
    "AF_ATMSVC": "ATM switched virtual circuits",
    "AF_PPPOX": "PPP over X (PPPoE, L2TP)",
    "AF_SECURITY": "security callback pseudo-family",
    "AF_WANPIPE": "Sangoma WANPIPE",
    "AF_ECONET": "Acorn Econet (historic)",
    "AF_NETBEUI": "NetBEUI (historic)",
    "PF_CAN": "protocol-family spelling of AF_CAN (PF_ and AF_ values are the same)",
    "PF_PACKET": "protocol-family spelling of AF_PACKET",
    "PF_RDS": "protocol-family spelling of AF_RDS",
    # -- socket types ---------------------------------------------------------------
    "SOCK_STREAM": "reliable, ordered byte stream, no message boundaries (TCP, unix stream)",
    "SOCK_DGRAM": "datagrams: boundaries kept; UDP may lose or reorder them",
    "SOCK_RAW": "raw packets: you see (and may build) the protocol headers",
    "SOCK_SEQPACKET": "reliable, ordered, connected, and boundaries kept",
    "SOCK_RDM": "reliably delivered messages, order not guaranteed (rarely implemented)",
    "SOCK_NONBLOCK": "flag OR-ed into the type: create the socket non-blocking",
    "SOCK_CLOEXEC": "flag OR-ed into the type: close the socket on exec()",
    # -- protocols ------------------------------------------------------------------
    "IPPROTO_IP": "0: the default protocol for the family and type (and the IPv4 option level)",
    "IPPROTO_HOPOPTS": "IPv6 hop-by-hop options header (shares 0 with IPPROTO_IP)",
    "IPPROTO_ICMP": "ICMP: ping, port unreachable, ...",
    "IPPROTO_IGMP": "IGMP: IPv4 multicast group membership",
    "IPPROTO_IPIP": "IPv4-in-IPv4 tunnelling",
    "IPPROTO_TCP": "TCP (and the TCP_ option level)",
    "IPPROTO_EGP": "Exterior Gateway Protocol (historic)",
    "IPPROTO_PUP": "PARC Universal Packet (historic)",
    "IPPROTO_UDP": "UDP",
    "IPPROTO_IDP": "Xerox NS IDP (historic)",
    "IPPROTO_TP": "ISO transport protocol class 4",
    "IPPROTO_IPV6": "IPv6-in-IPv4 tunnelling (and the IPV6_ option level)",
    "IPPROTO_ROUTING": "IPv6 routing header",
    "IPPROTO_FRAGMENT": "IPv6 fragment header",
    "IPPROTO_RSVP": "Resource reSerVation Protocol",
    "IPPROTO_GRE": "Generic Routing Encapsulation tunnels",
    "IPPROTO_ESP": "IPsec Encapsulating Security Payload",
    "IPPROTO_AH": "IPsec Authentication Header",
    "IPPROTO_ICMPV6": "ICMP for IPv6",
    "IPPROTO_NONE": "IPv6: no next header",
    "IPPROTO_DSTOPTS": "IPv6 destination options header",
    "IPPROTO_PIM": "Protocol Independent Multicast",
    "IPPROTO_SCTP": "SCTP: reliable, message-oriented, multi-stream",
    "IPPROTO_UDPLITE": "UDP-Lite: UDP with partial checksums",
    "IPPROTO_MPTCP": "Multipath TCP",
    "IPPROTO_RAW": "raw IP: you write the IP header yourself",
    # -- option levels --------------------------------------------------------------
    "SOL_SOCKET": "option level for the SO_ options (any family)",
    "SOL_IP": "option level for IP_ options (same value as IPPROTO_IP)",
    "SOL_TCP": "option level for TCP_ options (same value as IPPROTO_TCP)",
    "SOL_UDP": "option level for UDP options (same value as IPPROTO_UDP)",
    "SOL_ALG": "option level for AF_ALG (kernel crypto) sockets",
    "SOL_TIPC": "option level for TIPC sockets",
    "SOL_RDS": "option level for RDS sockets",
    "SOL_CAN_BASE": "base of the CAN option levels",
    "SOL_CAN_RAW": "option level for raw CAN sockets",
    # -- SOL_SOCKET options ---------------------------------------------------------
    "SO_DEBUG": "record debugging information (needs CAP_NET_ADMIN)",
    "SO_REUSEADDR": "bind a port still in TIME_WAIT (servers restart without 'address in use')",
    "SO_TYPE": "read-only: the socket type (SOCK_STREAM, ...)",
    "SO_ERROR": "read-only: the pending error (e.g. after a non-blocking connect), then clears it",
    "SO_DONTROUTE": "send only to directly connected hosts, bypassing routing",
    "SO_BROADCAST": "allow sending to a broadcast address (UDP)",
    "SO_SNDBUF": "send buffer size in bytes; Linux doubles what you set for bookkeeping",
    "SO_RCVBUF": "receive buffer size in bytes; Linux doubles what you set for bookkeeping",
    "SO_KEEPALIVE": "send TCP keepalive probes on an idle connection",
    "SO_OOBINLINE": "deliver TCP urgent (out-of-band) data inline",
    "SO_PRIORITY": "queueing priority of outgoing packets",
    "SO_LINGER": "close() waits (or resets) until unsent data is sent, per struct linger",
    "SO_REUSEPORT": "several sockets bind the same port; the kernel spreads connections among them",
    "SO_PASSCRED": "unix: receive the sender's credentials (SCM_CREDENTIALS)",
    "SO_PEERCRED": "unix: read-only: pid, uid, gid of the connected peer",
    "SO_RCVLOWAT": "minimum bytes before a read is reported ready",
    "SO_SNDLOWAT": "minimum free send space before a write is reported ready (not changeable on Linux)",
    "SO_RCVTIMEO": "timeout for blocking receives",
    "SO_SNDTIMEO": "timeout for blocking sends",
    "SO_BINDTODEVICE": "send and receive only through one interface (e.g. eth0)",
    "SO_ACCEPTCONN": "read-only: 1 if the socket is listening",
    "SO_PEERSEC": "unix: read-only: the peer's security context (SELinux, AppArmor)",
    "SO_PASSSEC": "unix: receive the sender's security context",
    "SO_MARK": "firewall mark on outgoing packets (needs CAP_NET_ADMIN)",
    "SO_DOMAIN": "read-only: the socket family (AF_INET, ...)",
    "SO_PROTOCOL": "read-only: the socket protocol (IPPROTO_TCP, ...)",
    "SO_INCOMING_CPU": "the CPU that handles the socket's incoming packets",
    "SO_J1939_FILTER": "level SOL_CAN_J1939, not SOL_SOCKET: receive filters on a J1939 (CAN) socket",
    "SO_J1939_PROMISC": "level SOL_CAN_J1939, not SOL_SOCKET: receive J1939 traffic for any address",
    "SO_J1939_SEND_PRIO": "level SOL_CAN_J1939, not SOL_SOCKET: priority of sent J1939 messages",
    "SO_J1939_ERRQUEUE": "level SOL_CAN_J1939, not SOL_SOCKET: report J1939 transfer status on the error queue",
    "SO_VM_SOCKETS_BUFFER_SIZE": "level AF_VSOCK, not SOL_SOCKET: vsock stream buffer size",
    "SO_VM_SOCKETS_BUFFER_MIN_SIZE": "level AF_VSOCK, not SOL_SOCKET: smallest vsock buffer size allowed",
    "SO_VM_SOCKETS_BUFFER_MAX_SIZE": "level AF_VSOCK, not SOL_SOCKET: largest vsock buffer size allowed",
    "SOMAXCONN": "the listen() backlog Python uses by default (the kernel caps it at net.core.somaxconn)",
    # -- send/recv flags ------------------------------------------------------------
    "MSG_OOB": "send or receive TCP urgent (out-of-band) data",
    "MSG_PEEK": "receive without removing the data from the queue",
    "MSG_DONTROUTE": "send only to directly connected hosts",
    "MSG_CTRUNC": "recvmsg result: ancillary data was truncated",
    "MSG_TRUNC": "recvmsg result: the datagram was longer than the buffer (the rest is lost)",
    "MSG_DONTWAIT": "this one call is non-blocking",
    "MSG_EOR": "end of record (SOCK_SEQPACKET)",
    "MSG_WAITALL": "block until the whole buffer is filled (or EOF, error, signal)",
    "MSG_CONFIRM": "tell the link layer the neighbour answered (skip ARP probing)",
    "MSG_ERRQUEUE": "receive from the socket's error queue",
    "MSG_NOSIGNAL": "no SIGPIPE when the peer has closed; just EPIPE",
    "MSG_MORE": "more data follows: hold this send back (like TCP_CORK, for one call)",
    "MSG_CMSG_CLOEXEC": "received file descriptors (SCM_RIGHTS) get close-on-exec",
    "MSG_FASTOPEN": "TCP Fast Open: send data in the SYN (sendto on an unconnected socket)",
    # -- TCP options (level IPPROTO_TCP) ---------------------------------------------
    "TCP_NODELAY": "send small segments at once: turn off Nagle's algorithm",
    "TCP_MAXSEG": "maximum segment size (MSS) for outgoing segments",
    "TCP_CORK": "hold partial segments until uncorked (or 200 ms)",
    "TCP_KEEPIDLE": "idle seconds before the first keepalive probe (with SO_KEEPALIVE)",
    "TCP_KEEPINTVL": "seconds between keepalive probes",
    "TCP_KEEPCNT": "unanswered keepalive probes before the connection is dropped",
    "TCP_SYNCNT": "SYN retransmissions before connect() gives up",
    "TCP_LINGER2": "lifetime of orphaned FIN_WAIT2 sockets",
    "TCP_DEFER_ACCEPT": "accept() wakes only when data has arrived, not on the bare handshake",
    "TCP_WINDOW_CLAMP": "bound the advertised receive window",
    "TCP_INFO": "read-only: struct tcp_info (RTT, retransmits, congestion window, ...)",
    "TCP_QUICKACK": "send ACKs at once instead of delaying them (not permanent)",
    "TCP_CONGESTION": "the congestion control algorithm (cubic, bbr, reno, ...)",
    "TCP_USER_TIMEOUT": "milliseconds unacknowledged data may wait before the connection is dropped",
    "TCP_NOTSENT_LOWAT": "limit on unsent bytes before a write is reported ready",
    "TCP_FASTOPEN": "server: accept data in the SYN (TCP Fast Open); the value is the queue length",
    # -- shutdown -------------------------------------------------------------------
    "SHUT_RD": "shutdown(): no more receiving",
    "SHUT_WR": "shutdown(): no more sending; the peer reads EOF (a TCP FIN): the half-close",
    "SHUT_RDWR": "shutdown(): neither",
    # -- ancillary messages ---------------------------------------------------------
    "SCM_RIGHTS": "unix: pass open file descriptors to the peer",
    "SCM_CREDENTIALS": "unix: pass pid, uid, gid to the peer",
    # -- getaddrinfo / getnameinfo --------------------------------------------------
    "AI_PASSIVE": "getaddrinfo: with no host, give the wildcard address (for bind)",
    "AI_CANONNAME": "getaddrinfo: also return the host's canonical name",
    "AI_NUMERICHOST": "getaddrinfo: the host must be a numeric address; never look it up",
    "AI_NUMERICSERV": "getaddrinfo: the service must be a port number; never look it up",
    "AI_V4MAPPED": "getaddrinfo: for AF_INET6 with no IPv6 result, give IPv4 as ::ffff:a.b.c.d",
    "AI_ALL": "getaddrinfo: with AI_V4MAPPED, give both IPv6 and mapped IPv4 results",
    "AI_ADDRCONFIG": "getaddrinfo: only families that have an address configured on this host",
    "NI_NUMERICHOST": "getnameinfo: give the numeric address, not a name",
    "NI_NUMERICSERV": "getnameinfo: give the port number, not the service name",
    "NI_NAMEREQD": "getnameinfo: fail if the address has no name",
    "NI_NOFQDN": "getnameinfo: local hosts by their short name",
    "NI_DGRAM": "getnameinfo: the service is datagram (matters for a few ports)",
    "NI_MAXHOST": "getnameinfo: largest host name buffer (a size, not a flag)",
    "NI_MAXSERV": "getnameinfo: largest service name buffer (a size, not a flag)",
    "EAI_AGAIN": "getaddrinfo error: temporary failure in name resolution (try again)",
    "EAI_BADFLAGS": "getaddrinfo error: invalid flags",
    "EAI_FAIL": "getaddrinfo error: non-recoverable failure in name resolution",
    "EAI_FAMILY": "getaddrinfo error: address family not supported",
    "EAI_MEMORY": "getaddrinfo error: out of memory",
    "EAI_NODATA": "getaddrinfo error: the host exists but has no address",
    "EAI_NONAME": "getaddrinfo error: name or service not known",
    "EAI_SERVICE": "getaddrinfo error: service not known for this socket type",
    "EAI_SOCKTYPE": "getaddrinfo error: socket type not supported",
    "EAI_SYSTEM": "getaddrinfo error: a system error; see errno",
    "EAI_ADDRFAMILY": "getaddrinfo error: the host has no address in the requested family",
    "EAI_OVERFLOW": "getnameinfo error: a buffer was too small",
    "EAGAIN": "errno: resource temporarily unavailable (a non-blocking call would block)",
    "EWOULDBLOCK": "errno: same value as EAGAIN on Linux",
    "EBADF": "errno: bad file descriptor",
    # -- IP and IPv6 options ----------------------------------------------------------
    "IP_TOS": "type of service / DSCP bits of outgoing IPv4 packets",
    "IP_TTL": "time to live of outgoing IPv4 packets",
    "IP_HDRINCL": "raw sockets: you supply the IPv4 header",
    "IP_OPTIONS": "IPv4 header options",
    "IP_RECVTOS": "receive the TOS byte as ancillary data",
    "IP_MULTICAST_IF": "interface for outgoing multicast",
    "IP_MULTICAST_TTL": "time to live of outgoing multicast (default 1: this network only)",
    "IP_MULTICAST_LOOP": "whether this host's own multicast is looped back to it",
    "IP_ADD_MEMBERSHIP": "join a multicast group",
    "IP_DROP_MEMBERSHIP": "leave a multicast group",
    "IP_DEFAULT_MULTICAST_TTL": "a default value (1), not an option number",
    "IP_DEFAULT_MULTICAST_LOOP": "a default value (1: on), not an option number",
    "IP_MAX_MEMBERSHIPS": "a limit (groups per socket), not an option number",
    "IP_TRANSPARENT": "bind to non-local addresses (transparent proxies; needs CAP_NET_ADMIN)",
    "IP_BIND_ADDRESS_NO_PORT": "bind() picks the address only; the port is chosen at connect()",
    "IPV6_V6ONLY": "an IPv6 socket accepts IPv6 only; off: IPv4 peers appear as ::ffff:a.b.c.d",
    "IPV6_UNICAST_HOPS": "hop limit of outgoing unicast packets",
    "IPV6_MULTICAST_HOPS": "hop limit of outgoing multicast",
    "IPV6_MULTICAST_IF": "interface for outgoing multicast",
    "IPV6_MULTICAST_LOOP": "whether this host's own multicast is looped back to it",
    "IPV6_JOIN_GROUP": "join a multicast group",
    "IPV6_LEAVE_GROUP": "leave a multicast group",
    "IPV6_TCLASS": "traffic class of outgoing packets",
    "IPV6_RECVPKTINFO": "receive the destination address and interface as ancillary data",
    "IPV6_DONTFRAG": "do not fragment: fail with EMSGSIZE instead",
    # -- addresses and ports ----------------------------------------------------------
    "INADDR_ANY": "0.0.0.0: every IPv4 address of this host (bind)",
    "INADDR_LOOPBACK": "127.0.0.1 as an integer",
    "INADDR_BROADCAST": "255.255.255.255 as an integer",
    "INADDR_NONE": "0xffffffff: the error value of inet_addr() (same as INADDR_BROADCAST)",
    "IPPORT_RESERVED": "ports below this need privilege (historic BSD value; Linux uses ip_unprivileged_port_start)",
    "IPPORT_USERRESERVED": "historic BSD start of user ports",
}


@dataclass(frozen=True)
class ConstantRow:
    value: int
    names: tuple[str, ...]
    meanings: tuple[str, ...]  # one per name, in the same order

    @property
    def shared(self) -> bool:
        return len(self.names) > 1

    def as_dict(self) -> dict[str, object]:
        return {"value": self.value, "names": list(self.names), "meanings": list(self.meanings),
                "shared": self.shared}


@dataclass(frozen=True)
class ConstantsTable:
    asked: str  # what the user typed
    prefix: str  # what was matched (upper case, "_" added when that matched)
    rows: tuple[ConstantRow, ...]

    def as_dict(self) -> dict[str, object]:
        return {"asked": self.asked, "prefix": self.prefix, "rows": [row.as_dict() for row in self.rows]}


def _all_constants(module: ModuleType = socket) -> dict[str, int]:
    """Every integer constant of the socket module (enum members included, bools and classes not)."""
    found: dict[str, int] = {}
    for name in dir(module):
        if not name[:1].isupper() or name.startswith("_"):
            continue
        value = getattr(module, name)
        if isinstance(value, bool) or not isinstance(value, int):
            continue
        found[name] = int(value)
    return found


def prefixes() -> dict[str, int]:
    """Every prefix the socket module's constants have (``AF_``, ``SO_``, ...), with a count.

    A name with no underscore (``SOMAXCONN``, ``EAGAIN``) is its own prefix.
    """
    counts: dict[str, int] = {}
    for name in _all_constants():
        head, sep, _ = name.partition("_")
        key = head + sep
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def _matching(prefix: str, names: Iterable[str]) -> list[str]:
    return [name for name in names if name.upper().startswith(prefix)]


def constants(prefix: str) -> ConstantsTable:
    """All socket constants starting with `prefix`, grouped by value, every name kept.

    Raises:
        UnknownNameError: no constant starts with `prefix` (the message lists valid prefixes).
    """
    everything = _all_constants()
    asked = prefix
    wanted = prefix.strip().upper()
    names: list[str] = []
    if wanted:
        if not wanted.endswith("_"):
            names = _matching(wanted + "_", everything)
            if names:
                wanted += "_"
        if not names:
            names = _matching(wanted, everything)
    if not names:
        common = [p for p in ("AF_", "SOCK_", "IPPROTO_", "SOL_", "SO_", "MSG_", "TCP_", "IP_", "IPV6_",
                              "AI_", "EAI_", "SHUT_") if p in prefixes()]
        raise UnknownNameError(
            f"no socket constant starts with {asked!r}; try one of {', '.join(common)} "
            f"(`netlab constants` with no prefix lists all {len(prefixes())})"
        )
    by_value: dict[int, list[str]] = {}
    for name in sorted(names):
        by_value.setdefault(everything[name], []).append(name)
    rows = tuple(
        ConstantRow(value, tuple(group), tuple(MEANINGS.get(name, NO_DESCRIPTION) for name in group))
        for value, group in sorted(by_value.items())
    )
    return ConstantsTable(asked=asked, prefix=wanted, rows=rows)


def name_of(prefix: str, value: int, prefer: Iterable[str] = ()) -> str:
    """One name for `value` among the constants with `prefix` (``IPPROTO_`` 6 -> ``IPPROTO_TCP``).

    Names in `prefer` win; otherwise the first alphabetically. Unknown values come back as the number.
    """
    everything = _all_constants()
    candidates = sorted(name for name in everything if name.startswith(prefix) and everything[name] == value)
    for name in prefer:
        if name in candidates:
            return name
    return candidates[0] if candidates else str(value)


__all__ = ["ConstantRow", "ConstantsTable", "MEANINGS", "NO_DESCRIPTION", "constants", "name_of", "prefixes"]
