"""What a named experiment is: a question, a run that measures, and findings stated from
the figures.

An experiment module defines ``EXPERIMENT = Experiment(...)`` and is listed by one line in
`netlab.experiments.EXPERIMENTS`. Its `run` takes `ExperimentOptions` (each experiment uses
the options that make sense for it and says which in `uses`) and returns an
`ExperimentResult`: tables for people, `facts` for scripts (the JSON), and `findings`,
sentences computed from the measured figures, never written in advance. A finding that
does not hold on this machine is stated as what was measured, not as what a textbook says.

`ResultTable` is the neutral `netlab.results`'s (bench draws it too).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..results import ResultTable


@dataclass(frozen=True)
class ExperimentOptions:
    messages: int = 1000
    size: int | None = None
    loss: float = 0.1
    rcvbuf: int | None = None
    kernel: bool = False
    seed: int = 1
    timeout: float = 1.0
    trace: bool = False  # keep the packets, where the experiment captures them itself (loss --kernel)


@dataclass
class ExperimentResult:
    name: str
    question: str
    mode: str  # "loopback", "relay" or "kernel": where the effect came from
    tables: list[ResultTable] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    #: with ExperimentOptions.trace: the frames captured, per run ([time, interface, base64]; not in the JSON)
    frames: dict[str, list[Any]] = field(default_factory=dict, repr=False)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["frames"]
        return data


@dataclass(frozen=True)
class Experiment:
    name: str
    question: str  # the classic question it answers, one line
    run: Callable[[ExperimentOptions], Awaitable[ExperimentResult]]
    uses: tuple[str, ...] = ()  # the options it reads
    plot: Callable[[ExperimentResult, str], None] | None = None


__all__ = ["Experiment", "ExperimentOptions", "ExperimentResult"]
