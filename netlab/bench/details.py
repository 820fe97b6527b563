"""What a measure adds to a row beyond its headline figure, and the table that shows it.

A *facet* sums one aspect of the repeats' results into ``row.details`` (replies lost, bytes
moved, where datagrams went, ...); a measure lists the facets that apply to it, and a
*details table* (one function per shape below) draws them. `netlab.bench.modes` pairs
each measure with its facets and its table; nothing here asks which measure it is given.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from ..results import ResultTable
from .contract import LoadResult
from .figures import Row, fmt

#: adds one aspect of the (successful) runs' results to a row's details
Facet = Callable[[Row, list[LoadResult]], None]
#: draws the details of one measure's rows: (the measure's name, its rows)
DetailsTable = Callable[[str, list[Row]], ResultTable]


def median_of(results: list[LoadResult], key: Callable[[LoadResult], float | None]) -> float | None:
    """The median of `key` over the results that have it (None if none has)."""
    values = [v for v in (key(r) for r in results) if v is not None]
    return statistics.median(values) if values else None


def _per_message(r: LoadResult, cpu: float | None) -> float | None:
    """CPU seconds over the run's count, in µs per message."""
    count = r.get("count")
    return None if cpu is None or not count else cpu / count * 1e6


# -- facets --------------------------------------------------------------------------------


def per_message_cpu(row: Row, ok: list[LoadResult]) -> None:
    """Server and client CPU time per message (µs)."""
    row.details["server_cpu_us_per_msg"] = median_of(ok, lambda r: _per_message(r, r.get("server_cpu")))
    row.details["client_cpu_us_per_msg"] = median_of(ok, lambda r: _per_message(r, r.get("client_cpu")))


def replies(row: Row, ok: list[LoadResult]) -> None:
    """Requests that got no reply, or a wrong one; which client loop ran."""
    d = row.details
    d["lost"] = sum(r.get("lost", 0) for r in ok)
    d["mismatched"] = sum(r.get("mismatched", 0) for r in ok)
    d["client"] = ok[0].get("client") if ok else None


def open_loop(row: Row, ok: list[LoadResult]) -> None:
    """Sent at a fixed rate: what was sent, answered, lost, and how late the client sent."""
    d = row.details
    d["sent"] = sum(r.get("sent", 0) for r in ok)
    d["answered"] = row.count
    d["loss_pct"] = 100 * d["lost"] / d["sent"] if d["sent"] else None
    d["achieved_rate"] = median_of(ok, lambda r: r["sent"] / r["elapsed"] if r.get("elapsed") else None)
    d["send_lag_p99_us"] = median_of(ok, lambda r: r.get("send_lag_p99_us"))


def kernel_drops(row: Row, ok: list[LoadResult]) -> None:
    """What the kernel dropped on the way (the relay's listening socket; every UDP socket)."""
    d = row.details
    d["kernel_drops"] = sum(r.get("front_drops") or 0 for r in ok)
    d["rcvbuf_errors"] = sum(r.get("rcvbuf_errors") or 0 for r in ok)
    d["drops_counted"] = any(r.get("front_drops") is not None for r in ok)


def moved_bytes(row: Row, ok: list[LoadResult]) -> None:
    """A bulk transfer: Gb/s, and the bytes moved."""
    row.details["gbit_s"] = row.median * 8 / 1000 if row.median is not None else None
    row.details["bytes"] = sum(r.get("bytes", 0) for r in ok)


def datagrams_taken(row: Row, ok: list[LoadResult]) -> None:
    """Datagrams flat out: sent, dropped at the server, failed to send, the kernel's counters."""
    d = row.details
    d["sent"] = sum(r.get("sent", 0) for r in ok)
    d["dropped"] = sum(r.get("dropped", 0) for r in ok)
    d["send_failed"] = sum(r.get("send_failed", 0) for r in ok)
    d["drop_pct"] = 100 * d["dropped"] / d["sent"] if d["sent"] else None
    d["sent_per_s"] = median_of(ok, lambda r: r["sent"] / r["sending_s"] if r.get("sending_s") else None)
    counters: dict[str, int] = {}
    for r in ok:
        for k, v in (r.get("udp_counters") or {}).items():
            counters[k] = counters.get(k, 0) + v
    d["udp_counters"] = counters or None


def failures(row: Row, ok: list[LoadResult]) -> None:
    """Connections that failed to open or to answer."""
    row.details["failures"] = sum(r.get("failures", 0) for r in ok)


def held(row: Row, ok: list[LoadResult]) -> None:
    """Idle connections held: how many, how fast, what they cost the server in memory."""
    if ok:
        result = ok[0]
        row.details.update({key: result.get(key) for key in (
            "wanted", "held", "answering", "stopped_by", "opened_s", "check_s", "server_rss_before",
            "server_rss_held", "rss_per_connection")})


# -- details tables -------------------------------------------------------------------------

#: an extra column of the latency table: its heading, and its cell from a row's details
Extra = tuple[str, Callable[[dict[str, Any]], str]]


def _count(key: str) -> Callable[[dict[str, Any]], str]:
    return lambda d: str(d.get(key, 0))


def _number(key: str, digits: int | None = None) -> Callable[[dict[str, Any]], str]:
    return lambda d: fmt(d.get(key), digits)


def _loss(d: dict[str, Any]) -> str:
    loss = d.get("loss_pct")
    return f"{d.get('lost', 0)} ({loss:.2f}%)" if loss else str(d.get("lost", 0))


LOST: tuple[Extra, ...] = (("lost", _count("lost")),)
FAILURES: tuple[Extra, ...] = (("failures", _count("failures")),)
OPEN_LOOP: tuple[Extra, ...] = (("achieved/s", _number("achieved_rate")), ("lost", _loss),
                                ("send lag p99 µs", _number("send_lag_p99_us", 1)))


