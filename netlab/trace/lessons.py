"""`netlab experiment run NAME --trace`: the experiment, and the packets its findings rest on.

Two ways to get the packets:

* **in a trace namespace** (boundaries, refused, size-limits, framing, close): the whole
  experiment runs as ``netlab experiment run NAME --json`` under `run_trace` (size-limits
  with lo's MTU at 1500, so that a large datagram leaves as IP fragments, as on a real link);
  its JSON result and the frames come back together;
* **in kernel mode's own namespaces** (loss --kernel): each transport's run is already in a
  namespace of its own, where the loss rule is; the capture runs there
  (`netlab.experiments.kernel`, ``trace=True``) and each run's frames come back with it.

Then one reader per experiment (`READERS`) finds, in the ladder, the packets behind what the
experiment measured, and says so in findings that cite them by number (``#12``): the RST
that made a connect fail at once, the ICMP port unreachable an unconnected UDP socket never
hears of, the segment the loss rule dropped and its retransmission, the fragments of the
largest datagram, the request without its newline acknowledged into the server's receive
buffer, the first FIN and the TIME_WAIT it leaves. A reader that cannot find what it looks
for says that, rather than guessing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..errors import NetlabError, UsageError
from ..experiments.base import ExperimentOptions, ExperimentResult
from ..results import ResultTable
from .capture import Frame, Limits
from .ladder import Conversation, Ladder, Row
from .packets import decode, preview
from .run import TraceSettings, run_trace

#: rows shown under a finding, at most
EXCERPT = 8


@dataclass
class Lesson:
    """A finding drawn from packets, and the packets (numbers in `ladder`) it cites."""

    text: str
    packets: list[int] = field(default_factory=list)
    ladder: str = ""  # which ladder: "" for the one trace; a transport for loss --kernel

    def as_json(self) -> dict[str, Any]:
        return {"text": self.text, "packets": self.packets, "ladder": self.ladder}


@dataclass
class TracedExperiment:
    result: ExperimentResult
    ladders: dict[str, Ladder]
    frames: dict[str, list[Frame]]
    lessons: list[Lesson]
    notes: list[str] = field(default_factory=list)

    def excerpt(self, lesson: Lesson, width: int = 80) -> list[str]:
        """The ladder's lines for the packets a lesson cites (the first `EXCERPT`)."""
        ladder = self.ladders.get(lesson.ladder)
        if ladder is None:
            return []
        return [ladder.line(n, width) for n in sorted(lesson.packets)[:EXCERPT] if 0 < n <= len(ladder.rows)]

    def as_json(self) -> dict[str, Any]:
        return {**self.result.as_json(),
                "trace": {"lessons": [lesson.as_json() for lesson in self.lessons], "notes": self.notes,
                          "ladders": {key: {"conversations": [c.facts() for c in ladder.conversations],
                                            "packets": ladder.as_json()} for key, ladder in self.ladders.items()}}}


Reader = Callable[[dict[str, Any], Ladder], list[Lesson]]


def n_list(rows: Sequence[Row], limit: int = 6) -> str:
    """``#4, #6 and #9`` (and how many more)."""
    shown = [f"#{r.n}" for r in rows[:limit]]
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    if len(shown) > 1 and not more:
        return ", ".join(shown[:-1]) + " and " + shown[-1]
    return ", ".join(shown) + more


def _ms(a: Row, b: Row) -> float:
    return (b.packet.time - a.packet.time) * 1e3


def _tcp(ladder: Ladder) -> list[Conversation]:
    return [c for c in ladder.conversations if c.proto == "tcp"]


def _data(c: Conversation, from_initiator: bool = True) -> list[Row]:
    return [r for r in c.rows if r.rightward == from_initiator and r.packet.payload_len > 0]


# -- boundaries -------------------------------------------------------------------------------------


