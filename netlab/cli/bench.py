"""``netlab bench``: netlab's server against baseline servers, one load generator."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import Progress

from .. import render
from ..bench.core import BASELINES, MODES, PINS, RELAY_BASELINES
from ..output import Outputs
from ..transports import COMPARE_SCHEMES
from . import common
from .common import JsonFileOpt, PlotOpt, TransportsOpt, app, completes, completes_list, emit, one_of
from .group import say


def _bench_mode(value: str) -> str:
    if value not in MODES:
        raise typer.BadParameter(f"unknown mode {value!r} (known: {', '.join(MODES)})")
    return value


def _bench_baselines(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    if names == ["none"]:
        return []
    unknown = [n for n in names if n not in BASELINES and n not in RELAY_BASELINES]
    if unknown or not names:
        raise typer.BadParameter(f"unknown baseline {(unknown or [value])[0]!r} (known: {', '.join(BASELINES)}, "
                                 f"or none; for relay: {', '.join(RELAY_BASELINES)})")
    return list(dict.fromkeys(names))


def _bench_levels(value: str) -> list[int]:
    try:
        levels = [int(n) for n in value.split(",") if n.strip()]
    except ValueError:
        raise typer.BadParameter(f"levels must be whole numbers, like 1,10,100: not {value!r}") from None
    if not levels or min(levels) < 1:
        raise typer.BadParameter("levels must be at least 1")
    return sorted(set(levels))


def _bench_pin(value: str) -> str:
    if value not in PINS:
        raise typer.BadParameter(f"--pin is {one_of(PINS)}, not {value!r}")
    return value


_BENCH = "Load"


@app.command(epilog="Example: netlab bench pingpong --transports tcp,unix --pin same --json-file bench.json "
                    "--plot bench.png")
def bench(
    mode: Annotated[str, typer.Argument(callback=_bench_mode, metavar="MODE", autocompletion=completes(lambda: list(MODES)),
                                        help=one_of(list(MODES)))],
    transports_opt: TransportsOpt = None,
    baselines: Annotated[str, typer.Option("--baselines", callback=_bench_baselines, metavar="LIST",
                                           autocompletion=completes_list(lambda: [*BASELINES, *RELAY_BASELINES, "none"]),
                                           help=f"baseline servers beside netlab's: {', '.join(BASELINES)} "
                                                f"(or none); for relay, baseline relays: "
                                                f"{', '.join(RELAY_BASELINES)}")] = ",".join(BASELINES),
    duration: Annotated[float, typer.Option(min=0.05, help="seconds measured per run")] = 2.0,
    warmup: Annotated[float, typer.Option(min=0.0, help="seconds of warm-up before each run, discarded")] = 0.5,
    repeats: Annotated[int, typer.Option(min=1, help="runs per server; figures are medians")] = 3,
    pin: Annotated[str, typer.Option(callback=_bench_pin, metavar="|".join(PINS), autocompletion=completes(lambda: list(PINS)),
                                     help="server and load generator on the same core, on different "
                                          "cores, or left to the scheduler")] = "same",
    size: Annotated[int, typer.Option(min=8, max=65000, rich_help_panel=_BENCH,
                                      help="message (or datagram) size in bytes")] = 64,
    connections: Annotated[int, typer.Option(min=1, rich_help_panel=_BENCH,
                                             help="pingpong and rate: connections (datagram sockets)")] = 1,
    rate: Annotated[Optional[float], typer.Option(min=0.001, rich_help_panel=_BENCH, metavar="MSGS_PER_S",
                                                  help="rate: messages per second, in all (default 5000); "
                                                       "relay: datagrams offered per second (default 20000)")]
    = None,
    levels: Annotated[str, typer.Option(rich_help_panel=_BENCH, metavar="LIST",
                                        help="concurrency: connection counts")] = "1,10,100,1000",
    hold: Annotated[int, typer.Option(min=0, rich_help_panel=_BENCH,
                                      help="concurrency: idle connections each server must hold (0: skip)")]
    = 10_000,
    chunk: Annotated[int, typer.Option(min=1, max=200_000, rich_help_panel=_BENCH,
                                       help="stream: bytes per write")] = 128 * 1024,
    timeout: Annotated[float, typer.Option(min=0.001, rich_help_panel=_BENCH,
                                           help="datagram reply timeout in seconds (then counted lost)")] = 0.2,
    iperf3: Annotated[bool, typer.Option("--iperf3/--no-iperf3",
                                         help="stream: run iperf3 too, when installed")] = True,
    before: Annotated[Optional[Path], typer.Option(
        "--before", metavar="DIR", help="also run the netlab server from another source tree (an older "
                                        "commit), for before/after ratios")] = None,
    details: Annotated[bool, typer.Option("--details", help="also show netlab's development targets and the raw "
                                                            "/proc/loadavg fields")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print every run and the summary as JSON (iperf3 -J "
                                                         "shape) instead of tables")] = False,
    json_file: JsonFileOpt = None,
    plot_file: PlotOpt = None,
) -> None:
    """Measure netlab's server against baseline servers (trio, asyncio, blocking threads; iperf3
    for stream) in one run, driven by one load generator in a process of its own. Prints the
    median of the repeats with their spread, and netlab's ratio to each baseline."""
    from ..bench.core import BenchSettings, planned_runs, plot, report, run_bench

    names = tuple(transports_opt or COMPARE_SCHEMES)
    try:
        settings = BenchSettings(mode, names, tuple(baselines), duration, warmup, repeats, size, connections, rate,
                                 tuple(_bench_levels(levels)), hold, chunk, timeout, pin, iperf3,
                                 before=str(before) if before else None)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    outputs = Outputs(json=json_file, plot=plot_file)
    outputs.check()
    err_console = common.err_console
    with Progress(console=err_console, transient=True, disable=not err_console.is_terminal) as progress:
        task = progress.add_task(f"bench {mode}", total=planned_runs(settings))
        result = run_bench(settings, progress=lambda label: progress.update(task, advance=1, description=label))
    emit(as_json, partial(report, result), partial(render.bench, common.out, result, details), outputs, partial(plot, result))
    for failure in result.failed:
        say(failure)
    if result.failed:
        raise typer.Exit(1)

