"""What `netlab check` found: one result per case, as JSON and as JUnit XML.

The JSON document of one check (``--json``)::

    {"target": "...", "service": "sum", "profile": "assignment", "request": "'{a} {b}\\n'",
     "isolation": "isolated: a network and PID namespace of its own (as root)",
     "cleanup": ["killed 1 process [...] that had left the program's process group ..."],
     "limits": ["it wrote more than 64 MiB on stdout: netlab's limit on a file ..."],
     "cases": [{"id": "sum.small", "group": "sum", "outcome": "pass|fail|warn|skip",
                "detail": "...", "seconds": 0.01, "points": 1, "max_points": 1}, ...],
     "summary": {"pass": 14, "fail": 1, "warn": 1, "skip": 2},
     "score": 16, "max_score": 17}

With ``--trace``, a case that failed or warned also has ``"packets"``, the ladder of its
conversation's packets (a line each, as the terminal shows them), and ``"pcap"``, the same
packets as a pcap file, base64-encoded (`netlab.check.packets`).

A folder (``--run 'python3 {}' a/x.py b/x.py --json``): one entry per submission, in the
order given, each the document above with the submission's path and its failures' short
reasons; ``rubric`` is the rubric used (null without ``--rubric``), ``max_score`` the same
denominator every submission is graded out of (`netlab.check.grading`)::

    {"rubric": {"source": "rubric.toml", "default": 1, "points": {...}, "warn": [...],
                "strict": [...], "visibility": null} | null,
     "max_score": 17,
     "submissions": [{"submission": "a/x.py", "target": "a/x.py", "service": "sum", ...,
                      "cases": [...], "summary": {...}, "score": 16, "max_score": 17,
                      "failed": [{"id": "framing.split", "reason": "the server reads once ..."}]},
                     ...]}

JUnit XML (``--junit FILE``) is what CI systems and classroom autograders read: one
``<testsuite>`` per checked server, one ``<testcase name=ID classname=netlab.check.GROUP>``
per case, ``<failure message=...>`` for a failed case, ``<skipped message=...>`` for a skipped
one; a warning passes, with its sentence in ``<system-out>``; with ``--trace``, a failed or
warned case's packets are in its ``<system-out>`` too.

Every text in a report may hold what a program printed or a submission's path: hostile
input. It reaches every output (the table, the JSON, the JUnit XML, Gradescope's file and
the CSV) through `printable`: control characters (a terminal's escape sequences), characters
XML 1.0 cannot hold and those that reorder text are written as ``\\xNN`` text.
"""

from __future__ import annotations

import base64
import binascii
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..plaintext import printable
from .settings import Outcome

OUTCOMES: tuple[Outcome, ...] = ("pass", "fail", "warn", "skip")


@dataclass(frozen=True)
class CaseResult:
    id: str
    group: str
    outcome: Outcome
    detail: str
    seconds: float
    #: with ``--trace``, a case that failed (or warned): the ladder of its conversation's
    #: packets, a line each, at most 80 columns (`netlab.check.packets`)
    packets: tuple[str, ...] = ()
    #: and the same packets as a pcap file's bytes (None: none kept)
    pcap: bytes | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"id": printable(self.id), "group": printable(self.group),
                                   "outcome": self.outcome, "detail": printable(self.detail),
                                   "seconds": round(self.seconds, 3)}
        if self.packets:
            data["packets"] = [printable(line) for line in self.packets]
        if self.pcap is not None:
            data["pcap"] = base64.b64encode(self.pcap).decode("ascii")
        return data

    @classmethod
    def from_dict(cls, data: Any) -> CaseResult:
        """The case `as_dict` wrote. Raises KeyError, TypeError, ValueError (binascii.Error)."""
        pcap = data.get("pcap")
        return cls(str(data["id"]), str(data["group"]), _outcome(data["outcome"]), str(data["detail"]),
                   float(data["seconds"]), tuple(str(line) for line in data.get("packets", ())),
                   None if pcap is None else base64.b64decode(str(pcap), validate=True))


