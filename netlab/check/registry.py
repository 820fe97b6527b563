"""Declaring a case: ``@case(...)``, where it applies, and the decision before it runs.

Every case, of a server or of a client, is one async function that returns a `Verdict`,
declared once where it is written::

    case = CaseList[CaseContext]()

    @case("framing.split", "a request arriving in pieces, with pauses, is answered whole",
          needs=(BYTE_STREAMS.otherwise("this transport keeps message boundaries: a request cannot "
                                        "arrive in pieces"),))
    async def framing_split(ctx: CaseContext) -> Verdict: ...

The declaration says where the case applies, in two ways a report shows differently:

* ``services``, ``profiles`` and ``on`` (a property the transport declares) choose the cases
  a check runs at all: a sum case is not in an echo server's report;
* ``needs`` are what a case needs where it runs: the transport's kind (`BYTE_STREAMS`,
  `CONNECTIONS`), a program netlab started (`RUN`), isolation (`ISOLATED`), a listening
  socket netlab can see (`LISTENER`), ... Where one is missing the case is skipped with its
  sentence ("datagrams have no connection to close"), decided by `evaluate_skip` before the
  case runs (the model is pytest's ``skipping.evaluate_skip_marks``), never inside the case.

A module's cases are in the order it declares them (`CaseList`); `netlab.check.cases` puts
the server's modules in order, `netlab.check.client` declares the client's, and
`netlab.check.listing` lists both (``netlab check --list``). A case's id is stable: the
report, ``--json``, ``--junit`` and rubrics use it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..transports import Transport
from .context import CaseContext
from .judge import PROFILES
from .settings import CheckSettings, Verdict

#: what a case works with: a `CaseContext` (a server's case) or a client check's run
C = TypeVar("C")
#: a case itself: what it works with in, a verdict out
Run = Callable[[C], Awaitable[Verdict]]
#: the sentence of a skip: fixed, or worded from what the case would have worked with
Reason = str | Callable[[C], str]

ALL_SERVICES = frozenset({"sum", "echo"})
SUM, ECHO = frozenset({"sum"}), frozenset({"echo"})
ALL_PROFILES = frozenset(PROFILES)
NETLAB = frozenset({"netlab"})


@dataclass(frozen=True)
class Need(Generic[C]):
    """One thing a case needs where it runs (`what`, as ``--list`` says it), and the sentence
    of its skip where that is missing."""

    what: str
    holds: Callable[[C], bool]
    reason: Reason[C]

    def unmet(self, subject: C) -> str | None:
        """None where the need is met; else the skip's sentence."""
        if self.holds(subject):
            return None
        return self.reason if isinstance(self.reason, str) else self.reason(subject)


@dataclass(frozen=True)
class Condition(Generic[C]):
    """Something about the check (`what`, as ``--list`` says it) that a case may need."""

    what: str
    holds: Callable[[C], bool]

    def otherwise(self, reason: Reason[C]) -> Need[C]:
        """This condition as a case's need, skipped with `reason` where it does not hold."""
        return Need(self.what, self.holds, reason)


@dataclass(frozen=True)
class TransportProperty:
    """A property each transport declares about itself (`Transport.boundaries`, `connected`):
    a client case runs only on transports that have it (``on=``); a server case needs it
    (``needs=(PROPERTY.otherwise(sentence),)``)."""

    what: str
    holds: Callable[[Transport], bool]

    def otherwise(self, reason: Reason[CaseContext]) -> Need[CaseContext]:
        holds = self.holds
        return Need(self.what, lambda ctx: holds(ctx.transport), reason)


BYTE_STREAMS = TransportProperty("byte streams", lambda transport: not transport.boundaries)
CONNECTIONS = TransportProperty("connections (not datagrams)", lambda transport: transport.connected)
DATAGRAMS = TransportProperty("datagrams", lambda transport: not transport.connected)

RUN = Condition[CaseContext]("--run", lambda ctx: ctx.program is not None)
ISOLATED = Condition[CaseContext]("isolation", lambda ctx: ctx.isolated)
LISTENER = Condition[CaseContext]("a listening socket netlab sees", lambda ctx: ctx.listener is not None)
IP = Condition[CaseContext]("an IP address", lambda ctx: not ctx.address.is_unix)


def _no_extra(settings: CheckSettings) -> float:
    return 0.0


@dataclass(frozen=True)
class Case(Generic[C]):
    """One case: a stable id, what it checks, where it applies, and the case itself."""

    id: str
    checks: str
    run: Run[C]
    services: frozenset[str] = ALL_SERVICES
    profiles: frozenset[str] = ALL_PROFILES
    #: runs only on transports with each of these (elsewhere it is not run, and not listed)
    on: tuple[TransportProperty, ...] = ()
    #: skipped, saying why, where one of these is missing (decided before it runs)
    needs: tuple[Need[C], ...] = ()
    #: seconds a case may take beyond the per-case timeout (a measurement window, a restart)
    extra: Callable[[CheckSettings], float] = _no_extra

    @property
    def group(self) -> str:
        return self.id.split(".")[0]

    def applies(self, service: str, profile: str | None = None, transport: Transport | None = None) -> bool:
        """Whether a check of `service` (in `profile`, over `transport`, where given) runs it."""
        return (service in self.services and (profile is None or profile in self.profiles)
                and (transport is None or all(p.holds(transport) for p in self.on)))

    def where(self) -> list[str]:
        """Where it applies beyond its services and profiles, in words (``--list``)."""
        return [p.what for p in self.on] + [need.what for need in self.needs]


def evaluate_skip(case: Case[C], subject: C) -> str | None:
    """The sentence of the first need of `case` that `subject` does not meet; None: it runs."""
    for need in case.needs:
        reason = need.unmet(subject)
        if reason is not None:
            return reason
    return None


class CaseList(Generic[C]):
    """The cases one module declares, in the order it declares them. Calling it is the
    declaration: ``case = CaseList[CaseContext]()``, then ``@case(id, checks, ...)``."""

    def __init__(self) -> None:
        self.cases: list[Case[C]] = []

    def __call__(self, id: str, checks: str, *, services: frozenset[str] = ALL_SERVICES,
                 profiles: frozenset[str] = ALL_PROFILES, on: tuple[TransportProperty, ...] = (),
                 needs: tuple[Need[C], ...] = (),
                 extra: Callable[[CheckSettings], float] = _no_extra) -> Callable[[Run[C]], Run[C]]:
        def declare(run: Run[C]) -> Run[C]:
            self.cases.append(Case(id, checks, run, services, profiles, on, needs, extra))
            return run
        return declare

    def __iter__(self) -> Iterator[Case[C]]:
        return iter(self.cases)


__all__ = ["ALL_PROFILES", "ALL_SERVICES", "BYTE_STREAMS", "CONNECTIONS", "DATAGRAMS", "ECHO", "IP", "ISOLATED",
           "LISTENER", "NETLAB", "RUN", "SUM", "Case", "CaseList", "Condition", "Need", "TransportProperty",
           "evaluate_skip"]
