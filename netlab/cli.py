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
from .transports import COMPARE_SCHEMES, TRANSPORTS, Address, DatagramTransport, SeqpacketTransport, parse_address

app = typer.Typer(
    help="netlab, a socket lab: one service core (echo, sum) over TCP, UDP, IPv6 and unix sockets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# piped output is not cut to 80 columns: a table a script reads must not be truncated
out = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


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
    from .experiments.impair import ImpairmentError

    _say(f"error: {exc}")
    # usage errors found once running (kinds differ; loss on a stream relay) exit 2 too
    return typer.Exit(2 if isinstance(exc, (AddressError, ImpairmentError)) else 1)


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
                wildcards = [str(bound) for bound in server.bound if bound.is_wildcard]
                if wildcards:  # one line, even when '*' gave an IPv4 and an IPv6 socket
                    logger.warning("warning: %s listen%s on all interfaces: anyone who can reach this machine "
                                   "can connect", " and ".join(wildcards), "" if len(wildcards) > 1 else "s")
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

    from .explore.raw import read_lines  # os.read in a thread: safe to abandon when the server closes

    _run(lambda: run_chat(transport, read_lines(sys.stdin.buffer), _write, timeout=timeout))


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
                                                 help="streams: abort after BYTES bytes (RST on TCP; AF_UNIX has none)")]
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
    """Forward between two transports of the same kind, impairing traffic on the way.

    Ctrl-C stops it and prints what it did."""
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
    if stats.send_failures:
        extra += f", datagrams that could not be sent {stats.send_failures}"
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
    kernel: Annotated[bool, typer.Option("--kernel", rich_help_panel=_IMP,
                                         help="make the loss in the kernel (an nftables rule; --link-rate: tbf) in a "
                                              "private network namespace per run, instead of the relay; needs root")]
    = False,
) -> None:
    """Send the same workload through every transport and check every reply.

    Through an impairing relay (or the kernel, with --kernel) if asked: what was lost,
    duplicated, reordered or corrupted, and how long it took."""
    from .experiments.compare import CompareSettings, expectations, plot, report, run_compare

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
    for target in (json_file, plot_file):
        if target is not None and not target.parent.is_dir():
            raise _fail(NetlabError(f"cannot write {target}: {target.parent} is not a directory"))
    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task("comparing", total=messages * len(names) * len(services))
        if kimp is not None:
            results = _run(lambda: _kernel_compare(settings, kimp, tick=lambda: progress.advance(task)))
        else:
            results = _run(lambda: run_compare(settings, tick=lambda: progress.advance(task)))
    _compare_tables(settings, results, expectations(settings), kernel=kimp is not None)
    if kimp is not None:
        _kernel_tables(settings, kimp, results, expectations(settings))
    for r in results:
        if r.error:
            _say(f"{r.transport}/{r.service}: {r.error}")

    def json_report() -> dict:
        data = report(settings, results)
        if kimp is not None:
            from .experiments.kernel import kernel_start

            data["start"]["kernel"] = kernel_start(settings, kimp, results)
        return data

    for target, write in ((json_file, lambda p: p.write_text(json.dumps(json_report(), indent=2) + "\n")),
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


def _compare_tables(settings, results, expected, kernel: bool = False) -> None:
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
                         f"{r.replies}→{r.reads} "
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
    if settings.impaired and not kernel:  # kernel mode says it in _kernel_tables
        out.print(
            f"Expected on datagram transports: {100 * expected['round_trip_loss']:.1f}% of round trips lost "
            f"({100 * expected['loss_forward']:.1f}% of requests, {100 * expected['loss_backward']:.1f}% of the "
            f"replies left), about {100 * expected['duplicated']:.1f}% duplicated. Stream transports cannot lose "
            f"or duplicate: their losses are repaired below the relay, and show as latency.", highlight=False)
        if (settings.forward.reorder or settings.backward.reorder) and not settings.rate:
            out.print("Closed loop keeps one message in flight, so a held-back packet has nothing to be "
                      "reordered against: it arrives late instead. Use --rate to see reordering.",
                      highlight=False)


# -- compare --kernel: the loss made by the kernel (netlab.experiments.kernel) --------------


def _kernel_impairments(forward, backward):
    from .experiments.impair import ImpairmentError
    from .experiments.kernel import KernelImpairments

    try:
        return KernelImpairments.from_impairments(forward, backward)
    except ImpairmentError as exc:
        raise typer.BadParameter(str(exc), param_hint="--kernel") from None


async def _kernel_compare(settings, kimp, tick):
    from .experiments.kernel import run_compare_kernel

    return await run_compare_kernel(settings, kimp, tick)


def _kernel_tables(settings, kimp, results, expected) -> None:
    from .experiments.kernel import attribution_table, environment_note

    data = attribution_table(results)
    table = Table(title=data.title, box=box.SIMPLE_HEAD, title_justify="left")
    for column in data.columns:
        table.add_column(column, justify="left" if column in ("transport", "service") else "right")
    for row in data.rows:
        table.add_row(*(str(cell) for cell in row))
    out.print(table)
    for r in results:
        if r.kernel and r.kernel.get("attribution"):
            out.print(f"  {r.kernel['attribution']['sentence']}", highlight=False)
    out.print(environment_note(results), highlight=False)
    if kimp.loss_forward or kimp.loss_backward:
        out.print(f"Kernel: {kimp.describe()}. Expected on UDP: {100 * expected['round_trip_loss']:.1f}% of round "
                  f"trips lost; TCP loses nothing and retransmits instead (each repair costs time: a retransmission "
                  f"timeout is at least 200 ms); AF_UNIX is not touched.", highlight=False)
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


# -- the lecture's exploration: host, resolve, constants, raw, addr explain -------------

JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of tables")]


def _print_json(document: object) -> None:
    print(json.dumps(document, indent=2), flush=True)


def _dash(value: object) -> str:
    if value is None or value == "" or value == [] or value == ():
        return "-"
    return str(value)


@app.command(epilog="Example: netlab host --json")
def host(as_json: JsonOpt = False) -> None:
    """This machine: its host name, gethostbyname(_ex) of it, and every interface's addresses."""
    from .explore import host_info

    info = host_info()
    if as_json:
        _print_json(info.as_dict())
        return
    facts = Table(title="this host", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("call", "result"):
        facts.add_column(column)
    facts.add_row("gethostname()", info.hostname)
    for lookup in (info.gethostbyname, info.gethostbyname_ex):
        if not lookup.ok:
            result = f"[red]failed[/red]: {lookup.error}"
        elif lookup.address is not None:
            result = lookup.address
        else:
            result = (f"canonical name {lookup.canonical}, aliases {_dash(', '.join(lookup.aliases))}, "
                      f"addresses {_dash(', '.join(lookup.addresses))}")
        facts.add_row(lookup.call, result)
    out.print(facts)
    table = Table(title="interfaces", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("index", "name", "state", "family", "address", "scope", "flags"):
        table.add_column(column, no_wrap=column != "flags", justify="right" if column == "index" else "left")
    for interface in info.interfaces:
        state = {True: "up", False: "down", None: "?"}[interface.up]
        rows = [("IPv4", a) for a in interface.ipv4] + [("IPv6", a) for a in interface.ipv6]
        if not rows:
            table.add_row(str(interface.index), interface.name, state, "-", "(no address)", "-", "")
        for i, (family, a) in enumerate(rows):
            where = f"{a.address}/{a.prefixlen}" if a.prefixlen is not None else a.address
            table.add_row(str(interface.index) if i == 0 else "", interface.name if i == 0 else "",
                          state if i == 0 else "", family, where, a.scope, ", ".join(a.flags))
    out.print(table)
    out.print("sources: " + "; ".join(f"{k}: {v}" for k, v in info.sources.items()), highlight=False)


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

    result = _run(lambda: do_resolve(host, service, family=family, socktype=socktype, canonical=canonical))
    if as_json:
        _print_json(result.as_dict())
        return
    table = Table(title=result.call, box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
    columns = ["family", "type", "protocol"] + (["canonical name"] if canonical else []) + \
              ["socket address", "netlab address"]
    for column in columns:
        table.add_column(column, no_wrap=True)
    for row in result.rows:
        cells = [row.family, row.type, row.protocol] + ([_dash(row.canonname)] if canonical else [])
        table.add_row(*cells, repr(row.sockaddr), row.address or f"- ({row.note})")
    out.print(table, highlight=False)
    for note in result.notes:
        out.print(f"note: {note}", highlight=False)


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
        table = Table(title="socket constant prefixes", box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("prefix")
        table.add_column("names", justify="right")
        for name, count in counts.items():
            table.add_row(name, str(count))
        out.print(table)
        return
    try:
        result = find_constants(prefix)
    except NetlabError as exc:
        raise _fail(exc) from None
    if as_json:
        _print_json(result.as_dict())
        return
    table = Table(title=f"socket.{result.prefix}*", box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
    for column in ("value", "hex", "name", "meaning"):
        table.add_column(column, justify="right" if column in ("value", "hex") else "left",
                         no_wrap=column != "meaning")
    shared = 0
    for row in result.rows:
        shared += row.shared
        for i, (name, meaning) in enumerate(zip(row.names, row.meanings)):
            first = i == 0
            table.add_row(str(row.value) if first else "", hex(row.value) if first and row.value >= 0 else "",
                          name + (" *" if row.shared else ""), meaning)
    out.print(table, highlight=False)
    if shared:
        out.print(f"* {shared} value(s) have several names: a {{value: name}} dict, like the lecture's "
                  f"get_constants, keeps only one of them.", highlight=False)


def _escaped(value: Optional[str]) -> Optional[bytes]:
    from .explore import decode_escapes

    if value is None:
        return None
    try:
        return decode_escapes(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _write_bytes(data: bytes) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _show_data(data: bytes, *, hexdump: bool, offset: int, datagram: bool) -> None:
    from .explore import hexdump as dump

    if hexdump:
        if data:
            print(dump(data, offset), flush=True)
    elif datagram and not data.endswith(b"\n"):
        _write_bytes(data + b"\n")
    else:
        _write_bytes(data)


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
            raise _fail(AddressError("--send, --bytes and --eof are for the client side, not --listen"))
        _raw_listen(address, reply, count, hexdump, as_json)
        return
    if reply is not None or count is not None:
        raise _fail(AddressError("--reply and --count go with --listen"))
    _raw_client(address, send, timeout, nbytes, eof, hexdump, quiet, as_json)


def _raw_client(address: Address, send: Optional[bytes], timeout: float, nbytes: Optional[int],
                eof: Optional[bool], hexdump: bool, quiet: bool, as_json: bool) -> None:
    from .explore import raw_client
    from .explore.raw import read_chunks, read_lines

    datagram = isinstance(address.transport, (DatagramTransport, SeqpacketTransport))

    def on_event(event) -> None:
        if as_json or event.kind not in ("data", "datagram"):
            return
        if hexdump and datagram:  # each datagram dumps from offset 0: say where one begins
            print(f"datagram, {len(event.data)} bytes from {event.peer}:", flush=True)
        _show_data(event.data, hexdump=hexdump, offset=event.offset, datagram=datagram)

    source = None
    if send is None:
        source = read_lines(sys.stdin.buffer) if datagram else read_chunks(sys.stdin.buffer)
    result = _run(lambda: raw_client(address, send, source=source, timeout=timeout, max_bytes=nbytes, eof=eof,
                                     on_event=on_event))
    if as_json:
        _print_json(result.as_dict())
        return
    if quiet:
        return
    why = {"peer closed": "the peer closed the connection",
           "timeout": f"nothing more arrived for {timeout:g} s",
           "byte limit": f"--bytes {nbytes} reached"}[result.ended]
    unit = "datagram" if datagram else "read"
    got = f"{result.received} bytes in {len(result.reads)} {unit}{'s' if len(result.reads) != 1 else ''}"
    sent = f"sent {result.sent} bytes" + (" then half-closed" if result.half_closed else "")
    _say(f"{sent}; received {got} from {result.peer or address}; stopped: {why}")


def _raw_listen(address: Address, reply: Optional[bytes], count: Optional[int], hexdump: bool,
                as_json: bool) -> None:
    from .explore import raw_listen

    def on_event(event) -> None:
        if as_json:
            print(json.dumps(event.as_dict()), flush=True)
            return
        who = f"[#{event.client} {event.peer}]" if event.client is not None else f"[{event.peer}]"
        if event.kind == "listening":
            print(f"listening {event.detail}", flush=True)
        elif event.kind == "connected":
            print(f"{who} connected" + (f" ({event.detail})" if event.detail else ""), flush=True)
        elif event.kind in ("data", "datagram"):
            what = "datagram, " if event.kind == "datagram" else ""
            extra = f" ({event.detail})" if event.detail else ""
            print(f"{who} {what}{len(event.data)} bytes{extra}:", flush=True)
            _show_data(event.data, hexdump=hexdump, offset=event.offset, datagram=True)
        elif event.kind == "replied":
            print(f"{who} replied {len(event.data)} bytes", flush=True)
        elif event.kind == "half-closed":
            print(f"{who} half-closed: {event.detail}", flush=True)
        elif event.kind == "closed":
            print(f"{who} {event.detail}", flush=True)
        else:
            print(f"{who} {event.detail}", flush=True)

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:

                async def listen_then_stop() -> None:
                    await raw_listen(address, reply=reply, count=count, on_event=on_event)
                    nursery.cancel_scope.cancel()

                nursery.start_soon(listen_then_stop)
                async for _signum in signals:
                    nursery.cancel_scope.cancel()
                    break

    _run(main)


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

    result = _run(lambda: do_explain(address))
    if as_json:
        _print_json(result.as_dict())
        return

    def facts_table(title: str, facts: dict, *, columns=("", "value", "how we know", "note")) -> Table:
        table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
        for column in columns:
            table.add_column(column, no_wrap=column in ("", "value"), overflow="fold")
        for name, fact in facts.items():
            value = fact.value
            shown = "-" if value is None else ("yes" if value is True else "no" if value is False else str(value))
            table.add_row(name, shown, fact.source, fact.note)
        return table

    out.print(facts_table(f"How netlab reads {result.given}", result.reading,
                          columns=("", "value", "from", "note")), highlight=False)
    out.print(facts_table("Options", result.options, columns=("", "value", "", "meaning")), highlight=False)
    out.print("What it will do", style="italic", highlight=False)
    for who, calls in (("as a server (netlab serve)", result.server_calls),
                       ("as a client (netlab send, chat, raw)", result.client_calls)):
        out.print(f"  {who}:", highlight=False)
        for number, call in enumerate(calls, 1):
            out.print(f"    {number:2}. {call}", highlight=False, markup=False)
    out.print()
    if result.target:
        out.print(facts_table("The target now (looked at, not changed)", result.target), highlight=False)
    for note in result.notes:
        out.print(f"[red]could not probe[/red]: {note}", highlight=False)
    for probe in result.probes:
        title = f"What the kernel applied: throwaway {probe.family} socket"
        if probe.bound:
            title += f", bound {probe.bound}"
        if probe.error:
            out.print(f"{title}: [red]{probe.error}[/red]", highlight=False)
            continue
        out.print(facts_table(title, probe.facts), highlight=False)
        for note in probe.notes:
            out.print(f"  {note}", highlight=False, markup=False)
        out.print()
    out.print(facts_table("System settings that apply", result.system), highlight=False)


# typer names commands after functions; `serve` is taken by the library import
serve_cmd_info = app.registered_commands[0]
serve_cmd_info.name = "serve"


def main() -> None:
    app()
