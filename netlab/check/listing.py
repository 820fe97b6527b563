"""Every case `netlab check` has, of a server and of a client: ``netlab check --list [--json]``.

Read from the registries (`netlab.check.cases.CASES`, `netlab.check.client.CLIENT_CASES`),
so the list is the cases as declared: id, group, what each checks, and where it applies
(services, profiles, and what it needs of the transport and the check: ``byte streams``,
``--run``, ``isolated``, ...). The README's table is tested against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .cases import CASES
from .client import CLIENT_CASES
from .judge import PROFILES
from .registry import ALL_PROFILES, ALL_SERVICES, C, Case

#: services in the order they are named
_SERVICES = ("sum", "echo")


@dataclass(frozen=True)
class CaseEntry:
    """One case as ``--list`` shows it."""

    id: str
    group: str
    #: what the case checks: a server, or a client
    program: Literal["server", "client"]
    checks: str
    services: tuple[str, ...]
    profiles: tuple[str, ...]
    #: what else it needs where it runs (elsewhere it is skipped, saying why, or for a
    #: client's case not run)
    where: tuple[str, ...]

    @property
    def applies(self) -> str:
        """Where it applies, in a few words: ``sum; netlab profile; byte streams``."""
        parts = []
        if set(self.services) != ALL_SERVICES:
            parts.append(", ".join(self.services))
        if set(self.profiles) != ALL_PROFILES:
            parts.append(", ".join(self.profiles) + " profile")
        parts += self.where
        return "; ".join(parts) or "everywhere"

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "group": self.group, "program": self.program, "checks": self.checks,
                "services": list(self.services), "profiles": list(self.profiles), "where": list(self.where)}


def _entry(program: Literal["server", "client"], case: Case[C]) -> CaseEntry:
    return CaseEntry(case.id, case.group, program, case.checks, tuple(s for s in _SERVICES if s in case.services),
                     tuple(p for p in PROFILES if p in case.profiles), tuple(case.where()))


def case_list() -> list[CaseEntry]:
    """Every case, a server's first, each in the order it runs."""
    return [_entry("server", c) for c in CASES] + [_entry("client", c) for c in CLIENT_CASES]


__all__ = ["CaseEntry", "case_list"]
