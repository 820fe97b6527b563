"""netlab trace: see the packets.

Everything netlab shows elsewhere is above the socket (what was lost, merged, refused);
the reasons are in the packets: why ten sends became one segment (Nagle, segments), why a
refused TCP connect fails at once and a UDP one waits (RST against ICMP port unreachable),
what a lost segment costs (a retransmission after a timeout), what a large datagram
becomes (IP fragments), what closing is (FIN, ACK, TIME_WAIT).

Layers, all of them here::

    run        `run_trace`: a command (and netlab servers) in a private network and PID
               namespace (`netlab.netns`), its frames sent back to the parent
    capture    `capture()`: an AF_PACKET socket on the namespace's interfaces, bounded in
               packets, bytes and time; one copy of each loopback frame
    packets    `decode`: a frame (dpkt) -> `Packet` (addresses, flags, seq/ack, payload, ICMP,
               fragments)
    ladder     `Ladder`: conversations, relative numbers, retransmissions and losses; the
               80-column diagram and one JSON object per packet
    pcap, plot the capture as a pcap file (dpkt), the ladder as an SVG/PNG sequence diagram
    lessons    `--trace` on the experiments: findings that cite the packets they rest on

Packet decoding and pcap writing are dpkt's (see the README: small, pure Python, no
dependencies, and its pcap writer is what tcpdump and Wireshark read).

The hook for other parts of netlab (``netlab check --trace``: `netlab.check.packets`), inside a
namespace of their own::

    from netlab.trace import capture, Ladder
    with capture(refuse=parent_netns) as frames:
        ...                                   # the case's conversation
    ladder = Ladder(frames.packets())         # ladder.lines(80), ladder.as_json()
"""

from __future__ import annotations

from .capture import Capture, Frame, Frames, Limits, capture
from .ladder import Conversation, Ladder, Row
from .packets import Packet, decode
from .pcap import read_pcap, write_pcap
from .run import TraceResult, TraceSettings, run_trace

__all__ = ["Capture", "Conversation", "Frame", "Frames", "Ladder", "Limits", "Packet", "Row", "TraceResult",
           "TraceSettings", "capture", "decode", "read_pcap", "run_trace", "write_pcap"]