def latency_table(extra: tuple[Extra, ...], *, levels: bool = False) -> DetailsTable:
    """Latency percentiles over all repeats, the `extra` columns, and CPU; with `levels`, a
    column for the number of connections."""
    def table(name: str, rows: list[Row]) -> ResultTable:
        columns = ["transport"] + (["conns"] if levels else []) + [
            "server", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs"]
        columns += [heading for heading, _ in extra] + ["server CPU µs/msg", "client CPU %"]
        body = []
        for r in rows:
            d = r.details
            cells = [r.transport] + ([str(r.level)] if levels else []) + [r.server] + [
                fmt(d.get(k), 1) for k in ("p50_us", "p90_us", "p99_us", "p999_us", "max_us")]
            cells += [cell(d) for _, cell in extra]
            cells += [fmt(d.get("server_cpu_us_per_msg"), 1), fmt(d.get("client_cpu_pct"))]
            body.append(cells)
        return ResultTable(f"{name}: latency (all repeats) and CPU (medians)", columns, body)
    return table


def bytes_table(title: str, who: str) -> DetailsTable:
    """A bulk transfer's Gb/s and both sides' CPU; `who` heads the server column."""
    def table(name: str, rows: list[Row]) -> ResultTable:
        return ResultTable(title, ["transport", who, "Gb/s", f"{who} CPU %", "client CPU %"], [
            [r.transport, r.server, fmt(r.details.get("gbit_s"), 2), fmt(r.details.get("server_cpu_pct")),
             fmt(r.details.get("client_cpu_pct"))] for r in rows])
    return table


def relayed_datagrams_table(name: str, rows: list[Row]) -> ResultTable:
    """Datagrams through a relay: offered, came back, lost, and where the kernel dropped them."""
    body = []
    for r in rows:
        d = r.details
        drops = f"{d.get('kernel_drops', 0):,}" if d.get("drops_counted") else "-"
        body.append([r.transport, r.server, fmt(d.get("achieved_rate")), f"{d.get('sent', 0):,}",
                     f"{r.count:,}", str(d.get("lost", 0)), drops, f"{d.get('rcvbuf_errors', 0):,}",
                     fmt(d.get("p99_us"), 1), fmt(d.get("server_cpu_us_per_msg"), 1)])
    return ResultTable("relay, datagrams: where they went (kernel drops: the relay's listening socket, "
                       "/proc/net/udp; RcvbufErrors: machine-wide, every socket on the way)",
                       ["transport", "relay", "offered/s", "sent", "came back", "lost", "kernel drops",
                        "RcvbufErrors", "p99 µs", "relay CPU µs/dgram"], body)


def datagrams_table(name: str, rows: list[Row]) -> ResultTable:
    """Datagrams flat out: sent, dropped at the server, failed to send."""
    body = []
    for r in rows:
        d = r.details
        counters = d.get("udp_counters") or {}
        body.append([r.transport, r.server, fmt(d.get("sent_per_s")), f"{d.get('sent', 0):,}",
                     f"{d.get('dropped', 0):,}" + (f" ({d['drop_pct']:.1f}%)" if d.get("drop_pct") else ""),
                     f"{counters['RcvbufErrors']:,}" if "RcvbufErrors" in counters else "-",
                     f"{d.get('send_failed', 0):,}", fmt(d.get("server_cpu_us_per_msg"), 1)])
    return ResultTable("datagrams: where they went (dropped = the server socket's drop counter, as "
                       "SO_RXQ_OVFL reports it; RcvbufErrors: machine-wide)",
                       ["transport", "server", "sent/s", "sent", "dropped at server", "RcvbufErrors",
                        "send failed", "server CPU µs/dgram"], body)


def hold_table(name: str, rows: list[Row]) -> ResultTable:
    """Connections held: how many, how fast, and the server's memory before and after."""
    return ResultTable("hold: details", ["transport", "server", "held", "answering", "opened in s",
                                         "all answered in s", "server RSS before → held", "RSS per conn",
                                         "stopped by"], [
        [r.transport, r.server, f"{r.details.get('held') or 0:,}", f"{r.details.get('answering') or 0:,}",
         fmt(r.details.get("opened_s"), 2), fmt(r.details.get("check_s"), 2),
         _rss(r.details.get("server_rss_before"), r.details.get("server_rss_held")),
         f"{r.details['rss_per_connection'] / 1024:.1f} KiB" if r.details.get("rss_per_connection") else "-",
         r.error or r.details.get("stopped_by") or "-"] for r in rows])


def hold_cell(row: Row | None) -> str:
    """The headline cell of ``hold``: held/answering (RSS per connection), or why it stopped."""
    if row is None:
        return "-"
    if row.error:
        return f"failed: {row.error}"
    d = row.details
    per = d.get("rss_per_connection")
    text = f"{d.get('held', 0):,}/{d.get('answering', 0):,}"
    if per is not None:
        text += f" ({per / 1024:.1f} KiB)"
    if d.get("stopped_by"):
        text += f"; stopped: {d['stopped_by']}"
    return text


def _rss(before: int | None, after: int | None) -> str:
    if before is None or after is None:
        return "-"
    return f"{before / 2**20:.1f} → {after / 2**20:.1f} MiB"


__all__ = ["FAILURES", "LOST", "OPEN_LOOP", "DetailsTable", "Extra", "Facet", "bytes_table", "datagrams_table",
           "datagrams_taken", "failures", "held", "hold_cell", "hold_table", "kernel_drops", "latency_table",
           "median_of", "moved_bytes", "open_loop", "per_message_cpu", "relayed_datagrams_table", "replies"]
