"""A command's output files (``--json-file FILE``, ``--plot FILE``), written one way everywhere.

`Outputs.check` runs before a long measurement, so that a typo fails at once instead of
after the run: a directory that does not exist (naming the first missing part of the
path) or a target that is a directory is an `OutputError` (the CLI exits 1); a plot format
matplotlib cannot write is a `UsageError` (exit 2). A plot file given without an extension
gets ``.png``, and the line saying it was written names the real file. `Outputs.write`
writes the JSON document, then the plot; every failure is an `OutputError` naming the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import OutputError, UsageError
from .transports.oserrors import missing_directory

#: what ``--plot`` can write: the formats matplotlib's Agg backend saves without a LaTeX
#: install (tests/test_cli_conventions.py checks each against matplotlib itself)
PLOT_FORMATS = ("png", "svg", "pdf", "jpg", "jpeg", "webp", "tif", "tiff", "eps", "ps")


def plot_path(path: Path) -> Path:
    """Where a plot asked for as `path` goes: `path`, with ``.png`` added when it has no
    extension. Raises UsageError for a format matplotlib cannot write."""
    suffix = path.suffix.lower().lstrip(".")
    if not suffix:
        return path.with_name(path.name + ".png")
    if suffix not in PLOT_FORMATS:
        raise UsageError(f"--plot {path}: cannot draw a .{suffix} file; use one of "
                         f"{', '.join('.' + f for f in PLOT_FORMATS)}")
    return path


@dataclass(frozen=True)
class Outputs:
    json: Path | None = None
    plot: Path | None = None

    def __post_init__(self) -> None:
        if self.plot is not None:
            object.__setattr__(self, "plot", plot_path(self.plot))  # frozen: set once, here

    def check(self) -> None:
        """Refuse, before anything runs, a file that could not be written."""
        for target in (self.json, self.plot):
            if target is None:
                continue
            missing = missing_directory(str(target))
            if missing is not None:
                raise OutputError(f"cannot write {target}: {missing}")
            if target.is_dir():
                raise OutputError(f"cannot write {target}: it is a directory")
            if not os.access(target.parent, os.W_OK | os.X_OK):
                raise OutputError(f"cannot write {target}: no permission to write in {target.parent}")

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


def write_text(path: Path, text: str, *, wrote: Callable[[Path], None] = lambda path: None,
               parents: bool = False) -> None:
    """Write a text output file (``--junit FILE``) as UTF-8, making its missing directories
    first with `parents`; an `OutputError` naming it if that fails."""
    try:
        if parents:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    wrote(path)


def write_bytes(path: Path, data: bytes, *, wrote: Callable[[Path], None] = lambda path: None) -> None:
    """Write a binary output file (a check's pcap); an `OutputError` naming it if that fails."""
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    wrote(path)


__all__ = ["PLOT_FORMATS", "Outputs", "plot_path", "write_bytes", "write_text"]
