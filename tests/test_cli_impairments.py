"""The impairment options are declared once (netlab/cli/impairments.py): relay and compare
show the same ones, in the same order, and each reaches the impairment parser by its name."""

from __future__ import annotations

import pytest
import typer
from helpers import assert_no_traceback, invoke

from netlab.cli import app
from netlab.cli.impairments import LINK_RATE, OPTIONS, PANEL, RATE


def panel(command: str) -> list[str]:
    """The options in the command's impairments panel, in the order help lists them."""
    group = typer.main.get_command(app)
    params = group.commands[command].params
    return [param.opts[0] for param in params if getattr(param, "rich_help_panel", None) == PANEL]


def test_relay_and_compare_show_the_same_options() -> None:
    assert panel("relay") == [(option or RATE).flag for option in OPTIONS] + ["--seed"]
    assert panel("compare") == [(option or LINK_RATE).flag for option in OPTIONS] + ["--seed", "--kernel"]


@pytest.mark.parametrize(("command", "option", "words"), [
    (["relay", "--listen", "udp:127.0.0.1:0", "--to", "udp:127.0.0.1:9"], ["--loss", "1.5"],
     "loss is a probability: between 0 and 1, not 1.5"),
    (["compare"], ["--link-rate", "fast"], "rate takes a number, not 'fast'"),
    (["compare"], ["--slice", "9:1"], "slice MIN:MAX needs 1 <= MIN <= MAX, not 9:1"),
    (["compare"], ["--close-after", "x/1"], "close-after takes a whole number of bytes, not 'x'"),
])
def test_each_option_reaches_the_parser_by_its_name(command: list[str], option: list[str], words: str) -> None:
    result = invoke([*command, *option])
    assert result.exit_code == 2, result.output
    assert_no_traceback(result)
    assert result.stderr.startswith("netlab: error: Invalid value: ") and words in result.stderr, result.stderr