@dataclass
class CheckReport:
    """One checked server (or client): every case's result."""

    target: str
    service: str
    profile: str
    request: str | None = None  # the request format used (for sum): "'{a} {b}\\n'"
    cases: list[CaseResult] = field(default_factory=list)
    #: how the program ran: "isolated: a network and PID namespace of its own (as root)", or
    #: "not isolated: why" (empty when netlab did not start it)
    isolation: str = ""
    #: what netlab had to clean up after the program: processes it left running, one sentence each
    cleanup: list[str] = field(default_factory=list)
    #: the limits the program ran into (output bytes, memory, processes, open files), one
    #: sentence each (`netlab.check.program.Limits`)
    limits: list[str] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, int]:
        return {outcome: sum(1 for c in self.cases if c.outcome == outcome) for outcome in OUTCOMES}

    @property
    def failed(self) -> list[str]:
        return [c.id for c in self.cases if c.outcome == "fail"]

    @property
    def warned(self) -> list[str]:
        return [c.id for c in self.cases if c.outcome == "warn"]

    @property
    def seconds(self) -> float:
        return sum(c.seconds for c in self.cases)

    def outcome(self, case_id: str) -> Outcome | None:
        return next((c.outcome for c in self.cases if c.id == case_id), None)

    def as_json(self) -> dict[str, object]:
        """The report as JSON, every text in it `printable` (what a program printed, or a
        submission's path, never reaches a reader as control characters)."""
        return {"target": printable(self.target), "service": self.service, "profile": self.profile,
                "request": None if self.request is None else printable(self.request),
                "isolation": printable(self.isolation), "cleanup": [printable(line) for line in self.cleanup],
                "limits": [printable(line) for line in self.limits],
                "cases": [c.as_dict() for c in self.cases], "summary": self.summary}

    @classmethod
    def from_json(cls, data: Any) -> CheckReport:
        """The report `as_json` wrote (from an isolated check's child). Raises ValueError for
        anything else."""
        try:
            cases = [CaseResult.from_dict(c) for c in data["cases"]]
            request = data.get("request")
            return cls(str(data["target"]), str(data["service"]), str(data["profile"]),
                       None if request is None else str(request), cases, str(data.get("isolation", "")),
                       [str(line) for line in data.get("cleanup", [])],
                       [str(line) for line in data.get("limits", [])])
        except (KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise ValueError(f"not a check report: {exc}") from None


def _outcome(value: object) -> Outcome:
    for outcome in OUTCOMES:
        if value == outcome:
            return outcome
    raise ValueError(f"not an outcome: {value!r}")


def junit(reports: Sequence[CheckReport]) -> str:
    """JUnit XML for one or more reports: a testsuite each."""
    suites = ET.Element("testsuites", name="netlab check", tests=str(sum(len(r.cases) for r in reports)),
                        failures=str(sum(len(r.failed) for r in reports)))
    for report in reports:
        summary = report.summary
        suite = ET.SubElement(suites, "testsuite", name=printable(f"netlab check {report.service} {report.target}"),
                              tests=str(len(report.cases)), failures=str(summary["fail"]), errors="0",
                              skipped=str(summary["skip"]), time=f"{report.seconds:.3f}")
        for case in report.cases:
            element = ET.SubElement(suite, "testcase", name=printable(case.id),
                                    classname=printable(f"netlab.check.{case.group}"), time=f"{case.seconds:.3f}")
            detail = printable(case.detail)
            packets = printable("\n".join(("its packets:", *case.packets))) if case.packets else None
            if case.outcome == "fail":
                ET.SubElement(element, "failure", message=detail).text = detail
                if packets is not None:
                    ET.SubElement(element, "system-out").text = packets
            elif case.outcome == "skip":
                ET.SubElement(element, "skipped", message=detail)
            elif case.outcome == "warn":
                ET.SubElement(element, "system-out").text = f"warning: {detail}" + (
                    f"\n{packets}" if packets is not None else "")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


__all__ = ["OUTCOMES", "CaseResult", "CheckReport", "junit", "printable"]
