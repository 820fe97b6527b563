"""Summing up a run: the runs (one per load generator run), a row per server and transport
with the median and spread of its repeats, netlab's ratios to each baseline paired repeat
by repeat, and the issue's targets judged on this run's figures."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from ..results import latency_percentiles
from ..transports import COMPARE_SCHEMES
from .contract import LoadResult
from .details import median_of, per_message_cpu
from .figures import Row, decode
from .modes import BASELINES, MEASURES, RELAY_BASELINES, BenchSettings


@dataclass
class Run:
    """One load generator run against one server."""

    mode: str  # the measure's name
    transport: str
    server: str
    repeat: int
    level: int | None = None
    result: LoadResult = field(default_factory=LoadResult)
    error: str | None = None
    started_at: float = field(default_factory=time.time)  # made as the run starts

    @property
    def value(self) -> float | None:
        """The measure's headline figure for this run."""
        if self.error or not self.result:
            return None
        return MEASURES[self.mode].headline(self.result)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["value"] = self.value
        return data


@dataclass
class BenchResult:
    settings: BenchSettings
    environment: dict[str, Any]
    runs: list[Run]
    rows: list[Row]
    skipped: list[dict[str, str]]
    targets: list[dict[str, Any]]

    @property
    def failed(self) -> list[str]:
        return [f"{r.transport}/{r.server}: {r.error}" for r in self.rows if r.error]


def _merge(encoded: list[str | None]) -> HdrHistogram | None:
    merged: HdrHistogram | None = None
    for item in encoded:
        h = decode(item)
        if h is None:
            continue
        if merged is None:
            merged = HdrHistogram(1, 3_600_000_000_000, 3)
        merged.add(h)
    return merged


def _cpu_pct(cpu: float | None, elapsed: float | None) -> float | None:
    return 100 * cpu / elapsed if elapsed and cpu is not None else None


#: (mode, transport, level, server): the runs of one row
_Key = tuple[str, str, int | None, str]


def summarize(settings: BenchSettings, runs: list[Run]) -> list[Row]:
    """One row per (mode, transport, server, level), with ratios on netlab's rows."""
    groups: dict[_Key, list[Run]] = {}
    for run in runs:
        groups.setdefault((run.mode, run.transport, run.level, run.server), []).append(run)
    rows: list[Row] = []
    for (mode, transport, level, server), group in groups.items():
        measure = MEASURES[mode]
        row = Row(mode, transport, server, level, measure.metric, measure.unit, measure.higher_is_better)
        values = [v for v in (r.value for r in group) if v is not None]
        errors = [r.error for r in group if r.error]
        if errors and not values:
            row.error = errors[0]
        elif errors:
            row.note = f"{len(errors)} of {len(group)} runs failed: {errors[0]}"
        if values:
            row.values = values
            row.median, row.low, row.high = statistics.median(values), min(values), max(values)
        ok = [r.result for r in group if not r.error]
        row.count = sum(r.get("count", 0) for r in ok)
        histogram = _merge([r.get("histogram") for r in ok])
        if histogram is not None:
            row.histogram = histogram.encode().decode()
            row.details.update(latency_percentiles(histogram, per_us=1000.0))
            row.details["histogram_count"] = histogram.get_total_count()
        d = row.details
        elapsed = median_of(ok, lambda r: r.get("elapsed"))
        d["client_cpu_pct"] = median_of(ok, lambda r: _cpu_pct(r.get("client_cpu"), r.get("elapsed")))
        d["server_cpu_pct"] = median_of(ok, lambda r: _cpu_pct(r.get("server_cpu"), r.get("elapsed")))
        if measure.per_message:
            per_message_cpu(row, ok)
        for facet in measure.facets:
            facet(row, ok)
        d["elapsed_s"] = elapsed
        rows.append(row)
    _ratios(rows, runs)
    order = {name: i for i, name in enumerate((*COMPARE_SCHEMES, "iperf3"))}
    servers = {name: i for i, name in enumerate(("netlab", *BASELINES, *RELAY_BASELINES, "before", "iperf3"))}
    rows.sort(key=lambda r: (r.mode != settings.mode, order.get(r.transport, 99), r.level or 0,
                             servers.get(r.server, 99)))
    return rows


