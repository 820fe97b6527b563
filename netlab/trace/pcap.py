"""A capture as a pcap file (dpkt's writer): what Wireshark and ``tcpdump -r`` open.

The frames are written as captured (Ethernet framing, as ``lo`` has it), whole, with the
kernel's timestamps at nanosecond resolution (the pcap "nano" magic, which tcpdump and
Wireshark read).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import dpkt

from ..errors import OutputError
from .capture import FRAME_MAX, Frame


def _write(f: BinaryIO, frames: Iterable[Frame]) -> int:
    writer = dpkt.pcap.Writer(f, snaplen=FRAME_MAX, linktype=dpkt.pcap.DLT_EN10MB, nano=True)
    count = 0
    for frame in frames:
        writer.writepkt_time(frame.data, frame.time)
        count += 1
    return count


def write_pcap(path: Path | str, frames: Iterable[Frame]) -> int:
    """Write `frames` to `path`; how many. OutputError naming the file when it cannot be written."""
    try:
        with open(path, "wb") as f:
            return _write(f, frames)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def pcap_bytes(frames: Iterable[Frame]) -> bytes:
    """`frames` as the bytes of a pcap file (what `write_pcap` writes), to send or keep."""
    buffer = io.BytesIO()
    _write(buffer, frames)
    return buffer.getvalue()


def read_pcap(path: Path | str) -> list[tuple[float, bytes]]:
    """(timestamp, frame) of each record in a pcap file (for tests and for reading a trace back)."""
    with open(path, "rb") as f:
        return [(float(ts), bytes(data)) for ts, data in dpkt.pcap.Reader(f)]


__all__ = ["pcap_bytes", "read_pcap", "write_pcap"]
