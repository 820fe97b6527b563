"""Experiments: compare, the relay, and the named experiments.

`EXPERIMENTS` is the registry of named experiments: one module each, one line here.
"""

from __future__ import annotations

from .base import Experiment, ExperimentOptions, ExperimentResult, ResultTable
from .boundaries import EXPERIMENT as BOUNDARIES
from .addressing import EXPERIMENT as ADDRESSING
from .overload import EXPERIMENT as OVERLOAD
from .refused import EXPERIMENT as REFUSED
from .size_limits import EXPERIMENT as SIZE_LIMITS
from .loss import EXPERIMENT as LOSS
from .framing import EXPERIMENT as FRAMING
from .close import EXPERIMENT as CLOSE

EXPERIMENTS: dict[str, Experiment] = {
    "boundaries": BOUNDARIES,
    "overload": OVERLOAD,
    "addressing": ADDRESSING,
    "refused": REFUSED,
    "size-limits": SIZE_LIMITS,
    "loss": LOSS,
    "framing": FRAMING,
    "close": CLOSE,
}


__all__ = ["EXPERIMENTS", "Experiment", "ExperimentOptions", "ExperimentResult", "ResultTable"]
