"""The `netlab` command: parse options, call the library, render. No socket logic here.

Exit codes come from the exception tree in `netlab.errors` (`exit_code`): 0 success; 1 a
runtime failure (refused, timed out, address in use), printed as one line
``netlab: error: ...``; 2 a usage error (bad address, unknown service, an option typer
rejects), the same one line and at most one more with the usage; 130 interrupted.
Tables and the other views are drawn by `netlab.render`; output files are written by
`netlab.output`; serve, relay and raw --listen run until a signal through
`netlab.lifecycle`.

Every command takes ``--json`` (`JsonOpt`): JSON on stdout instead of tables, nothing else
there. A command that runs until a signal prints one JSON object per line (an event);
every other command prints one document at the end. Commands that measure take
``--json-file FILE`` (`JsonFileOpt`: the same document written to FILE, tables still
shown) and ``--plot FILE`` (`PlotOpt`), both checked before the run (`Outputs.check`). A
new command follows the same pattern: take ``as_json: JsonOpt = False`` and end with
``_emit(as_json, document, view)``; tests/test_cli_conventions.py holds every command to it.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import trio
import typer
from rich.progress import Progress
from typer.core import TyperGroup

from . import __version__, render
from .bench.core import BASELINES, MODES, PINS, RELAY_BASELINES
from .errors import AddressError, ServiceOptionError, UsageError, exit_code, netlab_error
from .lifecycle import run_until_signalled
from .output import Outputs
from .plaintext import printable
from .runner import Limits, Server, open_client, run_chat, serve
from .services import SERVICES, Framing, get_service
from .transports import COMPARE_SCHEMES, TRANSPORTS, Address, parse_address

if TYPE_CHECKING:
    from .experiments.impair import Impairments
    from .experiments.kernel import KernelImpairments
    from .experiments.relay import Relay
    from .explore import RawEvent


def _short_help(command: Any) -> None:  # Any: typer's (vendored) click.Command, which typer does not export
    """A command's line in its group's list: the first sentence of its help, on one line."""
    for sub in getattr(command, "commands", {}).values():
        if sub.help and not sub.short_help:
            first = " ".join(sub.help.split("\n\n")[0].split())
            sub.short_help = first.split(". ")[0].rstrip(".") + "."


def _tidy_help(command: Any, ctx: Any) -> None:  # Any: typer's (vendored) click types
    """Help without type noise: no ``<bool>`` after a flag, no ``<str>`` after an argument,
    no ``<int range> [x>=1]`` after an option: its METAVAR says what it takes, and its help
    text the range where that matters. (Set on each parameter: typer has no hook for it.)"""
    for param in command.get_params(ctx):  # with the help option, which click makes on demand
        flag = getattr(param, "is_flag", False) or param.param_type_name == "argument"
        if param.metavar is None and not getattr(param, "is_flag", False):
            param.metavar = (param.name or "value").upper()
        param.display_type_rich = (lambda ctx: None) if flag else (lambda ctx, shown=param.metavar: shown)
        param._get_number_range_help_str = lambda: None


def _finite_numbers(command: Any) -> None:  # Any: typer's (vendored) click types
    """Every number option refuses ``inf`` and ``nan`` (a bound such as ``min=0.05`` lets both
    through: ``nan < 0.05`` is false): a duration of ``inf`` waits for ever, and NaN compares
    false with everything. A usage error (exit 2), like any other bad value."""
    from typer._click.exceptions import BadParameter  # typer does not export it

    for param in getattr(command, "params", []):
        if getattr(param, "_finite", False):
            continue
        original = param.process_value

        def process(ctx: Any, value: Any, original: Any = original, param: Any = param) -> Any:
            value = original(ctx, value)
            values = value if isinstance(value, (list, tuple)) else [value]
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                raise BadParameter("a finite number is needed, not inf or nan", ctx=ctx, param=param)
            return value

        param.process_value = process
        param._finite = True


def _usage_error(exc: Any, args: Sequence[str]) -> int:  # Any: typer's (vendored) click.ClickException
    """A usage error typer found (a missing option, a bad value): one ``netlab: error:`` line
    and the command's usage on a second (or, for ``--json FILE``, what --json means now); exit 2."""
    _say("error: " + " ".join(exc.format_message().split()))
    ctx = getattr(exc, "ctx", None)
    after_json = [b for a, b in zip(args, args[1:]) if a == "--json" and not b.startswith("-")]
    if after_json and "unexpected extra argument" in exc.format_message():
        _say(f"--json prints JSON on stdout; to write it to a file: --json-file {after_json[0]}")
    elif ctx is not None:
        _say(f"usage: {' '.join(ctx.get_usage().split()[1:])}  (see {ctx.command_path} --help)")
    return int(exc.exit_code)


