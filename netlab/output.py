"""A command's output files (``--json FILE``, ``--plot FILE``), written one way everywhere.

`Outputs.check` runs before a long measurement, so that a typo in a directory name fails
at once instead of after the run; `Outputs.write` writes the JSON document, then the plot.
Every failure is an `OutputError` naming the file (the CLI exits 1).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import OutputError


@dataclass(frozen=True)
class Outputs:
    json: Path | None = None
    plot: Path | None = None

    def check(self) -> None:
        """Refuse, before anything runs, a file whose directory does not exist."""
        for target in (self.json, self.plot):
            if target is not None and not target.parent.is_dir():
                raise OutputError(f"cannot write {target}: {target.parent} is not a directory")

    def write(self, document: Callable[[], object] | None = None, draw: Callable[[str], None] | None = None, *,
              indent: int = 2, wrote: Callable[[Path], None] = lambda path: None) -> None:
        """Write the JSON `document()` (made only when asked for) and the plot `draw(path)`;
        `wrote` hears of each file once it is written."""
        jobs: list[tuple[Path | None, Callable[[Path], object] | None]] = [
            (self.json, None if document is None else
             (lambda path: path.write_text(json.dumps(document(), indent=indent) + "\n"))),
            (self.plot, None if draw is None else (lambda path: draw(str(path)))),
        ]
        for target, job in jobs:
            if target is None or job is None:
                continue
            try:
                job(target)
            except OSError as exc:
                raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
            wrote(target)


def write_text(path: Path, text: str, *, wrote: Callable[[Path], None] = lambda path: None) -> None:
    """Write a text output file (``--junit FILE``); an `OutputError` naming it if that fails."""
    try:
        path.write_text(text)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    wrote(path)


__all__ = ["Outputs", "write_text"]
