"""Experiments: compare, the relay, and the named experiments.

`EXPERIMENTS` is the registry of named experiments: one module each, one line here.
"""

from __future__ import annotations

from ..errors import UnknownNameError
from .base import Experiment, ExperimentOptions, ExperimentResult, ResultTable
from .boundaries import EXPERIMENT as BOUNDARIES

EXPERIMENTS: dict[str, Experiment] = {
    "boundaries": BOUNDARIES,
}


def get_experiment(name: str) -> Experiment:
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise UnknownNameError(f"unknown experiment {name!r} (known: {', '.join(EXPERIMENTS)})") from None


__all__ = ["EXPERIMENTS", "Experiment", "ExperimentOptions", "ExperimentResult", "ResultTable", "get_experiment"]
