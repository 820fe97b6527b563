"""Helpers every measuring experiment shares: they live in the neutral `netlab.results`
(bench imports them from there too); these names stay importable from here."""

from __future__ import annotations

from ..results import PERCENTILES, cdf, environment, latency_percentiles

__all__ = ["PERCENTILES", "cdf", "environment", "latency_percentiles"]
