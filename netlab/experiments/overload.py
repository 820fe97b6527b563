"""overload: what happens when a sender is faster than its receiver?

For each transport, one sender sends ``--messages`` messages of ``--size`` bytes (1400 by
default: a datagram that fits one Ethernet frame) as fast as its socket accepts them, while
the receiver does not read. The receiver pauses until the sender has either
finished or been blocked for 50 ms, and only then drains everything that arrived.

What is measured, per transport:

* sent, delivered (and which: UDP keeps the first ones and drops the rest), lost;
* how the sender was held back: how many times a send would have blocked (EAGAIN) and
  for how long in all, and how much was in flight when it first blocked (bytes and
  messages sent but not yet read; for streams, how much of it sat in the receiver's
  buffer, by FIONREAD);
* for UDP, two witnesses of the loss: ``SO_RXQ_OVFL`` (socket option 40 on Linux), which
  makes the kernel attach the socket's own drop count to each datagram it delivers (a
  small marker datagram sent after the drain carries the final count), and the
  ``RcvbufErrors`` counter in ``/proc/net/snmp`` (``Udp6RcvbufErrors`` in
  ``/proc/net/snmp6`` for IPv6), read before and after the burst. The counter is
  host-wide: other traffic on the machine may add to it, so the experiment reports both
  and says so when they disagree.

``--rcvbuf`` sets the receiver's SO_RCVBUF (the kernel doubles it); the table shows the
value the kernel actually gave. Sends go through a duplicate of the transport's socket
in non-blocking mode, so a send that cannot proceed is seen as EAGAIN and timed.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import shutil
import socket
import struct
import tempfile
import termios
from dataclasses import dataclass
from typing import Any

import trio

from ..results import ResultTable
from ..transports import (
    COMPARE_SCHEMES, Address, connect_channel, get_transport, listen_connections, listen_datagrams, parse_address,
    receive_message, socket_of, translate_os_errors,
)
from .base import Experiment, ExperimentOptions, ExperimentResult

DEFAULT_SIZE = 1400
STALL = 0.05  # the receiver starts reading once the sender has been blocked this long
IDLE = 0.2  # after the sender finished, the drain ends when nothing arrives for this long
GUARD = 60.0  # no transport may take longer than this in all
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)
SEQ = struct.Struct("!I")
SIOCOUTQNSD = 0x894B  # bytes in a TCP send queue not yet sent
TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25)
NO_LOWAT = 2**32 - 1  # the kernel's default: no limit
MARKER = b"end"  # shorter than a sequence number, so never mistaken for a message


@dataclass
class SenderState:
    sent: int = 0  # messages handed to the kernel in full
    sent_bytes: int = 0
    blocks: int = 0  # sends that met EAGAIN and had to wait
    blocked_s: float = 0.0
    blocked_since: float | None = None
    first_block_messages: int | None = None
    first_block_bytes: int | None = None
    started: float = 0.0
    finished: float | None = None


def _udp_counter(family: socket.AddressFamily) -> tuple[str, int | None]:
    """(name, value) of the host-wide UDP receive-buffer drop counter for a family."""
    try:
        if family == socket.AF_INET6:
            with open("/proc/net/snmp6") as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == "Udp6RcvbufErrors":
                        return name, int(value)
            return "Udp6RcvbufErrors", None
        with open("/proc/net/snmp") as f:
            rows = [line.split() for line in f if line.startswith("Udp:")]
        return "Udp RcvbufErrors", int(dict(zip(rows[0][1:], rows[1][1:]))["RcvbufErrors"])
    except (OSError, KeyError, IndexError, ValueError):
        return ("Udp6RcvbufErrors" if family == socket.AF_INET6 else "Udp RcvbufErrors"), None


def _ioctl_int(sock: trio.socket.SocketType, request: int) -> int | None:
    try:
        value: int = struct.unpack("i", fcntl.ioctl(sock.fileno(), request, b"\0" * 4))[0]
        return value
    except OSError:
        return None


def _tcp_queues(facts: dict[str, Any], receiver: trio.socket.SocketType, sender: trio.socket.SocketType) -> None:
    """Where a stalled TCP burst sits: unread at the receiver, queued (and unsent) at the sender."""
    facts["sender_queued"] = _ioctl_int(sender, termios.TIOCOUTQ)  # SIOCOUTQ: unacknowledged + unsent
    facts["sender_unsent"] = _ioctl_int(sender, SIOCOUTQNSD)
    try:
        facts["notsent_lowat"] = sender.getsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT)
    except OSError:
        facts["notsent_lowat"] = None


def _buffers(facts: dict[str, Any], receiver: trio.socket.SocketType, sender: trio.socket.SocketType) -> None:
    """The buffer sizes the kernel gave, read while the receiver pauses (TCP grows them later)."""
    facts["rcvbuf"] = receiver.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    facts["sndbuf"] = sender.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)


def _max_dgram_qlen() -> int | None:
    try:
        with open("/proc/sys/net/unix/max_dgram_qlen") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def _messages(count: int, size: int) -> list[bytes]:
    filler = bytes(size)
    return [SEQ.pack(i) + filler[SEQ.size:] for i in range(count)]


async def _send_all(sock: trio.socket.SocketType, payloads: list[bytes], state: SenderState, *,
                    stream: bool, where: object) -> None:
    """Send every payload as fast as the socket takes it, timing every wait (EAGAIN)."""
    raw = socket.socket(fileno=os.dup(sock.fileno()))
    raw.setblocking(False)
    state.started = trio.current_time()
    try:
        with translate_os_errors(where, "send to"):
            for payload in payloads:
                view = memoryview(payload)
                while view:
                    try:
                        n = raw.send(view)
                    except BlockingIOError:
                        now = trio.current_time()
                        if state.first_block_bytes is None:
                            state.first_block_bytes = state.sent_bytes
                            state.first_block_messages = state.sent
                        state.blocked_since = now
                        await trio.lowlevel.wait_writable(raw)
                        state.blocked_s += trio.current_time() - now
                        state.blocks += 1
                        state.blocked_since = None
                        continue
                    state.sent_bytes += n
                    view = view[n:] if stream else view[:0]
                state.sent += 1
        state.finished = trio.current_time()
    finally:
        trio.lowlevel.notify_closing(raw)
        raw.close()
    await trio.lowlevel.checkpoint()


async def _pause(state: SenderState) -> float:
    """Read nothing until the sender finished or has been stuck for STALL seconds."""
    start = trio.current_time()
    while state.finished is None:
        since = state.blocked_since
        if since is not None and trio.current_time() - since >= STALL:
            break
        await trio.sleep(0.005)
    return trio.current_time() - start


def _plain(address: Address) -> Address:
    """The address a client connects to: without the receiver's buffer options."""
    return dataclasses.replace(address, options=())


