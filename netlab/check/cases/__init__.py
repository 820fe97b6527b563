"""The cases `netlab check` runs against a server, with stable ids, in the order they run.

Each case is a small async function of a `CaseContext` that returns a `Verdict`: an outcome
(pass, fail, warn, skip) and one sentence saying what happened and, on failure, the likely
cause and the fix. A case talks to the server only through netlab's transports
(`netlab.check.conversation`), so every case runs on every transport; what cannot apply to a
kind (a request in pieces over datagrams) is declared with the case and skipped with a
sentence saying why before it runs (`netlab.check.registry`). The runner
(`netlab.check.run`) gives each case a hard deadline, restarts a program that died, and
records the death in the case during which it happened.

The cases live in three modules, run in this order:

    answers   connect, sum.*, echo.*, framing.*, lines.*
    serving   clients.*, protocol.banner, input.bad, survives.*, close.on_eof
    system    reach.*, resources.idle_cpu, restart.reuse (last: it turns TIME_WAIT on)

Adding a case is one function and its ``@case(...)`` line in one of them; its id is stable
(the report, ``--json``, ``--junit`` and rubrics use it). ``netlab check --list`` lists
them all, with the client's (`netlab.check.client`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import UsageError
from ..context import CaseContext
from ..conversation import Conversation, converse
from ..registry import Case
from ..settings import CheckSettings, Outcome, Verdict
from . import answers, serving, system

#: every case of a server, in the order they run
CASES: list[Case[CaseContext]] = [*answers.case, *serving.case, *system.case]


def select_cases(service: str, profile: str, only: Sequence[str] = ()) -> list[Case[CaseContext]]:
    """The cases for a service and profile; `only` narrows to ids or groups (``framing``).

    Raises: UsageError for a name that is no case id or group."""
    chosen = [c for c in CASES if c.applies(service, profile)]
    if only:
        known = {c.id for c in chosen} | {c.group for c in chosen}
        unknown = [name for name in only if name not in known]
        if unknown:
            raise UsageError(f"no case or group {unknown[0]!r} for {service} in the {profile} profile "
                             f"(known: {', '.join(c.id for c in chosen)})")
        chosen = [c for c in chosen if c.id in only or c.group in only]
    return chosen


__all__ = ["CASES", "Case", "CaseContext", "CheckSettings", "Conversation", "Outcome", "Verdict", "converse",
           "select_cases"]
