"""Experiments: the named experiments, `netlab compare`, and the soak.

`EXPERIMENTS` is the registry of named experiments: one module each, one line in
`_registry`. Importing this package imports nothing else: the registry and the names
below are made on first use, so that ``import netlab.experiments.compare`` (or the relay's
old name) does not import every experiment.

::

    base.py            what an experiment is: options, result, the `Experiment` record
    boundaries.py, overload.py, addressing.py, refused.py, size_limits.py, loss.py,
    framing.py, close.py  one experiment each (``EXPERIMENT = Experiment(...)``)
    compare.py         `netlab compare`: the same workload through every transport
    compare_types.py   what a compare run is asked and what it finds (plain data)
    compare_report.py  compare's JSON, plot and the sentences under its tables
    iperf3json.py      compare's and bench's JSON in iperf3's -J shape
    kernel.py          compare's kernel mode: each run in a network namespace of its own
    soak.py            `make soak`: many clients, some killed, on every transport
    impair.py, relay.py  old names of `netlab.impair.decisions` and `netlab.impair.relay`

The impairments themselves (the relay, its decisions, and the kernel's rules and
counters) are `netlab.impair`'s; result tables and latency statistics `netlab.results`'.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..results import ResultTable
    from .base import Experiment, ExperimentOptions, ExperimentResult

    EXPERIMENTS: dict[str, Experiment]


def _registry() -> dict[str, Experiment]:
    """Every named experiment, in the order `netlab experiment list` shows them."""
    from .addressing import EXPERIMENT as ADDRESSING
    from .boundaries import EXPERIMENT as BOUNDARIES
    from .close import EXPERIMENT as CLOSE
    from .framing import EXPERIMENT as FRAMING
    from .loss import EXPERIMENT as LOSS
    from .overload import EXPERIMENT as OVERLOAD
    from .refused import EXPERIMENT as REFUSED
    from .size_limits import EXPERIMENT as SIZE_LIMITS

    return {
        "boundaries": BOUNDARIES,
        "overload": OVERLOAD,
        "addressing": ADDRESSING,
        "refused": REFUSED,
        "size-limits": SIZE_LIMITS,
        "loss": LOSS,
        "framing": FRAMING,
        "close": CLOSE,
    }


def __getattr__(name: str) -> object:
    """`EXPERIMENTS` and the names of `base` (and `ResultTable`), made when first asked for."""
    value: object
    if name == "EXPERIMENTS":
        value = _registry()
    elif name in ("Experiment", "ExperimentOptions", "ExperimentResult"):
        from . import base

        value = getattr(base, name)
    elif name == "ResultTable":
        from ..results import ResultTable

        value = ResultTable
    else:
        raise AttributeError(f"module 'netlab.experiments' has no attribute {name!r}")
    globals()[name] = value  # once: the next lookup finds it without calling here
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


__all__ = ["EXPERIMENTS", "Experiment", "ExperimentOptions", "ExperimentResult", "ResultTable"]