def _ratios(rows: list[Row], runs: list[Run]) -> None:
    """On each netlab row: per baseline, the median (and spread) of per-repeat ratios, of
    the headline figure and of the server's CPU time per message."""
    by_key: dict[_Key, dict[int, float]] = {}
    cost: dict[_Key, dict[int, float]] = {}
    for run in runs:
        key = (run.mode, run.transport, run.level, run.server)
        value = run.value
        if value is not None:
            by_key.setdefault(key, {})[run.repeat] = value
        r = run.result
        server_cpu, count = r.get("server_cpu"), r.get("count")
        if not run.error and server_cpu and count and MEASURES[run.mode].per_message:
            cost.setdefault(key, {})[run.repeat] = server_cpu / count
    for row in rows:
        if row.server != "netlab":
            continue
        for table, target, higher in ((by_key, row.ratios, row.higher_is_better), (cost, row.cost_ratios, False)):
            mine = table.get((row.mode, row.transport, row.level, "netlab"), {})
            for other in (*BASELINES, "iperf3", "before", *RELAY_BASELINES):
                theirs = table.get((row.mode, row.transport, row.level, other), {})
                pairs = [(mine[k], theirs[k]) for k in mine.keys() & theirs.keys()]
                ratios = [(a / b if higher else b / a) for a, b in pairs if a > 0 and b > 0]
                if ratios:
                    target[other] = {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios),
                                     "pairs": len(ratios)}


# -- targets ---------------------------------------------------------------------------------

TARGETS = {
    "trio_floor": "netlab's echo server within 5 % of the minimal trio server on ping-pong (ratio >= 0.95)",
    "iperf3": "stream on TCP reaches at least 25 % of iperf3's loopback figure",
    "unix_beats_tcp": "unix stream ping-pong beats TCP loopback ping-pong",
    "hold_10k": "10,000 concurrent TCP connections held by one netlab server, each answering",
    "relay_select": "netlab relay passes at least as many datagrams as the minimal select relay, with no "
                    "kernel drops (ratio >= 1.0)",
}
#: the transport a target is stated for, where its text names one (iperf3 measures TCP only)
TARGET_TRANSPORTS = {"iperf3": "tcp", "hold_10k": "tcp"}


def evaluate_targets(rows: list[Row], pin: str = "same") -> list[dict[str, Any]]:
    """The issue's targets, judged on this run's figures (only those this run measured)."""
    out: list[dict[str, Any]] = []
    netlab = [r for r in rows if r.server == "netlab"]
    for r in netlab:
        if (r.mode == "pingpong" or (r.mode == "concurrency" and r.level == 1)) and "trio" in r.ratios:
            ratio, cost = r.ratios["trio"], r.cost_ratios.get("trio")
            out.append({"target": "trio_floor", "text": TARGETS["trio_floor"], "transport": r.transport,
                        "mode": r.mode, "value": ratio["median"], "spread": [ratio["min"], ratio["max"]],
                        "cost_ratio": cost["median"] if cost else None, "met": ratio["median"] >= 0.95})
        if r.mode == "stream" and r.transport == TARGET_TRANSPORTS["iperf3"] and "iperf3" in r.ratios:
            ratio = r.ratios["iperf3"]
            out.append({"target": "iperf3", "text": TARGETS["iperf3"], "transport": r.transport, "mode": "stream",
                        "value": ratio["median"], "spread": [ratio["min"], ratio["max"]],
                        "met": ratio["median"] >= 0.25})
        if r.mode == "relay-datagrams" and "select" in r.ratios:
            ratio = r.ratios["select"]
            drops = r.details.get("kernel_drops", 0) if r.details.get("drops_counted") else 0
            out.append({"target": "relay_select", "text": TARGETS["relay_select"], "transport": r.transport,
                        "mode": "relay", "value": ratio["median"], "spread": [ratio["min"], ratio["max"]],
                        "cost_ratio": (r.cost_ratios.get("select") or {}).get("median"),
                        "met": ratio["median"] >= 1.0 and drops == 0 and r.details.get("lost", 0) == 0})
        if r.mode == "hold" and r.transport == TARGET_TRANSPORTS["hold_10k"]:
            d = r.details
            out.append({"target": "hold_10k", "text": TARGETS["hold_10k"], "transport": r.transport,
                        "mode": "concurrency",
                        "value": d.get("answering"), "held": d.get("held"), "wanted": d.get("wanted"),
                        "met": (d.get("answering") or 0) >= 10_000 and d.get("answering") == d.get("held")})
    for mode in ("pingpong", "concurrency"):
        found = {r.transport: r.median for r in netlab if r.mode == mode and r.level in (None, 1)
                 and r.median is not None}
        unix, tcp = found.get("unix"), found.get("tcp")
        if unix is not None and tcp is not None:
            out.append({"target": "unix_beats_tcp", "text": TARGETS["unix_beats_tcp"], "mode": mode,
                        "transport": "unix vs tcp", "value": unix / tcp,
                        "unix": unix, "tcp": tcp, "met": unix > tcp})
    for target in out:
        target["pin"] = pin
    return out


__all__ = ["TARGETS", "TARGET_TRANSPORTS", "BenchResult", "Run", "evaluate_targets", "summarize"]