def boundaries(result: dict[str, Any], ladder: Ladder) -> list[Lesson]:
    facts = result["facts"]
    sends, size = result["options"]["sends"], result["options"]["size"]
    pattern = b"A" * size  # the first send: ten A's (then ten B's, ...)
    lessons: list[Lesson] = []
    for c in _tcp(ladder):
        data = _data(c)
        if not data:
            continue
        tls = data[0].packet.payload[:1] == b"\x16"
        if not tls and not data[0].packet.payload.startswith(pattern):
            continue
        name = "tls" if tls else ("tcp6" if ":" in c.initiator[0] else "tcp")
        f = facts.get(name)
        if f is None:
            continue
        sizes = " + ".join(str(r.packet.payload_len) for r in data)
        reads = f"{f['reads']} read{'s' * (f['reads'] != 1)} ({' + '.join(map(str, f['bytes_per_read']))} bytes)"
        if tls:
            text = (f"tls: the {sends} sends left as {len(data)} segments of TLS records ({n_list(data)}: {sizes} "
                    f"bytes, each send its own record with its own header and tag), and were read as {reads}.")
        elif len(data) < sends:
            text = (f"{name}: the {sends} sends of {size} bytes left as {len(data)} segment"
                    f"{'s' * (len(data) != 1)} ({n_list(data)}: {sizes} bytes): Nagle's algorithm sent the first "
                    f"at once and held the next small writes while it was unacknowledged, then sent them together "
                    f"(TCP_NODELAY turns that off). The receiver's reads: {reads}.")
        else:
            text = (f"{name}: the {sends} sends left as {len(data)} segments ({n_list(data)}), one per send, yet "
                    f"were read as {reads}: the segments kept the sends apart, the receive buffer did not.")
        lessons.append(Lesson(text, [r.n for r in data]))
    for c in ladder.conversations:
        if c.proto != "udp":
            continue
        grams = [r for r in c.rows if r.packet.proto == "udp" and r.packet.payload_len == size]
        if len(grams) != sends:
            continue
        name = "udp6" if ":" in c.initiator[0] else "udp"
        f = facts.get(name, {})
        lessons.append(Lesson(f"{name}: {sends} datagrams ({n_list(grams, 3)}), {size} bytes each, one per send; "
                              f"the receiver's {f.get('reads', '?')} reads took one each.", [r.n for r in grams]))
    if not lessons:
        lessons.append(Lesson("the trace holds no segment of the boundaries experiment's sends: nothing to cite."))
    lessons.append(Lesson("unix, unix-dgram and unix-seq never reach the network stack: no packets of theirs."))
    return lessons


# -- refused ----------------------------------------------------------------------------------------


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def refused(result: dict[str, Any], ladder: Ladder) -> list[Lesson]:
    facts = result["facts"]
    lessons: list[Lesson] = []
    for case in ("tcp", "tcp6"):
        f = facts.get(case)
        if not f:
            continue
        port = _port(f["address"])
        found = [c for c in _tcp(ladder) if c.responder[1] == port]
        if not found:
            lessons.append(Lesson(f"{case}: no segment to port {port} in the trace."))
            continue
        rows = found[0].rows
        syn = rows[0]
        reset = next((r for r in rows if "RST" in r.packet.flags and not r.rightward), None)
        if reset is None:
            lessons.append(Lesson(f"{case}: the SYN {n_list([syn])} got no reset in the trace.", [syn.n]))
            continue
        lessons.append(Lesson(
            f"{case}: the SYN #{syn.n} to port {port} was answered {_ms(syn, reset):.3f} ms later by #{reset.n}, "
            f"{reset.label()} from that port: nothing listens there, and the kernel says so at once. That reset "
            f"is the {f.get('errno') or 'error'} connect raised.", [syn.n, reset.n]))
    for case in ("udp-unconnected", "udp-connected", "udp6-connected"):
        f = facts.get(case)
        if not f:
            continue
        port = _port(f["address"])
        flows = [c for c in ladder.conversations if c.proto == "udp" and c.responder[1] == port]
        if not flows:
            lessons.append(Lesson(f"{case}: no datagram to port {port} in the trace."))
            continue
        rows = flows[0].rows
        sent = next((r for r in rows if r.packet.proto == "udp"), None)
        icmp = next((r for r in rows if r.packet.proto.startswith("icmp")), None)
        if sent is None or icmp is None:
            lessons.append(Lesson(f"{case}: the datagram to port {port} got no ICMP answer in the trace.",
                                  [r.n for r in rows]))
            continue
        version = "ICMPv6" if icmp.packet.proto == "icmp6" else "ICMP"
        head = (f"{case}: the datagram #{sent.n} to port {port} was answered {_ms(sent, icmp):.3f} ms later by "
                f"#{icmp.n}, {version} {icmp.packet.icmp_text}")
        if case == "udp-unconnected":
            text = (f"{head}, quoting the datagram; the kernel tells only a connected socket of it, so this client "
                    f"heard nothing and waited its whole timeout ({f['elapsed_ms']:.0f} ms).")
        else:
            text = (f"{head}; the socket is connected to that port, so the kernel turns it into "
                    f"{f.get('errno') or 'an error'} at the next call ({f.get('failed_at') or '?'}).")
        lessons.append(Lesson(text, [sent.n, icmp.n]))
    lessons.append(Lesson("unix, unix-dgram and unix-seq never reach the network stack: ENOENT and ECONNREFUSED come "
                          "from the file system and the socket layer, with no packet at all."))
    return lessons


