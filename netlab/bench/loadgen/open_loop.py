"""Open loop (``rate``, as wrk2): messages are due at ``t0 + i / rate`` across the
connections in turn, woken by a timerfd; latency runs from when a message was *due*, not
from when it was sent, so a stalled server is charged for every message it delayed
(coordinated omission corrected)."""

from __future__ import annotations

import array
import collections
import ctypes
import os
import select
import time
from typing import Any

from ..contract import LoadResult, LoadSpec
from ..procfs import snmp
from .sockets import SEQ, WOULD_BLOCK, LoadError, Target, Window, encode_latencies, make_message


class _Timer:
    """A one-shot CLOCK_MONOTONIC timerfd set to absolute times (through libc: Python 3.11
    has no os.timerfd_*), so the loop wakes exactly when the next message is due."""

    class _Itimerspec(ctypes.Structure):
        _fields_ = [("it_interval", ctypes.c_long * 2), ("it_value", ctypes.c_long * 2)]

    def __init__(self) -> None:
        self._libc = libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.timerfd_create(time.CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create")
        self._spec = self._Itimerspec()
        self._ref = ctypes.byref(self._spec)
        self._settime = libc.timerfd_settime
        try:  # epoll timeouts exact to the microsecond, not the default 50 µs of slack
            libc.prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK
        except Exception:
            pass

    def at(self, when_ns: int) -> None:
        """Fire once at `when_ns` on the CLOCK_MONOTONIC clock (time.monotonic_ns)."""
        value = self._spec.it_value
        value[0], value[1] = divmod(max(when_ns, 1), 1_000_000_000)
        if self._settime(self.fd, 1, self._ref, None) != 0:  # TFD_TIMER_ABSTIME
            raise OSError(ctypes.get_errno(), "timerfd_settime")

    def drain(self) -> None:
        try:
            os.read(self.fd, 8)
        except BlockingIOError:
            pass

    def close(self) -> None:
        os.close(self.fd)


def rate(spec: LoadSpec) -> LoadResult:
    """Open loop: see the module docstring. Times are CLOCK_MONOTONIC, as the timer's."""
    now_ns = time.monotonic_ns
    target = Target(spec)
    size, per_second = int(spec["size"]), float(spec["rate"])
    timeout_ns = int(float(spec.get("timeout", 1.0)) * 1e9)
    warmup_ns, duration_ns = int(spec["warmup"] * 1e9), int(spec["duration"] * 1e9)
    connections = int(spec.get("connections", 1))
    socks = [target.connect() for _ in range(connections)]
    n_conn = len(socks)
    by_fd = {s.fileno(): i for i, s in enumerate(socks)}
    for s in socks:
        s.setblocking(False)
    interval = 1e9 / per_second
    # relay mode: what the kernel dropped on the way (the listening socket we send to, and
    # every UDP socket on the machine), read at the edges of the run
    udp = target.inet and target.datagram and spec.get("count_drops")
    front0 = target.udp_state() if udp else None
    snmp0 = snmp("Udp") if udp else {}
    timer = _Timer()
    poller = select.epoll()
    poller.register(timer.fd, select.EPOLLIN)
    for s in socks:
        poller.register(s.fileno(), select.EPOLLIN)
    message = make_message(size)
    buffers = [bytearray(max(size, 65536)) for _ in range(n_conn)]
    # what the kernel did not take yet: stream bytes, or whole datagrams (a full unix
    # receiver makes its senders wait: the wait is the server's, and counts as latency)
    pending_out: list[Any] = [bytearray() if target.stream else collections.deque() for _ in range(n_conn)]
    inbox = [bytearray() for _ in range(n_conn)]  # stream bytes of a reply not yet complete
    due_fifo: list[collections.deque[tuple[int, int]]] = [collections.deque() for _ in range(n_conn)]  # streams: (seq, due)
    due_by_seq: dict[int, int] = {}  # datagrams: seq -> due
    latencies = array.array("q")
    lags = array.array("q")  # how late each message went out: the client's own delay
    stream = target.stream
    pack = SEQ.pack_into
    window = Window(spec.get("server_pid"))
    t0 = now_ns() + 1_000_000
    measure_from = t0 + warmup_ns
    send_until = measure_from + duration_ns
    measured_sent = measured_answered = mismatched = stale = 0
    index = 0
    window_open = False

    def in_window(due: int) -> bool:
        return measure_from <= due < send_until

    def flush(i: int) -> None:
        data = pending_out[i]
        try:
            if stream:
                del data[:socks[i].send(data)]
            else:
                while data:
                    socks[i].send(data[0])
                    data.popleft()
        except WOULD_BLOCK:
            pass
        except ConnectionRefusedError:
            data.clear()  # UDP: nobody there (ICMP): these count as lost
        poller.modify(socks[i].fileno(), select.EPOLLIN | (select.EPOLLOUT if data else 0))

    def receive(i: int, now: int) -> None:
        nonlocal measured_answered, mismatched, stale
        sock, buffer = socks[i], buffers[i]
        try:
            # TLS: one record at most, and the buffer holds any record whole, so no
            # plaintext stays behind in the TLS layer (SSLSocket.pending()) unseen by epoll
            n = sock.recv_into(buffer)
        except WOULD_BLOCK:
            return
        except ConnectionRefusedError:
            return
        if stream:
            if not n:
                raise LoadError("the server closed a connection")
            box = inbox[i]
            box += memoryview(buffer)[:n]
            while len(box) >= size:
                seq, due = due_fifo[i].popleft()
                if SEQ.unpack_from(box)[0] != seq:
                    mismatched += 1
                del box[:size]
                if in_window(due):
                    measured_answered += 1
                    latencies.append(now - due)
            return
        if n != size:
            mismatched += 1
            return
        seq = SEQ.unpack_from(buffer)[0]
        was_due = due_by_seq.pop(seq, None)
        if was_due is None:
            stale += 1  # a duplicate, or the reply to a message already given up on
            return
        if in_window(was_due):
            measured_answered += 1
            latencies.append(now - was_due)

    try:
        while True:
            now = now_ns()
            if not window_open and now >= measure_from:
                window.open()
                window_open = True
            # every message due by now goes out, each stamped with when it was due
            while True:
                due = t0 + int(index * interval)
                if due > now or due >= send_until:
                    break
                i = index % n_conn
                pack(message, 0, index)
                if in_window(due):
                    measured_sent += 1
                    lags.append(now - due)
                if stream:
                    due_fifo[i].append((index, due))
                    if not pending_out[i]:
                        try:
                            n = socks[i].send(message)
                        except WOULD_BLOCK:
                            n = 0
                        if n < size:
                            pending_out[i] += memoryview(message)[n:]
                            poller.modify(socks[i].fileno(), select.EPOLLIN | select.EPOLLOUT)
                    else:
                        pending_out[i] += message
                else:
                    due_by_seq[index] = due
                    if pending_out[i]:
                        pending_out[i].append(bytes(message))
                    else:
                        try:
                            socks[i].send(message)
                        except BlockingIOError:
                            pending_out[i].append(bytes(message))
                            poller.modify(socks[i].fileno(), select.EPOLLIN | select.EPOLLOUT)
                        except ConnectionRefusedError:
                            pass  # UDP: nobody there (ICMP): counts as lost
                index += 1
            next_due = t0 + int(index * interval)
            if next_due >= send_until:
                break
            timer.at(next_due)
            for fd, event in poller.poll(0.1):
                if fd == timer.fd:
                    timer.drain()
                    continue
                i = by_fd[fd]
                if event & select.EPOLLOUT:
                    flush(i)
                if event & (select.EPOLLIN | select.EPOLLERR):
                    receive(i, now_ns())
        # the last replies: until all are in, or `timeout` after the last send
        window.close()
        give_up = now_ns() + timeout_ns
        poller.unregister(timer.fd)
        while (due_by_seq if not stream else any(due_fifo)) and now_ns() < give_up:
            for fd, event in poller.poll(0.01):
                i = by_fd[fd]
                if event & select.EPOLLOUT:
                    flush(i)
                if event & (select.EPOLLIN | select.EPOLLERR):
                    receive(i, now_ns())
    finally:
        timer.close()
        poller.close()
        for s in socks:
            target.close(s)
    front1 = target.udp_state() if udp else None
    drops: LoadResult = {
        "front_drops": front1[1] - front0[1] if front0 and front1 else None,
        "rcvbuf_errors": snmp("Udp").get("RcvbufErrors", 0) - snmp0.get("RcvbufErrors", 0) if udp else None}
    lags.append(0)
    lags_sorted = sorted(lags)
    return {**window.result(), **drops, "rate": per_second, "sent": measured_sent, "count": measured_answered,
            "lost": measured_sent - measured_answered, "stale": stale, "mismatched": mismatched,
            "histogram": encode_latencies(latencies), "connections": n_conn,
            "send_lag_p99_us": lags_sorted[int(0.99 * (len(lags_sorted) - 1))] / 1e3,
            "send_lag_max_us": lags_sorted[-1] / 1e3}


__all__ = ["rate"]
