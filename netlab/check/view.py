"""How ``netlab check`` shows its reports: a row per case (and, with ``--trace``, the packets
of a failed case's conversation under it), the grade table, the notes on how the programs
ran, and ``--list``. Drawn with `netlab.render`'s tables; every sentence comes from the report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console

from ..render import Column, dash, plain, table

if TYPE_CHECKING:
    from .grading import GradeRow, Score
    from .listing import CaseEntry
    from .report import CheckReport


def check_summary(report: CheckReport) -> str:
    summary = report.summary
    warnings = "warning" if summary["warn"] == 1 else "warnings"
    return (f"{summary['pass']} passed, {summary['fail']} failed, {summary['warn']} {warnings}, "
            f"{summary['skip']} skipped")


def check_report(console: Console, report: CheckReport, score: Score | None = None) -> None:
    """One row per case: its id, the outcome, the points it earned, and the sentence saying
    what happened."""
    points = {c.id: f"{c.points:g}/{c.max_points:g}" for c in score.cases} if score is not None else {}
    columns = [Column("case", wrap=False), Column("result", wrap=False)]
    if score is not None:
        columns.append(Column("points", right=True, wrap=False))
    columns.append(Column("what happened", wrap=True))
    console.print(table(columns,
                        ([case.id, case.outcome, *([points.get(case.id, "-")] if score is not None else []),
                          case.detail] for case in report.cases),
                        title=f"netlab check {report.service} ({report.profile} profile): {report.target}"))
    check_packets(console, report)
    if report.request is not None:
        console.print(plain(f"requests written as {report.request}"), highlight=False)
    console.print(check_summary(report) + (f"; score {score.text()}" if score is not None else ""), highlight=False)
    check_notes(console, [report])


def check_packets(console: Console, report: CheckReport) -> None:
    """With ``--trace``: under the table, each failed (or warned) case's packets, the ladder
    as `netlab trace` draws it (80 columns), then a blank line."""
    for case in report.cases:
        if not case.packets:
            continue
        console.print(plain(f"{case.id} {'failed' if case.outcome == 'fail' else 'warned'}; its packets:"),
                      highlight=False)
        for line in case.packets:
            console.print(plain(line), highlight=False, soft_wrap=True)
        console.print()


def check_notes(console: Console, reports: Sequence[CheckReport]) -> None:
    """How the programs ran (isolated or not), the limits each ran into, and what netlab
    cleaned up after each."""
    notes = sorted({r.isolation for r in reports if r.isolation})
    for note in notes:
        console.print(plain(note), highlight=False)
    for report in reports:
        who = f"{report.target}: " if len(reports) > 1 else ""
        for line in report.limits:
            console.print(plain(f"limit: {who}{line}"), highlight=False)
        for line in report.cleanup:
            console.print(plain(f"cleaned up: {who}{line}"), highlight=False)


def check_cases(console: Console, entries: Sequence[CaseEntry]) -> None:
    """``netlab check --list``: every case, its id, what it checks and where it applies."""
    console.print(table([Column("case", wrap=False), Column("what it checks", wrap=True),
                         Column("where it applies", wrap=True)],
                        ([entry.id, entry.checks, entry.applies] for entry in entries),
                        title="netlab check: every case, in the order they run (servers, then clients)"))


def check_grades(console: Console, rows: Sequence[GradeRow]) -> None:
    """One row per submission, in the order graded: its score out of the same maximum for
    everyone, each failed case with a short reason, and the ids that warned."""
    console.print(table(
        [Column("submission", wrap=True), Column("score", right=True, wrap=False), Column("failed", wrap=True),
         Column("warnings", wrap=True)],
        ([row.submission, row.score.text(), dash("\n".join(f"{case_id}: {reason}" for case_id, reason in row.failed)),
          dash(", ".join(row.warned))] for row in rows),
        title="netlab check: one row per submission"))


__all__ = ["check_cases", "check_grades", "check_notes", "check_packets", "check_report", "check_summary"]