# -- size-limits ------------------------------------------------------------------------------------


def _datagrams(ladder: Ladder) -> dict[tuple[str, str, int | None], list[Row]]:
    """Each fragmented datagram's fragments, first fragment first."""
    found: dict[tuple[str, str, int | None], list[Row]] = {}
    for row in ladder.rows:
        p = row.packet
        if p.fragment is not None:
            found.setdefault((p.src, p.dst, p.ip_id), []).append(row)
    return found


def size_limits(result: dict[str, Any], ladder: Ladder) -> list[Lesson]:
    limits = result["facts"].get("limits", {})
    lessons: list[Lesson] = []
    groups = _datagrams(ladder)
    for family, name in ((4, "udp"), (6, "udp6")):
        mine = [rows for rows in groups.values() if rows[0].packet.family == family and rows[0].packet.proto == "udp"]
        if not mine:
            lessons.append(Lesson(f"{name}: no fragmented datagram in the trace."))
            continue
        biggest = max(mine, key=lambda rows: rows[0].packet.payload_len)
        first = biggest[0].packet
        largest = limits.get(name, {}).get("largest")
        same = " (the largest the kernel accepted)" if largest == first.payload_len else ""
        refused = limits.get(name, {}).get("first_refused")
        text = (f"{name}: a datagram of {first.payload_len:,} bytes{same} left as {len(biggest)} IP fragments, "
                f"#{biggest[0].n} to #{biggest[-1].n} (lo's MTU is 1500 in the trace); only the first, #{biggest[0].n}"
                f", carries the UDP header with the ports; the others carry only the IP identification "
                f"{first.ip_id} and their offset (the last at {biggest[-1].packet.fragment['offset'] if biggest[-1].packet.fragment else '?'}). "
                f"Losing any one of them loses the whole datagram.")
        if refused:
            text += (f" The {refused:,}-byte send was refused (EMSGSIZE) before any packet left: no datagram of that "
                     f"size is in the trace.")
        lessons.append(Lesson(text, [r.n for r in biggest[:3]] + [biggest[-1].n]))
    lessons.append(Lesson("unix-dgram and unix-seq never reach the network stack: their limit is the send buffer's, "
                          "and they are never fragmented."))
    if result["options"].get("kernel"):
        lessons.append(Lesson("the fragmentation part (--kernel) runs in a namespace of its own, inside the trace's: "
                              "its packets are not in this trace."))
    return lessons


# -- framing ----------------------------------------------------------------------------------------