class _NetlabGroup(TyperGroup):
    """Every command runs inside this: a netlab error (alone, or all of trio's exception
    group) becomes one line ``netlab: error: ...`` and the exit code the tree gives it;
    typer's own usage errors get the same line (not a box); an interruption exits 130;
    anything else is a bug and keeps its traceback."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _short_help(self)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _tidy_help(command, ctx)
            _finite_numbers(command)
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _tidy_help(self, ctx)
        super().format_help(ctx, formatter)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, windows_expand_args: bool = True, **extra: Any) -> Any:
        from typer._click.exceptions import ClickException, NoArgsIsHelpError  # typer does not export them

        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except NoArgsIsHelpError as exc:  # no command given: typer has shown the help
            sys.exit(exc.exit_code)
        except ClickException as exc:
            sys.exit(_usage_error(exc, sys.argv[1:] if args is None else list(args)))
        except typer.Abort:
            _say("error: aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

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


_SETTINGS = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    cls=_NetlabGroup,
    help="netlab, a socket lab: one service core (echo, sum) over TCP, UDP, IPv6 and unix sockets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings=_SETTINGS,
)


def _version(value: bool) -> None:
    if value:
        print(f"netlab {__version__} (Python {sys.version.split()[0]}, trio {trio.__version__})")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="print netlab's version and exit")] = False) -> None:
    """netlab, a socket lab: one service core (echo, sum) over TCP, UDP, IPv6 and unix sockets."""


out = render.console()
err_console = render.console(stderr=True)


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


def _framing(value: Optional[str]) -> Optional[str]:
    if value is not None:
        try:
            Framing.parse(value)
        except ServiceOptionError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value


def _accept(value: Optional[str]) -> Optional[str]:
    if value is not None and value not in ("strict", "lenient"):
        raise typer.BadParameter(f"{value!r}: use strict or lenient")
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
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON on stdout instead of tables")]
JsonFileOpt = Annotated[Optional[Path], typer.Option("--json-file", metavar="FILE",
                                                     help="also write the JSON document to FILE")]
PlotOpt = Annotated[Optional[Path], typer.Option("--plot", metavar="FILE",
                                                 help="draw the figures to FILE (.png, .svg, .pdf, ...; "
                                                      "no extension: .png is added)")]


def _say(message: str) -> None:
    """One line on stderr, never wrapped or styled; control characters escaped (a message
    may quote a program's output)."""
    print(f"netlab: {printable(message)}", file=sys.stderr, flush=True)


def _wrote(path: Path) -> None:
    _say(f"wrote {path}")


def _print_json(document: object, indent: int | None = 2) -> None:
    print(json.dumps(document, indent=indent), flush=True)


def _emit(as_json: bool, document: Callable[[], object], view: Callable[[], None], outputs: Outputs = Outputs(),
          draw: Callable[[str], None] | None = None) -> None:
    """How every command ends: the JSON `document()` on stdout with --json, else the `view`
    (tables); then the files `outputs` asks for (the same document, the plot)."""
    made = functools.cache(document)
    if as_json:
        _print_json(made())
    else:
        view()
    outputs.write(made, draw, wrote=_wrote)


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="netlab: %(message)s", force=True)


