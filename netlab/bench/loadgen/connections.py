"""Connections themselves: ``connect`` (how many a server accepts and closes per second)
and ``hold`` (how many it holds at once, each answering, and what they cost it in memory)."""

from __future__ import annotations

import array
import errno
import socket
import time

from ..contract import LoadResult, LoadSpec
from ..procfs import process_rss, raise_nofile
from .sockets import LoadError, Target, Window, encode_latencies
from .sockets import now as _now


def connect(spec: LoadSpec) -> LoadResult:
    target = Target(spec)
    if target.datagram:
        raise LoadError("connect needs a connection transport")
    one = b"x"
    buffer = bytearray(1)
    latencies = array.array("q")
    window = Window(spec.get("server_pid"))
    warm_end = _now() + int(spec["warmup"] * 1e9)
    measuring = False
    end = 0
    failures = 0
    while True:
        t0 = _now()
        try:
            sock = target.connect(reply_timeout=5.0)
        except OSError as exc:
            if exc.errno in (errno.EADDRNOTAVAIL, errno.EMFILE, errno.ENFILE):
                raise LoadError(f"connect failed: {exc}") from None
            failures += 1
            continue
        try:
            sock.send(one)
            if sock.recv_into(buffer) != 1:
                failures += 1
        except OSError:
            failures += 1
        target.close(sock)
        t1 = _now()
        if measuring:
            latencies.append(t1 - t0)
            if t1 >= end:
                window.close(t1)
                break
        elif t1 >= warm_end:
            measuring = True
            window.open()
            end = window.start_ns + int(spec["duration"] * 1e9)
    return {**window.result(), "count": len(latencies), "failures": failures,
            "histogram": encode_latencies(latencies)}


# -- hold -------------------------------------------------------------------------------


def hold(spec: LoadSpec) -> LoadResult:
    """Open `hold` connections, each answering an echo; report what it cost the server."""
    target = Target(spec)
    wanted, batch = int(spec["hold"]), int(spec.get("batch", 500))
    server_pid = spec.get("server_pid")
    nofile = raise_nofile()
    message = b"x" * 8
    buffer = bytearray(64)
    rss_before = process_rss(server_pid)
    socks: list[socket.socket] = []
    stopped_by: str | None = None
    t0 = _now()

    def answers(group: list[socket.socket]) -> int:
        for s in group:
            s.send(message)
        ok = 0
        for s in group:
            try:
                got = 0
                while got < len(message):
                    n = s.recv_into(memoryview(buffer)[got:], len(message) - got)
                    if not n:
                        break
                    got += n
                ok += got == len(message) and buffer[:got] == message
            except OSError:
                pass
        return ok

    try:
        while len(socks) < wanted and stopped_by is None:
            group = []
            for _ in range(min(batch, wanted - len(socks))):
                try:
                    group.append(target.connect(reply_timeout=5.0))
                except OSError as exc:
                    stopped_by = f"connection {len(socks) + len(group) + 1}: {exc.strerror or exc}"
                    break
            if group:
                try:
                    ok = answers(group)
                except OSError as exc:
                    ok, stopped_by = 0, f"connection {len(socks) + 1}..: {exc.strerror or exc}"
                if ok < len(group):
                    stopped_by = stopped_by or (f"{len(group) - ok} of connections {len(socks) + 1}.."
                                                f"{len(socks) + len(group)} did not answer (ERR busy or closed)")
                    socks.extend(group)
                    break
            socks.extend(group)
        opened_s = (_now() - t0) / 1e9
        time.sleep(0.2)  # let the server settle before reading its memory
        rss_held = process_rss(server_pid)
        t1 = _now()
        answering = answers(socks) if socks else 0
        check_s = (_now() - t1) / 1e9
    finally:
        for s in socks:
            target.close(s)
    held = len(socks)
    per_connection = (rss_held - rss_before) / held if held and rss_held and rss_before else None
    return {"wanted": wanted, "held": held, "answering": answering, "count": answering,
            "stopped_by": stopped_by, "opened_s": opened_s, "check_s": check_s,
            "server_rss_before": rss_before, "server_rss_held": rss_held, "rss_per_connection": per_connection,
            "client_nofile": list(nofile)}


__all__ = ["connect", "hold"]
