"""Capturing every frame of this network namespace: an ``AF_PACKET`` socket, bounded.

An ``AF_PACKET``/``SOCK_RAW`` socket that is bound to no interface sees every frame of every
interface of the network namespace it was made in, and nothing of any other namespace. On
``lo`` each frame shows up twice, once going out (packet type ``PACKET_OUTGOING``, 4) and
once coming in (``PACKET_HOST``, 0): the outgoing copy is kept (it is stamped as it is sent;
on a veth link, where the other end may be in another namespace, both directions are
kept). Each frame is stamped by the kernel (``SO_TIMESTAMPNS``).

A capture stops by itself: after `Limits.packets` frames, `Limits.bytes` bytes, or
`Limits.seconds` seconds, whichever comes first, and says which (``stopped_by``). Frames the
kernel had to drop because the socket's buffer was full are counted (``PACKET_STATISTICS``)
and reported, never hidden.

Capturing needs CAP_NET_RAW in the namespace (root, or "root" in a user namespace) and is
refused in the host's own namespace (`capture(refuse=...)`): netlab captures only the
traffic of namespaces it made.

`capture()` is the hook for other parts of netlab (``netlab check --trace``): ::

    with capture(refuse=parent_netns) as frames:
        ...  # talk to the program
    packets = frames.packets()  # decoded, in order
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..errors import PrivilegeError
from ..netns import current_netns, refuse_host
from .packets import Packet, decode

ETH_P_ALL = 0x0003
PACKET_HOST, PACKET_OUTGOING = 0, 4
SOL_PACKET, PACKET_STATISTICS = 263, 6
SO_TIMESTAMPNS = 35  # SO_TIMESTAMPNS_OLD on Linux; socket has no name for it before Python 3.12
SO_RCVBUFFORCE = 33
#: the largest frame read (lo's MTU is 64 KiB; a GSO segment on lo stays under it)
FRAME_MAX = 262_144


@dataclass(frozen=True)
class Limits:
    """When a capture stops by itself."""

    packets: int = 20_000
    bytes: int = 64 * 1024 * 1024
    seconds: float = 60.0


@dataclass
class Frame:
    """One captured frame: when (kernel time), where, and its bytes."""

    time: float
    interface: str
    data: bytes
    outgoing: bool


@dataclass
class Frames:
    """What a capture holds: the frames kept, and how it went."""

    frames: list[Frame] = field(default_factory=list)
    seen: int = 0  # frames read, copies included
    kept_bytes: int = 0
    kernel_drops: int = 0  # frames the socket's buffer had no room for
    stopped_by: str | None = None  # "packets", "bytes", "seconds", or None: the block ended

    def packets(self) -> list[Packet]:
        return [decode(f.data, f.time, f.interface) for f in self.frames]

    def summary(self) -> dict[str, object]:
        return {"kept": len(self.frames), "seen": self.seen, "bytes": self.kept_bytes,
                "kernel_drops": self.kernel_drops, "stopped_by": self.stopped_by}


class Capture:
    """A running capture: a thread reads the socket until `stop()` or a limit."""

    def __init__(self, limits: Limits = Limits()) -> None:
        self.limits = limits
        self.result = Frames()
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except PermissionError as exc:
            raise PrivilegeError(f"capturing packets needs CAP_NET_RAW in the namespace ({exc.strerror})") from None
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 * 1024 * 1024)
            self.sock.settimeout(0.05)
        except OSError:
            self.sock.close()
            raise
        self._names: dict[int, str] = {}
        self._stop = threading.Event()
        self._done = threading.Event()
        self._deadline = time.monotonic() + limits.seconds
        self._thread = threading.Thread(target=self._run, name="netlab-capture", daemon=True)
        self._thread.start()

    def _loopback(self, name: str) -> bool:
        return name == "lo"

    def _run(self) -> None:
        r = self.result
        try:
            while True:
                if time.monotonic() >= self._deadline:
                    r.stopped_by = "seconds"
                    return
                try:
                    data, ancillary, _, address = self.sock.recvmsg(FRAME_MAX, socket.CMSG_SPACE(16))
                except TimeoutError:
                    if self._stop.is_set():
                        return
                    continue
                except OSError:
                    return
                r.seen += 1
                name, kind = address[0], address[2]
                if self._loopback(name) and kind == PACKET_HOST:
                    continue  # the incoming copy of a frame kept as it went out
                stamp = time.time()
                for level, kind_, blob in ancillary:
                    if level == socket.SOL_SOCKET and kind_ == SO_TIMESTAMPNS and len(blob) >= 16:
                        seconds, nanoseconds = struct.unpack("qq", blob[:16])
                        stamp = seconds + nanoseconds / 1e9
                if len(r.frames) >= self.limits.packets:
                    r.stopped_by = "packets"
                    return
                if r.kept_bytes + len(data) > self.limits.bytes:
                    r.stopped_by = "bytes"
                    return
                r.frames.append(Frame(stamp, name, data, kind == PACKET_OUTGOING))
                r.kept_bytes += len(data)
        finally:
            self._statistics()
            self._done.set()

    def _statistics(self) -> None:
        with contextlib.suppress(OSError):
            packets, drops = struct.unpack("II", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
            self.result.kernel_drops += drops

    def stop(self, linger: float = 0.05) -> Frames:
        """Stop after the frames still queued (read for up to `linger` s of quiet); the frames."""
        time.sleep(linger)  # the last frames of a close are sent as the program exits
        self._stop.set()
        self._thread.join()
        self.sock.close()
        return self.result


@contextlib.contextmanager
def capture(limits: Limits = Limits(), *, refuse: str | None = None, linger: float = 0.05) -> Iterator[Frames]:
    """Capture the frames of this network namespace while the block runs; `Frames` after it.

    `refuse`: a network namespace (``net:[INODE]``, as `netns.current_netns` gives) this must
    not be: normally the parent's, so that nothing of the host's own traffic is captured.
    `linger`: seconds to keep reading after the block (the last segments of a close); it
    blocks, so under trio pass 0 and ``await trio.sleep(...)`` at the end of the block.
    Raises PrivilegeError without CAP_NET_RAW, or in the namespace refused."""
    if refuse is not None:
        refuse_host(refuse)
    running = Capture(limits)
    try:
        yield running.result
    finally:
        running.stop(linger)


__all__ = ["Capture", "Frame", "Frames", "Limits", "capture", "current_netns"]