async def _datagrams(address: Address, payloads: list[bytes], facts: dict[str, Any]) -> None:
    """The burst over datagrams: the receiver is an unconnected socket, as a server's is (a
    unix datagram receiver connected back to its sender would not hold that sender back)."""
    transport = get_transport(address.scheme)
    counting = not transport.reliable  # loss is possible: count it, on the socket and host-wide
    async with await listen_datagrams(address) as server, await connect_channel(_plain(server.local)) as client:
        receiver = server.socket
        if counting:
            server.count_drops()
            counter, before = _udp_counter(receiver.family)
        state = SenderState()
        seqs: list[int] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: _send_all(client.socket, payloads, state, stream=False, where=client.remote))
            facts["pause_ms"] = round(await _pause(state) * 1000, 1)
            _buffers(facts, receiver, client.socket)
            drain_start = trio.current_time()
            while len(seqs) < len(payloads):
                with trio.move_on_after(IDLE) as idle:
                    message = await server.receive()
                if idle.cancelled_caught:
                    if state.finished is not None:
                        break
                    continue
                seqs.append(SEQ.unpack_from(message.data)[0])
            facts["drain_ms"] = round((trio.current_time() - drain_start) * 1000, 1)
        if counting:
            _, after = _udp_counter(receiver.family)
            # one more datagram, now that the buffer is empty: it carries the final drop count
            await client.send(MARKER)
            with trio.move_on_after(max(IDLE, 1.0)):
                while (await server.receive()).data != MARKER:
                    pass
            facts["so_rxq_ovfl"] = server.kernel_drops or 0
            facts["counter"] = counter
            facts["counter_delta"] = None if before is None or after is None else after - before
        else:
            facts["max_dgram_qlen"] = _max_dgram_qlen()
    _sender_facts(facts, state, len(payloads))
    facts["delivered"] = len(set(seqs))
    facts["first_ones_kept"] = sorted(set(seqs)) == list(range(len(set(seqs))))


