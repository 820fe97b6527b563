"""Packets as a ladder diagram: conversations, relative numbers, what was lost, in 80 columns.

Packets are sorted into **conversations** (`Conversation`):

* a TCP connection (``T1``, ``T2``, ...): its two endpoints; the side that sent the first SYN
  is the *initiator* (the left rail), the other the *responder* (the right rail). A SYN on
  the same four numbers after the connection ended starts a new one. Sequence and
  acknowledgement numbers are shown relative to each side's first sequence number, as
  Wireshark does (the SYN is 0, the first byte of data 1);
* a UDP flow (``U1``, ...): two endpoints, the first sender on the left;
* ICMP (``I1``, ...): an error (port unreachable) joins the flow of the packet it quotes,
  so the "no one listens here" is drawn on the flow it answers; an echo is a flow of its own;
* an IP fragment after the first joins the conversation of its first fragment (same
  addresses and identification).

What was lost. A capture sees every packet *sent*: one dropped on the way in (as kernel
mode's nftables rule does, at the input hook) is still in the capture. TCP says what did
not arrive by sending it again: a segment whose sequence numbers were sent before is a
**retransmission**. Where packets can be dropped (``drops=True``: a loss rule is in
place), the first copy is marked **lost** where it was sent; unless the receiver had
acknowledged it before the retransmission, in which case it was that acknowledgement that
was lost, and it is marked instead. Where nothing drops packets (loopback without a rule),
a retransmission means only that the acknowledgement was late (a tail loss probe fires
after a few milliseconds on loopback, a timeout after 200 ms): the first copy is marked
"not acknowledged in time", never lost.

The layout (`Ladder.lines`): one line per packet, ``#``, milliseconds since the first
packet, the conversation, an arrow between the two rails carrying the flags (TCP), UDP or
the ICMP message, and the payload's length; then relative seq/ack and the payload's first
bytes. Everything fits the width asked for (80 columns by default): the detail column is
cut, never the arrow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .packets import Packet, preview, tls_record

Endpoint = tuple[str, "int | None"]
#: the time between two packets that makes a new burst (a blank line in the ladder)
SPACING = 0.5
ARROW = 26  # the arrow's width between the rails


def endpoint_text(ep: Endpoint) -> str:
    host, port = ep
    if port is None:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class Conversation:
    tag: str
    proto: str  # tcp, udp, icmp
    initiator: Endpoint
    responder: Endpoint
    isn: dict[Endpoint, int] = field(default_factory=dict)
    ended: bool = False
    fins: list[Endpoint] = field(default_factory=list)  # who sent a FIN, in order
    reset_by: Endpoint | None = None
    rows: list[Row] = field(default_factory=list)

    @property
    def key(self) -> frozenset[Endpoint]:
        return frozenset((self.initiator, self.responder))

    def side(self, ep: Endpoint) -> str:
        return "initiator" if ep == self.initiator else "responder"

    def describe(self) -> str:
        kind = {"tcp": "TCP connection", "udp": "UDP flow", "icmp": "ICMP"}[self.proto]
        return f"{self.tag} {kind} {endpoint_text(self.initiator)} → {endpoint_text(self.responder)}"

    def facts(self) -> dict[str, Any]:
        """What this conversation showed: the handshake, data segments each way, the close."""
        out: dict[str, Any] = {"tag": self.tag, "proto": self.proto, "initiator": endpoint_text(self.initiator),
                               "responder": endpoint_text(self.responder), "packets": len(self.rows)}
        if self.proto == "tcp":
            syn = [r for r in self.rows if "SYN" in r.packet.flags]
            out["handshake"] = [r.n for r in syn[:2]] + [r.n for r in self.rows[2:3]
                                                         if len(syn) >= 2 and r.packet.flags == ["ACK"]]
            for who, ep in (("initiator", self.initiator), ("responder", self.responder)):
                data = [r for r in self.rows if r.source == ep and r.packet.payload_len > 0]
                out[f"data_from_{who}"] = {"segments": len(data), "bytes": sum(r.packet.payload_len for r in data),
                                           "packets": [r.n for r in data]}
            out["fin"] = [self.side(ep) for ep in self.fins]
            out["reset_by"] = self.side(self.reset_by) if self.reset_by else None
            # the side that closes first (sends the first FIN) is left in TIME_WAIT once it
            # has the other's FIN acknowledged; a reset leaves nobody there
            out["time_wait"] = self.side(self.fins[0]) if len(set(self.fins)) == 2 and not self.reset_by else None
            out["retransmissions"] = [r.n for r in self.rows if r.retransmission_of is not None]
            out["lost"] = [r.n for r in self.rows if r.lost]
        else:
            for who, ep in (("initiator", self.initiator), ("responder", self.responder)):
                out[f"datagrams_from_{who}"] = [r.n for r in self.rows if r.source == ep and r.packet.proto == "udp"]
            out["icmp"] = [{"n": r.n, "message": r.packet.icmp_text} for r in self.rows if r.packet.proto.startswith("icmp")]
        return out


@dataclass
class Row:
    n: int
    packet: Packet
    conversation: Conversation | None
    source: Endpoint
    rightward: bool = True
    rel_seq: int | None = None
    rel_ack: int | None = None
    retransmission_of: int | None = None
    lost: bool = False
    note: str | None = None

    @property
    def tag(self) -> str:
        return self.conversation.tag if self.conversation else "-"

    def label(self) -> str:
        p = self.packet
        if p.proto == "tcp":
            text = " ".join(f for f in ("SYN", "FIN", "RST", "PSH", "ACK") if f in p.flags) or "(no flags)"
            return f"{text} {p.payload_len}" if p.payload_len else text
        if p.proto == "udp":
            return f"UDP {p.payload_len}"
        if p.proto.startswith("icmp"):
            return f"ICMP {p.icmp_text}"
        if p.proto == "fragment":
            return f"IP fragment {p.payload_len}"
        return f"frame {p.length}"

    def detail(self) -> str:
        p = self.packet
        parts: list[str] = []
        if self.lost:
            parts.append("LOST")
        if self.retransmission_of is not None:
            parts.append(f"again (#{self.retransmission_of})")
        if p.proto == "tcp":
            if self.rel_seq is not None:
                parts.append(f"seq {self.rel_seq}" + (f":{self.rel_seq + p.payload_len}" if p.payload_len else ""))
            if self.rel_ack is not None:
                parts.append(f"ack {self.rel_ack}")
            if "SYN" in p.flags:
                parts.append(f"win {p.window}")
        if p.proto.startswith("icmp") and p.quoted:
            q = p.quoted
            parts.append(f"for {q.get('proto', '?')} to :{q.get('dport')}" if q.get("dport") is not None
                         else f"for {q.get('dst')}")
        if p.fragment is not None:
            f = p.fragment
            parts.append(f"frag id {f['id']} off {f['offset']}" + (" +" if f["more"] else ""))
        if p.payload_len and p.payload:
            record = tls_record(p.payload) if p.proto == "tcp" else None
            parts.append(record or preview(p.payload))
        if self.note:
            parts.append(self.note)
        return " ".join(parts)

    def as_dict(self, start: float) -> dict[str, Any]:
        p = self.packet
        data = {"n": self.n, "time": p.time, "ms": round((p.time - start) * 1e3, 3), "conversation": self.tag,
                "direction": "→" if self.rightward else "←", "summary": self.label(), "rel_seq": self.rel_seq,
                "rel_ack": self.rel_ack, "retransmission_of": self.retransmission_of, "lost": self.lost,
                "note": self.note}
        return {**data, **p.as_dict()}


class Ladder:
    """Packets sorted into conversations, numbered, with what was lost marked."""

    def __init__(self, packets: Sequence[Packet], *, drops: bool = False) -> None:
        self.drops = drops  # whether something (a loss rule) may have dropped packets
        self.packets = sorted(packets, key=lambda p: p.time)
        self.start = self.packets[0].time if self.packets else 0.0
        self.conversations: list[Conversation] = []
        self.rows: list[Row] = []
        self._open: dict[tuple[str, frozenset[Endpoint]], Conversation] = {}
        self._fragments: dict[tuple[str, str, int | None], tuple[Conversation, Endpoint]] = {}
        self._counts = {"tcp": 0, "udp": 0, "icmp": 0}
        for n, packet in enumerate(self.packets, 1):
            self.rows.append(self._place(n, packet))
        self._losses()

    # -- sorting into conversations ---------------------------------------------------------

    def _new(self, proto: str, initiator: Endpoint, responder: Endpoint) -> Conversation:
        self._counts[proto] += 1
        found = Conversation(f"{proto[0].upper()}{self._counts[proto]}", proto, initiator, responder)
        self.conversations.append(found)
        self._open[(proto, found.key)] = found
        return found

    def _place(self, n: int, p: Packet) -> Row:
        src, dst = (p.src, p.sport), (p.dst, p.dport)
        if p.proto in ("tcp", "udp"):
            key = (p.proto, frozenset((src, dst)))
            found = self._open.get(key)
            if found is None or (p.proto == "tcp" and found.ended and p.flags == ["SYN"]):
                found = self._new(p.proto, src, dst)
            if p.fragment is not None:
                self._fragments[(p.src, p.dst, p.ip_id)] = (found, src)
        elif p.proto == "fragment":  # no ports: it goes the way its first fragment went
            found, src = self._fragments.get((p.src, p.dst, p.ip_id), (None, src))
        elif p.proto.startswith("icmp"):
            q = p.quoted
            found = None
            if q and q.get("proto") in ("tcp", "udp"):
                found = self._open.get((q["proto"], frozenset(((q["src"], q.get("sport")), (q["dst"], q.get("dport"))))))
            if found is None:
                key = ("icmp", frozenset(((p.src, None), (p.dst, None))))
                found = self._open.get(key) or self._new("icmp", (p.src, None), (p.dst, None))
                src = (p.src, None)
            else:
                src = (q["dst"], q.get("dport")) if q else src  # sent back by the one the datagram went to
        else:
            found = None
        row = Row(n, p, found, src)
        if found is not None:
            row.rightward = src == found.initiator or (found.proto == "icmp" and p.src == found.initiator[0])
            found.rows.append(row)
            if p.proto == "tcp":
                self._tcp(found, row)
        return row

    def _tcp(self, conversation: Conversation, row: Row) -> None:
        p, src = row.packet, row.source
        other = conversation.responder if src == conversation.initiator else conversation.initiator
        assert p.seq is not None and p.ack is not None
        conversation.isn.setdefault(src, p.seq)
        row.rel_seq = (p.seq - conversation.isn[src]) % 2**32
        if "ACK" in p.flags and other in conversation.isn:
            row.rel_ack = (p.ack - conversation.isn[other]) % 2**32
        if "FIN" in p.flags and src not in conversation.fins:
            conversation.fins.append(src)
        if "RST" in p.flags:
            conversation.reset_by = src
        if "RST" in p.flags or len(set(conversation.fins)) == 2:
            conversation.ended = True

    # -- what was lost ------------------------------------------------------------------------

    def _losses(self) -> None:
        for conversation in self.conversations:
            if conversation.proto != "tcp":
                continue
            sent: dict[tuple[Endpoint, int], Row] = {}
            for row in conversation.rows:
                p = row.packet
                length = p.payload_len + ("SYN" in p.flags) + ("FIN" in p.flags)
                if not length or row.rel_seq is None:
                    continue
                earlier = sent.get((row.source, row.rel_seq))
                if earlier is not None:
                    row.retransmission_of = earlier.n
                    row.note = f"+{(p.time - earlier.packet.time) * 1e3:.0f} ms"
                    self._blame(conversation, earlier, row, length)
                sent[(row.source, row.rel_seq)] = row

    def _blame(self, conversation: Conversation, original: Row, again: Row, length: int) -> None:
        """Mark what was lost: the first copy, or the acknowledgement of it that came back."""
        assert original.rel_seq is not None
        if not self.drops:
            original.note = "not acknowledged in time"
            return
        covered = original.rel_seq + length
        acks = [r for r in conversation.rows
                if original.n < r.n < again.n and r.source != original.source and r.rel_ack is not None
                and r.rel_ack >= covered]
        if acks:
            for r in acks:
                r.lost = True
        else:
            original.lost = True

    # -- output -------------------------------------------------------------------------------

    def as_json(self) -> list[dict[str, Any]]:
        return [row.as_dict(self.start) for row in self.rows]

    def legend(self) -> list[str]:
        return [c.describe() for c in self.conversations]

    def lines(self, width: int = 80) -> list[str]:
        """The ladder, each line at most `width` columns: a header, then a line per packet (and
        a dotted gap where more than `SPACING` s passed between two packets)."""
        arrow = _arrow_width(width)
        out = [f"{'#':>4} {'ms':>9}     " + "initiator".ljust(arrow + 2) + "responder"]
        previous = None
        for row in self.rows:
            if previous is not None and row.packet.time - previous > SPACING:
                out.append(" " * 19 + "┆" + " " * arrow + "┆")
            previous = row.packet.time
            out.append(self.line(row.n, width))
        return out

    def line(self, n: int, width: int = 80) -> str:
        """Packet number `n`'s line of the ladder."""
        row = self.rows[n - 1]
        ms = (row.packet.time - self.start) * 1e3
        head = f"{row.n:>4} {ms:>9.3f} {row.tag:<3} "
        line = head + "│" + _arrow(row.label(), _arrow_width(width), row.rightward, row.lost) + "│ " + row.detail()
        return _fit(line, width)


def _arrow_width(width: int) -> int:
    return ARROW if width >= 70 else max(12, width - 44)


def _arrow(label: str, width: int, rightward: bool, lost: bool) -> str:
    """``──── SYN ────▶`` (or ``◀──``), dashed and ending in ✗ when lost, `width` columns."""
    text = f" {label} "
    if len(text) > width - 3:
        text = text[: width - 4] + "…"
    line = "╌" if lost else "─"
    body = width - 1 - len(text)
    left = body // 2
    shaft = line * left + text + line * (body - left)
    if rightward:
        return shaft + ("✗" if lost else "▶")
    return ("✗" if lost else "◀") + shaft


def _fit(line: str, width: int) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


__all__ = ["Conversation", "Ladder", "Row", "endpoint_text"]
