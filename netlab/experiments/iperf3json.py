"""Results in iperf3's ``-J`` shape, all the way down, so that what reads iperf3 reads netlab.

iperf3's JSON (3.12, measured here; `tests/data/iperf3-*.json` are real outputs) is one
test: ``start`` (``connected[]``, ``version``, ``system_info``, ``timestamp``,
``test_start``), ``intervals[]`` (each ``{"streams": [...], "sum": {...}}``), ``end``
(``streams[]`` with ``sender``/``receiver`` and, for UDP, ``udp``; ``sum_sent``,
``sum_received``, for UDP also ``sum``; ``cpu_utilization_percent``), and ``error`` only
when the test failed (a consumer such as the ``iperf3`` package's ``TestResult`` takes the
mere presence of the key as a failure). Every figure object carries ``start``, ``end``,
``seconds``, ``bytes``, ``bits_per_second``, and for datagrams ``packets``,
``lost_packets``, ``lost_percent``, ``jitter_ms``.

How netlab's runs map onto it:

* a **stream** is one run: in `netlab compare`, one (transport, service) workload; in
  `netlab bench`, one server on one transport (at one level). ``socket`` is its number
  (1, 2, ...), ``start.connected[i]`` says what it was (``netlab`` key), and times are
  seconds from the first run's start, so runs made one after another follow each other;
* an **interval** is a second of the runs going on at once (compare), or one measured
  run (bench: each run is one window);
* ``sum_sent`` / ``sum_received`` / ``sum`` add up every stream (compare), or netlab's own
  server's (bench: the baselines are beside it, in ``end.streams``, not part of the test);
* ``protocol`` is TCP or UDP where the kernel's protocol is one, else the scheme in
  capitals (UNIX, UNIX-DGRAM, UNIX-SEQ); MIXED when runs differ. Whatever it says, ``sum``,
  ``sum_sent`` and ``sum_received`` are all there (iperf3 3.12 writes all three for UDP);
* ``jitter_ms`` is RFC 3550's smoothed jitter (J += (|D| - J) / 16) over the round-trip
  times in arrival order (netlab measures round trips, not one-way transit); None where
  only a histogram was kept (bench);
* netlab's own figures stay under netlab's keys: ``start.settings``/``environment``,
  ``end.results``, and a ``netlab`` object in each stream and connection.
"""

from __future__ import annotations

import email.utils
import platform
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..transports import COMPARE_SCHEMES, get_transport

if TYPE_CHECKING:
    from ..bench.summary import BenchResult, Run
    from .compare_types import CompareSettings, TransportResult

#: slices of runs that overlap and started within this many seconds of each other are one interval
SAME_INTERVAL = 0.5


def protocol(transport: str) -> str:
    """iperf3's ``protocol`` for a netlab transport name (tcp, udp6, unix-seq, iperf3, ...)."""
    if transport == "iperf3":
        return "TCP"
    scheme = COMPARE_SCHEMES.get(transport, transport).partition(":")[0]
    found = get_transport(scheme)
    if found.target == "inet":
        return "TCP" if found.kind == "stream" else "UDP"
    return scheme.upper()


def test_protocol(transports: Iterable[str]) -> str:
    found = {protocol(t) for t in transports}
    return found.pop() if len(found) == 1 else "MIXED"


def jitter_ms(latencies_us: Sequence[float]) -> float | None:
    """RFC 3550's interarrival jitter over a sequence of delays (µs), in ms."""
    if len(latencies_us) < 2:
        return None if not latencies_us else 0.0
    jitter = 0.0
    for before, after in zip(latencies_us, latencies_us[1:]):
        jitter += (abs(after - before) - jitter) / 16
    return jitter / 1000


