"""The `netlab` command: parse options, call the library, render. No socket logic here.

Exit codes: 0 success; 1 a runtime failure (refused, timed out, address in use), printed
as one line ``netlab: error: ...``; 2 a usage error (bad address, unknown service);
130 interrupted.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from functools import partial
from pathlib import Path
from typing import Annotated, Optional

import trio
import typer
from rich import box
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from .errors import AddressError, NetlabError
from .runner import Limits, open_client, run_chat, serve
from .services import SERVICES
from .transports import COMPARE_SCHEMES, TRANSPORTS, Address, parse_address

app = typer.Typer(
    help="netlab, a socket lab: one service core (echo, sum) over TCP, UDP, IPv6 and unix sockets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# piped output is not cut to 80 columns: a table a script reads must not be truncated
out = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


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


def _say(message: str) -> None:
    """One line on stderr, never wrapped or styled."""
    print(f"netlab: {message}", file=sys.stderr, flush=True)


def _fail(exc: BaseException) -> typer.Exit:
    _say(f"error: {exc}")
    return typer.Exit(2 if isinstance(exc, AddressError) else 1)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _run(async_fn, *args):
    """trio.run with netlab's error policy: one clear line, no traceback."""
    try:
        return trio.run(async_fn, *args)
    except BaseException as exc:
        leaves = _leaves(exc)
        if all(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
            raise typer.Exit(130) from None
        failures = [leaf for leaf in leaves if isinstance(leaf, NetlabError)]
        if failures and len(failures) == len(leaves):
            raise _fail(failures[0]) from None
        raise


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
    if (allow_uid or allow_gid) and (transport.transport.target != "unix" or transport.transport.kind == "datagram"):
        raise typer.BadParameter("--allow-uid/--allow-gid need a unix or unix-seq address: only those "
                                 "sockets carry the peer's credentials (SO_PEERCRED)", param_hint="--allow-uid")
    _logging(verbose)
    logger = logging.getLogger("netlab")
    forced = False

    async def main() -> None:
        nonlocal forced
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                server = await nursery.start(partial(serve, service, transport, limits=limits))
                for bound in server.bound:
                    print(f"listening {bound}  service={service}  requested={transport}  {limits.describe()}",
                          flush=True)
                    if bound.is_wildcard:
                        logger.warning("warning: %s listens on all interfaces: anyone who can reach this "
                                       "machine can connect", bound)
                async for signum in signals:
                    if server.draining:  # a second signal: stop now
                        logger.info("%s again: stopping now", signal.Signals(signum).name)
                        forced = True
                        nursery.cancel_scope.cancel()
                        break
                    logger.info("%s: draining (up to %g s for requests in flight; Ctrl-C again to stop now)",
                                signal.Signals(signum).name, limits.grace)
                    nursery.start_soon(_drain_then_stop, server, nursery.cancel_scope)

    _run(main)
    if forced:
        raise typer.Exit(130)


async def _drain_then_stop(server, scope: trio.CancelScope) -> None:
    await server.drain()
    scope.cancel()


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

    reply = _run(main)
    sys.stdout.buffer.write(reply if reply.endswith(b"\n") else reply + b"\n")
    sys.stdout.flush()


@app.command(epilog="Example: printf '1 2\\n3 4\\n' | netlab chat --transport tcp:127.0.0.1:7000")
def chat(
    transport: TransportOpt,
    timeout: Annotated[float, typer.Option(help="after the last input line, seconds to wait for replies",
                                           min=0.0)] = 5.0,
) -> None:
    """The lab's client: send each line of stdin, print what comes back. Works in a pipe."""

    async def lines():
        while line := await trio.to_thread.run_sync(sys.stdin.buffer.readline, abandon_on_cancel=True):
            yield line

    _run(lambda: run_chat(transport, lines(), _write, timeout=timeout))


def _write(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


@app.command(epilog="Example: netlab transports --json")
def transports(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """The schemes netlab speaks: socket family and type, and what delivery each promises."""
    rows = [
        {"scheme": t.scheme, "family": t.family_name, "type": t.socktype.name, "kind": t.kind,
         "reliable": t.reliable, "ordered": t.ordered, "boundaries": t.boundaries,
         "options": sorted(t.options), "summary": t.summary}
        for t in TRANSPORTS.values()
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="netlab transports")
    for column in ("scheme", "family", "type", "reliable", "ordered", "boundaries"):
        table.add_column(column, no_wrap=True)
    yes = {True: "yes", False: "no"}
    for row in rows:
        table.add_row(row["scheme"], row["family"], row["type"], yes[row["reliable"]], yes[row["ordered"]],
                      yes[row["boundaries"]])
    out.print(table)
    out.print("tcp and udp follow the host (a name may give both families); unix-dgram is reliable and "
              "ordered on Linux, where a full receiver blocks the sender instead of dropping. "
              "Options per scheme: netlab transports --json.", highlight=False)


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
                                                 help="streams: send RST after BYTES bytes")]
CloseOpt = Annotated[Optional[str], typer.Option("--close-after", metavar="BYTES", rich_help_panel=_IMP,
                                                 help="streams: close cleanly after BYTES bytes")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", rich_help_panel=_IMP,
                                                help="seed for the impairment decisions (same seed, same decisions)")]