_LIMITS = "Limits (see the README's Limits and safety)"
_CLIENTS = "Testing your own client (see the README)"


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
    max_connections_per_peer: Annotated[Optional[int], typer.Option(
        min=1, rich_help_panel=_LIMITS, help="open connections from one IP address (one uid on unix sockets); "
                                             "more get ERR busy (default: none but --max-connections)")] = None,
    request_timeout: Annotated[float, typer.Option(min=0.001, rich_help_panel=_LIMITS,
                                                   help="seconds from a request's first byte to its end; "
                                                        "then the connection is closed")] = 30.0,
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
    framing: Annotated[Optional[str], typer.Option(
        callback=_framing, metavar="line|quiet[:MS]|eof", rich_help_panel=_CLIENTS,
        help="sum on streams: where a request ends. line: at \\n (default); quiet: also after MS ms "
             "with nothing more (default 200); eof: when the client half-closes")] = None,
    accept: Annotated[Optional[str], typer.Option(
        callback=_accept, metavar="strict|lenient", rich_help_panel=_CLIENTS,
        help="sum: strict, two numbers separated by white space (default); lenient, any text "
             "holding exactly two numbers (2,3  2/3  [\"2\", \"3\"]  2 + 3)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log every connection")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON lines: one per bound socket, and the "
                                                         "server's counts when it stops")] = False,
) -> None:
    """Serve a service until SIGTERM or Ctrl-C, which drain it (a second Ctrl-C stops at once).

    Prints `listening ADDR` for each bound socket, with the service's settings and the limits in force on it."""
    limits = Limits(max_connections=max_connections, idle_timeout=idle_timeout, max_line=max_line,
                    request_timeout=request_timeout, max_connections_per_peer=max_connections_per_peer,
                    rate_limit=rate_limit, grace=grace,
                    allow_uids=frozenset(allow_uid) if allow_uid else None,
                    allow_gids=frozenset(allow_gid) if allow_gid else None)
    served = get_service(service, max_line=max_line, framing=framing, accept=accept)
    _logging(verbose)
    servers: list[Server] = []

    def listening(server: Server) -> None:
        servers.append(server)
        render.serving(server, service=service, requested=transport, limits=limits, as_json=as_json)

    trio.run(partial(run_until_signalled, partial(serve, served, transport, limits=limits), started=listening,
                     drain=Server.drain, grace=limits.grace))
    if as_json:
        for server in servers:
            _print_json({"event": "stopped", "stats": asdict(server.stats)}, indent=None)


@app.command(epilog='Example: netlab send --transport tcp:127.0.0.1:7000 "2 3"')
def send(
    transport: TransportOpt,
    message: Annotated[str, typer.Argument(help="the request; for sum, two numbers: \"2 3\"")],
    service: Annotated[Optional[str], typer.Option(
        "--service", "-s", callback=_service,
        help="reply framing: sum (default) reads one line per request line; "
             "echo reads as many bytes as were sent")] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the reply", min=0.001, metavar="SECONDS")]
    = 5.0,
    no_newline: Annotated[bool, typer.Option(
        "--no-newline", rich_help_panel=_CLIENTS,
        help="send the message as it is, without the line ending (as a client that sends \"2 3\" does)")] = False,
    half_close: Annotated[bool, typer.Option(
        "--half-close", rich_help_panel=_CLIENTS,
        help="streams: half-close (shutdown SHUT_WR) after the request, then read the reply")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON: the request, the reply, and whether the "
                                                         "service refused it")] = False,
) -> None:
    """Send one request and print the reply.

    Exit 1 on refusal or timeout, and when the service answers ERR (the reply is printed all the same)."""
    framing = get_service(service or "sum")

    async def main() -> bytes:
        async with open_client(transport, framing, timeout=timeout) as client:
            return await client.request(message.encode(), timeout=timeout, newline=not no_newline,
                                        half_close=half_close)

    reply = trio.run(main)
    refused = framing.is_error(reply)

    def show() -> None:
        sys.stdout.buffer.write(reply if reply.endswith(b"\n") else reply + b"\n")
        sys.stdout.flush()

    _emit(as_json, lambda: {"transport": str(transport), "request": message,
                            "reply": reply.decode("utf-8", "backslashreplace"), "error": refused}, show)
    if refused:
        raise typer.Exit(1)


