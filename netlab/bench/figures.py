"""A row of figures (one server on one transport, its repeats summed up), and how a table
cell shows a figure, a spread or a ratio."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram


@dataclass
class Row:
    """One server on one transport (at one concurrency level): the repeats summed up."""

    mode: str
    transport: str
    server: str
    level: int | None
    metric: str
    unit: str
    higher_is_better: bool
    median: float | None = None
    low: float | None = None
    high: float | None = None
    values: list[float] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    ratios: dict[str, dict[str, float]] = field(default_factory=dict)  # netlab rows: per baseline
    #: netlab rows: per baseline, the ratio of server CPU time per message (baseline ÷ netlab:
    #: above 1, netlab's server costs less), which wake-up latencies do not blur
    cost_ratios: dict[str, dict[str, float]] = field(default_factory=dict)
    histogram: str | None = None  # all repeats' latencies (ns), an encoded HdrHistogram
    count: int = 0  # messages (or bytes, or connections) counted over all repeats
    error: str | None = None
    note: str | None = None


def decode(encoded: str | None) -> HdrHistogram | None:
    """An HdrHistogram from its encoded text (None stays None)."""
    if not encoded:
        return None
    return HdrHistogram.decode(encoded.encode() if isinstance(encoded, str) else encoded)


def fmt(value: float | None, digits: int | None = None) -> str:
    """A figure with thousands separators, and fewer decimals the larger it is ("-": none)."""
    if value is None:
        return "-"
    if digits is None:
        digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
    return f"{value:,.{digits}f}"


def spread(row: Row) -> str:
    """The median with its min–max, or why there is none."""
    if row.median is None:
        return f"failed: {row.error}" if row.error else "-"
    if len(row.values) < 2:
        return fmt(row.median)
    return f"{fmt(row.median)} ({fmt(row.low)}–{fmt(row.high)})"


def spread_cell(row: Row | None) -> str:
    """A headline cell: the row's `spread`, "-" where the server has no row."""
    return spread(row) if row is not None else "-"


def ratio_text(ratio: dict[str, float] | None) -> str:
    """A ratio's median with its min–max over the pairs of repeats."""
    if not ratio:
        return "-"
    if ratio.get("pairs", 1) < 2:
        return f"{ratio['median']:.2f}"
    return f"{ratio['median']:.2f} ({ratio['min']:.2f}–{ratio['max']:.2f})"


__all__ = ["Row", "decode", "fmt", "ratio_text", "spread", "spread_cell"]