def _impairments(**texts: Optional[str]):
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
    """Forward between two transports of the same kind, impairing traffic on the way. Ctrl-C stops
    it and prints what it did."""
    from .experiments.relay import run_relay

    forward, backward = _impairments(loss=loss, loss_burst=loss_burst, duplicate=duplicate, reorder=reorder,
                                     corrupt=corrupt, delay=delay, jitter=jitter, rate=rate, queue=queue,
                                     slice=slice_, reset_after=reset_after, close_after=close_after)
    _logging(verbose)
    state = {}

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                running = await nursery.start(partial(run_relay, listen, to, forward=forward, backward=backward,
                                                      seed=seed))
                state["relay"] = running
                for bound in running.bound:
                    print(f"listening {bound}  to={to}  seed={running.seed}", flush=True)
                print(f"  forward: {forward.describe()}\n  backward: {backward.describe()}", flush=True)
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    try:
        _run(main)
    finally:
        if "relay" in state:
            _relay_summary(state["relay"])


def _relay_summary(running) -> None:
    stats = running.stats
    table = Table(title="relay summary", box=box.SIMPLE_HEAD)
    table.add_column("direction")
    names = ["received", "passed", "dropped", "queue_dropped", "duplicated", "reordered", "corrupted", "bytes"]
    for name in names:
        table.add_column(name.replace("_", " "), justify="right")
    for label, direction in (("forward", stats.forward), ("backward", stats.backward)):
        table.add_row(label, *(str(getattr(direction, n)) for n in names))
    err_console.print(table)
    extra = f"connections {stats.connections}, upstream failures {stats.upstream_failures}"
    if stats.unanswerable:
        extra += f", datagrams from unbound senders {stats.unanswerable}"
    _say(extra)


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
) -> None:
    """Send the same workload through every transport, through an impairing relay if asked, and
    check every reply: what was lost, duplicated, reordered or corrupted, and how long it took."""
    from .experiments.compare import CompareSettings, expectations, plot, report, run_compare

    forward, backward = _impairments(loss=loss, loss_burst=loss_burst, duplicate=duplicate, reorder=reorder,
                                     corrupt=corrupt, delay=delay, jitter=jitter, rate=link_rate, queue=queue,
                                     slice=slice_, reset_after=reset_after, close_after=close_after)
    names = tuple(transports_opt or COMPARE_SCHEMES)
    try:
        settings = CompareSettings(names, tuple(services), messages, size, rate, concurrency, timeout, forward,
                                   backward, seed, parallel)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    for target in (json_file, plot_file):
        if target is not None and not target.parent.is_dir():
            raise _fail(NetlabError(f"cannot write {target}: {target.parent} is not a directory"))
    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task("comparing", total=messages * len(names) * len(services))
        results = _run(lambda: run_compare(settings, tick=lambda: progress.advance(task)))
    _compare_tables(settings, results, expectations(settings))
    for r in results:
        if r.error:
            _say(f"{r.transport}/{r.service}: {r.error}")
    for target, write in ((json_file, lambda p: p.write_text(json.dumps(report(settings, results), indent=2) + "\n")),
                          (plot_file, lambda p: plot(results, str(p)))):
        if target is None:
            continue
        try:
            write(target)
        except OSError as exc:
            raise _fail(NetlabError(f"cannot write {target}: {exc.strerror}")) from None
        _say(f"wrote {target}")
    if any(r.error for r in results):
        raise typer.Exit(1)


