"""A capture as a pcap file (dpkt's writer): what Wireshark and ``tcpdump -r`` open.

The frames are written as captured (Ethernet framing, as ``lo`` has it), whole, with the
kernel's timestamps at nanosecond resolution (the pcap "nano" magic, which tcpdump and
Wireshark read).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import dpkt

from ..errors import OutputError
from .capture import FRAME_MAX, Frame


def write_pcap(path: Path | str, frames: Iterable[Frame]) -> int:
    """Write `frames` to `path`; how many. OutputError naming the file when it cannot be written."""
    count = 0
    try:
        with open(path, "wb") as f:
            writer = dpkt.pcap.Writer(f, snaplen=FRAME_MAX, linktype=dpkt.pcap.DLT_EN10MB, nano=True)
            for frame in frames:
                writer.writepkt_time(frame.data, frame.time)
                count += 1
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return count


def read_pcap(path: Path | str) -> list[tuple[float, bytes]]:
    """(timestamp, frame) of each record in a pcap file (for tests and for reading a trace back)."""
    with open(path, "rb") as f:
        return [(float(ts), bytes(data)) for ts, data in dpkt.pcap.Reader(f)]


__all__ = ["read_pcap", "write_pcap"]
