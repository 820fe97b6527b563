"""A run's figures drawn: the headline figure by transport, ping-pong against concurrency,
and latency distributions (matplotlib, imported only when a plot is asked for)."""

from __future__ import annotations

import math
from typing import Any

from ..results import cdf
from .figures import Row, decode
from .modes import BASELINES, RELAY_BASELINES, Measure
from .summary import BenchResult


def plot(result: BenchResult, path: str) -> None:
    """Latency distributions, throughput by transport, and ping-pong against concurrency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = result.settings
    mode = settings.bench_mode
    measures = (mode.measure, *mode.by_kind.values())
    rows = [r for r in result.rows if r.mode in {m.name for m in measures}]
    bars = [m for m in measures if any(r.mode == m.name for r in rows)] or [mode.measure]
    servers = list(dict.fromkeys(r.server for r in rows))
    transports = list(dict.fromkeys(r.transport for r in rows))
    with_latency = [t for t in transports if any(r.histogram for r in rows if r.transport == t)]
    panels = len(bars) + bool(with_latency) * len(with_latency) + mode.levels
    cols = min(3, panels)
    nrows = math.ceil(panels / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 4.2 * nrows), squeeze=False)
    flat = list(axes.flat)
    colours = {name: f"C{i}" for i, name in enumerate(("netlab", *BASELINES, "iperf3", "before", *RELAY_BASELINES))}
    level = min(settings.levels) if mode.levels else None
    for measure in bars:
        _bars(flat.pop(0), settings.mode, measure, [r for r in rows if r.mode == measure.name], servers, level,
              colours)
    if mode.levels:
        ax = flat.pop(0)
        shown = [t for t in ("tcp", "unix") if t in transports] or transports[:1]
        for transport, style in zip(shown, ("-", "--")):
            for server in servers:
                pts = sorted((r.level, r.median) for r in rows if r.transport == transport and r.server == server
                             and r.median is not None and r.level is not None)
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=colours.get(server),
                            linestyle=style, label=f"{server} {transport}", alpha=0.85)
        ax.set_xscale("log")
        ax.set_xlabel("concurrent connections (the other transports: in the tables)")
        ax.set_ylabel("round trips/s")
        ax.set_title("ping-pong against concurrency")
        ax.legend(fontsize="small")
        ax.grid(True, which="both", alpha=0.3)
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    cdf_level = max(settings.levels) if mode.levels else None
    for transport in with_latency:
        ax = flat.pop(0)
        for server in servers:
            row = next((r for r in rows if r.transport == transport and r.server == server and r.level == cdf_level
                        and r.histogram), None)
            h = decode(row.histogram) if row else None
            if h is None:
                continue
            xs, ys = cdf(h, per_us=1000.0)
            ax.plot(xs, ys, label=server, color=colours.get(server))
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("latency µs (log)")
        ax.set_ylabel("fraction of messages")
        ax.set_title(f"{transport}: latency CDF" + (f" at {cdf_level} conns" if cdf_level else ""))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    for ax in flat:
        ax.axis("off")
    env = result.environment
    fig.suptitle(f"netlab bench {settings.mode} — pin={settings.pin}, {env.get('cores')} cores, "
                 f"Linux {env.get('kernel')}, Python {env.get('python')}, trio {env.get('trio')}", fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _bars(ax: Any, mode: str, measure: Measure, rows: list[Row], servers: list[str], level: int | None,
          colours: dict[str, str]) -> None:
    """One measure's headline figure per transport and server: medians, min–max as error bars."""
    transports = list(dict.fromkeys(r.transport for r in rows))
    width = 0.8 / max(1, len(servers))
    for i, server in enumerate(servers):
        xs: list[float] = []
        heights: list[float] = []
        errs: list[list[float]] = [[], []]
        for j, transport in enumerate(transports):
            row = next((r for r in rows if r.transport == transport and r.server == server and r.level == level), None)
            if row is None or row.median is None:
                continue
            xs.append(j + (i - (len(servers) - 1) / 2) * width)
            heights.append(row.median)
            errs[0].append(row.median - (row.low or row.median))
            errs[1].append((row.high or row.median) - row.median)
        ax.bar(xs, heights, width, yerr=errs, label=server, color=colours.get(server))
    ax.set_xticks(range(len(transports)), transports, rotation=30, ha="right")
    ax.set_ylabel(measure.unit)
    ax.set_title(f"{mode}: {measure.metric}" + (f" at {level} conn" if level else ""))
    ax.legend(fontsize="small")
    ax.grid(True, axis="y", alpha=0.3)


__all__ = ["plot"]