def figures(start: float, end: float, seconds: float, nbytes: int, *, packets: int | None = None,
            lost: int | None = None, jitter: float | None = None, sender: bool = True, socket: int | None = None,
            **extra: Any) -> dict[str, Any]:
    """One iperf3 figure object (a stream's or a sum's): with `packets`, the datagram keys too."""
    out: dict[str, Any] = {} if socket is None else {"socket": socket}
    out.update({"start": start, "end": end, "seconds": seconds, "bytes": nbytes,
                "bits_per_second": nbytes * 8 / seconds if seconds > 0 else 0.0})
    if packets is not None:
        out["packets"] = packets
        if lost is not None:
            out["lost_packets"] = lost
            out["lost_percent"] = 100 * lost / packets if packets else 0.0
            out["jitter_ms"] = jitter
    out.update(extra)
    out["sender"] = sender
    return out


def add_up(parts: Sequence[dict[str, Any]], *, sender: bool, datagrams: bool = False) -> dict[str, Any]:
    """A ``sum`` of figure objects: bytes and packets added, seconds from the earliest start
    to the latest end (runs one after another add their times), jitter averaged (as iperf3)."""
    if not parts:
        return figures(0.0, 0.0, 0.0, 0, packets=0 if datagrams else None, lost=0 if datagrams else None,
                       sender=sender)
    start, end = min(p["start"] for p in parts), max(p["end"] for p in parts)
    seconds = _covered([(p["end"] - p["seconds"], p["end"]) for p in parts])
    jitters = [p["jitter_ms"] for p in parts if p.get("jitter_ms") is not None]
    return figures(start, end, seconds, sum(p["bytes"] for p in parts),
                   packets=sum(p.get("packets", 0) for p in parts) if datagrams else None,
                   lost=sum(p.get("lost_packets", 0) for p in parts) if datagrams else None,
                   jitter=sum(jitters) / len(jitters) if jitters else None, sender=sender)


def _covered(spans: Sequence[tuple[float, float]]) -> float:
    """The time the union of `spans` covers (parallel runs count once, sequential ones add)."""
    total, reach = 0.0, float("-inf")
    for low, high in sorted(spans):
        if high > reach:
            total += high - max(low, reach)
            reach = high
    return total


def cpu_percent(host: tuple[float, float], remote: tuple[float, float], seconds: float) -> dict[str, float]:
    """``cpu_utilization_percent`` from (user, system) CPU seconds over `seconds` of wall time."""
    def pct(value: float) -> float:
        return 100 * value / seconds if seconds > 0 else 0.0

    return {"host_total": pct(sum(host)), "host_user": pct(host[0]), "host_system": pct(host[1]),
            "remote_total": pct(sum(remote)), "remote_user": pct(remote[0]), "remote_system": pct(remote[1])}


def timestamp(epoch: float) -> dict[str, Any]:
    return {"time": email.utils.formatdate(epoch, usegmt=True), "timesecs": int(epoch)}


def system_info() -> str:
    u = platform.uname()
    return f"{u.system} {u.node} {u.release} {u.version} {u.machine}"


def _endpoint(address: str | None) -> tuple[str | None, int | None]:
    """(host, port) of a netlab address for ``connected[]`` (unix: the path, no port)."""
    if not address:
        return None, None
    from ..transports import parse_address

    try:
        parsed = parse_address(address)
    except Exception:  # an address from a result is always netlab's; never fail a report on it
        return address, None
    if parsed.is_unix:
        return parsed.path if parsed.path is not None else f"@{parsed.abstract}", None
    return parsed.host, parsed.port


# -- compare ------------------------------------------------------------------------------------


