"""The `netlab` command: parse options, call the library, render. No socket logic here.

Exit codes come from the exception tree in `netlab.errors` (`exit_code`): 0 success; 1 a
runtime failure (refused, timed out, address in use), printed as one line
``netlab: error: ...``; 2 a usage error (bad address, unknown service); 130 interrupted.
Tables and the other views are drawn by `netlab.render`; output files are written by
`netlab.output`; serve, relay and raw --listen run until a signal through
`netlab.lifecycle`.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import trio
import typer
from rich.console import Console
from rich.progress import Progress
from typer.core import TyperGroup

from . import render
from .bench.core import BASELINES, MODES, PINS, RELAY_BASELINES
from .errors import AddressError, UsageError, exit_code, netlab_error
from .lifecycle import run_until_signalled
from .output import Outputs
from .runner import Limits, Server, open_client, run_chat, serve
from .services import SERVICES
from .transports import COMPARE_SCHEMES, TRANSPORTS, Address, parse_address

if TYPE_CHECKING:
    from .experiments.impair import Impairments
    from .experiments.kernel import KernelImpairments
    from .experiments.relay import Relay
    from .explore import RawEvent


class _NetlabGroup(TyperGroup):
    """Every command runs inside this: a netlab error (alone, or all of trio's exception
    group) becomes one line ``netlab: error: ...`` and the exit code the tree gives it;
    an interruption exits 130; anything else is a bug and keeps its traceback."""

    def invoke(self, ctx: Any) -> Any:  # Any: typer's (vendored) click.Context, which typer does not export
        try:
            return super().invoke(ctx)
        except BaseException as exc:
            code, error = exit_code(exc), netlab_error(exc)
            if code is None:
                raise
            if error is not None:
                _say(f"error: {error}")
            raise typer.Exit(code) from None


app = typer.Typer(
    cls=_NetlabGroup,
    help="netlab, a socket lab: one service core (echo, sum) over TCP, UDP, IPv6 and unix sockets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# piped output is not cut to 80 columns: a table a script reads must not be truncated
out = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def _one_of(names: Sequence[str]) -> str:
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else ", ".join(names)


def _address(value: str) -> Address:
    try:
        return parse_address(value)
    except AddressError as exc:
        raise typer.BadParameter(str(exc)) from None


def _service(value: Optional[str]) -> Optional[str]:
    if value is not None and value not in SERVICES:
        raise typer.BadParameter(f"unknown service {value!r} (known: {', '.join(SERVICES)})")
    return value


def _transport_names(value: Optional[str]) -> Optional[list[str]]:
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in COMPARE_SCHEMES]
    if unknown or not names:
        raise typer.BadParameter(f"unknown transport {unknown[0] if unknown else value!r} "
                                 f"(known: {', '.join(COMPARE_SCHEMES)})")
    return names


def _compare_services(value: str) -> list[str]:
    names = list(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
    unknown = [name for name in names if name not in ("echo", "sum")]
    if unknown or not names:
        raise typer.BadParameter(f"compare has the workloads echo and sum, not {(unknown or [value])[0]!r}")
    return names


TransportOpt = Annotated[Address, typer.Option("--transport", "-t", parser=_address, metavar="ADDR",
                                               help="where: tcp:HOST:PORT, udp:…, tcp6:[::1]:PORT, unix:PATH, "
                                                    "unix-dgram:@NAME (see `netlab transports`)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of tables")]


def _say(message: str) -> None:
    """One line on stderr, never wrapped or styled."""
    print(f"netlab: {message}", file=sys.stderr, flush=True)


def _wrote(path: Path) -> None:
    _say(f"wrote {path}")


def _print_json(document: object) -> None:
    print(json.dumps(document, indent=2), flush=True)


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="netlab: %(message)s", force=True)


_LIMITS = "Limits (see the README's Limits and safety)"


@app.command(epilog="Example: netlab serve --transport unix:/tmp/sum.sock --service sum")
def serve_cmd(
    transport: TransportOpt,
    service: Annotated[str, typer.Option("--service", "-s", callback=_service,
                                         help=f"what to serve: {', '.join(SERVICES)}")] = "echo",
    max_connections: Annotated[int, typer.Option(min=1, rich_help_panel=_LIMITS,
                                                 help="open connections at once; more get ERR busy")] = 1024,
    idle_timeout: Annotated[float, typer.Option(min=0.001, rich_help_panel=_LIMITS,
                                                help="seconds a connection may send nothing, or leave a reply "
                                                     "unread, before it is closed")] = 300.0,
    max_line: Annotated[int, typer.Option(min=1, rich_help_panel=_LIMITS,
                                          help="bytes in one request line; more gets ERR request too long")]
    = 64 * 1024,
    rate_limit: Annotated[Optional[float], typer.Option(min=0.001, rich_help_panel=_LIMITS,
                                                        help="datagram replies per second to one peer")] = None,
    grace: Annotated[float, typer.Option(min=0.0, rich_help_panel=_LIMITS,
                                         help="on SIGTERM or Ctrl-C, seconds to finish requests in flight")] = 1.0,
    allow_uid: Annotated[Optional[list[int]], typer.Option(rich_help_panel=_LIMITS,
                                                           help="unix sockets: accept only peers with this uid "
                                                                "(repeatable)")] = None,
    allow_gid: Annotated[Optional[list[int]], typer.Option(rich_help_panel=_LIMITS,
                                                           help="unix sockets: accept only peers with this gid "
                                                                "(repeatable)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log every connection")] = False,
) -> None:
    """Serve a service until SIGTERM or Ctrl-C, which drain it (a second Ctrl-C stops at once).
    Prints `listening ADDR` for each bound socket, with the limits in force."""
    limits = Limits(max_connections=max_connections, idle_timeout=idle_timeout, max_line=max_line,
                    rate_limit=rate_limit, grace=grace,
                    allow_uids=frozenset(allow_uid) if allow_uid else None,
                    allow_gids=frozenset(allow_gid) if allow_gid else None)
    _logging(verbose)

    listening = partial(render.serving, service=service, requested=transport, limits=limits)
    trio.run(partial(run_until_signalled, partial(serve, service, transport, limits=limits), started=listening,
                     drain=Server.drain, grace=limits.grace))


@app.command(epilog='Example: netlab send --transport tcp:127.0.0.1:7000 "2 3"')
def send(
    transport: TransportOpt,
    message: Annotated[str, typer.Argument(help="the request; for sum, two numbers: \"2 3\"")],
    service: Annotated[Optional[str], typer.Option(
        "--service", "-s", callback=_service,
        help="reply framing: sum (default) reads one line per request line; "
             "echo reads as many bytes as were sent")] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the reply", min=0.001)] = 5.0,
) -> None:
    """Send one request and print the reply. Exit 1 on refusal or timeout."""

    async def main() -> bytes:
        async with open_client(transport, service or "sum", timeout=timeout) as client:
            return await client.request(message.encode(), timeout=timeout)

    reply = trio.run(main)
    sys.stdout.buffer.write(reply if reply.endswith(b"\n") else reply + b"\n")
    sys.stdout.flush()


@app.command(epilog="Example: printf '1 2\\n3 4\\n' | netlab chat --transport tcp:127.0.0.1:7000")
def chat(
    transport: TransportOpt,
    timeout: Annotated[float, typer.Option(help="after the last input line, seconds to wait for replies",
                                           min=0.0)] = 5.0,
) -> None:
    """The lab's client: send each line of stdin, print what comes back. Works in a pipe."""

    from .explore.raw import read_lines  # os.read in a thread: safe to abandon when the server closes

    trio.run(partial(run_chat, transport, read_lines(sys.stdin.buffer), _write, timeout=timeout))