async def _connections(address: Address, payloads: list[bytes], facts: dict[str, Any]) -> None:
    """The burst over a connection (stream or seqpacket)."""
    transport = get_transport(address.scheme)
    stream = not transport.boundaries
    listeners = await listen_connections(address)
    try:
        bound = _plain(listeners.bound[0])
        client = await transport.connect(bound)
        server = await listeners.listeners[0].accept()
        receiver, sender = socket_of(server), socket_of(client)
        rcvbuf = address.int_option("rcvbuf")
        if rcvbuf is not None:
            # AF_UNIX accepted sockets do not inherit the listener's SO_RCVBUF (TCP's do)
            receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    finally:
        await listeners.aclose()
    async with client, server:
        state = SenderState()
        total = sum(map(len, payloads))
        received = messages = 0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: _send_all(sender, payloads, state, stream=stream, where=bound))
            facts["pause_ms"] = round(await _pause(state) * 1000, 1)
            _buffers(facts, receiver, sender)
            facts["queued_at_pause"] = _ioctl_int(receiver, termios.FIONREAD)
            facts["sent_at_pause"] = state.sent_bytes
            if transport.protocol == socket.IPPROTO_TCP:  # TCP's own queues and TCP_NOTSENT_LOWAT
                _tcp_queues(facts, receiver, sender)
            drain_start = trio.current_time()
            while received < total:
                with trio.move_on_after(IDLE) as idle:
                    message = await receive_message(server, 1 << 16)
                    size = 0 if message is None else len(message.data)
                    messages += 1
                if idle.cancelled_caught:
                    if state.finished is not None:
                        break
                    continue
                if size == 0:
                    break
                received += size
            facts["drain_ms"] = round((trio.current_time() - drain_start) * 1000, 1)
    _sender_facts(facts, state, len(payloads))
    size = len(payloads[0])
    facts["delivered"] = messages if not stream else received // size
    facts["delivered_bytes"] = received


def _sender_facts(facts: dict[str, Any], state: SenderState, planned: int) -> None:
    facts["sent"] = state.sent
    facts["sent_bytes"] = state.sent_bytes
    facts["blocks"] = state.blocks
    facts["blocked_ms"] = round(state.blocked_s * 1000, 1)
    facts["in_flight_bytes"] = state.first_block_bytes
    facts["in_flight_messages"] = state.first_block_messages
    facts["completed"] = state.sent == planned
    end = state.finished if state.finished is not None else trio.current_time()
    facts["send_ms"] = round((end - state.started) * 1000, 1)


async def run(options: ExperimentOptions) -> ExperimentResult:
    size = max(options.size or DEFAULT_SIZE, SEQ.size)
    count = options.messages
    result = ExperimentResult(
        name="overload", question=EXPERIMENT.question, mode="loopback",
        options={"messages": count, "size": size, "rcvbuf": options.rcvbuf, "stall_ms": STALL * 1000},
    )
    payloads = _messages(count, size)
    layered: list[str] = []
    tmp = tempfile.mkdtemp(prefix="nl-", dir="/tmp")
    try:
        for name, template in COMPARE_SCHEMES.items():
            text = template.format(dir=tmp)
            if options.rcvbuf is not None:
                text += f"?rcvbuf={options.rcvbuf}"
            address = parse_address(text)
            transport = get_transport(address.scheme)
            if transport.encrypted:  # the burst is written straight to the kernel socket, to time each wait
                layered.append(name)
                continue
            facts: dict[str, Any] = {"kind": transport.kind, "declared_reliable": transport.reliable}
            with trio.move_on_after(GUARD) as guard:
                burst = _connections if transport.connected else _datagrams
                await burst(address, payloads, facts)
            if guard.cancelled_caught:
                facts["completed"] = False
                facts.setdefault("sent", 0)
                facts.setdefault("delivered", 0)
            facts["lost"] = facts["sent"] - facts["delivered"]
            result.facts[name] = facts
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _report(result, count, size, options.rcvbuf)
    if layered:
        result.findings.append(f"{', '.join(layered)}: not run: a TLS stream rides on a TCP socket, whose kernel "
                               "queues it shares (see tcp); this experiment writes straight to the socket to time "
                               "each wait, which TLS would not understand.")
    return result


