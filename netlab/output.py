"""A command's output files (``--json-file FILE``, ``--plot FILE``), written one way everywhere.

`Outputs.check` runs before a long measurement, so that a typo fails at once instead of
after the run: a directory that does not exist (naming the first missing part of the
path) or a target that is a directory is an `OutputError` (the CLI exits 1); a plot format
matplotlib cannot write is a `UsageError` (exit 2). A plot file given without an extension
gets ``.png``, and the line saying it was written names the real file. `Outputs.write`
writes the JSON document, then the plot; every failure is an `OutputError` naming the file.
Text files are written to a temporary file and renamed into place (`replace_file`), never
through a symbolic link someone planted where the file goes.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
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
             (lambda path: replace_file(path, (json.dumps(document(), indent=indent) + "\n").encode()))),
            (self.plot, None if draw is None else (lambda path: _drawn(path, draw))),
        ]
        for target, job in jobs:
            if target is None or job is None:
                continue
            try:
                job(target)
            except OSError as exc:
                raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
            wrote(target)


def replace_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` the way nobody can redirect: into a new temporary file in the
    same directory, then renamed over `path`. Whatever `path` was (a symbolic link someone
    planted, say, in a directory others may write, such as /tmp), it is replaced, never
    written through; and a reader never sees half a file. An existing file keeps its mode.
    Raises OSError."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        mode = os.stat(path, follow_symlinks=False).st_mode & 0o777 if not path.is_symlink() else 0o644
    except OSError:
        mode = 0o666 & ~_umask()
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _drawn(path: Path, draw: Callable[[str], None]) -> None:
    """`draw` into a temporary file of the same extension beside `path`, renamed into place
    (as `replace_file`: never through a link)."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        draw(temporary)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: Path, text: str, *, wrote: Callable[[Path], None] = lambda path: None,
               parents: bool = False) -> None:
    """Write a text output file (``--junit FILE``) as UTF-8 (`replace_file`: never through a
    symbolic link), making its missing directories first with `parents`; an `OutputError`
    naming it if that fails."""
    try:
        if parents:
            path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, text.encode("utf-8"))
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    wrote(path)


def write_bytes(path: Path, data: bytes, *, wrote: Callable[[Path], None] = lambda path: None) -> None:
    """Write a binary output file (a check's pcap; `replace_file`: never through a symbolic
    link); an `OutputError` naming it if that fails."""
    try:
        replace_file(path, data)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    wrote(path)


__all__ = ["PLOT_FORMATS", "Outputs", "plot_path", "replace_file", "write_bytes", "write_text"]
