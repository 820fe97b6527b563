"""What `netlab trace` prints: the command's own output, the conversations, the ladder, notes.

Plain lines, at most `WIDTH` columns (or the terminal's width, when narrower), printed
through a rich console without markup (a payload is data, not markup).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console

from .ladder import Ladder
from .lessons import TracedExperiment
from .run import TraceResult

WIDTH = 80


def ladder_lines(ladder: Ladder, width: int = WIDTH) -> list[str]:
    """The conversations, then the ladder: what `netlab trace` shows of packets."""
    if not ladder.rows:
        return []
    return ladder.legend() + [""] + ladder.lines(width)


#: what a named unix socket's state means, said as its life
_UNIX_LIFE = {"unconnected": "bound", "listening": "listening", "connected": "a connection accepted",
              "connecting": "connecting", "disconnecting": "disconnecting", "closed": "closed"}


def unix_lines(events: Sequence[dict[str, Any]], start: float, width: int = WIDTH) -> list[str]:
    """The named unix sockets' lives: bound, listening, each connection accepted (it carries the
    listener's name), closed. Unnamed ones (clients, each process's internal socket pairs) are
    left to --json."""
    out = []
    for e in events:
        if not e["path"]:
            continue
        ms = (e["time"] - start) * 1e3
        life = _UNIX_LIFE.get(e["state"], e["state"])
        line = f"{ms:>10.3f} ms  unix {e['type']:<9} {e['path']}: {life}"
        out.append(line if len(line) <= width else line[: width - 1] + "…")
    return out


def show(console: Console, result: TraceResult) -> None:
    width = min(console.width, WIDTH)
    output = result.output.decode("utf-8", "backslashreplace")
    if output:
        console.print(output.rstrip("\n"), markup=False, highlight=False, soft_wrap=True)
        console.print()
    for line in result.servers:  # "listening ADDR  service=sum  ...": the address and the service
        console.print("server: " + "  ".join(line.split("  ")[:2]), markup=False, highlight=False)
    ladder = result.ladder()
    for line in ladder_lines(ladder, width):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if result.unix and not ladder.rows:
        for line in unix_lines(result.unix, result.unix[0]["time"], width):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    console.print()
    for note in result.notes():
        console.print(f"- {note}", markup=False, highlight=False)
    tcp = sum(c.proto == "tcp" for c in ladder.conversations)
    udp = sum(c.proto == "udp" for c in ladder.conversations)
    said = f"{len(ladder.rows)} packets: {tcp} TCP connection{'s' * (tcp != 1)}, {udp} UDP flow{'s' * (udp != 1)}"
    exit_text = "ran out of time" if result.timed_out else f"exited with status {result.exit_code}"
    console.print(f"{said}; the command {exit_text}.", markup=False, highlight=False)
    console.print(f"Captured in {result.isolation}.", markup=False, highlight=False)


def show_lessons(console: Console, traced: TracedExperiment) -> None:
    """Under an experiment's findings: the findings drawn from its packets, each with the
    ladder lines of the packets it cites."""
    width = min(console.width, WIDTH)
    console.print()
    console.print("What the packets show:", markup=False, highlight=False)
    for lesson in traced.lessons:
        console.print(f"- {lesson.text}", markup=False, highlight=False)
        for line in traced.excerpt(lesson, width - 2):
            console.print("  " + line, markup=False, highlight=False, soft_wrap=True)
    for note in traced.notes:
        console.print(f"({note})", markup=False, highlight=False)


__all__ = ["ladder_lines", "show", "show_lessons", "unix_lines"]
