"""Grading with `netlab check`: the rubric, scores, grade rows, and the files grading
platforms read (Gradescope's results.json, CSV, JUnit).

Most tests build reports in memory (no program runs); a few go through the command with two
small standard-library servers from tests/students/ and only the quick `clients` cases.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers import assert_no_traceback, invoke

from netlab.check import CaseResult, CheckReport, junit
from netlab.check.grading import (VISIBILITIES, Rubric, grade_rows, gradescope, gradescope_targets, grades_csv,
                                  grades_json, known_cases, scored_json, short_reason, submission_names)
from netlab.errors import OutputError, UsageError

STUDENTS = Path(__file__).parent / "students"
PYTHON = sys.executable
SUM_CASES = known_cases(False, "sum", "assignment")


def case(case_id: str, outcome: str, detail: str = "ok") -> CaseResult:
    return CaseResult(case_id, case_id.split(".")[0], outcome, detail, 0.01)  # type: ignore[arg-type]  # a literal


def report(*cases: CaseResult, target: str = "x.py") -> CheckReport:
    return CheckReport(target, "sum", "assignment", "'{a} {b}\\n'", list(cases))


#: a server that ran: passes, a failure, a warning, a case that does not apply to it
RAN = report(case("connect", "pass"), case("sum.small", "pass"), case("sum.negative", "fail", "b'-10 3\\n' -> "
             "b'13\\n', expected -7: the sign was lost; parse with int()"), case("framing.split", "skip",
             "this transport keeps message boundaries"), case("clients.concurrent", "fail", "a second client "
             "got no reply within 3 s: the server serves one client at a time; use a thread per client"),
             case("reach.interfaces", "fail", "bound to 127.0.0.1: loopback only; bind 0.0.0.0"),
             case("reach.ipv6", "warn", "IPv4 only"))
#: the same cases, for a program that never started
NEVER = report(case("connect", "fail", "the program exited with status 1 before listening"),
               *(case(c.id, "skip", "the server never started") for c in RAN.cases[1:]), target="y.py")


def rubric(text: str) -> Rubric:
    return Rubric.parse(text, SUM_CASES, source="r.toml")


# -- scores --------------------------------------------------------------------------------------


def test_default_every_case_one_point_warnings_and_skips_that_do_not_apply_free() -> None:
    score = Rubric().score(RAN)
    assert [(c.id, c.points, c.max_points) for c in score.cases] == [
        ("connect", 1, 1), ("sum.small", 1, 1), ("sum.negative", 0, 1), ("framing.split", 1, 1),
        ("clients.concurrent", 0, 1), ("reach.interfaces", 0, 1), ("reach.ipv6", 1, 1)]
    assert score.text() == "4/7"


def test_a_program_that_never_started_has_the_same_denominator() -> None:
    assert Rubric().score(NEVER).text() == "0/7"
    rows = grade_rows([("b/x.py", NEVER), ("a/x.py", RAN)], Rubric())
    assert [(r.submission, r.score.text()) for r in rows] == [("b/x.py", "0/7"), ("a/x.py", "4/7")]
    assert rows[0].failed == (("connect", "the program exited with status 1 before listening"),)


def test_grade_rows_give_a_short_reason_per_failure() -> None:
    (row,) = grade_rows([("a/x.py", RAN)], Rubric())
    assert row.failed == (("sum.negative", "the sign was lost"),
                          ("clients.concurrent", "the server serves one client at a time"),
                          ("reach.interfaces", "loopback only"))
    assert row.warned == ("reach.ipv6",)


@pytest.mark.parametrize(("detail", "reason"), [
    ("b'Sum: 5' -> b'Sum: 6', expected 5: off by one; fix it", "off by one"),
    ("no verdict within the case's hard deadline (5 s): the server never answered", "the server never answered"),
    ("the second client was not served (it closed: gone): the server served one client; loop",
     "the server served one client"),
    ("plain words", "plain words"),
    ("the reply has no number in it (the request is 42 bytes: a server that reads 16); loop",
     "the reply has no number in it"),
    ("got b'(' (an aside: with b')' in it) back: a stray bracket", "a stray bracket"),
    ("x: " + "word " * 40, ("word " * 14).strip()[:69].rstrip() + "…"),
])
def test_short_reason(detail: str, reason: str) -> None:
    assert short_reason(detail) == reason
    assert len(short_reason(detail)) <= 70


def test_rubric_points_by_group_and_id_warn_and_strict_change_the_score_as_documented() -> None:
    r = rubric('''
        default = 0.5
        warn = ["clients.concurrent", "reach"]
        strict = ["sum"]
        [points]
        sum = 2
        "sum.negative" = 3
        connect = 0
    ''')
    graded = r.apply(RAN)
    outcomes = {c.id: c.outcome for c in graded.cases}
    # warn: failures become warnings, saying so; the group name covers reach.*
    assert outcomes["clients.concurrent"] == outcomes["reach.interfaces"] == "warn"
    assert "(a warning only, by the rubric)" in next(c.detail for c in graded.cases if c.id == "reach.interfaces")
    assert graded.failed == ["sum.negative"]
    score = r.score(graded)
    worth = {c.id: (c.points, c.max_points) for c in score.cases}
    assert worth == {"connect": (0, 0), "sum.small": (2, 2), "sum.negative": (0, 3), "framing.split": (0.5, 0.5),
                     "clients.concurrent": (0, 0), "reach.interfaces": (0, 0), "reach.ipv6": (0, 0)}
    assert score.text() == "2.5/5.5"
    # the report it was given is unchanged
    assert RAN.outcome("reach.interfaces") == "fail"


def test_strict_turns_a_warning_into_a_failure() -> None:
    r = rubric('strict = ["reach.ipv6"]')
    graded = r.apply(RAN)
    assert graded.outcome("reach.ipv6") == "fail" and "by the rubric" in graded.cases[-1].detail
    assert r.score(graded).text() == "3/7"


def test_default_zero_counts_only_the_named_cases() -> None:
    r = rubric('default = 0\n[points]\n"sum.small" = 4\n"sum.negative" = 1')
    assert r.score(r.apply(RAN)).text() == "4/5"
    assert r.score(r.apply(NEVER)).text() == "0/5"


@pytest.mark.parametrize(("text", "words"), [
    ("default = ", "not valid TOML"),
    ("[points]\n'sum.huge' = 1", "no case or group 'sum.huge'"),
    ("warn = ['clients.parallel']", "no case or group 'clients.parallel'"),
    ("[points]\n'sum.small' = -1", "points for sum.small must be a number of points >= 0"),
    ("default = -2", "default must be a number of points >= 0"),
    ("[points]\n'sum.small' = 'two'", "must be a number of points, not 'two'"),
    ("[points]\n'sum.small' = true", "must be a number of points, not True"),
    ("[points]\n'sum.small' = nan", "must be a number of points >= 0"),
    ("[points]\n'sum.small' = inf", "must be a number of points >= 0"),
    ("weights = 1", "unknown key 'weights'"),
    ("'sum.small' = 2", "put case points under [points]"),
    ("warn = 'reach'", "warn must be a list"),
    ("points = 3", "points must be a table"),
    ("warn = ['reach']\nstrict = ['reach.ipv6']", "reach.ipv6 is named in both warn and strict"),
    ("warn = ['reach.interfaces']\n[points]\nreach = 2", "reach.interfaces is a warning only"),
    ("visibility = 'sometimes'", "visibility must be one of hidden, after_due_date"),
    ("[points]\n'lines.crlf' = 1", "no case or group 'lines.crlf'"),  # a netlab-profile case
])
def test_bad_rubrics_are_usage_errors_naming_the_problem(text: str, words: str) -> None:
    with pytest.raises(UsageError, match="^--rubric r.toml: ") as error:
        rubric(text)
    assert words in str(error.value)


def test_rubric_file_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read it"):
        Rubric.load(tmp_path / "nope.toml", SUM_CASES)
    (tmp_path / "latin1.toml").write_bytes(b"# caf\xe9\n")
    with pytest.raises(UsageError, match="not UTF-8"):
        Rubric.load(tmp_path / "latin1.toml", SUM_CASES)


def test_the_example_rubric_is_valid_and_worth_what_it_says() -> None:
    r = Rubric.load(STUDENTS / "rubric.toml", SUM_CASES)
    assert r.warn == {"clients.concurrent", "reach.interfaces"}
    # 1 a case, the four sum cases 2 (+4), framing.split 3 (+2), two warnings only and idle_cpu 0 (-3)
    assert math.fsum(r.worth(case_id, group) for case_id, group in SUM_CASES) == len(SUM_CASES) + 3


def test_client_rubrics_know_the_client_cases() -> None:
    r = Rubric.parse("[points]\nclient = 2\n'client.no_reply' = 5", known_cases(True, "sum", "assignment"))
    assert r.worth("client.plain", "client") == 2 and r.worth("client.no_reply", "client") == 5
    with pytest.raises(UsageError, match="no case or group 'sum.small'"):
        Rubric.parse("[points]\n'sum.small' = 1", known_cases(True, "sum", "assignment"))


# -- Gradescope ----------------------------------------------------------------------------------

#: results.json as Gradescope documents it (gradescope-autograders.readthedocs.io, "specs")
TOP_KEYS = {"score", "execution_time", "output", "output_format", "test_output_format", "test_name_format",
            "visibility", "stdout_visibility", "extra_data", "tests", "leaderboard"}
TEST_KEYS = {"score", "max_score", "status", "name", "name_format", "number", "output", "output_format", "tags",
             "visibility", "extra_data"}


def assert_gradescope_valid(document: dict) -> None:
    assert set(document) <= TOP_KEYS
    assert isinstance(document["tests"], list) and document["tests"]
    for test in document["tests"]:
        assert set(test) <= TEST_KEYS, set(test) - TEST_KEYS
        assert {"name", "number", "score", "max_score", "status", "output"} <= set(test)
        assert isinstance(test["name"], str) and isinstance(test["output"], str) and isinstance(test["number"], str)
        assert all(isinstance(test[k], (int, float)) and not isinstance(test[k], bool) for k in ("score", "max_score"))
        assert 0 <= test["score"] <= test["max_score"]
        assert test["status"] in ("passed", "failed")
        assert test.get("visibility", "visible") in VISIBILITIES
    assert document["score"] == pytest.approx(sum(t["score"] for t in document["tests"]))
    json.loads(json.dumps(document, ensure_ascii=False).encode("utf-8"))  # plain UTF-8, no lone surrogates


def test_gradescope_results_follow_the_documented_fields() -> None:
    r = rubric('warn = ["clients.concurrent"]\nvisibility = "after_due_date"\n[points]\nsum = 2')
    document = gradescope(r.apply(RAN), r)
    assert_gradescope_valid(document)
    tests = {t["name"].split(":")[0]: t for t in document["tests"]}
    assert [t["number"] for t in document["tests"]] == [str(n) for n in range(1, 8)]
    assert tests["sum.small"]["name"] == "sum.small: 2 3 -> 5"
    assert (tests["sum.small"]["score"], tests["sum.small"]["max_score"], tests["sum.small"]["status"]) == (2, 2, "passed")
    assert (tests["sum.negative"]["score"], tests["sum.negative"]["status"]) == (0, "failed")
    assert tests["sum.negative"]["output"].startswith("b'-10 3\\n' -> b'13\\n'")
    assert tests["clients.concurrent"]["status"] == "passed" and tests["clients.concurrent"]["max_score"] == 0
    assert tests["clients.concurrent"]["output"].startswith("warning: ")
    assert tests["framing.split"]["status"] == "passed" and tests["framing.split"]["output"].startswith("skipped: ")
    assert {t["visibility"] for t in document["tests"]} == {"after_due_date"}
    assert document["score"] == 1 + 2 + 0 + 1 + 0 + 0 + 1
    assert "5/8 points" in document["output"]


def test_gradescope_for_a_program_that_never_started_fails_every_test() -> None:
    document = gradescope(NEVER, Rubric())
    assert_gradescope_valid(document)
    assert document["score"] == 0 and {t["status"] for t in document["tests"]} == {"failed"}
    assert "visibility" not in document["tests"][0]


def test_what_a_program_printed_stays_valid_json_and_xml() -> None:
    hostile = "exited; last stderr lines: \x1b[31mboom\x00 \udcff <&> ]]> \"q\" \ufffe end"
    bad = report(case("connect", "fail", hostile), case("sum.small", "warn", hostile),
                 case("sum.negative", "skip", hostile), target="evil\x07.py")
    document = gradescope(bad, Rubric())
    assert_gradescope_valid(document)
    output = document["tests"][0]["output"]
    assert "\\x1b[31mboom\\x00 \\xff <&> ]]>" in output and "\\ufffe end" in output
    root = ET.fromstring(junit([bad]))  # parses: no character XML 1.0 forbids
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None and "\\x00" in (failure.get("message") or "") and "<&>" in (failure.text or "")
    assert (root.find("testsuite").get("name") or "").endswith("evil\\x07.py")


def test_submission_names_tell_the_submissions_apart() -> None:
    assert submission_names(["subs/alice/sum_server.py", "subs/bob/sum_server.py"]) == ["alice", "bob"]
    assert submission_names(["a/sum_server.py", "a/recv16.py"]) == ["sum_server", "recv16"]
    assert submission_names(["a/x/s.py", "a/s.py", "a/s.py"]) == ["x-s", "s", "s-2"]
    assert submission_names(["/tmp/class/.hidden/s.py", "/tmp/class/b/s.py"]) == ["hidden", "b"]
    assert submission_names(["only.py"]) == ["only"]


def test_gradescope_targets(tmp_path: Path) -> None:
    subs = [str(tmp_path / "alice" / "s.py"), str(tmp_path / "bob" / "s.py")]
    assert gradescope_targets(tmp_path / "{}" / "results.json", subs) == [
        tmp_path / "alice" / "results.json", tmp_path / "bob" / "results.json"]
    assert gradescope_targets(tmp_path / "r-{}.json", subs) == [tmp_path / "r-alice.json", tmp_path / "r-bob.json"]
    assert gradescope_targets(tmp_path / "results.json", subs[:1]) == [tmp_path / "results.json"]
    assert gradescope_targets(tmp_path / "results.json", None) == [tmp_path / "results.json"]
    with pytest.raises(UsageError, match="put {} in the file name"):
        gradescope_targets(tmp_path / "results.json", subs)
    with pytest.raises(UsageError, match="give a plain file name"):
        gradescope_targets(tmp_path / "{}.json", None)
    with pytest.raises(OutputError, match="does not exist"):
        gradescope_targets(tmp_path / "missing" / "{}" / "results.json", subs)
    (tmp_path / "r-alice.json").mkdir()
    with pytest.raises(OutputError, match="it is a directory"):
        gradescope_targets(tmp_path / "r-{}.json", subs)


# -- CSV and JSON --------------------------------------------------------------------------------


def test_csv_one_row_per_submission_one_column_per_case() -> None:
    text = grades_csv([("b/x.py", RAN), ("=cmd|' /C calc'!A0", NEVER)], Rubric())
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["submission", *(c.id for c in RAN.cases), "score", "max_score"]
    assert rows[1] == ["b/x.py", "pass", "pass", "fail", "skip", "fail", "fail", "warn", "4", "7"]
    assert rows[2][0] == "'=cmd|' /C calc'!A0"  # a spreadsheet shows it, never runs it
    assert rows[2][1:] == ["fail", *["skip"] * 6, "0", "7"]


def test_folder_json_shape() -> None:
    r = rubric('warn = ["reach.interfaces"]')
    document = grades_json([("b/x.py", r.apply(RAN)), ("a/y.py", r.apply(NEVER))], r)
    assert set(document) == {"rubric", "max_score", "submissions"}
    assert document["max_score"] == 6 and document["rubric"]["warn"] == ["reach.interfaces"]
    first, second = document["submissions"]
    assert [first["submission"], second["submission"]] == ["b/x.py", "a/y.py"]
    assert (first["score"], first["max_score"], second["score"], second["max_score"]) == (4, 6, 0, 6)
    assert first["failed"] == [{"id": "sum.negative", "reason": "the sign was lost"},
                               {"id": "clients.concurrent", "reason": "the server serves one client at a time"}]
    assert {"target", "service", "profile", "request", "cases", "summary"} <= set(first)
    assert first["cases"][2] == {"id": "sum.negative", "group": "sum", "outcome": "fail", "detail": RAN.cases[2].detail,
                                 "seconds": 0.01, "points": 0, "max_points": 1}
    assert grades_json([("x", RAN)], Rubric())["rubric"] is None


def test_single_json_carries_the_score() -> None:
    document = scored_json(RAN, Rubric())
    assert (document["score"], document["max_score"]) == (4, 7)


# -- through the command -------------------------------------------------------------------------


def marker_run(tmp_path: Path) -> str:
    """A --run template that leaves a file behind if it ever runs."""
    return f"touch {tmp_path / 'ran'}; {PYTHON} {{}} 0"


@pytest.mark.parametrize(("extra", "words"), [
    (["--rubric", "RUBRIC"], "points for sum.small must be a number of points >= 0"),
    (["--gradescope", "TMP/results.json"], "put {} in the file name"),
    (["--rubric", "TMP/none.toml"], "cannot read it"),
])
def test_grading_usage_errors_come_before_anything_runs(tmp_path: Path, extra: list[str], words: str) -> None:
    (tmp_path / "r.toml").write_text("[points]\n'sum.small' = -1\n")
    args = [a.replace("RUBRIC", str(tmp_path / "r.toml")).replace("TMP", str(tmp_path)) for a in extra]
    result = invoke(["check", "--run", marker_run(tmp_path), *args,
                     str(STUDENTS / "sum_server.py"), str(STUDENTS / "one_client.py")])
    assert result.exit_code == 2, result.output
    assert words in result.output
    assert_no_traceback(result)
    assert not (tmp_path / "ran").exists()


def test_gradescope_brace_for_one_check_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke(["check", "--run", f"touch {tmp_path / 'ran'}", "--gradescope", str(tmp_path / "{}.json")])
    assert result.exit_code == 2 and "plain file name" in result.output
    assert not (tmp_path / "ran").exists()


@pytest.mark.process
def test_cli_grades_a_folder_for_the_platforms(tmp_path: Path) -> None:
    (tmp_path / "rubric.toml").write_text('warn = ["clients.concurrent"]\n[points]\n"clients.sequential" = 3\n')
    (tmp_path / "gs").mkdir()
    submissions = [str(STUDENTS / "one_client.py"), str(STUDENTS / "sum_server.py")]
    result = invoke(["check", "--run", f"{PYTHON} {{}} 0", "--timeout", "3", "--case", "clients", "--json",
                     "--rubric", str(tmp_path / "rubric.toml"), "--gradescope", str(tmp_path / "gs" / "{}" / "results.json"),
                     "--csv", str(tmp_path / "grades.csv"), "--junit", str(tmp_path / "grades.xml"), *submissions])
    assert result.exit_code == 1, result.output  # one_client fails clients.sequential
    assert_no_traceback(result)
    document = json.loads(result.stdout)
    assert [s["submission"] for s in document["submissions"]] == submissions
    one, good = document["submissions"]
    assert (one["score"], one["max_score"], good["score"], good["max_score"]) == (0, 3, 3, 3)
    assert [f["id"] for f in one["failed"]] == ["clients.sequential"]
    concurrent = next(c for c in one["cases"] if c["id"] == "clients.concurrent")
    assert concurrent["outcome"] == "warn" and "by the rubric" in concurrent["detail"]
    assert document["rubric"]["source"] == str(tmp_path / "rubric.toml")

    rows = list(csv.reader((tmp_path / "grades.csv").open()))
    assert rows == [["submission", "clients.sequential", "clients.concurrent", "score", "max_score"],
                    [submissions[0], "fail", "warn", "0", "3"], [submissions[1], "pass", "pass", "3", "3"]]
    for name, score in (("one_client", 0), ("sum_server", 3)):
        results = json.loads((tmp_path / "gs" / name / "results.json").read_text())
        assert_gradescope_valid(results)
        assert results["score"] == score
    junit_cases = {c.get("name"): c for c in ET.parse(tmp_path / "grades.xml").iter("testcase")}
    assert set(junit_cases) == {"clients.sequential", "clients.concurrent"}


@pytest.mark.process
def test_cli_grade_table_rows_in_order_with_reasons(tmp_path: Path) -> None:
    missing_port = tmp_path / "dies.py"
    missing_port.write_text("raise SystemExit('no port for you')\n")
    submissions = [str(missing_port), str(STUDENTS / "one_client.py")]
    result = invoke(["check", "--run", f"{PYTHON} {{}} 0", "--timeout", "3", "--startup", "5", "--case", "clients",
                     *submissions])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stdout.splitlines() if ".py" in line]
    assert "dies.py" in lines[0] and "one_client.py" in lines[1]  # submission order
    assert "0/2" in lines[0] and "clients.sequential: the program exited with status 1" in lines[0]
    assert "0/2" in lines[1] and "clients.sequential: the server served one client" in lines[1]
    assert "clients.concurrent: the server serves one client at a time" in result.stdout


@pytest.mark.process
def test_a_rubric_that_makes_the_only_failure_a_warning_exits_0(tmp_path: Path) -> None:
    (tmp_path / "rubric.toml").write_text('warn = ["clients"]\n')
    result = invoke(["check", "--run", f"{PYTHON} {STUDENTS / 'one_client.py'} 0", "--timeout", "3",
                     "--case", "clients.concurrent", "--rubric", str(tmp_path / "rubric.toml"), "--json"])
    assert result.exit_code == 0, result.output
    (concurrent,) = json.loads(result.stdout)["cases"]
    assert concurrent["outcome"] == "warn" and concurrent["detail"].endswith("(a warning only, by the rubric)")
    assert (concurrent["points"], concurrent["max_points"]) == (0, 0)
    result = invoke(["check", "--run", f"{PYTHON} {STUDENTS / 'one_client.py'} 0", "--timeout", "3",
                     "--case", "clients.concurrent"])
    assert result.exit_code == 1 and "score 0/1" in result.stdout, result.output


@pytest.mark.process
def test_stdin_reaches_the_program_from_the_command_line() -> None:
    """`--stdin` is fed to a --run program (one that asks for its host), alone and in a folder."""
    real = STUDENTS / "real" / "asks_host.py"
    alone = invoke(["check", "--run", f"{PYTHON} {real}", "--stdin", "127.0.0.1\\n", "--timeout", "3",
                    "--case", "sum.small", "--json"])
    assert alone.exit_code == 0, alone.output
    assert json.loads(alone.stdout)["cases"][0]["outcome"] == "pass"
    folder = invoke(["check", "--run", f"{PYTHON} {{}}", str(real), "--stdin", "127.0.0.1\\n", "--jobs", "1",
                     "--timeout", "3", "--case", "sum.small", "--json"])
    assert folder.exit_code == 0, folder.output
    assert json.loads(folder.stdout)["submissions"][0]["cases"][0]["outcome"] == "pass"


def test_jobs_reaches_grade(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--jobs N` is what grade() is given."""
    import netlab.check

    seen: dict[str, object] = {}

    async def fake_grade(template, submissions, settings, progress=None, *, jobs=None, stdin=None):
        seen.update(jobs=jobs, stdin=stdin)
        return []

    monkeypatch.setattr(netlab.check, "grade", fake_grade)
    invoke(["check", "--run", f"{PYTHON} {{}}", str(STUDENTS / "sum_server.py"), "--jobs", "3", "--stdin", "x"])
    assert seen == {"jobs": 3, "stdin": b"x"}
