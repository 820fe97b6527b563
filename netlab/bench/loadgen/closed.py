"""Closed loop (``pingpong``): each connection sends one message and waits for its reply.

One connection: a blocking socket, the cheapest loop CPython has. More: one level-triggered
epoll loop over non-blocking sockets. A request carries its sequence number in its first 8
bytes, and a reply must be the request's exact twin; on datagrams a reply that does not
come within the spec's `timeout` is counted lost and the next request goes out.
"""

from __future__ import annotations

import array
import select

from ..contract import LoadResult, LoadSpec
from .sockets import SEQ, TIMED_OUT, WOULD_BLOCK, LoadError, Target, Window, encode_latencies, make_message
from .sockets import now as _now


def pingpong(spec: LoadSpec) -> LoadResult:
    target = Target(spec)
    connections = int(spec.get("connections", 1))
    if connections == 1:
        return _pingpong_blocking(target, spec)
    return _pingpong_epoll(target, spec, connections)


def _pingpong_blocking(target: Target, spec: LoadSpec) -> LoadResult:
    size, timeout = int(spec["size"]), float(spec.get("timeout", 1.0))
    warmup_ns, duration_ns = int(spec["warmup"] * 1e9), int(spec["duration"] * 1e9)
    sock = target.connect(reply_timeout=None if target.stream else timeout)
    message, buffer = make_message(size), bytearray(size)
    view = memoryview(buffer)
    latencies = array.array("q")
    record = latencies.append
    pack = SEQ.pack_into
    send, recv_into = sock.send if not target.stream else sock.sendall, sock.recv_into
    stream = target.stream
    lost = stale = mismatched = 0
    window = Window(spec.get("server_pid"))
    seq = 0
    measuring = False
    phase_end = _now() + warmup_ns
    try:
        while True:
            pack(message, 0, seq)
            t0 = _now()
            send(message)
            answered = True
            if stream:
                got = recv_into(view, size)
                while got < size:
                    if not got:
                        raise LoadError("the server closed the connection")
                    n = recv_into(view[got:], size - got)
                    if not n:
                        raise LoadError("the server closed the connection")
                    got += n
                if buffer != message:
                    mismatched += 1
            else:
                while True:
                    try:
                        n = recv_into(buffer)
                    except TIMED_OUT:  # SO_RCVTIMEO: no reply within timeout
                        answered = False
                        lost += measuring
                        break
                    if n == size and buffer == message:
                        break
                    if n >= 8 and SEQ.unpack_from(buffer)[0] < seq:
                        stale += 1  # the late reply to a request already counted lost
                        continue
                    mismatched += 1
                    break
            t1 = _now()
            if measuring and answered:
                record(t1 - t0)
            seq += 1
            if t1 >= phase_end:
                if measuring:
                    window.close(t1)
                    break
                measuring = True
                window.open()
                phase_end = window.start_ns + duration_ns
    finally:
        target.close(sock)
    return {**window.result(), "count": len(latencies), "lost": lost, "stale": stale, "mismatched": mismatched,
            "histogram": encode_latencies(latencies), "client": "blocking", "connections": 1}


