"""Grades from `netlab check` reports: points per case from a rubric, a row per submission,
and the files grading platforms read (Gradescope's ``results.json``, a CSV).

A rubric is a small TOML file an instructor edits (``--rubric FILE``)::

    default = 1                  # points for each case the rubric does not name (0: only named cases count)
    warn = ["clients.concurrent", "reach.interfaces"]   # warnings only: a failure shows as a warning, worth nothing
    strict = ["reach.ipv6"]      # a warning there fails the case (and costs its points)
    visibility = "visible"       # Gradescope: hidden, after_due_date, after_published or visible

    [points]                     # a case id or a group (each of its cases); an id beats its group
    sum = 2
    "framing.split" = 3
    "resources.idle_cpu" = 0     # shown, worth nothing

Every key is optional. Without a rubric every case is worth 1 point. The rubric changes the
report itself (`Rubric.apply`): a failed case named in ``warn`` becomes a warning, a warned
case named in ``strict`` a failure, each saying so; the table, ``--json``, ``--junit`` and
the exit status all show the changed report. Then a case earns its points when it passed or
warned (a warning costs nothing), none when it failed. A skipped case does not apply to the
program (a request in pieces over datagrams): it earns its points, except in a report where
no case passed or warned (the program never started, nothing answered), where it earns
nothing. The maximum is the points of every case run, so everyone graded with the same
cases has the same denominator: a submission that never started is 0/17, not 0/1. A case
named in ``warn`` is worth nothing, whatever its group is worth; naming it in ``[points]``
as well is an error. Points are numbers >= 0.

`gradescope` makes Gradescope's ``results.json`` for one report: ``score``, ``output`` (the
summary) and ``tests``, one per case in order, each with ``name`` ("ID: what it checks"),
``number`` ("1", "2", ...), ``score``, ``max_score``, ``status`` ("passed" for a pass, a
warning or a skip that earned its points, else "failed"), ``output`` (the sentence, after
"warning: " or "skipped: "), and ``visibility`` when the rubric sets one. Gradescope grades
one submission per run, so a folder gets one file per submission: ``{}`` in the file name
stands for each submission's name (`submission_names`: what tells the paths apart,
``subs/alice/sum_server.py`` and ``subs/bob/sum_server.py`` are ``alice`` and ``bob``).

`grades_csv`: one row per submission, one column per case id holding its outcome (pass,
fail, warn, skip), then ``score`` and ``max_score``.
"""

from __future__ import annotations

import csv
import io
import math
import os
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import OutputError, UsageError
from ..transports.oserrors import missing_directory
from .cases import CASES
from .client import CLIENT_CASES
from .report import CheckReport, printable
from .settings import Outcome

#: where Gradescope shows a test to students
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
#: a grade row's reason for a failure is cut to this many characters
REASON_CHARS = 70
_KEYS = ("default", "warn", "strict", "visibility", "points")


def _number(value: float) -> int | float:
    """A points figure as JSON shows it best: 3, not 3.0; 0.3, not 0.30000000000000004."""
    value = round(value, 6)
    return int(value) if value == int(value) else value


def points_text(value: float) -> str:
    return f"{_number(value):g}"


@dataclass(frozen=True)
class CaseScore:
    id: str
    outcome: Outcome
    points: float
    max_points: float


@dataclass(frozen=True)
class Score:
    cases: tuple[CaseScore, ...]

    @property
    def points(self) -> float:
        return math.fsum(c.points for c in self.cases)

    @property
    def max_points(self) -> float:
        return math.fsum(c.max_points for c in self.cases)

    def text(self) -> str:
        return f"{points_text(self.points)}/{points_text(self.max_points)}"