def compare_document(settings: CompareSettings, results: Sequence[TransportResult],
                     netlab_start: dict[str, Any], error: str | None = None) -> dict[str, Any]:
    """`netlab compare --json`: the document described above, with `netlab_start`
    (environment, settings) merged into ``start`` and every result in ``end.results``."""
    t0 = min((r.started_at for r in results if r.started_at), default=0.0)
    connected, streams, slices = [], [], []
    for number, r in enumerate(results, 1):
        host, port = _endpoint(r.address)
        connected.append({"socket": number, "local_host": None, "local_port": None, "remote_host": host,
                          "remote_port": port, "netlab": {"transport": r.transport, "service": r.service,
                                                          "address": r.address, "via": r.via,
                                                          "protocol": protocol(r.transport)}})
        offset = r.started_at - t0 if r.started_at else 0.0
        begin, finish = offset, offset + r.elapsed_s
        datagram = get_transport(COMPARE_SCHEMES[r.transport].partition(":")[0]).kind == "datagram"
        delivered_bytes = sum(int(i["bytes"]) for i in r.intervals)
        jitter = jitter_ms(r.latencies_us)
        tag = {"transport": r.transport, "service": r.service}
        stream = {
            "sender": figures(begin, finish, r.elapsed_s, r.sent_bytes, socket=number, packets=r.sent, sender=True,
                              netlab=tag),
            # as iperf3's receiver: packets is what was sent, lost_packets what never came back
            "receiver": figures(begin, finish, r.elapsed_s, delivered_bytes, socket=number, packets=r.sent,
                                lost=r.lost, jitter=jitter, sender=False, netlab=tag),
        }
        if datagram:
            stream["udp"] = figures(begin, finish, r.elapsed_s, delivered_bytes, socket=number, packets=r.sent,
                                    lost=r.lost, jitter=jitter, out_of_order=r.reordered, sender=True, netlab=tag)
        stream["netlab"] = {**tag, "lost_packets": r.lost, "lost_percent": 100 * r.lost / r.sent if r.sent else 0.0,
                            "jitter_ms": jitter, "error": r.error}
        streams.append(stream)
        for i in r.intervals:
            low, high = offset + float(i["start"]), offset + float(i["end"])
            slices.append(figures(low, high, high - low, int(i["bytes"]), socket=number, packets=int(i["delivered"]),
                                  omitted=False, sender=False,
                                  netlab={**tag, "sent": int(i["sent"]), "sent_bytes": int(i.get("sent_bytes", 0)),
                                          "delivered": int(i["delivered"])}))
    sent = [s["sender"] for s in streams]
    received = [s["receiver"] for s in streams]
    datagram_sums = [s.get("udp") or _as_datagrams(s) for s in streams]
    seconds = _covered([(s["start"], s["end"]) for s in sent])
    user = sum(r.cpu_user_s for r in results)
    system = sum(r.cpu_system_s for r in results)
    run_seconds = sum(r.elapsed_s for r in results)
    start: dict[str, Any] = {
        "connected": connected, "version": f"netlab {__version__}", "system_info": system_info(),
        "timestamp": timestamp(t0 or time.time()),
        "test_start": {"protocol": test_protocol(r.transport for r in results), "num_streams": len(results),
                       "blksize": settings.size, "omit": 0, "duration": 0, "bytes": 0, "blocks": settings.messages,
                       "reverse": 0, "tos": 0},
        **netlab_start,
    }
    end: dict[str, Any] = {
        "streams": streams,
        "sum_sent": add_up(sent, sender=True, datagrams=True),
        "sum_received": add_up(received, sender=False, datagrams=True),
        "sum": add_up(datagram_sums, sender=True, datagrams=True),
        # server and client run in one process here: its CPU is both host and remote
        "cpu_utilization_percent": cpu_percent((user, system), (user, system), run_seconds),
        "results": [r.summary() for r in results],
        "netlab": {"cpu": "the process running both client and server (its CPU time over the runs' time): host and "
                          "remote are the same figure", "seconds": seconds,
                   "jitter": "RFC 3550 jitter over round-trip times in arrival order"},
    }
    document: dict[str, Any] = {"start": start, "intervals": _group(slices), "end": end}
    if error is not None:
        document["error"] = error
    return document