def _write(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


@app.command(epilog="Example: netlab transports --json")
def transports(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """The schemes netlab speaks: socket family and type, and what delivery each promises."""
    if as_json:
        print(json.dumps([{"scheme": t.scheme, "family": t.family_name, "type": t.socktype.name, "kind": t.kind,
                           "reliable": t.reliable, "ordered": t.ordered, "boundaries": t.boundaries,
                           "options": sorted(t.options), "summary": t.summary} for t in TRANSPORTS.values()],
                         indent=2))
        return
    render.transports(out, TRANSPORTS.values())


# -- impairments, shared by relay and compare ---------------------------------------------

_IMP = "Impairments (VALUE for both directions, or FORWARD/BACKWARD; forward = client to server)"
LossOpt = Annotated[Optional[str], typer.Option("--loss", metavar="P", rich_help_panel=_IMP,
                                                help="drop datagrams with probability P (0-1)")]
LossBurstOpt = Annotated[Optional[str], typer.Option("--loss-burst", metavar="P:R", rich_help_panel=_IMP,
                                                     help="Gilbert-Elliott bursts: enter with P, leave with R")]
DuplicateOpt = Annotated[Optional[str], typer.Option("--duplicate", metavar="P", rich_help_panel=_IMP,
                                                     help="send a datagram twice with probability P")]
ReorderOpt = Annotated[Optional[str], typer.Option("--reorder", metavar="P", rich_help_panel=_IMP,
                                                   help="hold a datagram back behind the next ones, probability P")]
CorruptOpt = Annotated[Optional[str], typer.Option("--corrupt", metavar="P", rich_help_panel=_IMP,
                                                   help="flip one bit of a datagram with probability P")]
DelayOpt = Annotated[Optional[str], typer.Option("--delay", metavar="MS", rich_help_panel=_IMP,
                                                 help="delay every packet or chunk by MS milliseconds")]
JitterOpt = Annotated[Optional[str], typer.Option("--jitter", metavar="MS", rich_help_panel=_IMP,
                                                  help="vary the delay by up to ±MS (at most the delay)")]
QueueOpt = Annotated[Optional[str], typer.Option("--queue", metavar="BYTES", rich_help_panel=_IMP,
                                                 help="queue behind the rate limit; datagrams over it drop")]
SliceOpt = Annotated[Optional[str], typer.Option("--slice", metavar="MIN:MAX", rich_help_panel=_IMP,
                                                 help="streams: re-chunk bytes into writes of MIN..MAX bytes")]
ResetOpt = Annotated[Optional[str], typer.Option("--reset-after", metavar="BYTES", rich_help_panel=_IMP,
                                                 help="streams: abort after BYTES bytes (RST on TCP; AF_UNIX has none)")]
CloseOpt = Annotated[Optional[str], typer.Option("--close-after", metavar="BYTES", rich_help_panel=_IMP,
                                                 help="streams: close cleanly after BYTES bytes")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", rich_help_panel=_IMP,
                                                help="seed for the impairment decisions (same seed, same decisions)")]


def _impairments(**texts: Optional[str]) -> tuple[Impairments, Impairments]:
    from .experiments.impair import ImpairmentError, impairments_from_text

    try:
        return impairments_from_text(texts)
    except ImpairmentError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command(epilog="Example: netlab relay --listen udp:127.0.0.1:9000 --to udp:127.0.0.1:7000 --loss 0.1 --seed 1")
def relay(
    listen: Annotated[Address, typer.Option("--listen", "-l", parser=_address, metavar="ADDR",
                                            help="where clients connect")],
    to: Annotated[Address, typer.Option("--to", parser=_address, metavar="ADDR", help="the server behind it")],
    loss: LossOpt = None, loss_burst: LossBurstOpt = None, duplicate: DuplicateOpt = None,
    reorder: ReorderOpt = None, corrupt: CorruptOpt = None, delay: DelayOpt = None, jitter: JitterOpt = None,
    rate: Annotated[Optional[str], typer.Option("--rate", metavar="BYTES_PER_S", rich_help_panel=_IMP,
                                                help="link rate in bytes/s (k, M, G suffixes)")] = None,
    queue: QueueOpt = None, slice_: SliceOpt = None, reset_after: ResetOpt = None, close_after: CloseOpt = None,
    seed: SeedOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log every connection")] = False,
) -> None:
    """Forward between two transports of the same kind, impairing traffic on the way.

    Ctrl-C stops it and prints what it did."""
    from .experiments.relay import run_relay

    forward, backward = _impairments(loss=loss, loss_burst=loss_burst, duplicate=duplicate, reorder=reorder,
                                     corrupt=corrupt, delay=delay, jitter=jitter, rate=rate, queue=queue,
                                     slice=slice_, reset_after=reset_after, close_after=close_after)
    _logging(verbose)
    relays: list[Relay] = []

    def listening(running: Relay) -> None:
        relays.append(running)
        render.relaying(running)

    try:
        trio.run(partial(run_until_signalled, partial(run_relay, listen, to, forward=forward, backward=backward,
                                                      seed=seed), started=listening))
    finally:
        for running in relays:
            _say(render.relay_summary(err_console, running))


@app.command(epilog="Example: netlab compare --loss 0.05 --delay 5 --jitter 2 --reorder 0.02 --duplicate 0.01 "
                    "--seed 1 --json compare.json --plot compare.png")
def compare(
    messages: Annotated[int, typer.Option("--messages", "--requests", "-n", min=1,
                                          help="messages per transport and service")] = 1000,
    transports_opt: Annotated[Optional[str], typer.Option(
        "--transports", callback=_transport_names,
        help=f"comma-separated subset of: {', '.join(COMPARE_SCHEMES)}")] = None,
    services: Annotated[str, typer.Option("--service", "--services", callback=_compare_services, metavar="LIST",
                                          help="workloads: echo, sum, or echo,sum")] = "echo,sum",
    size: Annotated[int, typer.Option(min=48, max=65000, help="echo message size in bytes")] = 64,
    rate: Annotated[Optional[float], typer.Option("--rate", min=0.001, metavar="MSGS_PER_S",
                                                  help="open loop: send at this rate (default: closed loop)")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="clients per transport, each with its own socket")] = 1,
    timeout: Annotated[Optional[float], typer.Option(min=0.001, help="seconds to wait for a reply "
                                                     "[default: 1, or scaled to the impairments]")] = None,
    loss: LossOpt = None, loss_burst: LossBurstOpt = None, duplicate: DuplicateOpt = None,
    reorder: ReorderOpt = None, corrupt: CorruptOpt = None, delay: DelayOpt = None, jitter: JitterOpt = None,
    link_rate: Annotated[Optional[str], typer.Option("--link-rate", metavar="BYTES_PER_S", rich_help_panel=_IMP,
                                                     help="the relay's --rate: link rate in bytes/s")] = None,
    queue: QueueOpt = None, slice_: SliceOpt = None, reset_after: ResetOpt = None, close_after: CloseOpt = None,
    seed: Annotated[int, typer.Option(rich_help_panel=_IMP, help="seed for probes and impairments")] = 1,
    parallel: Annotated[Optional[bool], typer.Option(
        "--parallel/--sequential", help="run the transports at once [default: only with impairments]")] = None,
    json_file: Annotated[Optional[Path], typer.Option("--json", help="write the figures (iperf3 -J shape)")] = None,
    plot_file: Annotated[Optional[Path], typer.Option("--plot", help="draw latency and losses to this PNG")] = None,
    kernel: Annotated[bool, typer.Option("--kernel", rich_help_panel=_IMP,
                                         help="make the loss in the kernel (an nftables rule; --link-rate: tbf) in a "
                                              "private network namespace per run, instead of the relay; needs root")]
    = False,
) -> None:
    """Send the same workload through every transport and check every reply.

    Through an impairing relay (or the kernel, with --kernel) if asked: what was lost,
    duplicated, reordered or corrupted, and how long it took."""
    from .experiments.compare import CompareSettings, conclusions, plot, report, run_compare
    from .experiments.kernel import kernel_start, run_compare_kernel

    forward, backward = _impairments(loss=loss, loss_burst=loss_burst, duplicate=duplicate, reorder=reorder,
                                     corrupt=corrupt, delay=delay, jitter=jitter, rate=link_rate, queue=queue,
                                     slice=slice_, reset_after=reset_after, close_after=close_after)
    kimp = _kernel_impairments(forward, backward) if kernel else None
    names = tuple(transports_opt or COMPARE_SCHEMES)
    try:
        settings = CompareSettings(names, tuple(services), messages, size, rate, concurrency, timeout, forward,
                                   backward, seed, parallel)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    outputs = Outputs(json=json_file, plot=plot_file)
    outputs.check()
    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task("comparing", total=messages * len(names) * len(services))

        def tick() -> None:
            progress.advance(task)

        if kimp is not None:
            results = trio.run(run_compare_kernel, settings, kimp, tick)
        else:
            results = trio.run(partial(run_compare, settings, tick=tick))
    render.compare(out, settings, results, [] if kimp is not None else conclusions(settings))
    if kimp is not None:
        render.kernel_compare(out, results, conclusions(settings, kimp))
    for r in results:
        if r.error:
            _say(f"{r.transport}/{r.service}: {r.error}")

    def json_report() -> dict[str, Any]:
        data = report(settings, results)
        if kimp is not None:
            data["start"]["kernel"] = kernel_start(settings, kimp, results)
        return data

    outputs.write(json_report, partial(plot, results), wrote=_wrote)
    if any(r.error for r in results):
        raise typer.Exit(1)