@app.command(epilog="Example: printf '1 2\\n3 4\\n' | netlab chat --transport tcp:127.0.0.1:7000")
def chat(
    transport: TransportOpt,
    timeout: Annotated[float, typer.Option(help="after the last input line, seconds to wait for replies",
                                           min=0.0, metavar="SECONDS")] = 5.0,
    no_newline: Annotated[bool, typer.Option(
        "--no-newline", rich_help_panel=_CLIENTS, help="send each line without its line ending")] = False,
    half_close: Annotated[bool, typer.Option(
        "--half-close/--no-half-close", rich_help_panel=_CLIENTS,
        help="streams: half-close after the last line (default), or keep sending open and wait --timeout")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON lines: one per piece received")] = False,
) -> None:
    """The lab's client: send each line of stdin, print what comes back. Works in a pipe."""

    from .explore.raw import read_lines  # os.read in a thread: safe to abandon when the server closes

    def received(data: bytes) -> None:
        _print_json({"received": data.decode("utf-8", "backslashreplace")}, indent=None)

    trio.run(partial(run_chat, transport, read_lines(sys.stdin.buffer), received if as_json else _write,
                     timeout=timeout, newline=not no_newline, half_close=half_close))


def _write(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


@app.command(epilog="Example: netlab transports --json")
def transports(as_json: JsonOpt = False) -> None:
    """The schemes netlab speaks: socket family and type, and what delivery each promises."""
    _emit(as_json, lambda: [{"scheme": t.scheme, "family": t.family_name, "type": t.socktype.name, "kind": t.kind,
                             "reliable": t.reliable, "ordered": t.ordered, "boundaries": t.boundaries,
                             "options": sorted(t.options), "summary": t.summary} for t in TRANSPORTS.values()],
          lambda: render.transports(out, TRANSPORTS.values()))


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
    max_connections: Annotated[int, typer.Option(min=1, help="stream connections open at once; more are "
                                                             "closed at once and counted")] = 1024,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log every connection")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON lines: one per bound socket, and what the "
                                                         "relay did when it stops")] = False,
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
        render.relaying(running, as_json=as_json)

    try:
        trio.run(partial(run_until_signalled, partial(run_relay, listen, to, forward=forward, backward=backward,
                                                      seed=seed, max_connections=max_connections),
                         started=listening))
    finally:
        for running in relays:
            if as_json:
                _print_json({"event": "stopped", "stats": running.stats.as_dict()}, indent=None)
            else:
                _say(render.relay_summary(err_console, running))


@app.command(epilog="Example: netlab compare --loss 0.05 --delay 5 --jitter 2 --reorder 0.02 --duplicate 0.01 "
                    "--seed 1 --json-file compare.json --plot compare.png")
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
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as JSON (iperf3 -J shape) instead "
                                                         "of tables")] = False,
    json_file: JsonFileOpt = None,
    plot_file: PlotOpt = None,
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
    with Progress(console=err_console, transient=True, disable=not err_console.is_terminal) as progress:
        task = progress.add_task("comparing", total=messages * len(names) * len(services))

        def tick() -> None:
            progress.advance(task)

        if kimp is not None:
            results = trio.run(run_compare_kernel, settings, kimp, tick)
        else:
            results = trio.run(partial(run_compare, settings, tick=tick))

    def tables() -> None:
        render.compare(out, settings, results, [] if kimp is not None else conclusions(settings))
        if kimp is not None:
            render.kernel_compare(out, results, conclusions(settings, kimp))

    def json_report() -> dict[str, Any]:
        data = report(settings, results)
        if kimp is not None:
            data["start"]["kernel"] = kernel_start(settings, kimp, results)
        return data

    _emit(as_json, json_report, tables, outputs, partial(plot, results))
    for r in results:
        if r.error:
            _say(f"{r.transport}/{r.service}: {r.error}")
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