def _as_datagrams(stream: dict[str, Any]) -> dict[str, Any]:
    """A stream transport's run in ``sum``'s datagram terms: messages for packets, lost = what
    had no reply (0 unless the connection broke), RFC 3550 jitter."""
    receiver, extra = stream["receiver"], stream["netlab"]
    return figures(receiver["start"], receiver["end"], receiver["seconds"], receiver["bytes"],
                   packets=stream["sender"]["packets"], lost=extra["lost_packets"], jitter=extra["jitter_ms"])


def _group(slices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Intervals: per-second slices of runs, in time order, each with its sum; slices of runs
    going on at once (overlapping, and starting within SAME_INTERVAL) share one interval."""
    intervals: list[list[dict[str, Any]]] = []
    for part in sorted(slices, key=lambda p: (p["start"], p["socket"])):
        group = intervals[-1] if intervals else []
        if group and part["start"] - group[0]["start"] < SAME_INTERVAL and part["start"] < min(p["end"] for p in group) \
                and all(p["socket"] != part["socket"] for p in group):
            intervals[-1].append(part)
        else:
            intervals.append([part])
    return [{"streams": group, "sum": {**add_up(group, sender=False, datagrams=True), "omitted": False}}
            for group in intervals]


# -- bench --------------------------------------------------------------------------------------


def _run_figures(run: Run, size: int, chunk: int) -> tuple[int, int, int, int, int]:
    """(messages sent, messages answered, bytes sent, bytes received, lost) of one bench run."""
    r = run.result
    if run.error or not r:
        return 0, 0, 0, 0, 0
    count = int(r.get("count", 0))
    if run.mode in ("stream", "relay-stream") or run.server == "iperf3":
        nbytes = int(r.get("bytes", 0))
        packets = nbytes // (int(r.get("chunk") or chunk) or 1)
        return packets, packets, nbytes, nbytes, 0
    if run.mode == "datagrams":
        sent = int(r.get("sent", 0))
        return sent, count, sent * size, count * size, int(r.get("dropped", 0))
    if run.mode == "connect":  # a 1-byte echo per connection
        return count, count, count, count, int(r.get("failures", 0))
    if run.mode == "hold":
        return 0, 0, 0, 0, 0
    lost = int(r.get("lost", 0))
    sent = int(r.get("sent", count + lost))
    return sent, count, sent * size, count * size, lost


def bench_document(result: BenchResult, netlab_start: dict[str, Any], netlab_end: dict[str, Any],
                   error: str | None = None) -> dict[str, Any]:
    """`netlab bench --json`: one stream per (transport, server, level), one interval per
    run; the sums are netlab's server's runs (the server under test)."""
    settings = result.settings
    runs = result.runs
    t0 = min((run.started_at for run in runs), default=0.0)
    keys: dict[tuple[str, str, str, int | None], int] = {}
    for run in runs:
        keys.setdefault((run.mode, run.transport, run.server, run.level), len(keys) + 1)
    connected = [{"socket": number, "local_host": None, "local_port": None, "remote_host": None, "remote_port": None,
                  "netlab": {"mode": mode, "transport": transport, "server": server, "level": level,
                             "protocol": protocol(transport)}}
                 for (mode, transport, server, level), number in keys.items()]
    intervals = []
    per_stream: dict[int, list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]] = {}
    cpu = {"client": [0.0, 0.0], "server": [0.0, 0.0]}
    cpu_seconds = 0.0
    for run in runs:
        number = keys[(run.mode, run.transport, run.server, run.level)]
        seconds = float(run.result.get("elapsed") or 0.0) if not run.error else 0.0
        begin = run.started_at - t0 + (settings.warmup if run.server != "iperf3" else 0.0)
        sent, answered, sent_bytes, received_bytes, lost = _run_figures(run, settings.size, settings.chunk)
        tag = {"mode": run.mode, "transport": run.transport, "server": run.server, "repeat": run.repeat,
               "level": run.level, "value": run.value, "error": run.error}
        one = figures(begin, begin + seconds, seconds, received_bytes, socket=number, packets=answered,
                      omitted=False, sender=False, netlab=tag)
        intervals.append({"streams": [one], "sum": {k: v for k, v in one.items() if k not in ("socket", "netlab")}})
        per_stream.setdefault(number, []).append((
            figures(begin, begin + seconds, seconds, sent_bytes, packets=sent, sender=True),
            figures(begin, begin + seconds, seconds, received_bytes, packets=answered, sender=False),
            figures(begin, begin + seconds, seconds, received_bytes, packets=sent, lost=lost, sender=True)))
        if run.server == "netlab" and not run.error and seconds:
            r = run.result
            sides = {"client": (r.get("client_cpu_user"), r.get("client_cpu_system"), r.get("client_cpu")),
                     "server": (r.get("server_cpu_user"), r.get("server_cpu_system"), r.get("server_cpu"))}
            for side, (user, system, total) in sides.items():
                if user is None or system is None:  # only the total measured: counted as user time
                    user, system = total or 0.0, 0.0
                cpu[side][0] += user
                cpu[side][1] += system
            cpu_seconds += seconds
    streams = []
    sums: dict[str, list[dict[str, Any]]] = {"sent": [], "received": [], "udp": []}
    for (mode, transport, server, level), number in keys.items():
        parts = per_stream.get(number, [])
        tag = {"mode": mode, "transport": transport, "server": server, "level": level}
        stream = {"sender": {"socket": number, **add_up([p[0] for p in parts], sender=True, datagrams=True),
                             "netlab": tag},
                  "receiver": {"socket": number, **add_up([p[1] for p in parts], sender=False, datagrams=True),
                               "netlab": tag}}
        if get_transport(COMPARE_SCHEMES.get(transport, "tcp:").partition(":")[0]).kind == "datagram":
            stream["udp"] = {"socket": number, **add_up([p[2] for p in parts], sender=True, datagrams=True),
                             "netlab": tag}
        streams.append(stream)
        if server == "netlab":
            sums["sent"] += [p[0] for p in parts]
            sums["received"] += [p[1] for p in parts]
            sums["udp"] += [p[2] for p in parts]
    blksize = settings.chunk if settings.mode in ("stream", "relay") else settings.size
    start: dict[str, Any] = {
        "connected": connected, "version": f"netlab {__version__}", "system_info": system_info(),
        "timestamp": timestamp(t0 or time.time()),
        "test_start": {"protocol": test_protocol(t for _, t, _, _ in keys), "num_streams": len(keys),
                       "blksize": blksize, "omit": settings.warmup, "duration": settings.duration, "bytes": 0,
                       "blocks": 0, "reverse": 0, "tos": 0},
        **netlab_start,
    }
    end: dict[str, Any] = {
        "streams": streams,
        "sum_sent": add_up(sums["sent"], sender=True, datagrams=True),
        "sum_received": add_up(sums["received"], sender=False, datagrams=True),
        "sum": add_up(sums["udp"], sender=True, datagrams=True),
        "cpu_utilization_percent": cpu_percent((cpu["client"][0], cpu["client"][1]),
                                               (cpu["server"][0], cpu["server"][1]), cpu_seconds),
        **netlab_end,
        "netlab": {"sums": "netlab's server's runs (the server under test); every server's are in end.streams",
                   "cpu": "host: the load generator; remote: the server (netlab's), over its measured windows",
                   "intervals": "one per run: its measured window (start: when the run began, plus its warm-up)",
                   "jitter": "not measured (bench keeps latency histograms, not arrival order)"},
    }
    document: dict[str, Any] = {"start": start, "intervals": intervals, "end": end}
    if error is not None:
        document["error"] = error
    return document


__all__ = ["bench_document", "compare_document", "cpu_percent", "figures", "jitter_ms", "protocol", "test_protocol"]