def _report(result: ExperimentResult, count: int, size: int, rcvbuf: int | None) -> None:
    facts = result.facts
    asked = f", receiver SO_RCVBUF asked {rcvbuf}" if rcvbuf is not None else ""
    table = ResultTable(
        f"{count} messages of {size} bytes sent as fast as possible; the receiver reads nothing until the sender "
        f"is done or stuck for {STALL * 1000:.0f} ms{asked}",
        ["transport", "sent", "delivered", "lost", "drops counted", "sender blocked", "in flight at first block",
         "rcvbuf", "sndbuf"], [])
    for name, f in facts.items():
        if "so_rxq_ovfl" in f:
            delta = "?" if f["counter_delta"] is None else f["counter_delta"]
            counted = f"SO_RXQ_OVFL {f['so_rxq_ovfl']}, {f['counter']} +{delta}"
        else:
            counted = "-"
        if f["blocks"]:
            blocked = f"{f['blocks']} waits, {f['blocked_ms']} ms"
            in_flight = f"{f['in_flight_bytes']} B ({f['in_flight_messages']} msgs)"
        else:
            blocked, in_flight = "never", "-"
        table.rows.append([name, f["sent"], f["delivered"], f["lost"], counted, blocked, in_flight,
                           f.get("rcvbuf", "?"), f.get("sndbuf", "?")])
    result.tables.append(table)

    for name, f in facts.items():
        if not f["completed"]:
            result.findings.append(f"{name}: did not finish within {GUARD:.0f} s: {f['sent']} sent, "
                                   f"{f['delivered']} delivered when it was stopped.")
            continue
        if "so_rxq_ovfl" in f:
            result.findings.append(_udp_finding(name, f))
        elif f["lost"]:
            result.findings.append(f"{name}: lost {f['lost']} of {f['sent']} although it is declared reliable.")
        elif f["blocks"]:
            result.findings.append(_blocked_finding(name, f))
        else:
            result.findings.append(
                f"{name}: lost nothing and never blocked: all {f['sent_bytes']} bytes fit in the socket buffers "
                f"(sender SO_SNDBUF {f['sndbuf']}, receiver SO_RCVBUF {f['rcvbuf']}); send more (--messages, --size) "
                f"to see flow control.")


def _udp_finding(name: str, f: dict[str, Any]) -> str:
    text = (f"{name}: {f['delivered']} of {f['sent']} datagrams delivered, {f['lost']} lost, "
            "while the sender never had to wait." if f["blocks"] == 0 else
            f"{name}: {f['delivered']} of {f['sent']} datagrams delivered, {f['lost']} lost.")
    if f["lost"] and f["first_ones_kept"]:
        which = "The one that arrived was the first" if f["delivered"] == 1 else \
            f"The ones that arrived were the first {f['delivered']}"
        text += (f" {which} sent: once the receive buffer (SO_RCVBUF {f['rcvbuf']}) was full, every later "
                 f"datagram was dropped.")
    if f["lost"] == 0:
        text += (f" The whole burst fit the receive buffer (SO_RCVBUF {f['rcvbuf']}); SO_RXQ_OVFL counted "
                 f"{f['so_rxq_ovfl']} drops. Send more (--messages, --size) or shrink --rcvbuf to see it overflow.")
    elif f["so_rxq_ovfl"] == f["lost"]:
        text += (f" SO_RXQ_OVFL counted exactly {f['so_rxq_ovfl']} drops on this socket: all the loss was the "
                 f"receive buffer.")
    else:
        text += (f" SO_RXQ_OVFL counted {f['so_rxq_ovfl']} drops on this socket, not {f['lost']}: "
                 f"the rest was lost somewhere else.")
    delta = f["counter_delta"]
    if delta is None:
        text += f" ({f['counter']} could not be read.)"
    elif delta == f["lost"]:
        text += f" The host-wide {f['counter']} rose by the same {delta}." if delta else \
            f" The host-wide {f['counter']} did not move."
    elif delta > f["lost"]:
        text += (f" The host-wide {f['counter']} rose by {delta}, {delta - f['lost']} more than this socket lost: "
                 f"other UDP traffic on this host overflowed too during the burst.")
    else:
        text += f" The host-wide {f['counter']} rose by only {delta}: it does not account for all of this loss."
    return text


