"""One way, into a discard server: ``stream`` (bulk bytes on a connection) and
``datagrams`` (flat out, and where the ones the server did not take went)."""

from __future__ import annotations

import errno
import socket
import time

from ..contract import LoadResult, LoadSpec
from ..procfs import snmp
from .sockets import TIMED_OUT, LoadError, Target, Window, make_message
from .sockets import now as _now


def stream(spec: LoadSpec) -> LoadResult:
    target = Target(spec)
    chunk = memoryview(make_message(int(spec["chunk"])))
    seqpacket = target.type == socket.SOCK_SEQPACKET

    def transfer(seconds: float, window: Window | None) -> int:
        sock = target.connect(reply_timeout=30.0)
        send = sock.send if seqpacket else sock.sendall
        sent = 0
        try:
            if window is not None:
                window.open()
            end = _now() + int(seconds * 1e9)
            while _now() < end:
                send(chunk)
                sent += len(chunk)
            target.shutdown_write(sock)
            try:  # the discard server closes once it has read everything
                if sock.recv(1):
                    raise LoadError("the sink sent data back: is it a discard server?")
            except TIMED_OUT:
                raise LoadError("the server did not close within 30 s of the end of the transfer") from None
            except ConnectionResetError:
                pass
            if window is not None:
                window.close()
        finally:
            target.close(sock)
        return sent

    if spec["warmup"] > 0:
        transfer(spec["warmup"], None)
    window = Window(spec.get("server_pid"))
    sent = transfer(spec["duration"], window)
    result = window.result()
    return {**result, "bytes": sent, "count": sent // len(chunk), "chunk": len(chunk)}


# -- datagrams (flat out, one way) ---------------------------------------------------------


def datagrams(spec: LoadSpec) -> LoadResult:
    target = Target(spec)
    size = int(spec["size"])
    message = make_message(size)
    seqpacket = target.type == socket.SOCK_SEQPACKET
    udp = target.inet and target.datagram

    def state() -> tuple[int, int] | None:
        return target.udp_state() if udp else None

    def wait_drained(limit_s: float = 3.0) -> None:
        give_up = _now() + int(limit_s * 1e9)
        while _now() < give_up:
            now_state = state()
            if now_state is None or now_state[0] == 0:
                return
            time.sleep(0.0005)

    def blast(sock: socket.socket, seconds: float) -> tuple[int, int]:
        send = sock.send
        sent = failed = 0
        end = _now() + int(seconds * 1e9)
        while True:
            for _ in range(64):
                try:
                    send(message)
                    sent += 1
                except (BlockingIOError, ConnectionRefusedError):
                    failed += 1
                except OSError as exc:
                    if exc.errno != errno.ENOBUFS:
                        raise
                    failed += 1
            if _now() >= end:
                return sent, failed

    sock = target.connect(reply_timeout=30.0)
    try:
        if spec["warmup"] > 0:
            blast(sock, spec["warmup"])
            wait_drained()
        if seqpacket:  # a connection: start the measured part on a fresh one
            target.close(sock)
            sock = target.connect(reply_timeout=30.0)
        window = Window(spec.get("server_pid"))
        before, snmp_before = state(), snmp("Udp")
        window.open()
        sent, failed = blast(sock, spec["duration"])
        sending_ns = _now() - window.start_ns
        if seqpacket:
            sock.shutdown(socket.SHUT_WR)
            try:
                sock.recv(1)  # the discard server closes once it has read everything
            except (BlockingIOError, TimeoutError):
                raise LoadError("the server did not close within 30 s of the end of the transfer") from None
        else:
            wait_drained()
        window.close()
        after, snmp_after = state(), snmp("Udp")
    finally:
        target.close(sock)
    dropped = after[1] - before[1] if before and after else 0
    counters: dict[str, int] = {name: snmp_after.get(name, 0) - snmp_before.get(name, 0)
                for name in ("RcvbufErrors", "SndbufErrors", "InErrors", "InDatagrams", "OutDatagrams")
                if name in snmp_after}
    return {**window.result(), "sent": sent, "send_failed": failed, "dropped": dropped,
            "count": sent - dropped, "sending_s": sending_ns / 1e9, "drop_counter": "socket" if udp else None,
            "udp_counters": counters if udp else None, "size": size}


__all__ = ["datagrams", "stream"]