@dataclass(frozen=True)
class Rubric:
    """Points per case and which cases only warn (see the module's docstring)."""

    default: float = 1.0
    points: Mapping[str, float] = field(default_factory=dict)
    warn: frozenset[str] = frozenset()
    strict: frozenset[str] = frozenset()
    visibility: str | None = None
    source: str | None = None  # the file it came from

    @classmethod
    def load(cls, path: str | Path, known: Iterable[tuple[str, str]]) -> Rubric:
        """Read and check a rubric file against the (id, group) of each known case.

        Raises: UsageError naming the file and the problem (unreadable, not TOML, an unknown
        key or case, a points figure that is not a number >= 0)."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--rubric {path}: cannot read it: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise UsageError(f"--rubric {path}: not UTF-8 text") from None
        return cls.parse(text, known, source=str(path))

    @classmethod
    def parse(cls, text: str, known: Iterable[tuple[str, str]], *, source: str = "rubric") -> Rubric:
        def bad(problem: str) -> UsageError:
            return UsageError(f"--rubric {source}: {problem}")

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise bad(f"not valid TOML ({exc})") from None
        pairs = list(known)
        names = {case_id for case_id, _ in pairs} | {group for _, group in pairs}
        for key in data:
            if key not in _KEYS:
                hint = " (put case points under [points])" if key in names else ""
                raise bad(f"unknown key {key!r}{hint}; a rubric has {', '.join(_KEYS)}")

        def amount(what: str, value: object) -> float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise bad(f"{what} must be a number of points, not {value!r}")
            if not math.isfinite(value) or value < 0:
                raise bad(f"{what} must be a number of points >= 0, not {value!r}")
            return float(value)

        def case_name(where: str, name: object) -> str:
            if not isinstance(name, str) or name not in names:
                raise bad(f"{where}: no case or group {name!r} (known: {', '.join(c for c, _ in pairs)})")
            return name

        default = amount("default", data.get("default", 1))
        table = data.get("points", {})
        if not isinstance(table, dict):
            raise bad("points must be a table: [points] with a line 'CASE = N' for each case or group")
        points = {case_name("[points]", name): amount(f"points for {name}", value) for name, value in table.items()}
        lists: dict[str, frozenset[str]] = {}
        for key in ("warn", "strict"):
            value = data.get(key, [])
            if not isinstance(value, list):
                raise bad(f"{key} must be a list of case ids or groups: {key} = [\"reach.interfaces\"]")
            lists[key] = frozenset(case_name(key, name) for name in value)
        for case_id, group in pairs:
            warn, strict = ({case_id, group} & lists[key] for key in ("warn", "strict"))
            if warn and strict:
                raise bad(f"{case_id} is named in both warn and strict ({min(warn)}, {min(strict)})")
            given = points.get(case_id, points.get(group))
            if warn and given:
                named = case_id if case_id in points else group
                raise bad(f"{case_id} is a warning only ({min(warn)} in warn), worth nothing, and [points] gives "
                          f"{named} {points_text(given)}: drop one of the two")
        visibility = data.get("visibility")
        if visibility is not None and visibility not in VISIBILITIES:
            raise bad(f"visibility must be one of {', '.join(VISIBILITIES)}, not {visibility!r}")
        return cls(default, points, lists["warn"], lists["strict"], visibility, source)

    def _named(self, names: frozenset[str], case_id: str, group: str) -> bool:
        return case_id in names or group in names

    def worth(self, case_id: str, group: str) -> float:
        """The points a case is worth."""
        if self._named(self.warn, case_id, group):
            return 0.0
        return self.points.get(case_id, self.points.get(group, self.default))

    def apply(self, report: CheckReport) -> CheckReport:
        """The report as the rubric grades it: failures of warning-only cases become
        warnings, warnings of strict cases failures, each saying so."""
        cases = []
        for case in report.cases:
            if case.outcome == "fail" and self._named(self.warn, case.id, case.group):
                case = replace(case, outcome="warn", detail=f"{case.detail} (a warning only, by the rubric)")
            elif case.outcome == "warn" and self._named(self.strict, case.id, case.group):
                case = replace(case, outcome="fail", detail=f"{case.detail} (a failure, by the rubric)")
            cases.append(case)
        return replace(report, cases=cases)

    def score(self, report: CheckReport) -> Score:
        """Points per case of a report the rubric has been applied to."""
        tested = any(c.outcome in ("pass", "warn") for c in report.cases)
        scores = []
        for case in report.cases:
            worth = self.worth(case.id, case.group)
            earned = case.outcome in ("pass", "warn") or (case.outcome == "skip" and tested)
            scores.append(CaseScore(case.id, case.outcome, worth if earned else 0.0, worth))
        return Score(tuple(scores))

    def as_json(self) -> dict[str, object]:
        return {"source": self.source, "default": _number(self.default),
                "points": {k: _number(v) for k, v in self.points.items()},
                "warn": sorted(self.warn), "strict": sorted(self.strict), "visibility": self.visibility}


def known_cases(client: bool, service: str, profile: str) -> list[tuple[str, str]]:
    """(id, group) of every case a check of this kind can run: what a rubric may name."""
    if client:
        return [(c.id, c.group) for c in CLIENT_CASES]
    return [(c.id, c.group) for c in CASES if service in c.services and profile in c.profiles]


def _descriptions() -> dict[str, str]:
    return {**{c.id: c.checks for c in CASES}, **{c.id: c.checks for c in CLIENT_CASES}}


# -- a short reason for a grade row -------------------------------------------------------------


def _clauses(text: str, separator: str) -> list[str]:
    """`text` split at `separator` outside brackets and bytes literals (b'...', b"..."),
    with the asides in round brackets left out."""
    parts: list[str] = []
    depth, quote, kept, aside, i = 0, "", "", -1, 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and i + 1 < len(text):
                kept += ch
                i += 1
                ch = text[i]
            elif ch == quote:
                quote = ""
        elif ch in "'\"" and i > 0 and text[i - 1] == "b" and (i == 1 or not text[i - 2].isalnum()):
            quote = ch
        elif ch in "([{":
            if depth == 0:
                aside = len(kept) if ch == "(" else -1
            depth += 1
        elif ch in ")]}" and depth:
            depth -= 1
            if depth == 0 and aside >= 0:
                kept, aside = kept[:aside].rstrip(), -1
                i += 1
                continue
        elif depth == 0 and text.startswith(separator, i):
            parts.append(kept)
            kept = ""
            i += len(separator)
            continue
        kept += ch
        i += 1
    parts.append(kept)
    return parts


def short_reason(detail: str, limit: int = REASON_CHARS) -> str:
    """The cause in a case's sentence, for a grade row. A sentence says what happened, then
    after ": " why, then after "; " the fix: the last "what: why" step before the fix."""
    what = _clauses(detail, "; ")[0]
    reason = _clauses(what, ": ")[-1].strip() or what.strip()
    reason = " ".join(printable(reason).split())
    return reason if len(reason) <= limit else reason[:limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class GradeRow:
    """One submission's line in the grade table."""

    submission: str
    score: Score
    failed: tuple[tuple[str, str], ...]  # (id, short reason)
    warned: tuple[str, ...]