def _blocked_finding(name: str, f: dict[str, Any]) -> str:
    text = (f"{name}: lost nothing: the sender was held back instead. Its sends blocked {f['blocks']} times, "
            f"{f['blocked_ms']} ms in all (the receiver paused for {f['pause_ms']} ms), the first time after "
            f"{f['in_flight_bytes']} bytes ({f['in_flight_messages']} messages) were in flight.")
    queued = f.get("queued_at_pause")
    if queued is not None and f.get("sent_at_pause"):
        elsewhere = f["sent_at_pause"] - queued
        if elsewhere > 0:
            text += f" While it waited, {queued} bytes sat unread in the receiver's buffer and {elsewhere} "
            unsent = f.get("sender_unsent")
            if unsent == elsewhere:
                text += "in the sender's queue, not yet sent."
            elif unsent is not None:
                text += f"elsewhere ({unsent} of them unsent in the sender's queue)."
            else:
                text += "elsewhere (in the sender's queue or on the way)."
        else:
            text += f" While it waited, all {queued} bytes sat unread in the receiver's queue."
    lowat = f.get("notsent_lowat")
    if lowat is not None and lowat != NO_LOWAT and lowat < f["sndbuf"]:
        text += (f" The sender's socket has TCP_NOTSENT_LOWAT {lowat} (trio's SocketStream sets it), so a send "
                 f"waits once {lowat} bytes are unsent, long before its SO_SNDBUF ({f['sndbuf']}) is full.")
    if f["kind"] != "stream" and f.get("max_dgram_qlen") is not None \
            and f["in_flight_messages"] == f["max_dgram_qlen"] + 1:
        text += (f" That is net.unix.max_dgram_qlen ({f['max_dgram_qlen']}) + 1: the receiver's queue length, "
                 f"not its byte buffer, set the limit.")
    if f["in_flight_bytes"] > f["rcvbuf"] and get_transport(name).family == socket.AF_UNIX:
        text += (f" More was in flight than the receiver's SO_RCVBUF ({f['rcvbuf']}): AF_UNIX charges queued "
                 f"data to the sender's send buffer, so SO_RCVBUF does not limit it.")
    return text


def plot(result: ExperimentResult, path: str) -> None:
    """Sent vs delivered per transport, and how long each sender was blocked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result.facts)
    facts = [result.facts[n] for n in names]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    xs = list(range(len(names)))
    width = 0.38
    top = max([f["sent"] for f in facts] + [1])
    left.bar([x - width / 2 for x in xs], [f["sent"] for f in facts], width, label="sent", color="tab:blue")
    left.bar([x + width / 2 for x in xs], [f["delivered"] for f in facts], width, label="delivered",
             color="tab:green")
    for x, f in zip(xs, facts):
        if f["lost"]:
            left.annotate(f"lost {f['lost']}", (x, f["sent"] + top * 0.01), ha="center", va="bottom",
                          color="tab:red", fontsize="small")
    left.set_ylim(0, top * 1.2)
    left.set_xticks(xs, names, rotation=30, ha="right")
    left.set_ylabel("messages")
    rcvbuf = result.options.get("rcvbuf")
    left.set_title(f"{result.options['messages']} x {result.options['size']} B, receiver paused"
                   + (f", --rcvbuf {rcvbuf}" if rcvbuf else ""))
    left.legend(loc="upper right", ncol=2)
    right.bar(xs, [f["blocked_ms"] for f in facts], 0.6, color="tab:orange")
    for x, f in zip(xs, facts):
        if not f["blocks"]:
            right.annotate("never", (x, 0), ha="center", va="bottom", fontsize="small")
    right.set_xticks(xs, names, rotation=30, ha="right")
    right.set_ylabel("ms")
    right.set_title("time the sender spent blocked (EAGAIN)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


EXPERIMENT = Experiment(
    name="overload",
    question="What happens when a sender is faster than its receiver? (UDP drops; unix-dgram and TCP hold the "
             "sender back)",
    run=run,
    uses=("messages", "size", "rcvbuf"),
    plot=plot,
)