def framing(result: dict[str, Any], ladder: Ladder) -> list[Lesson]:
    facts = result["facts"]
    lessons: list[Lesson] = []
    tcp = _tcp(ladder)
    # the naive client's connection straight to each framing's server
    ports = {cell["framing"].partition(":")[0]: _port(cell["address"]) for cell in facts.get("cells", [])
             if cell["client"] == "naive" and cell["path"] == "direct" and cell.get("address")}

    def direct(framing: str) -> Conversation | None:
        return next((c for c in tcp if c.responder[1] == ports.get(framing)
                     and [r.packet.payload for r in _data(c)] == [b"2 3"]), None)

    def ends(c: Conversation) -> Row | None:
        return next((r for r in c.rows if r.rightward and ("FIN" in r.packet.flags or "RST" in r.packet.flags)), None)

    stuck, quiet, eof = direct("line"), direct("quiet"), direct("eof")
    if stuck is not None:
        request = _data(stuck)[0]
        ack = next((r for r in stuck.rows if not r.rightward and r.n > request.n and r.rel_ack is not None
                    and r.rel_ack >= (request.rel_seq or 0) + 3), None)
        closed = ends(stuck)
        text = (f"the naive client's request to a line-framed server, #{request.n}, carried "
                f"{preview(request.packet.payload)}: 3 bytes, no \\n.")
        cited = [request.n]
        if ack is not None:
            text += (f" The server's kernel acknowledged them {_ms(request, ack):.3f} ms later (#{ack.n}, ack "
                     f"{ack.rel_ack}): they sit in its receive buffer, delivered as far as TCP is concerned")
            cited.append(ack.n)
        if closed is not None:
            text += (f"; and nothing came back until the client gave up and closed, #{closed.n}, "
                     f"{_ms(request, closed) / 1e3:.1f} s later: the server waits for the \\n that would end the "
                     f"request, the client for a reply")
            cited.append(closed.n)
            after = [r for r in _data(stuck, False) if r.n > closed.n]
            if after:
                text += (f". Only then did the server answer, #{after[0].n}: {preview(after[0].packet.payload, 24)}: "
                         f"the end of stream ended the request, for a client no longer waiting")
                cited.append(after[0].n)
        lessons.append(Lesson(text + ".", cited))
    else:
        lessons.append(Lesson("no connection to a server in the trace carried the naive client's '2 3' without an "
                              "answer."))
    if quiet is not None and _data(quiet, False):
        request, reply = _data(quiet)[0], _data(quiet, False)[0]
        lessons.append(Lesson(
            f"under quiet framing the same 3 bytes (#{request.n}) were answered by #{reply.n}, "
            f"{preview(reply.packet.payload)}, {_ms(request, reply):.0f} ms later: the server took the pause after "
            f"them ({facts.get('quiet_ms', 0):g} ms) for the end of the request; nothing in the packets says where "
            f"it ends.", [request.n, reply.n]))
    closed = ends(eof) if eof is not None else None
    if eof is not None and closed is not None and _data(eof, False):
        request, reply = _data(eof)[0], _data(eof, False)[0]
        lessons.append(Lesson(
            f"under eof framing the request (#{request.n}) ended only with the client's {closed.label()}, "
            f"#{closed.n}, when it gave up waiting; the reply #{reply.n} came after it, to a client that had "
            f"stopped reading.", [request.n, closed.n, reply.n]))
    return lessons


# -- close ------------------------------------------------------------------------------------------


def close(result: dict[str, Any], ladder: Ladder) -> list[Lesson]:
    lessons: list[Lesson] = []
    for key, f in result["facts"].items():
        port = f["server_port"]
        found = [c for c in _tcp(ladder) if c.responder[1] == port]
        if not found:
            lessons.append(Lesson(f"{f['name']}: no connection to port {port} in the trace."))
            continue
        c = found[0]
        fins = [r for r in c.rows if "FIN" in r.packet.flags]
        if len(fins) < 2:
            lessons.append(Lesson(f"{f['name']}: only {len(fins)} FIN in the trace.", [r.n for r in fins]))
            continue
        acks = [next((r for r in c.rows if r.n > fin.n and r.rightward != fin.rightward and r.rel_ack is not None
                      and fin.rel_seq is not None and r.rel_ack >= fin.rel_seq + 1), None) for fin in fins[:2]]
        first = "client" if fins[0].rightward else "server"
        steps = [f"#{fins[0].n} FIN from the {first}"]
        if acks[0] is not None and acks[0].n != fins[1].n:
            steps.append(f"#{acks[0].n} its ACK")
        steps.append(f"#{fins[1].n} FIN from the {'server' if first == 'client' else 'client'}"
                     + (" (with the ACK)" if acks[0] is not None and acks[0].n == fins[1].n else ""))
        if acks[1] is not None:
            steps.append(f"#{acks[1].n} the last ACK")
        waiting = " and ".join(f["time_wait"]) or "nobody"
        text = (f"{f['name']}: {', '.join(steps)}. The {first} sent the first FIN, so its end is the one left in "
                f"TIME_WAIT (the experiment found: {waiting})")
        if first == "server":
            text += f"; a new server on port {port} then got {f['rebind']}"
            if f.get("reuseaddr"):
                text += f" without SO_REUSEADDR and {f['rebind_reuseaddr']} with it"
        lessons.append(Lesson(text + ".", sorted({r.n for r in fins[:2]} | {a.n for a in acks if a is not None})))
    return lessons


