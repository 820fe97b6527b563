"""Plain helpers shared by several test modules (fixtures live in conftest.py).

Import them by name: ``from helpers import table_rows, within_binomial``.
"""

from __future__ import annotations

import math
import re

from typer.testing import CliRunner

from netlab.cli import app
from netlab.transports import COMPARE_SCHEMES


def within_binomial(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    """Whether `count` successes in `n` trials is within `sigmas` standard deviations (+1,
    for tiny n) of what probability `p` predicts."""
    mean = n * p
    spread = sigmas * math.sqrt(n * p * (1 - p)) + 1
    return abs(count - mean) <= spread


# -- the CLI, through typer's CliRunner ---------------------------------------------------


def invoke(args: list[str], input: str | None = None):
    return CliRunner().invoke(app, args, input=input, prog_name="netlab")


def assert_no_traceback(result) -> None:
    assert "Traceback" not in result.output, result.output
    # CliRunner catches what escapes the command; only SystemExit (typer.Exit) may escape
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


# -- compare's delivery table ---------------------------------------------------------------

INT_COLUMNS = ["sent", "delivered", "lost", "duplicated", "reordered", "corrupted", "truncated"]
#: a count, possibly followed by "(12.1%)" or "(max 3)"
CELL = re.compile(r"(\d+)(?: \([^)]*\))?")


def table_rows(output: str) -> dict[tuple[str, str], dict[str, int]]:
    """The data rows of compare's delivery table: (transport, service) -> integer columns."""
    delivery = output.split("round trip in µs")[0]
    rows = {}
    for line in delivery.splitlines():
        cells = line.split(None, 2)
        if len(cells) == 3 and cells[0] in COMPARE_SCHEMES and cells[1] in ("echo", "sum"):
            key = (cells[0], cells[1])
            assert key not in rows, f"row {key} printed twice"
            counts = [int(m.group(1)) for m in CELL.finditer(cells[2])][: len(INT_COLUMNS)]
            rows[key] = dict(zip(INT_COLUMNS, counts))
    return rows
