"""The experiment commands: relay, compare, and the named experiments (``experiment list``,
``experiment run``)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import trio
import typer
from rich.progress import Progress

from .. import render
from ..errors import UsageError
from ..lifecycle import run_until_signalled
from ..output import Outputs
from ..transports import COMPARE_SCHEMES, Address
from . import common
from .common import (JsonFileOpt, JsonOpt, PlotOpt, TransportsOpt, address_value, app, command_group,
                     complete_experiments, completes_list, emit, log_to_stderr, print_json, wrote)
from .group import say
from .impairments import (LINK_RATE, PANEL, ImpairmentTexts, SeedOpt, impairment_options, kernel_impairments,
                          parse_impairments)

if TYPE_CHECKING:
    from ..experiments.relay import Relay


def _compare_services(value: str) -> list[str]:
    names = list(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
    unknown = [name for name in names if name not in ("echo", "sum")]
    if unknown or not names:
        raise typer.BadParameter(f"compare has the workloads echo and sum, not {(unknown or [value])[0]!r}")
    return names


@app.command(epilog="Example: netlab relay --listen udp:127.0.0.1:9000 --to udp:127.0.0.1:7000 --loss 0.1 --seed 1")
@impairment_options()
def relay(
    listen: Annotated[Address, typer.Option("--listen", "-l", parser=address_value, metavar="ADDR",
                                            help="where clients connect")],
    to: Annotated[Address, typer.Option("--to", parser=address_value, metavar="ADDR", help="the server behind it")],
    *,
    impairments: ImpairmentTexts,
    seed: SeedOpt = None,
    max_connections: Annotated[int, typer.Option(min=1, help="stream connections open at once; more are "
                                                             "closed at once and counted")] = 1024,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log every connection")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON lines: one per bound socket, and what the "
                                                         "relay did when it stops")] = False,
) -> None:
    """Forward between two transports of the same kind, impairing traffic on the way.

    Ctrl-C stops it and prints what it did."""
    from ..experiments.relay import run_relay

    forward, backward = parse_impairments(impairments)
    log_to_stderr(verbose)
    relays: list[Relay] = []

    def listening(running: Relay) -> None:
        relays.append(running)
        render.relaying(running, as_json=as_json)

    try:
        trio.run(partial(run_until_signalled, partial(run_relay, listen, to, forward=forward, backward=backward,
                                                      seed=seed, max_connections=max_connections),
                         started=listening))
    finally:
        for running in relays:
            if as_json:
                print_json({"event": "stopped", "stats": running.stats.as_dict()}, indent=None)
            else:
                say(render.relay_summary(common.err_console, running))


@app.command(epilog="Example: netlab compare --loss 0.05 --delay 5 --jitter 2 --reorder 0.02 --duplicate 0.01 "
                    "--seed 1 --json-file compare.json --plot compare.png")
@impairment_options(rate=LINK_RATE)
def compare(
    messages: Annotated[int, typer.Option("--messages", "--requests", "-n", min=1,
                                          help="messages per transport and service")] = 1000,
    transports_opt: TransportsOpt = None,
    services: Annotated[str, typer.Option("--service", "--services", callback=_compare_services, metavar="LIST",
                                          autocompletion=completes_list(lambda: ["echo", "sum"]),
                                          help="workloads: echo, sum, or echo,sum")] = "echo,sum",
    size: Annotated[int, typer.Option(min=48, max=65000, help="echo message size in bytes")] = 64,
    rate: Annotated[Optional[float], typer.Option("--rate", min=0.001, metavar="MSGS_PER_S",
                                                  help="open loop: send at this rate (default: closed loop)")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="clients per transport, each with its own socket")] = 1,
    timeout: Annotated[Optional[float], typer.Option(min=0.001, help="seconds to wait for a reply "
                                                     "[default: 1, or scaled to the impairments]")] = None,
    *,
    impairments: ImpairmentTexts,
    seed: Annotated[int, typer.Option(rich_help_panel=PANEL, help="seed for probes and impairments")] = 1,
    parallel: Annotated[Optional[bool], typer.Option(
        "--parallel/--sequential", help="run the transports at once [default: only with impairments]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as JSON (iperf3 -J shape) instead "
                                                         "of tables")] = False,
    json_file: JsonFileOpt = None,
    plot_file: PlotOpt = None,
    kernel: Annotated[bool, typer.Option("--kernel", rich_help_panel=PANEL,
                                         help="make the loss in the kernel (an nftables rule; --link-rate: tbf) in a "
                                              "private network namespace per run, instead of the relay; needs root")]
    = False,
) -> None:
    """Send the same workload through every transport and check every reply.

    Through an impairing relay (or the kernel, with --kernel) if asked: what was lost,
    duplicated, reordered or corrupted, and how long it took."""
    from ..experiments.compare import CompareSettings, conclusions, plot, report, run_compare
    from ..experiments.kernel import kernel_start, run_compare_kernel

    forward, backward = parse_impairments(impairments)
    kimp = kernel_impairments(forward, backward) if kernel else None
    names = tuple(transports_opt or COMPARE_SCHEMES)
    try:
        settings = CompareSettings(names, tuple(services), messages, size, rate, concurrency, timeout, forward,
                                   backward, seed, parallel)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    outputs = Outputs(json=json_file, plot=plot_file)
    outputs.check()
    err_console = common.err_console
    with Progress(console=err_console, transient=True, disable=not err_console.is_terminal) as progress:
        task = progress.add_task("comparing", total=messages * len(names) * len(services))

        def tick() -> None:
            progress.advance(task)

        if kimp is not None:
            results = trio.run(run_compare_kernel, settings, kimp, tick)
        else:
            results = trio.run(partial(run_compare, settings, tick=tick))

    def tables() -> None:
        render.compare(common.out, settings, results, [] if kimp is not None else conclusions(settings))
        if kimp is not None:
            render.kernel_compare(common.out, results, conclusions(settings, kimp))

    def json_report() -> dict[str, Any]:
        data = report(settings, results)
        if kimp is not None:
            data["start"]["kernel"] = kernel_start(settings, kimp, results)
        return data

    emit(as_json, json_report, tables, outputs, partial(plot, results))
    for r in results:
        if r.error:
            say(f"{r.transport}/{r.service}: {r.error}")
    if any(r.error for r in results):
        raise typer.Exit(1)


# -- named experiments ---------------------------------------------------------------------

experiment_app = command_group("experiment",
                               help="Named experiments: each answers one classic question with measured figures.")


@experiment_app.command("list", epilog="Example: netlab experiment list")
def experiment_list(as_json: JsonOpt = False) -> None:
    """The experiments, with the question each answers and the options it reads."""
    from ..experiments import EXPERIMENTS

    emit(as_json, lambda: [{"name": e.name, "question": e.question, "options": list(e.uses),
                            "plot": e.plot is not None} for e in EXPERIMENTS.values()],
         lambda: common.out.print(render.table(["name", render.Column("question", wrap=True), "options"],
                                               ([e.name, e.question, ", ".join(f"--{o}" for o in e.uses) or "-"]
                                                for e in EXPERIMENTS.values()))))


@experiment_app.command("run", epilog="Example: netlab experiment run boundaries --json")
def experiment_run(
    name: Annotated[str, typer.Argument(help="an experiment from `netlab experiment list`",
                                        autocompletion=complete_experiments)],
    messages: Annotated[int, typer.Option("--messages", "-n", min=1, help="messages to send")] = 1000,
    size: Annotated[Optional[int], typer.Option(min=1, help="message size in bytes")] = None,
    loss: Annotated[float, typer.Option(min=0.0, max=1.0, help="loss probability, where an experiment adds loss")]
    = 0.1,
    rcvbuf: Annotated[Optional[int], typer.Option(min=1, help="receiver's SO_RCVBUF in bytes")] = None,
    kernel: Annotated[bool, typer.Option("--kernel", help="make the loss in the kernel, in a private network "
                                                          "namespace (needs root or CAP_NET_ADMIN)")] = False,
    seed: Annotated[int, typer.Option(help="seed for random decisions")] = 1,
    timeout: Annotated[float, typer.Option(min=0.001, help="seconds to wait for a reply")] = 1.0,
    as_json: JsonOpt = False,
    json_file: JsonFileOpt = None,
    plot_file: Annotated[Optional[Path], typer.Option("--plot", metavar="FILE",
                                                      help="draw the result to FILE where the experiment has a plot "
                                                           "(.png, .svg, .pdf, ...; no extension: .png is added)")]
    = None,
    trace: Annotated[bool, typer.Option("--trace", help="capture its packets (in a private network namespace) and "
                                                        "show the ones its findings rest on")] = False,
    pcap: Annotated[Optional[Path], typer.Option("--pcap", metavar="FILE",
                                                 help="with --trace: also write the packets to FILE (pcap)")] = None,
) -> None:
    """Run one named experiment: a table of what was measured, then what the figures show."""
    from ..experiments import EXPERIMENTS, ExperimentOptions

    experiment = EXPERIMENTS.get(name)
    if experiment is None:
        raise typer.BadParameter(f"unknown experiment {name!r} (known: {', '.join(EXPERIMENTS)})",
                                 param_hint="NAME")
    draw = experiment.plot
    if plot_file is not None and draw is None:
        raise typer.BadParameter(f"the {name} experiment has no plot", param_hint="--plot")
    if pcap is not None and not trace:
        raise UsageError("--pcap goes with --trace")
    options = ExperimentOptions(messages=messages, size=size, loss=loss, rcvbuf=rcvbuf, kernel=kernel, seed=seed,
                                timeout=timeout)
    outputs = Outputs(json=json_file, plot=plot_file)
    outputs.check()
    if pcap is not None:
        Outputs(json=pcap).check()
    traced = None
    if trace:
        from ..trace.lessons import trace_experiment

        traced = trio.run(trace_experiment, name, options)
        result = traced.result
    else:
        result = trio.run(experiment.run, options)

    def tables() -> None:
        common.out.print(f"[bold]{experiment.name}[/bold]: {experiment.question}  ({result.mode})")
        for table_data in result.tables:
            common.out.print(render.result_table(table_data))
        for finding in result.findings:
            common.out.print(f"- {finding}", highlight=False)
        if traced is not None:
            from ..trace.view import show_lessons

            show_lessons(common.out, traced)

    emit(as_json, result.as_json if traced is None else traced.as_json, tables, outputs,
         None if draw is None else partial(draw, result))
    if traced is not None and pcap is not None:
        from ..trace import write_pcap

        write_pcap(pcap, sorted((f for frames in traced.frames.values() for f in frames), key=lambda f: f.time))
        wrote(pcap)

