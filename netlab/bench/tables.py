"""A run's results for people and for scripts: tables (the terminal, RESULTS.md) and the
JSON report in the shape of iperf3's ``-J``, all the way down."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ..results import ResultTable
from .figures import ratio_text
from .modes import BASELINE_TEXT, MEASURES
from .summary import BenchResult


def report(result: BenchResult, error: str | None = None) -> dict[str, Any]:
    """The results in iperf3's ``-J`` shape all the way down (`netlab.experiments.iperf3json`):
    one interval per run; netlab's own figures under ``start``'s and ``end``'s netlab keys."""
    from ..experiments.iperf3json import bench_document

    return bench_document(result, {"environment": result.environment, "settings": result.settings.as_dict(),
                                   "servers": {name: BASELINE_TEXT[name]
                                               for name in (*result.settings.servers, "iperf3")}},
                          {"results": [asdict(row) for row in result.rows], "skipped": result.skipped,
                           "targets": result.targets, "runs": [run.as_dict() for run in result.runs]}, error)


def tables(result: BenchResult) -> list[ResultTable]:
    """The figures as tables (for the terminal and for RESULTS.md): the headline figure per
    transport with netlab's ratio to each baseline, then the details per server."""
    settings = result.settings
    out: list[ResultTable] = []
    servers = list(settings.servers)
    for mode in dict.fromkeys(r.mode for r in result.rows):
        measure = MEASURES[mode]
        mode_rows = [r for r in result.rows if r.mode == mode]
        who = servers + (["iperf3"] if any(r.server == "iperf3" for r in mode_rows) else [])
        others = [w for w in who if w != "netlab"]
        keys = list(dict.fromkeys((r.transport, r.level) for r in mode_rows))
        columns = ["transport"] + (["conns"] if measure.by_level else []) + \
            [measure.column.format(server=w, unit=measure.unit) for w in who] + [f"netlab/{w}" for w in others]
        rows = []
        for transport, level in keys:
            cells = [transport] + ([str(level)] if measure.by_level else [])
            by_server = {r.server: r for r in mode_rows if r.transport == transport and r.level == level}
            cells += [measure.cell(by_server.get(w)) for w in who]
            mine = by_server.get("netlab")
            cells += [ratio_text(mine.ratios.get(w)) if mine else "-" for w in others]
            rows.append(cells)
        title = measure.title(settings) if measure.title else \
            f"{mode}: {measure.metric}, median of {settings.repeats} (min–max)"
        out.append(ResultTable(title + (" — ratio above 1: netlab does better" if others else ""), columns, rows))
        out.append(measure.details(mode, mode_rows))
    if result.skipped:
        out.append(ResultTable("not run", ["transport", "why"], [[s["transport"], s["reason"]]
                                                                   for s in result.skipped]))
    if result.targets:
        out.append(ResultTable("targets", ["target", "where", "measured", "met"], [
            [t["text"], f"{t['mode']} {t['transport']}, pin {t['pin']}", target_text(t), "yes" if t["met"] else "NO"]
            for t in result.targets]))
    return out


def target_text(t: dict[str, Any]) -> str:
    if t["target"] == "unix_beats_tcp":
        return f"unix {t['unix']:,.0f} vs tcp {t['tcp']:,.0f} rt/s (x{t['value']:.2f})"
    if t["target"] == "hold_10k":
        return f"{t['held']:,} held, {t['value']:,} answering of {t['wanted']:,}"
    text = f"{t['value']:.2f} ({t['spread'][0]:.2f}–{t['spread'][1]:.2f})"
    if t.get("cost_ratio") is not None:
        text += f"; server CPU per message: {t['cost_ratio']:.2f}"
    return text


__all__ = ["report", "tables", "target_text"]