@app.command(epilog="Example: netlab bench pingpong --transports tcp,unix --pin same --json-file bench.json "
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
    as_json: Annotated[bool, typer.Option("--json", help="print every run and the summary as JSON (iperf3 -J "
                                                         "shape) instead of tables")] = False,
    json_file: JsonFileOpt = None,
    plot_file: PlotOpt = None,
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
    with Progress(console=err_console, transient=True, disable=not err_console.is_terminal) as progress:
        task = progress.add_task(f"bench {mode}", total=planned_runs(settings))
        result = run_bench(settings, progress=lambda label: progress.update(task, advance=1, description=label))
    _emit(as_json, partial(report, result), partial(render.bench, out, result), outputs, partial(plot, result))
    for failure in result.failed:
        _say(failure)
    if result.failed:
        raise typer.Exit(1)


# -- named experiments ---------------------------------------------------------------------

experiment_app = typer.Typer(cls=_NetlabGroup, no_args_is_help=True, context_settings=_SETTINGS,
                             help="Named experiments: each answers one classic question with measured figures.")
app.add_typer(experiment_app, name="experiment")


@experiment_app.command("list", epilog="Example: netlab experiment list")
def experiment_list(as_json: JsonOpt = False) -> None:
    """The experiments, with the question each answers and the options it reads."""
    from .experiments import EXPERIMENTS

    _emit(as_json, lambda: [{"name": e.name, "question": e.question, "options": list(e.uses),
                             "plot": e.plot is not None} for e in EXPERIMENTS.values()],
          lambda: out.print(render.table(["name", render.Column("question", wrap=True), "options"],
                                         ([e.name, e.question, ", ".join(f"--{o}" for o in e.uses) or "-"]
                                          for e in EXPERIMENTS.values()))))


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
    as_json: JsonOpt = False,
    json_file: JsonFileOpt = None,
    plot_file: Annotated[Optional[Path], typer.Option("--plot", metavar="FILE",
                                                      help="draw the result to FILE where the experiment has a plot "
                                                           "(.png, .svg, .pdf, ...; no extension: .png is added)")]
    = None,
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
    outputs = Outputs(json=json_file, plot=plot_file)
    outputs.check()
    result = trio.run(experiment.run, options)

    def tables() -> None:
        out.print(f"[bold]{experiment.name}[/bold]: {experiment.question}  ({result.mode})")
        for table_data in result.tables:
            out.print(render.result_table(table_data))
        for finding in result.findings:
            out.print(f"- {finding}", highlight=False)

    _emit(as_json, result.as_json, tables, outputs, None if draw is None else partial(draw, result))


# -- the lecture's exploration: host, resolve, constants, raw, addr explain -------------


@app.command(epilog="Example: netlab host --json")
def host(as_json: JsonOpt = False) -> None:
    """This machine: its host name, gethostbyname(_ex) of it, and every interface's addresses."""
    from .explore import host_info

    info = host_info()
    _emit(as_json, info.as_dict, partial(render.host, out, info))


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
    _emit(as_json, result.as_dict, partial(render.resolution, out, result, canonical))


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
        _emit(as_json, lambda: {"prefixes": counts}, partial(render.prefixes, out, counts))
        return
    result = find_constants(prefix)
    _emit(as_json, result.as_dict, partial(render.constants, out, result))


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
                       no_args_is_help=True, cls=_NetlabGroup, context_settings=_SETTINGS)
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
    _emit(as_json, result.as_dict, partial(render.explanation, out, result))


# -- netlab check: anyone's server or client -----------------------------------------------

_CHECK = "Checking"
_GRADING = "Grading"


@app.command(epilog="Examples: netlab check tcp:127.0.0.1:50000 --service sum;  "
                    "netlab check --run 'python3 sum_server.py';  "
                    "netlab check --run 'python3 {}' submissions/*/sum_server.py --rubric rubric.toml "
                    "--gradescope 'results/{}/results.json' --csv grades.csv;  "
                    "netlab check --client 'python3 sum_client.py 2 3' --listen tcp:127.0.0.1:50000")