def _pingpong_epoll(target: Target, spec: LoadSpec, connections: int) -> LoadResult:
    size, timeout_ns = int(spec["size"]), int(float(spec.get("timeout", 1.0)) * 1e9)
    warmup_ns, duration_ns = int(spec["warmup"] * 1e9), int(spec["duration"] * 1e9)
    socks = []
    try:
        for _ in range(connections):
            socks.append(target.connect())
    except OSError as exc:
        for s in socks:
            target.close(s)
        raise LoadError(f"could not open connection {len(socks) + 1} of {connections}: {exc}") from None
    n_conn = len(socks)
    by_fd = {s.fileno(): i for i, s in enumerate(socks)}
    messages = [make_message(size) for _ in range(n_conn)]
    buffers = [bytearray(size) for _ in range(n_conn)]
    views = [memoryview(b) for b in buffers]
    got = [0] * n_conn
    sent_at = [0] * n_conn
    seqs = list(range(0, n_conn * 1 << 32, 1 << 32))  # each connection its own sequence space
    stream = target.stream
    pack = SEQ.pack_into
    latencies = array.array("q")
    record = latencies.append
    lost = stale = mismatched = 0
    window = Window(spec.get("server_pid"))
    poller = select.epoll()
    for s in socks:
        s.setblocking(False)
        poller.register(s.fileno(), select.EPOLLIN)

    def send(i: int, now: int) -> None:
        pack(messages[i], 0, seqs[i])
        sent_at[i] = now
        got[i] = 0
        if stream:
            try:
                n = socks[i].send(messages[i])
            except WOULD_BLOCK:
                n = 0
            if n < size:  # rare: the request did not fit the send buffer at once
                socks[i].setblocking(True)
                socks[i].sendall(memoryview(messages[i])[n:])
                socks[i].setblocking(False)
        else:
            try:
                socks[i].send(messages[i])
            except BlockingIOError:
                pass  # counted lost at its timeout

    poll = poller.poll
    # every connection answers once before the clock starts: the server has accepted them all
    now = _now()
    for i in range(n_conn):
        send(i, now)
    waiting = set(range(n_conn))
    give_up = now + 30_000_000_000
    while waiting and _now() < give_up:
        for fd, _event in poll(0.05):
            i = by_fd[fd]
            try:
                n = socks[i].recv_into(views[i][got[i]:])
            except WOULD_BLOCK:
                continue
            if stream and not n:
                raise LoadError("the server closed a connection")
            got[i] += n if stream else size
            if got[i] >= size:
                waiting.discard(i)
        if not stream:
            now = _now()
            for i in waiting:
                if now - sent_at[i] > timeout_ns:
                    send(i, now)
    if waiting:
        raise LoadError(f"{len(waiting)} of {n_conn} connections got no first reply within 30 s")
    measuring = False
    now = _now()
    phase_end = now + warmup_ns
    next_scan = now + timeout_ns // 4
    for i in range(n_conn):
        seqs[i] += 1
        send(i, now)
    try:
        while True:
            events = poll(0.05)
            now = _now()
            for fd, _event in events:
                i = by_fd[fd]
                sock = socks[i]
                try:
                    if stream:
                        n = sock.recv_into(views[i][got[i]:])
                        if not n:
                            raise LoadError("the server closed a connection")
                        got[i] += n
                        if got[i] < size:
                            continue
                    else:
                        n = sock.recv_into(buffers[i])
                except WOULD_BLOCK:
                    # TLS: a record not complete yet, or a session ticket and no data. No
                    # read here leaves plaintext in the TLS layer where epoll cannot see it
                    # (SSLSocket.pending()): it asks for the rest of one reply, which a
                    # record of a closed-loop echo never exceeds
                    continue
                if (not stream and n != size) or buffers[i] != messages[i]:
                    if not stream and n >= 8 and SEQ.unpack_from(buffers[i])[0] < seqs[i]:
                        stale += 1
                        continue
                    mismatched += 1
                if measuring:
                    record(now - sent_at[i])
                seqs[i] += 1
                send(i, now)
            if not stream and now >= next_scan:
                next_scan = now + timeout_ns // 4
                for i in range(n_conn):
                    if now - sent_at[i] > timeout_ns:
                        if measuring:
                            lost += 1
                        seqs[i] += 1
                        send(i, now)
            if now >= phase_end:
                if measuring:
                    window.close(now)
                    break
                measuring = True
                window.open()
                phase_end = window.start_ns + duration_ns
    finally:
        poller.close()
        for s in socks:
            target.close(s)
    return {**window.result(), "count": len(latencies), "lost": lost, "stale": stale, "mismatched": mismatched,
            "histogram": encode_latencies(latencies), "client": "epoll", "connections": n_conn}


__all__ = ["pingpong"]