def grade_rows(graded: Sequence[tuple[str, CheckReport]], rubric: Rubric) -> list[GradeRow]:
    """A row per submission, in the order given, from reports the rubric has been applied to."""
    return [GradeRow(name, rubric.score(report),
                     tuple((c.id, short_reason(c.detail)) for c in report.cases if c.outcome == "fail"),
                     tuple(report.warned))
            for name, report in graded]


# -- JSON ----------------------------------------------------------------------------------------


def scored_json(report: CheckReport, rubric: Rubric) -> dict[str, object]:
    """A report's ``--json`` document with its points: ``score`` and ``max_score`` at the top,
    ``points`` and ``max_points`` on each case."""
    score = rubric.score(report)
    document = report.as_json()
    document["cases"] = [{**case.as_dict(), "points": _number(s.points), "max_points": _number(s.max_points)}
                         for case, s in zip(report.cases, score.cases)]
    document["score"] = _number(score.points)
    document["max_score"] = _number(score.max_points)
    return document


def grades_json(graded: Sequence[tuple[str, CheckReport]], rubric: Rubric) -> dict[str, object]:
    """The ``--json`` document of a folder (see `netlab.check.report`)."""
    rows = grade_rows(graded, rubric)
    return {
        "rubric": rubric.as_json() if rubric.source is not None else None,
        "max_score": _number(max((row.score.max_points for row in rows), default=0.0)),
        "submissions": [{"submission": printable(name), **scored_json(report, rubric),
                         "failed": [{"id": case_id, "reason": reason} for case_id, reason in row.failed]}
                        for (name, report), row in zip(graded, rows)],
    }


# -- Gradescope ----------------------------------------------------------------------------------


def _packets_text(packets: Sequence[str]) -> str:
    """A case's packets (``--trace``) after its sentence: a blank line, then the ladder."""
    return "\n\nits packets:\n" + "\n".join(packets) if packets else ""


def gradescope(report: CheckReport, rubric: Rubric) -> dict[str, object]:
    """Gradescope's ``results.json`` for one report the rubric has been applied to; a case's
    ``output`` is its sentence, and with ``--trace`` the packets of a failed case under it."""
    score = rubric.score(report)
    checks = _descriptions()
    prefix = {"warn": "warning: ", "skip": "skipped: "}
    tests: list[dict[str, object]] = []
    for number, (case, s) in enumerate(zip(report.cases, score.cases), 1):
        passed = case.outcome in ("pass", "warn") or (case.outcome == "skip" and s.points == s.max_points)
        test: dict[str, object] = {
            "name": printable(f"{case.id}: {checks[case.id]}" if case.id in checks else case.id),
            "number": str(number), "score": _number(s.points), "max_score": _number(s.max_points),
            "status": "passed" if passed else "failed",
            "output": printable(prefix.get(case.outcome, "") + case.detail + _packets_text(case.packets))}
        if rubric.visibility is not None:
            test["visibility"] = rubric.visibility
        tests.append(test)
    summary = report.summary
    output = (f"netlab check {report.service} ({report.profile} profile): {score.text()} points; "
              f"{summary['pass']} passed, {summary['fail']} failed, {summary['warn']} warned, "
              f"{summary['skip']} skipped")
    if report.request is not None:
        output += f"; requests written as {report.request}"
    return {"score": _number(score.points), "output": printable(output), "tests": tests}


