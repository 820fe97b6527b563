"""``netlab check --trace``: the packets of a case that went wrong.

Inside the isolated check's namespaces (`netlab.check.inside`), each case runs under a
capture of every frame on the namespace's interfaces (`netlab.trace.capture`: refused in
the host's own namespace, bounded by `CASE_LIMITS`). The program under test, its restarts
and every probe live in that namespace, so what is captured is the case's conversation and
nothing else. A case that passes or is skipped drops its frames; one that fails (or warns,
which a rubric may make a failure) keeps them, on its `CaseResult`:

* ``packets``: the ladder (`netlab.trace.Ladder`): the conversations, then a line per
  packet, at most `WIDTH` columns, e.g. ``T1 ... SYN``, ``PSH ACK 3 "2 3"``, ``RST ACK``;
* ``pcap``: the same frames as a pcap file's bytes (Wireshark, ``tcpdump -r``).

The report carries both back to the parent (`CheckReport.as_json`); ``netlab check`` prints
the ladder under the case and writes the pcap beside a ``--junit`` or ``--gradescope``
report (`pcap_files`). Capturing needs the namespaces: without them (``--no-namespaces``,
or a machine that cannot make them) there is nothing of the check's own to capture, and
`check_usage` or the report's isolation note says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import trio

from ..errors import PrivilegeError
from ..netns import refuse_host
from ..trace.capture import Capture, Frames, Limits
from ..trace.ladder import Ladder
from ..trace.pcap import pcap_bytes
from .report import CaseResult, CheckReport

#: the ladder's width, as `netlab trace` draws it
WIDTH = 80
#: what one case's capture keeps at most (a case's conversation is a few dozen packets; the
#: large echo case a few megabytes)
CASE_LIMITS = Limits(packets=4000, bytes=8 * 1024 * 1024)
#: after a failed case, how long the capture goes on for the last segments of a close
LINGER = 0.05
#: the outcomes whose packets are kept
KEPT = ("fail", "warn")
#: the end of the report's isolation note when --trace could not be honoured (no namespaces)
NOT_TRACED = "; --trace kept no packets: it captures in the namespaces netlab makes for the program it checks"
#: the name of one check's pcap files (a folder's are named after each submission)
ONE_CHECK = "check"


def ladder_lines(frames: Frames, *, unix: bool = False) -> tuple[str, ...]:
    """The conversations and the ladder of a capture, each line at most `WIDTH` columns; a
    sentence in parentheses where there is nothing to draw, or the capture was cut short."""
    ladder = Ladder(frames.packets())
    if ladder.rows:
        lines = [_fit(line) for line in ladder.legend()] + [""] + ladder.lines(WIDTH)
    elif unix:
        lines = ["(no packets: unix sockets never reach the network stack)"]
    else:
        lines = ["(no packets were sent while this case ran)"]
    if frames.stopped_by is not None:
        lines.append(f"(the capture stopped at its limit of {frames.stopped_by}: the rest is not shown)")
    if frames.kernel_drops:
        lines.append(f"({frames.kernel_drops} frames were dropped by the kernel: the capture's buffer was full)")
    return tuple(lines)


def _fit(line: str) -> str:
    return line if len(line) <= WIDTH else line[: WIDTH - 1] + "…"


async def traced(run: Callable[[], Awaitable[CaseResult]], *, trace: bool, host_netns: str | None,
                 seconds: float, unix: Callable[[], bool] = lambda: False) -> CaseResult:
    """Run one case (`run`) under a capture when `trace` and this process is in namespaces
    of its own (`host_netns`: the host's network namespace, which a capture refuses; None:
    not isolated, nothing captured); the case's result, with its packets if it failed or
    warned. `seconds` bounds the capture (the case's hard deadline and a margin); `unix`
    says, after the case, whether it talked over unix sockets (then no packet is expected).

    Raises: NetlabError (PrivilegeError) if this is the host's namespace: never capture there."""
    if not trace or host_netns is None:
        return await run()
    refuse_host(host_netns)
    try:
        running = Capture(dataclasses.replace(CASE_LIMITS, seconds=seconds))
    except (PrivilegeError, OSError) as exc:
        result = await run()
        if result.outcome not in KEPT:
            return result
        return dataclasses.replace(result, packets=(f"(no packets: the capture could not start: {exc})",))
    try:
        result = await run()
        if result.outcome in KEPT:
            await trio.sleep(LINGER)  # the last segments of a close the case ended with
    finally:
        frames = running.stop(linger=0)
    if result.outcome not in KEPT:
        return result
    return dataclasses.replace(result, packets=ladder_lines(frames, unix=unix()), pcap=pcap_bytes(frames.frames))


def pcap_files(report: CheckReport, name: str, directories: Sequence[Path]) -> list[tuple[Path, bytes]]:
    """Where a report's pcaps go, and what each holds: ``DIR/NAME.CASE.pcap`` in each of
    `directories` (those of its ``--junit`` and ``--gradescope`` reports) for each case
    that kept its packets. `name` is the submission's (`grading.submission_names`), or
    `ONE_CHECK` for one check."""
    found: list[tuple[Path, bytes]] = []
    for directory in dict.fromkeys(directories):
        for case in report.cases:
            if case.pcap is not None:
                found.append((directory / f"{name}.{case.id}.pcap", case.pcap))
    return found


__all__ = ["CASE_LIMITS", "KEPT", "NOT_TRACED", "ONE_CHECK", "WIDTH", "ladder_lines", "pcap_files", "traced"]