def check(
    targets: Annotated[Optional[list[str]], typer.Argument(
        metavar="[ADDR | SUBMISSION...]",
        help="the server's address; or, with --run 'CMD {}', the files to check one after another")] = None,
    service: Annotated[str, typer.Option("--service", "-s", help="sum or echo")] = "sum",
    profile: Annotated[str, typer.Option(help="assignment: what the course asks, judged leniently; "
                                              "netlab: netlab's line protocol exactly")] = "assignment",
    request: Annotated[Optional[str], typer.Option(
        metavar="FORMAT", help="sum: how a request is written, {a} and {b} for the numbers (default '{a} {b}\\n'; "
                               "escapes \\n \\r \\t); auto tries common formats")] = None,
    run: Annotated[Optional[str], typer.Option(
        "--run", metavar="CMD", help="start the server with this command (split into words; /bin/sh runs it only if "
                                     "it uses shell syntax), find where it listens, restart it if it dies, stop it at "
                                     "the end; {} stands for each SUBMISSION, as a word of its own")]
    = None,
    at: Annotated[Optional[Address], typer.Option(
        "--at", parser=_address, metavar="ADDR", help="with --run: the address to test (default: found from the "
                                                      "kernel's socket tables)")] = None,
    client: Annotated[Optional[str], typer.Option(
        "--client", metavar="CMD", help="check a client instead: run CMD once per case against a reference server "
                                        "at --listen")] = None,
    listen: Annotated[Optional[Address], typer.Option(
        "--listen", parser=_address, metavar="ADDR", help="with --client: where the reference server listens")]
    = None,
    stdin: Annotated[Optional[bytes], typer.Option(
        "--stdin", parser=_escaped, metavar="TEXT", help="what the program (--run or --client) reads on stdin "
                                                       "(escapes \\n \\t; e.g. a host it asks for: '127.0.0.1\\n')")]
    = None,
    jobs: Annotated[Optional[int], typer.Option(
        "--jobs", "-j", min=1, metavar="N", help="with --run 'CMD {}': check N submissions at once, each in "
                                                  "namespaces of its own (default: one per core)")] = None,
    case: Annotated[Optional[list[str]], typer.Option(
        "--case", metavar="ID", help="run only this case or group (repeatable): sum.small, framing, ...")] = None,
    timeout: Annotated[float, typer.Option(min=0.05, rich_help_panel=_CHECK,
                                           help="each case's hard deadline in seconds")] = 5.0,
    startup: Annotated[float, typer.Option(min=0.05, rich_help_panel=_CHECK,
                                           help="with --run: seconds the program may take to start listening")]
    = 10.0,
    idle_window: Annotated[float, typer.Option(min=0.05, rich_help_panel=_CHECK,
                                               help="resources.idle_cpu: seconds of CPU time measured")] = 1.0,
    namespaces: Annotated[bool, typer.Option("--namespaces/--no-namespaces", rich_help_panel=_CHECK,
                                             help="run each program in network and PID namespaces of its own "
                                                  "(as root, or in a user namespace) and test reach.interfaces "
                                                  "from a second one; off: on the host")] = True,
    user: Annotated[Optional[str], typer.Option(
        "--user", metavar="NAME|UID", rich_help_panel=_CHECK,
        help="as root: run the programs as this user (default: who ran sudo, else an unused uid; for a folder, an "
             "unused uid per submission); root runs them as root")] = None,
    env: Annotated[Optional[list[str]], typer.Option(
        "--env", metavar="NAME", rich_help_panel=_CHECK,
        help="also pass this variable of your environment to the programs (repeatable); they get only PATH, "
             "HOME (a directory of their own), LANG and TERM otherwise")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON instead of a table")] = False,
    junit_file: Annotated[Optional[Path], typer.Option("--junit", metavar="FILE", rich_help_panel=_GRADING,
                                                       help="also write the report as JUnit XML")] = None,
    rubric_file: Annotated[Optional[Path], typer.Option(
        "--rubric", metavar="FILE", rich_help_panel=_GRADING,
        help="points per case, and which cases only warn (TOML; see the README); default: 1 point a case")] = None,
    gradescope_file: Annotated[Optional[Path], typer.Option(
        "--gradescope", metavar="FILE", rich_help_panel=_GRADING,
        help="also write Gradescope's results.json; for several submissions, {} in FILE stands for each one's "
             "name: 'results/{}/results.json'")] = None,
    csv_file: Annotated[Optional[Path], typer.Option(
        "--csv", metavar="FILE", rich_help_panel=_GRADING,
        help="also write a CSV: a row per submission, a column per case (pass, fail, warn, skip), score, "
             "max_score")] = None,
) -> None:
    """Check anyone's echo or sum server (or client): a report per case, with the likely cause
    and fix of each failure. Exit 0 if no case failed, 1 if one did."""
    from .check import CheckSettings, check_client, check_server, grade, guard, junit
    from .check.grading import (Rubric, grade_rows, gradescope, gradescope_targets, grades_csv, grades_json,
                                known_cases, scored_json)
    from .check.run import request_format
    from .output import write_text

    names = targets or []
    template = None if request is None or request == "auto" else _escaped(request)
    settings = CheckSettings(service=service, profile=profile,
                             request=request if template is None else template.decode("utf-8", "surrogateescape"),
                             timeout=timeout, only=tuple(case or ()),
                             idle_window=idle_window, startup=startup, namespaces=namespaces, user=user,
                             env=tuple(env or ()))
    if client is not None:
        if listen is None or run is not None or names or at is not None:
            raise UsageError("--client goes with --listen ADDR (and no --run, --at or address)")
    elif listen is not None:
        raise UsageError("--listen goes with --client")
    elif stdin is not None and run is None:
        raise UsageError("--stdin goes with --run or --client: netlab feeds it to the program it starts")
    elif run is None and len(names) != 1:
        raise UsageError("give one address to check (tcp:127.0.0.1:50000), or --run CMD to start the server")
    elif run is not None and "{}" not in run and names:
        raise UsageError("with --run, the address goes in --at; to check several files, put {} in --run")
    elif run is not None and "{}" in run and (not names or at is not None):
        raise UsageError("--run with {} checks each SUBMISSION file given after the options (and takes no --at)")
    if jobs is not None and not (run is not None and "{}" in run):
        raise UsageError("--jobs goes with --run 'CMD {}' and the SUBMISSION files to check at once")
    folder = client is None and run is not None and "{}" in run
    if client is None:
        request_format(settings)  # a bad profile or request, before the rubric is read against its cases
    rubric = (Rubric() if rubric_file is None else
              Rubric.load(rubric_file, known_cases(client is not None, service, profile)))
    gradescope_files = (None if gradescope_file is None else
                        gradescope_targets(gradescope_file, names if folder else None))
    for output in (junit_file, csv_file):
        if output is not None:
            Outputs(json=output).check()

    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task("check", total=None)

        def step(what: str, done: int, total: int) -> None:
            progress.update(task, description=f"check: {render.markup_free(what)}", completed=done, total=total)

        if client is not None:
            assert listen is not None
            checked = [(client, guard.run(partial(check_client, client, listen, settings, stdin=stdin,
                                                  progress=step)))]
        elif folder:
            assert run is not None
            checked = guard.run(partial(grade, run, names, settings, progress=step, jobs=jobs, stdin=stdin))
        else:
            address = at if run is not None else _address(names[0])
            report = guard.run(partial(check_server, address, run=run, settings=settings, progress=step,
                                       stdin=stdin))
            checked = [(report.target, report)]
    graded = [(name, rubric.apply(report)) for name, report in checked]
    reports = [report for _, report in graded]
    if as_json:
        _print_json(grades_json(graded, rubric) if folder else scored_json(reports[0], rubric))
    elif folder:
        render.check_grades(out, grade_rows(graded, rubric))
        render.check_notes(out, reports)
    else:
        render.check_report(out, reports[0], rubric.score(reports[0]))
    if junit_file is not None:
        write_text(junit_file, junit(reports), wrote=_wrote)
    if csv_file is not None:
        write_text(csv_file, grades_csv(graded, rubric), wrote=_wrote)
    if gradescope_files is not None:
        for path, report in zip(gradescope_files, reports):
            write_text(path, json.dumps(gradescope(report, rubric), indent=2) + "\n", wrote=_wrote, parents=True)
    if any(report.failed for report in reports):
        raise typer.Exit(1)


# typer names commands after functions; `serve` is taken by the library import
serve_cmd_info = app.registered_commands[0]
serve_cmd_info.name = "serve"


def main() -> None:
    app()
