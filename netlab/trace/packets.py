"""One captured frame, decoded (with dpkt) into what a ladder diagram needs.

A frame captured on ``lo`` with ``AF_PACKET``/``SOCK_RAW`` starts with an Ethernet header
(all zero addresses on loopback), then IPv4 or IPv6, then TCP, UDP, ICMP or ICMPv6. What is
kept of each (`Packet`): addresses and ports, TCP flags, sequence and acknowledgement
numbers, the window, the payload's length and first bytes; for ICMP the type, code and the
packet it quotes (a port unreachable quotes the datagram that found the port closed); for
IP fragments the identification, offset and "more fragments" flag. Everything else (an ARP
frame on a veth link, an unknown protocol) is kept as ``other`` with its length.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import asdict, dataclass, field
from typing import Any

import dpkt

#: how many payload bytes a packet keeps for the ladder and the JSON
PREVIEW = 24

TCP_FLAGS = (("SYN", dpkt.tcp.TH_SYN), ("FIN", dpkt.tcp.TH_FIN), ("RST", dpkt.tcp.TH_RST),
             ("PSH", dpkt.tcp.TH_PUSH), ("ACK", dpkt.tcp.TH_ACK), ("URG", dpkt.tcp.TH_URG))
#: ICMP (v4) types and destination-unreachable codes, as people say them
ICMP_TYPES = {0: "echo reply", 3: "destination unreachable", 8: "echo request", 11: "time exceeded"}
ICMP_UNREACH = {0: "net unreachable", 1: "host unreachable", 2: "protocol unreachable", 3: "port unreachable",
                4: "fragmentation needed", 13: "administratively prohibited"}
ICMP6_TYPES = {1: "destination unreachable", 2: "packet too big", 3: "time exceeded", 128: "echo request",
               129: "echo reply", 133: "router solicitation", 134: "router advertisement",
               135: "neighbour solicitation", 136: "neighbour advertisement", 143: "MLDv2 report"}
ICMP6_UNREACH = {0: "no route", 1: "administratively prohibited", 3: "address unreachable", 4: "port unreachable"}


@dataclass
class Packet:
    """One frame as the ladder shows it. Times are seconds since the epoch."""

    time: float
    length: int  # the whole frame, in bytes
    interface: str = "lo"
    proto: str = "other"  # tcp, udp, icmp, icmp6, fragment, other
    family: int = 0  # 4 or 6 (0: not IP)
    src: str = ""
    dst: str = ""
    sport: int | None = None
    dport: int | None = None
    flags: list[str] = field(default_factory=list)  # TCP
    seq: int | None = None
    ack: int | None = None
    window: int | None = None
    payload_len: int = 0  # bytes above TCP/UDP (for a fragment: the bytes it carries)
    payload: bytes = b""  # its first PREVIEW bytes
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_text: str | None = None
    quoted: dict[str, Any] | None = None  # ICMP: the packet it quotes (proto, src, dst, sport, dport)
    fragment: dict[str, Any] | None = None  # IP fragment: id, offset, more
    ip_id: int | None = None

    @property
    def endpoints(self) -> tuple[tuple[str, int | None], tuple[str, int | None]]:
        return (self.src, self.sport), (self.dst, self.dport)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["payload"] = self.payload.decode("latin-1")
        return data


def _address(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


def _quoted(inner: Any) -> dict[str, Any] | None:
    """What an ICMP error quotes: the start of the packet that caused it."""
    if isinstance(inner, bytes):
        try:
            inner = dpkt.ip.IP(inner) if inner[:1] and inner[0] >> 4 == 4 else dpkt.ip6.IP6(inner)
        except (dpkt.UnpackError, dpkt.NeedData, IndexError):
            return None
    if not isinstance(inner, (dpkt.ip.IP, dpkt.ip6.IP6)):
        return None
    out: dict[str, Any] = {"src": _address(inner.src), "dst": _address(inner.dst), "proto": inner.p}
    transport = inner.data
    if isinstance(transport, (dpkt.udp.UDP, dpkt.tcp.TCP)):
        out.update(proto="udp" if isinstance(transport, dpkt.udp.UDP) else "tcp",
                   sport=transport.sport, dport=transport.dport)
    elif isinstance(transport, bytes) and len(transport) >= 4 and inner.p in (socket.IPPROTO_UDP, socket.IPPROTO_TCP):
        out.update(proto="udp" if inner.p == socket.IPPROTO_UDP else "tcp",
                   sport=int.from_bytes(transport[0:2], "big"), dport=int.from_bytes(transport[2:4], "big"))
    return out


def decode(frame: bytes, when: float, interface: str = "lo") -> Packet:
    """A captured frame as a `Packet`; never raises (what cannot be read stays ``other``)."""
    packet = Packet(when, len(frame), interface)
    try:
        ether = dpkt.ethernet.Ethernet(frame)
    except (dpkt.UnpackError, dpkt.NeedData):
        return packet
    ip = ether.data
    if isinstance(ip, dpkt.ip.IP):
        packet.family, packet.ip_id = 4, ip.id
        more, offset = bool(ip.mf), ip.offset * 8  # the header counts in 8-byte units
    elif isinstance(ip, dpkt.ip6.IP6):
        packet.family = 6
        fragment = ip.extension_hdrs.get(44) if hasattr(ip, "extension_hdrs") else None
        more = bool(fragment.m_flag) if fragment is not None else False
        offset = fragment.frag_off * 8 if fragment is not None else 0
        if fragment is not None:
            packet.ip_id = fragment.id
    else:
        return packet
    packet.src, packet.dst = _address(ip.src), _address(ip.dst)
    if more or offset:
        packet.fragment = {"id": packet.ip_id, "offset": offset, "more": more}
    body = ip.data
    if offset:  # a later fragment: no transport header, only bytes
        packet.proto = "fragment"
        packet.payload_len = len(body) if isinstance(body, bytes) else len(bytes(body))
        return packet
    if isinstance(body, dpkt.tcp.TCP):
        packet.proto, packet.sport, packet.dport = "tcp", body.sport, body.dport
        packet.flags = [name for name, bit in TCP_FLAGS if body.flags & bit]
        packet.seq, packet.ack, packet.window = body.seq, body.ack, body.win
        packet.payload_len, packet.payload = len(body.data), bytes(body.data[:PREVIEW])
    elif isinstance(body, dpkt.udp.UDP):
        packet.proto, packet.sport, packet.dport = "udp", body.sport, body.dport
        data = bytes(body.data)
        # a first fragment holds only part of the datagram: its length is in the UDP header
        packet.payload_len = body.ulen - 8 if packet.fragment else len(data)
        packet.payload = data[:PREVIEW]
    elif isinstance(body, (dpkt.icmp.ICMP, dpkt.icmp6.ICMP6)):
        six = isinstance(body, dpkt.icmp6.ICMP6)
        packet.proto = "icmp6" if six else "icmp"
        packet.icmp_type, packet.icmp_code = body.type, body.code
        names, unreachable = (ICMP6_TYPES, ICMP6_UNREACH) if six else (ICMP_TYPES, ICMP_UNREACH)
        text = names.get(body.type, f"type {body.type}")
        if body.type == (1 if six else 3):
            text = unreachable.get(body.code, f"{text} (code {body.code})")
            inner = getattr(body.data, "data", None)
            packet.quoted = _quoted(inner)
        packet.icmp_text = text
    else:
        packet.payload_len = len(body) if isinstance(body, bytes) else len(bytes(body))
    return packet


TLS_RECORDS = {20: "change cipher spec", 21: "alert", 22: "handshake", 23: "application data"}


def tls_record(data: bytes) -> str | None:
    """``TLS handshake`` when `data` starts with a TLS record header (type, version 3.x), else None."""
    if len(data) >= 5 and data[0] in TLS_RECORDS and data[1] == 3 and data[2] <= 4:
        return f"TLS {TLS_RECORDS[data[0]]}"
    return None


def preview(data: bytes, limit: int = 12) -> str:
    """The first bytes of a payload as a quoted, escaped string: ``"2 3\\n"``."""
    if data and sum(32 <= b < 127 or b in (9, 10, 13) for b in data[:limit]) < len(data[:limit]) / 2:
        return " ".join(f"{b:02x}" for b in data[: limit // 2]) + ("…" if len(data) > limit // 2 else "")
    shown = []
    for byte in data[:limit]:
        char = chr(byte)
        shown.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", '"': '\\"', "\\": "\\\\"}.get(
            char, char if 32 <= byte < 127 else f"\\x{byte:02x}"))
    return '"' + "".join(shown) + ('…"' if len(data) > limit else '"')


__all__ = ["Packet", "decode", "preview", "tls_record"]
