"""Which of a check's inputs go together: `netlab.check.check_usage`, the one statement of the
rules, as the command and the library meet them. Nothing here starts a program: each
rejected input fails before anything runs (a marker file proves it), and the accepted ones
are only classified."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio
from helpers import assert_no_traceback, invoke

from netlab.check import CheckSettings, check_server, check_usage, grade
from netlab.errors import UsageError

ADDR = "tcp:127.0.0.1:1"


@pytest.mark.parametrize(("inputs", "kind"), [
    ({"targets": [ADDR]}, "server"),
    ({"run": "python3 s.py"}, "server"),
    ({"run": "python3 s.py", "at": ADDR, "stdin": b"x"}, "server"),
    ({"run": "python3 {}", "targets": ["a.py", "b.py"], "jobs": 2}, "folder"),
    ({"client": "python3 c.py", "listen": ADDR, "stdin": b"2 3\n"}, "client"),
])
def test_what_each_combination_checks(inputs: dict[str, object], kind: str) -> None:
    assert check_usage(**inputs) == kind


RULES = [
    ({}, "give one address to check"),
    ({"targets": [ADDR, ADDR]}, "give one address to check"),
    ({"client": "c"}, "--client goes with --listen ADDR"),
    ({"client": "c", "listen": ADDR, "run": "s"}, "--client goes with --listen ADDR"),
    ({"client": "c", "listen": ADDR, "targets": [ADDR]}, "--client goes with --listen ADDR"),
    ({"client": "c", "listen": ADDR, "at": ADDR}, "--client goes with --listen ADDR"),
    ({"listen": ADDR, "targets": [ADDR]}, "--listen goes with --client"),
    ({"stdin": b"x", "targets": [ADDR]}, "--stdin goes with --run or --client"),
    ({"run": "s", "targets": ["a.py"]}, "with --run, the address goes in --at"),
    ({"run": "python3 {}"}, "--run with {} checks each SUBMISSION file"),
    ({"run": "python3 {}", "targets": ["a.py"], "at": ADDR}, "--run with {} checks each SUBMISSION file"),
    ({"targets": [ADDR], "jobs": 2}, "--jobs goes with --run 'CMD {}'"),
    ({"client": "c", "listen": ADDR, "jobs": 2}, "--jobs goes with --run 'CMD {}'"),
    ({"run": "python3 {}", "targets": ["a.py"], "jobs": 0}, "--jobs must be 1 or more, not 0"),
]


@pytest.mark.parametrize(("inputs", "words"), RULES)
def test_each_rule_is_a_usage_error_naming_it(inputs: dict[str, object], words: str) -> None:
    with pytest.raises(UsageError, match="^" + words.replace("{", "\\{").replace("}", "\\}").replace("*", "\\*")):
        check_usage(**inputs)


def _command_line(inputs: dict[str, object], marker: Path) -> list[str]:
    """The same inputs as `netlab check` arguments; every program leaves `marker` if it runs."""
    args = ["check"]
    for name in ("run", "client"):
        if name in inputs:
            args += [f"--{name}", f"touch {marker}; {inputs[name]}"]
    for name in ("at", "listen", "jobs"):
        if name in inputs:
            args += [f"--{name}", str(inputs[name])]
    if "stdin" in inputs:
        args += ["--stdin", bytes(inputs["stdin"]).decode()]
    return args + [str(t) for t in inputs.get("targets", [])]


@pytest.mark.parametrize(("inputs", "words"), [rule for rule in RULES if rule[0].get("jobs") != 0])
def test_the_command_says_the_same_before_anything_runs(tmp_path: Path, inputs: dict[str, object],
                                                        words: str) -> None:
    result = invoke(_command_line(inputs, tmp_path / "ran"))
    assert result.exit_code == 2, result.output
    assert_no_traceback(result)
    assert result.stderr.startswith(f"netlab: error: {words}"), result.stderr
    assert not (tmp_path / "ran").exists()


def test_the_library_meets_the_same_rules() -> None:
    with pytest.raises(UsageError, match="^give one address to check"):
        trio.run(check_server)
    with pytest.raises(UsageError, match="^--stdin goes with --run"):
        trio.run(lambda: check_server(ADDR, stdin=b"x"))
    with pytest.raises(UsageError, match="^to check several submissions, put {} in --run"):
        trio.run(lambda: grade("python3 x.py", ["a.py"], CheckSettings()))
    with pytest.raises(UsageError, match="^--run with {} checks each SUBMISSION file"):
        trio.run(lambda: grade("python3 {}", [], CheckSettings()))
    with pytest.raises(UsageError, match="^--jobs must be 1 or more, not 0"):
        trio.run(lambda: grade("python3 {}", ["a.py"], CheckSettings(), jobs=0))


def test_a_program_run_for_one_server_may_hold_braces(tmp_path: Path) -> None:
    """Only the command decides that {} marks a template: a command check_server runs (grade's
    for one submission, say, whose path holds {}) is run as it is."""
    assert check_usage(run=f"{sys.executable} {tmp_path}/{{}}/s.py", kind="server") == "server"
    with pytest.raises(UsageError, match="^--run with {} checks each SUBMISSION file"):
        check_usage(run=f"{sys.executable} {tmp_path}/{{}}/s.py")  # the command line's reading
