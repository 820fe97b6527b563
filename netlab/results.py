"""What every measuring command shares (compare, experiments, bench): a table of results,
latency percentiles and distributions from an HdrHistogram, and the environment a result
must carry to be read correctly later.

A neutral module: it imports neither `netlab.experiments` nor `netlab.bench`, so both
import it without importing each other.
"""

from __future__ import annotations

import datetime
import os
import platform
from dataclasses import dataclass
from typing import Any

import trio
from hdrh.histogram import HdrHistogram

from . import __version__


@dataclass
class ResultTable:
    """A titled table of cells, drawn by `netlab.render` and written into Markdown."""

    title: str
    columns: list[str]
    rows: list[list[Any]]


#: the percentiles every latency summary reports, besides the maximum
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def latency_percentiles(histogram: HdrHistogram, per_us: float = 1.0) -> dict[str, float | None]:
    """p50/p90/p99/p99.9/max in µs (``None`` when empty). `per_us`: recorded units per µs
    (1 for a histogram of µs, 1000 for one of ns)."""
    if not histogram.get_total_count():
        return {"p50_us": None, "p90_us": None, "p99_us": None, "p999_us": None, "max_us": None}
    p50, p90, p99, p999 = (histogram.get_value_at_percentile(q) / per_us for q in PERCENTILES)
    return {"p50_us": p50, "p90_us": p90, "p99_us": p99, "p999_us": p999,
            "max_us": histogram.get_max_value() / per_us}


def cdf(histogram: HdrHistogram, per_us: float = 1.0) -> tuple[list[float], list[float]]:
    """(latency in µs, fraction of values at or below it): a histogram's distribution, to plot."""
    total = histogram.get_total_count()
    xs: list[float] = []
    ys: list[float] = []
    if not total:
        return xs, ys
    seen = 0
    for item in histogram.get_recorded_iterator():
        seen += item.count_added_in_this_iter_step
        xs.append(item.value_iterated_to / per_us)
        ys.append(seen / total)
    return xs, ys


def environment() -> dict[str, object]:
    """Versions, kernel, cores and time: what a figure depends on besides the code."""
    return {
        "netlab": __version__, "python": platform.python_version(), "trio": trio.__version__,
        "kernel": platform.release(), "cores": os.cpu_count(),
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


__all__ = ["PERCENTILES", "ResultTable", "cdf", "environment", "latency_percentiles"]