def _us(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _pct(part: int, whole: int) -> str:
    return f"{part} ({100 * part / whole:.1f}%)" if whole and part else str(part)


def _compare_tables(settings, results, expected) -> None:
    mode = f"open loop at {settings.rate:g} msg/s" if settings.rate else "closed loop"
    impaired = f"; forward: {settings.forward.describe()}; backward: {settings.backward.describe()}" \
        if settings.impaired else ""
    delivery = Table(title=f"netlab compare: {settings.messages} messages each, {mode}, "
                           f"{settings.concurrency} client(s){impaired}", box=box.SIMPLE_HEAD, title_justify="left")
    wide = out.width >= 150  # narrower terminals get the addresses listed under the tables
    for column in ("transport", "service", "sent", "delivered", "lost", "dup", "out of order", "corrupt", "trunc",
                   "boundaries (msgs→reads)") + (("address",) if wide else ()):
        delivery.add_column(column, justify="left" if column in ("transport", "service", "address") else "right",
                            no_wrap=column in ("transport", "service", "address"))
    for r in results:
        delivery.add_row(r.transport, r.service, str(r.sent), str(r.delivered), _pct(r.lost, r.planned),
                         _pct(r.duplicated, r.planned),
                         f"{r.reordered} (max {r.max_displacement})" if r.reordered else "0",
                         str(r.corrupted), str(r.truncated),
                         f"{r.delivered + r.duplicated + r.corrupted}→{r.reads} "
                         + ("kept" if r.boundaries_kept else "not kept"),
                         *((r.via or r.address,) if wide else ()))
    out.print(delivery)
    latency = Table(box=box.SIMPLE_HEAD, title="round trip in µs, goodput, and what the relay did "
                    "(→ requests, ← replies)", title_justify="left")
    for column in ("transport", "service", "p50", "p90", "p99", "p99.9", "max", "goodput", "relay dropped →/←",
                   "not applied"):
        latency.add_column(column, justify="left" if column in ("transport", "service", "not applied") else "right",
                           no_wrap=column in ("transport", "service"))
    for r in results:
        dropped = "-"
        if r.relay is not None:
            f, b = r.relay["forward"], r.relay["backward"]
            dropped = f"{f['dropped'] + f['queue_dropped']}/{b['dropped'] + b['queue_dropped']}"
        latency.add_row(r.transport, r.service, _us(r.p50_us), _us(r.p90_us), _us(r.p99_us), _us(r.p999_us),
                        _us(r.max_us), f"{r.goodput_bps / 1e3:,.1f} kb/s", dropped,
                        ", ".join(n.replace("_", "-") for n in r.not_applied) or "-")
    out.print(latency)
    if not wide or settings.impaired:
        for r in results:
            via = f" via relay {r.via}" if r.via else ""
            out.print(f"  {r.transport}/{r.service}: server {r.address}{via}", highlight=False)
    if settings.impaired:
        out.print(
            f"Expected on datagram transports: {100 * expected['round_trip_loss']:.1f}% of round trips lost "
            f"({100 * expected['loss_forward']:.1f}% of requests, {100 * expected['loss_backward']:.1f}% of the "
            f"replies left), about {100 * expected['duplicated']:.1f}% duplicated. Stream transports cannot lose "
            f"or duplicate: their losses are repaired below the relay, and show as latency.", highlight=False)
        if (settings.forward.reorder or settings.backward.reorder) and not settings.rate:
            out.print("Closed loop keeps one message in flight, so a held-back packet has nothing to be "
                      "reordered against: it arrives late instead. Use --rate to see reordering.",
                      highlight=False)


# -- bench ---------------------------------------------------------------------------------

_BENCH_MODES = ("pingpong", "rate", "stream", "datagrams", "connect", "concurrency")


def _bench_mode(value: str) -> str:
    if value not in _BENCH_MODES:
        raise typer.BadParameter(f"unknown mode {value!r} (known: {', '.join(_BENCH_MODES)})")
    return value


def _bench_baselines(value: str) -> list[str]:
    from .bench.core import BASELINES

    names = [n.strip() for n in value.split(",") if n.strip()]
    if names == ["none"]:
        return []
    unknown = [n for n in names if n not in BASELINES]
    if unknown or not names:
        raise typer.BadParameter(f"unknown baseline {(unknown or [value])[0]!r} (known: {', '.join(BASELINES)}, "
                                 f"or none)")
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
    if value not in ("same", "split", "none"):
        raise typer.BadParameter(f"--pin is same, split or none, not {value!r}")
    return value


_BENCH = "Load"


@app.command(epilog="Example: netlab bench pingpong --transports tcp,unix --pin same --json bench.json "
                    "--plot bench.png")
def bench(
    mode: Annotated[str, typer.Argument(callback=_bench_mode, metavar="MODE",
                                        help="pingpong, rate, stream, datagrams, connect or concurrency")],
    transports_opt: Annotated[Optional[str], typer.Option(
        "--transports", callback=_transport_names,
        help=f"comma-separated subset of: {', '.join(COMPARE_SCHEMES)}")] = None,
    baselines: Annotated[str, typer.Option("--baselines", callback=_bench_baselines, metavar="LIST",
                                           help="baseline servers beside netlab's: trio, asyncio, threads "
                                                "(or none)")] = "trio,asyncio,threads",
    duration: Annotated[float, typer.Option(min=0.05, help="seconds measured per run")] = 2.0,
    warmup: Annotated[float, typer.Option(min=0.0, help="seconds of warm-up before each run, discarded")] = 0.5,
    repeats: Annotated[int, typer.Option(min=1, help="runs per server; figures are medians")] = 3,
    pin: Annotated[str, typer.Option(callback=_bench_pin, metavar="same|split|none",
                                     help="server and load generator on the same core, on different "
                                          "cores, or left to the scheduler")] = "same",
    size: Annotated[int, typer.Option(min=8, max=65000, rich_help_panel=_BENCH,
                                      help="message (or datagram) size in bytes")] = 64,
    connections: Annotated[int, typer.Option(min=1, rich_help_panel=_BENCH,
                                             help="pingpong and rate: connections (datagram sockets)")] = 1,
    rate: Annotated[float, typer.Option(min=0.001, rich_help_panel=_BENCH, metavar="MSGS_PER_S",
                                        help="rate: messages per second, in all")] = 5000.0,
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
    from .bench.core import BenchError, BenchSettings, planned_runs, plot, report, run_bench, tables

    names = tuple(transports_opt or COMPARE_SCHEMES)
    try:
        settings = BenchSettings(mode, names, tuple(baselines), duration, warmup, repeats, size, connections, rate,
                                 tuple(_bench_levels(levels)), hold, chunk, timeout, pin, iperf3,
                                 before=str(before) if before else None)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    for target in (json_file, plot_file):
        if target is not None and not target.parent.is_dir():
            raise _fail(NetlabError(f"cannot write {target}: {target.parent} is not a directory"))
    try:
        with Progress(console=err_console, transient=True) as progress:
            task = progress.add_task(f"bench {mode}", total=planned_runs(settings))
            result = run_bench(settings, progress=lambda label: progress.update(task, advance=1, description=label))
    except BenchError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    for table_data in tables(result):
        table = Table(title=table_data.title, box=box.SIMPLE_HEAD, title_justify="left")
        for i, column in enumerate(table_data.columns):
            table.add_column(column, justify="left" if i == 0 or column in ("server", "why", "target", "where")
                             else "right")
        for row in table_data.rows:
            table.add_row(*row)
        out.print(table)
    env = result.environment
    pinned = env.get("pin", {})
    out.print(f"pin={settings.pin} (server cores {pinned.get('server_cpus') or 'any'}, load generator cores "
              f"{pinned.get('client_cpus') or 'any'}); {env['cores']} cores, Linux {env['kernel']}, Python "
              f"{env['python']}, trio {env['trio']}, loopback MTU {env['loopback_mtu']}; load average "
              f"{env['loadavg']} -> {env['loadavg_end']}", highlight=False)
    for failure in result.failed:
        _say(failure)
    for target, write in ((json_file, lambda p: p.write_text(json.dumps(report(result), indent=1) + "\n")),
                          (plot_file, lambda p: plot(result, str(p)))):
        if target is None:
            continue
        try:
            write(target)
        except OSError as exc:
            raise _fail(NetlabError(f"cannot write {target}: {exc.strerror}")) from None
        _say(f"wrote {target}")
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

    rows = [{"name": e.name, "question": e.question, "options": list(e.uses), "plot": e.plot is not None}
            for e in EXPERIMENTS.values()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("name", "question", "options"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], row["question"], ", ".join(f"--{o}" for o in row["options"]) or "-")
    out.print(table)


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
    if plot_file is not None and experiment.plot is None:
        raise typer.BadParameter(f"the {name} experiment has no plot", param_hint="--plot")
    options = ExperimentOptions(messages=messages, size=size, loss=loss, rcvbuf=rcvbuf, kernel=kernel, seed=seed,
                                timeout=timeout)
    result = _run(experiment.run, options)
    if as_json:
        print(json.dumps(result.as_json(), indent=2))
    else:
        out.print(f"[bold]{experiment.name}[/bold]: {experiment.question}  ({result.mode})")
        for table_data in result.tables:
            table = Table(title=table_data.title, box=box.SIMPLE_HEAD, title_justify="left")
            for column in table_data.columns:
                table.add_column(str(column))
            for row in table_data.rows:
                table.add_row(*(str(cell) for cell in row))
            out.print(table)
        for finding in result.findings:
            out.print(f"- {finding}", highlight=False)
    if plot_file is not None:
        assert experiment.plot is not None
        try:
            experiment.plot(result, str(plot_file))
        except OSError as exc:
            raise _fail(NetlabError(f"cannot write {plot_file}: {exc.strerror}")) from None
        _say(f"wrote {plot_file}")


# typer names commands after functions; `serve` is taken by the library import
serve_cmd_info = app.registered_commands[0]
serve_cmd_info.name = "serve"


def main() -> None:
    app()