def _kernel_impairments(forward: Impairments, backward: Impairments) -> KernelImpairments:
    from .experiments.impair import ImpairmentError
    from .experiments.kernel import KernelImpairments

    try:
        return KernelImpairments.from_impairments(forward, backward)
    except ImpairmentError as exc:
        raise typer.BadParameter(str(exc), param_hint="--kernel") from None


# -- bench ---------------------------------------------------------------------------------


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
        raise typer.BadParameter(f"--pin is {_one_of(PINS)}, not {value!r}")
    return value


_BENCH = "Load"


@app.command(epilog="Example: netlab bench pingpong --transports tcp,unix --pin same --json bench.json "
                    "--plot bench.png")
def bench(
    mode: Annotated[str, typer.Argument(callback=_bench_mode, metavar="MODE",
                                        help=_one_of(list(MODES)))],
    transports_opt: Annotated[Optional[str], typer.Option(
        "--transports", callback=_transport_names,
        help=f"comma-separated subset of: {', '.join(COMPARE_SCHEMES)}")] = None,
    baselines: Annotated[str, typer.Option("--baselines", callback=_bench_baselines, metavar="LIST",
                                           help=f"baseline servers beside netlab's: {', '.join(BASELINES)} "
                                                f"(or none); for relay, baseline relays: "
                                                f"{', '.join(RELAY_BASELINES)}")] = ",".join(BASELINES),
    duration: Annotated[float, typer.Option(min=0.05, help="seconds measured per run")] = 2.0,
    warmup: Annotated[float, typer.Option(min=0.0, help="seconds of warm-up before each run, discarded")] = 0.5,
    repeats: Annotated[int, typer.Option(min=1, help="runs per server; figures are medians")] = 3,
    pin: Annotated[str, typer.Option(callback=_bench_pin, metavar="|".join(PINS),
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
    json_file: Annotated[Optional[Path], typer.Option("--json", help="write every run and the summary "
                                                                     "(iperf3 -J shape)")] = None,
    plot_file: Annotated[Optional[Path], typer.Option("--plot", help="draw latency distributions and "
                                                                     "throughput to this PNG")] = None,
) -> None:
    """Measure netlab's server against baseline servers (trio, asyncio, blocking threads; iperf3
    for stream) in one run, driven by one load generator in a process of its own. Prints the
    median of the repeats with their spread, and netlab's ratio to each baseline."""
    from .bench.core import BenchSettings, planned_runs, plot, report, run_bench

    names = tuple(transports_opt or COMPARE_SCHEMES)
    try:
        settings = BenchSettings(mode, names, tuple(baselines), duration, warmup, repeats, size, connections, rate,
                                 tuple(_bench_levels(levels)), hold, chunk, timeout, pin, iperf3,
                                 before=str(before) if before else None)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    outputs = Outputs(json=json_file, plot=plot_file)
    outputs.check()
    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task(f"bench {mode}", total=planned_runs(settings))
        result = run_bench(settings, progress=lambda label: progress.update(task, advance=1, description=label))
    render.bench(out, result)
    for failure in result.failed:
        _say(failure)
    outputs.write(partial(report, result), partial(plot, result), indent=1, wrote=_wrote)
    if result.failed:
        raise typer.Exit(1)


# -- named experiments ---------------------------------------------------------------------

experiment_app = typer.Typer(help="Named experiments: each answers one classic question with measured figures.",
                             no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")


@experiment_app.command("list", epilog="Example: netlab experiment list")
def experiment_list(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """The experiments, with the question each answers and the options it reads."""
    from .experiments import EXPERIMENTS

    if as_json:
        print(json.dumps([{"name": e.name, "question": e.question, "options": list(e.uses), "plot": e.plot is not None}
                          for e in EXPERIMENTS.values()], indent=2))
        return
    out.print(render.table(["name", "question", "options"],
                           ([e.name, e.question, ", ".join(f"--{o}" for o in e.uses) or "-"]
                            for e in EXPERIMENTS.values())))


@experiment_app.command("run", epilog="Example: netlab experiment run boundaries --json")
def experiment_run(
    name: Annotated[str, typer.Argument(help="an experiment from `netlab experiment list`")],
    messages: Annotated[int, typer.Option("--messages", "-n", min=1, help="messages to send")] = 1000,
    size: Annotated[Optional[int], typer.Option(min=1, help="message size in bytes")] = None,
    loss: Annotated[float, typer.Option(min=0.0, max=1.0, help="loss probability, where an experiment adds loss")]
    = 0.1,
    rcvbuf: Annotated[Optional[int], typer.Option(min=1, help="receiver's SO_RCVBUF in bytes")] = None,
    kernel: Annotated[bool, typer.Option("--kernel", help="make the loss in the kernel, in a private network "
                                                          "namespace (needs root or CAP_NET_ADMIN)")] = False,
    seed: Annotated[int, typer.Option(help="seed for random decisions")] = 1,
    timeout: Annotated[float, typer.Option(min=0.001, help="seconds to wait for a reply")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON instead of tables")] = False,
    plot_file: Annotated[Optional[Path], typer.Option("--plot", help="draw the result to this PNG, "
                                                                     "where the experiment has a plot")] = None,
) -> None:
    """Run one named experiment: a table of what was measured, then what the figures show."""
    from .experiments import EXPERIMENTS, ExperimentOptions

    experiment = EXPERIMENTS.get(name)
    if experiment is None:
        raise typer.BadParameter(f"unknown experiment {name!r} (known: {', '.join(EXPERIMENTS)})",
                                 param_hint="NAME")
    draw = experiment.plot
    if plot_file is not None and draw is None:
        raise typer.BadParameter(f"the {name} experiment has no plot", param_hint="--plot")
    options = ExperimentOptions(messages=messages, size=size, loss=loss, rcvbuf=rcvbuf, kernel=kernel, seed=seed,
                                timeout=timeout)
    result = trio.run(experiment.run, options)
    if as_json:
        print(json.dumps(result.as_json(), indent=2))
    else:
        out.print(f"[bold]{experiment.name}[/bold]: {experiment.question}  ({result.mode})")
        for table_data in result.tables:
            out.print(render.result_table(table_data))
        for finding in result.findings:
            out.print(f"- {finding}", highlight=False)
    if draw is not None:
        Outputs(plot=plot_file).write(draw=partial(draw, result), wrote=_wrote)


# -- the lecture's exploration: host, resolve, constants, raw, addr explain -------------


@app.command(epilog="Example: netlab host --json")
def host(as_json: JsonOpt = False) -> None:
    """This machine: its host name, gethostbyname(_ex) of it, and every interface's addresses."""
    from .explore import host_info

    info = host_info()
    if as_json:
        _print_json(info.as_dict())
        return
    render.host(out, info)


def _family_opt(value: Optional[str]) -> Optional[str]:
    from .explore.resolve import FAMILIES

    if value is not None and value.lower() not in FAMILIES:
        raise typer.BadParameter(f"{value!r}: use 4, 6 or unix")
    return value


def _type_opt(value: Optional[str]) -> Optional[str]:
    from .explore.resolve import TYPES

    if value is not None and value.lower() not in TYPES:
        raise typer.BadParameter(f"{value!r}: use stream or dgram")
    return value


@app.command(epilog="Example: netlab resolve localhost http --canonical")
def resolve(
    host: Annotated[str, typer.Argument(help="a host name or address; with --family unix, a path or @name")],
    service: Annotated[Optional[str], typer.Argument(help="a service name (http) or port number (80)")] = None,
    family: Annotated[Optional[str], typer.Option("--family", "-f", callback=_family_opt, metavar="4|6|unix",
                                                  help="only this family (unix: HOST is the path; "
                                                       "getaddrinfo has no AF_UNIX)")] = None,
    socktype: Annotated[Optional[str], typer.Option("--type", callback=_type_opt, metavar="stream|dgram",
                                                    help="only this socket type")] = None,
    canonical: Annotated[bool, typer.Option("--canonical", help="ask for the canonical name (AI_CANONNAME)")] = False,
    as_json: JsonOpt = False,
) -> None:
    """getaddrinfo, one row per result; each row's address pastes into --transport."""
    from .explore import resolve as do_resolve

    result = trio.run(partial(do_resolve, host, service, family=family, socktype=socktype, canonical=canonical))
    if as_json:
        _print_json(result.as_dict())
        return
    render.resolution(out, result, canonical)


@app.command(epilog="Example: netlab constants IPPROTO_")
def constants(
    prefix: Annotated[Optional[str], typer.Argument(help="AF_, SOCK_, IPPROTO_, SO_, MSG_, TCP_, ... "
                                                         "(any case; leave out to list every prefix)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The socket module's constants with a prefix: value, every name sharing it, what it means."""
    from .explore import constants as find_constants
    from .explore import prefixes

    if prefix is None:
        counts = prefixes()
        if as_json:
            _print_json({"prefixes": counts})
            return
        render.prefixes(out, counts)
        return
    result = find_constants(prefix)
    if as_json:
        _print_json(result.as_dict())
        return
    render.constants(out, result)


def _escaped(value: Optional[str]) -> Optional[bytes]:
    from .explore import decode_escapes

    if value is None:
        return None
    try:
        return decode_escapes(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command(epilog="Example: netlab raw tcp:127.0.0.1:8123 --send 'GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n'")
def raw(
    address: Annotated[Address, typer.Argument(parser=_address, metavar="ADDR",
                                               help="where to connect (or, with --listen, where to listen)")],
    send: Annotated[Optional[bytes], typer.Option(
        "--send", parser=_escaped, metavar="TEXT",
        help="send this instead of stdin; escapes \\r \\n \\t \\0 \\\\ \\xNN. On a stream the write side "
             "stays open (see --eof); on datagrams it is one datagram")] = None,
    timeout: Annotated[float, typer.Option(
        help="after the input is done, stop once nothing has arrived for this many seconds "
             "(also the connect timeout)", min=0.0)] = 5.0,
    nbytes: Annotated[Optional[int], typer.Option("--bytes", min=0, help="stop after this many bytes")] = None,
    eof: Annotated[Optional[bool], typer.Option(
        "--eof/--no-eof", help="half-close (shutdown SHUT_WR) after sending; default: only when stdin "
                               "reaches EOF, never after --send")] = None,
    hexdump: Annotated[bool, typer.Option("--hex", help="show a hexdump instead of the raw bytes")] = False,
    listen: Annotated[bool, typer.Option("--listen", "-l", help="listen on ADDR and print what arrives")] = False,
    reply: Annotated[Optional[bytes], typer.Option(
        "--reply", parser=_escaped, metavar="TEXT",
        help="with --listen: answer each client (after its first data, then half-close) or each datagram")] = None,
    count: Annotated[Optional[int], typer.Option(
        "--count", min=0, help="with --listen: stop after this many clients or datagrams")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no status line on stderr")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON: one document at the end; with "
                                                         "--listen, one line per event")] = False,
) -> None:
    """netcat over any transport: send, print what comes back (stdout, byte-exact on streams)."""
    if listen:
        if send is not None or nbytes is not None or eof is not None:
            raise UsageError("--send, --bytes and --eof are for the client side, not --listen")
        _raw_listen(address, reply, count, hexdump, as_json)
        return
    if reply is not None or count is not None:
        raise UsageError("--reply and --count go with --listen")
    _raw_client(address, send, timeout, nbytes, eof, hexdump, quiet, as_json)


def _raw_client(address: Address, send: Optional[bytes], timeout: float, nbytes: Optional[int],
                eof: Optional[bool], hexdump: bool, quiet: bool, as_json: bool) -> None:
    from .explore import raw_client
    from .explore.raw import read_chunks, read_lines

    datagram = address.transport.boundaries  # one read per message: show where each begins
    source = None
    if send is None:
        source = read_lines(sys.stdin.buffer) if datagram else read_chunks(sys.stdin.buffer)
    shown = {} if as_json else {"on_event": partial(render.raw_received, hexdump=hexdump, datagram=datagram)}
    result = trio.run(partial(raw_client, address, send, source=source, timeout=timeout, max_bytes=nbytes, eof=eof,
                              **shown))
    if as_json:
        _print_json(result.as_dict())
    elif not quiet:
        _say(render.raw_summary(result, address, timeout=timeout, nbytes=nbytes, datagram=datagram))


def _raw_listen(address: Address, reply: Optional[bytes], count: Optional[int], hexdump: bool,
                as_json: bool) -> None:
    from .explore import raw_listen

    def on_event(event: RawEvent) -> None:
        if as_json:
            print(json.dumps(event.as_dict()), flush=True)
        else:
            render.raw_listened(event, hexdump=hexdump)

    trio.run(partial(run_until_signalled, partial(raw_listen, address, reply=reply, count=count, on_event=on_event)))


def _address_text(value: str) -> str:
    _address(value)
    return value


addr_app = typer.Typer(help="Addresses: how netlab reads one, and what the kernel makes of it.",
                       epilog="Example: netlab addr explain unix:/tmp/sum.sock",
                       no_args_is_help=True, add_completion=False,
                       context_settings={"help_option_names": ["-h", "--help"]})
app.add_typer(addr_app, name="addr")


@addr_app.command(epilog="Example: netlab addr explain 'tcp:127.0.0.1:7000?rcvbuf=65536&backlog=16'")
def explain(
    address: Annotated[str, typer.Argument(callback=_address_text, metavar="ADDR",
                                           help="any netlab address: tcp:HOST:PORT, udp6:[::1]:53, unix:PATH, ...")],
    as_json: JsonOpt = False,
) -> None:
    """How netlab reads ADDR, the socket calls it makes, and what the kernel applies (a throwaway bind)."""
    from .explore import explain as do_explain

    result = trio.run(do_explain, address)
    if as_json:
        _print_json(result.as_dict())
        return
    render.explanation(out, result)


# typer names commands after functions; `serve` is taken by the library import
serve_cmd_info = app.registered_commands[0]
serve_cmd_info.name = "serve"


def main() -> None:
    app()
