"""What a check is asked to do (`CheckSettings`), and what a case answers (`Verdict`).

The foundation every other module of `netlab.check` stands on; it imports none of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ..errors import UsageError

Outcome = Literal["pass", "fail", "warn", "skip"]
#: a case's outcome and the one sentence saying what happened (and, on failure, the likely
#: cause and the fix)
Verdict = tuple[Outcome, str]


@dataclass(frozen=True)
class CheckSettings:
    """What to check, and how strictly. `timeout` is every case's hard deadline in seconds."""

    service: str = "sum"
    profile: str = "assignment"
    request: str | None = None  # a template with {a} and {b}, "auto", or None for the default
    timeout: float = 5.0
    only: tuple[str, ...] = ()  # case ids or groups to run (default: all)
    idle_window: float = 1.0  # resources.idle_cpu: seconds of CPU time measured
    startup: float = 10.0  # --run: seconds a program may take to start listening
    namespaces: bool = True  # reach.interfaces: test from a second network namespace when root
    #: keep the packets of each case that fails (or warns): captured in the program's own
    #: namespaces (`netlab.check.packets`); needs them
    trace: bool = False
    #: --user: who the program runs as, as root (None: `netlab.check.sandbox.resolve_user`'s default)
    user: str | None = None
    #: --env: the variables of netlab's environment a program also gets
    env: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("timeout", "idle_window", "startup"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise UsageError(f"{name} must be a finite number of seconds above 0, not {value!r}")


__all__ = ["CheckSettings", "Outcome", "Verdict"]