# -- loss --kernel ----------------------------------------------------------------------------------


def loss(result: dict[str, Any], ladders: dict[str, Ladder]) -> list[Lesson]:
    facts = result["facts"]["transports"]
    lessons: list[Lesson] = []
    tcp = ladders.get("tcp")
    if tcp is not None:
        again = [r for r in tcp.rows if r.retransmission_of is not None]
        f = facts.get("tcp", {})
        kinds: dict[int, str] = {}
        dupes_of: dict[int, list[Row]] = {}
        for r in again:
            original = tcp.rows[(r.retransmission_of or r.n) - 1]
            dupes = [d for d in tcp.rows if original.n < d.n < r.n and d.rightward != original.rightward
                     and d.packet.payload_len == 0 and d.rel_ack == (original.rel_seq or 0)]
            dupes_of[r.n] = dupes
            kinds[r.n] = "fast" if len(dupes) >= 3 else "timeout" if _ms(original, r) >= 200 else "early"
        if again:
            # the clearest example: a fast retransmission, else a timeout, else the first
            first = next((r for kind in ("fast", "timeout") for r in again if kinds[r.n] == kind), again[0])
            original = tcp.rows[(first.retransmission_of or first.n) - 1]
            lost = original if original.lost else next((r for r in tcp.rows if r.lost and r.n < first.n), original)
            gap = _ms(original, first)
            dupes = dupes_of[first.n]
            how = {"fast": f"a fast retransmission, after {len(dupes)} duplicate ACKs ({n_list(dupes, 3)})",
                   "timeout": "a retransmission timeout (at least 200 ms)",
                   "early": "an early resend (a tail loss probe: nothing more came back)"}[kinds[first.n]]
            counts = {kind: sum(k == kind for k in kinds.values()) for kind in ("fast", "timeout", "early")}
            what = (f"segment #{original.n} ({original.label()}, seq {original.rel_seq})" if lost is original else
                    f"the ACK #{lost.n} for segment #{original.n}")
            lessons.append(Lesson(
                f"tcp: the loss rule dropped {what}; #{first.n} is the kernel sending it again, {gap:.1f} ms "
                f"later: {how}. The trace shows {len(again)} segments sent again ({counts['fast']} fast, "
                f"{counts['timeout']} after a timeout, {counts['early']} early); the rule dropped "
                f"{f.get('dropped_forward', 0) + f.get('dropped_backward', 0)} packets and the kernel counted "
                f"{f.get('retrans_segs', '?')} retransmissions (a resent segment may cover more or less than the "
                f"one lost).", sorted({original.n, lost.n, first.n, *[d.n for d in dupes[:3]]}), "tcp"))
        else:
            lessons.append(Lesson("tcp: no segment was sent twice in the trace: the rule dropped nothing of TCP's "
                                  "this time.", [], "tcp"))
    udp = ladders.get("udp")
    if udp is not None:
        f = facts.get("udp", {})
        requests = [r for c in udp.conversations if c.proto == "udp" for r in c.rows if r.rightward]
        replies = {r.packet.payload[:16] for c in udp.conversations for r in c.rows if not r.rightward}
        unanswered = [r for r in requests if r.packet.payload[:16] not in replies]
        lessons.append(Lesson(
            f"udp: {len(unanswered)} of {len(requests)} requests have no reply in the trace ({n_list(unanswered)}): "
            f"they were dropped on the way in (by the rule"
            + (f", or the server's full receive buffer: {f['rcvbuf_errors']} RcvbufErrors" if f.get("rcvbuf_errors")
               else "") +
            f"), and nothing ever sends them again; the other "
            f"{max(0, f.get('lost', 0) - len(unanswered))} lost were replies, which the trace does show (a capture "
            f"sees a packet before the input hook drops it).", [r.n for r in unanswered[:EXCERPT]], "udp"))
    silent = [name for name in ("unix-dgram", "unix-seq") if name in ladders and not ladders[name].rows]
    if silent:
        lessons.append(Lesson(f"{' and '.join(silent)}: no packets at all: AF_UNIX never reaches the network stack, "
                              f"so the loss rule cannot touch it."))
    return lessons