def submission_names(submissions: Sequence[str]) -> list[str]:
    """A short, distinct, file-name-safe name for each submission: the parts of the paths
    that tell them apart (``subs/alice/sum_server.py``, ``subs/bob/sum_server.py``: ``alice``,
    ``bob``; ``a/sum_server.py``, ``a/recv16.py``: ``sum_server``, ``recv16``)."""
    parts = [Path(os.path.abspath(s)).parts[1:] for s in submissions]  # [1:]: not the root "/"
    if not parts:
        return []
    shortest = min(len(p) for p in parts)
    lead = 0
    while lead < shortest - 1 and len({p[lead] for p in parts}) == 1:
        lead += 1
    rest = [p[lead:] for p in parts]
    shortest = min(len(p) for p in rest)
    trail = 0
    while trail < shortest - 1 and len({p[len(p) - 1 - trail] for p in rest}) == 1:
        trail += 1
    names, seen = [], set()
    for p in rest:
        kept = list(p[:len(p) - trail])
        if trail == 0:
            kept[-1] = os.path.splitext(kept[-1])[0] or kept[-1]
        name = "-".join(kept).lstrip(".") or "submission"
        unique, n = name, 1
        while unique in seen:
            n += 1
            unique = f"{name}-{n}"
        seen.add(unique)
        names.append(unique)
    return names


def gradescope_targets(template: Path, submissions: Sequence[str] | None) -> list[Path]:
    """Where ``--gradescope FILE`` writes: FILE for one check; for a folder, FILE with ``{}``
    replaced by each submission's name (`submission_names`), in the order given. Checked
    before anything runs.

    Raises: UsageError when ``{}`` is missing for several submissions or given for one check;
    OutputError when the files could not be written (a missing directory, a directory there)."""
    text = str(template)
    if submissions is None:
        if "{}" in text:
            raise UsageError(f"--gradescope {text}: {{}} stands for each submission's name, and this check has no "
                             "submissions (--run 'python3 {}' FILE...): give a plain file name")
        targets = [template]
    elif "{}" in text:
        targets = [Path(text.replace("{}", name)) for name in submission_names(submissions)]
    elif len(submissions) > 1:
        raise UsageError(f"--gradescope {text}: Gradescope reads one results.json per submission; put {{}} in the "
                         "file name where each submission's name goes: --gradescope 'results/{}/results.json'")
    else:
        targets = [template]
    fixed = Path(text.split("{}")[0] + "x").parent if "{}" in text else template.parent
    missing = missing_directory(str(fixed / "x"))
    if missing is not None:
        raise OutputError(f"cannot write {text}: {missing}")
    if not os.access(fixed, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {text}: no permission to write in {fixed}")
    for target in targets:
        if target.is_dir():
            raise OutputError(f"cannot write {target}: it is a directory")
    return targets


# -- CSV -----------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    """A CSV cell a spreadsheet shows as text, never runs as a formula."""
    text = printable(text)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def grades_csv(graded: Sequence[tuple[str, CheckReport]], rubric: Rubric) -> str:
    """One row per submission: its name, each case's outcome, score, max_score."""
    ids: list[str] = []
    for _, report in graded:
        ids.extend(c.id for c in report.cases if c.id not in ids)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["submission", *ids, "score", "max_score"])
    for name, report in graded:
        score = rubric.score(report)
        outcomes: dict[str, str] = {c.id: c.outcome for c in report.cases}
        writer.writerow([_cell(name), *(outcomes.get(case_id, "") for case_id in ids),
                         points_text(score.points), points_text(score.max_points)])
    return out.getvalue()


__all__ = ["VISIBILITIES", "CaseScore", "GradeRow", "Rubric", "Score", "grade_rows", "gradescope",
           "gradescope_targets", "grades_csv", "grades_json", "known_cases", "points_text", "scored_json",
           "short_reason", "submission_names"]