READERS: dict[str, Reader] = {"boundaries": boundaries, "refused": refused, "size-limits": size_limits,
                              "framing": framing, "close": close}
TRACEABLE = ("boundaries", "refused", "loss", "size-limits", "framing", "close")


def _argv(name: str, options: ExperimentOptions) -> list[str]:
    argv = ["netlab", "experiment", "run", name, "--json", "--messages", str(options.messages), "--loss",
            str(options.loss), "--seed", str(options.seed), "--timeout", str(options.timeout)]
    if options.size is not None:
        argv += ["--size", str(options.size)]
    if options.rcvbuf is not None:
        argv += ["--rcvbuf", str(options.rcvbuf)]
    if options.kernel:
        argv.append("--kernel")
    return argv


def _result(data: dict[str, Any]) -> ExperimentResult:
    known = {f.name for f in fields(ExperimentResult)}
    result = ExperimentResult(**{k: v for k, v in data.items() if k in known})
    result.tables = [ResultTable(**t) for t in data.get("tables", [])]
    return result


async def trace_experiment(name: str, options: ExperimentOptions, limits: Limits = Limits(seconds=600)
                           ) -> TracedExperiment:
    """Run experiment `name` with its packets captured, and the findings that cite them.
    UsageError for an experiment without packets to show (or loss without --kernel)."""
    if name not in TRACEABLE:
        raise UsageError(f"--trace is for the experiments whose lesson is in the packets: {', '.join(TRACEABLE)}")
    if name == "loss":
        if not options.kernel:
            raise UsageError("loss --trace needs --kernel: without it, the relay drops datagrams inside netlab, "
                             "and a connection loses nothing to trace")
        from ..experiments import EXPERIMENTS

        result = await EXPERIMENTS["loss"].run(replace(options, trace=True))
        frames = {key: [Frame(t, i, base64.b64decode(d), True) for t, i, d in value]
                  for key, value in result.frames.items()}
        ladders = {key: Ladder([decode(f.data, f.time, f.interface) for f in value], drops=True)
                   for key, value in frames.items()}
        return TracedExperiment(result, ladders, frames, loss(result.as_json(), ladders),
                                ["each transport ran in a network namespace of its own, with the loss rule; the "
                                 "capture ran in each (the ladders are per transport)."])
    import trio

    settings = TraceSettings(_argv(name, options), limits=limits, mtu=1500 if name == "size-limits" else None)
    traced = await trio.to_thread.run_sync(run_trace, settings)
    if traced.exit_code != 0:
        raise NetlabError(f"the {name} experiment failed inside the trace's namespace "
                          f"({'out of time' if traced.timed_out else f'exit status {traced.exit_code}'})")
    try:
        data = json.loads(traced.output)
    except ValueError:
        raise NetlabError(f"the {name} experiment printed no JSON inside the trace's namespace") from None
    ladder = traced.ladder()
    notes = [f"the experiment ran in {traced.isolation}" + (", lo's MTU at 1500" if settings.mtu else "") + "."]
    notes += traced.notes()
    return TracedExperiment(_result(data), {"": ladder}, {"": traced.frames}, READERS[name](data, ladder), notes)


__all__ = ["READERS", "TRACEABLE", "Lesson", "TracedExperiment", "trace_experiment"]
