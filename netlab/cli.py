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
from pathlib import Path
from typing import Annotated, Optional

import trio
import typer
from rich import box
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from . import __version__
from .errors import AddressError, NetlabError, TimeoutError
from .runner import open_client, serve
from .services import SERVICES
from .transports import COMPARE_SCHEMES, TRANSPORTS, Address, DatagramTransport, StreamTransport, parse_address

app = typer.Typer(
    help="netlab, a socket lab: one service core (echo, sum) over TCP, UDP, IPv6 and unix sockets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# piped output is not cut to 80 columns: a table a script reads must not be truncated
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


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


@app.command(epilog="Example: netlab serve --transport unix:/tmp/sum.sock --service sum")
def serve_cmd(
    transport: TransportOpt,
    service: Annotated[str, typer.Option("--service", "-s", callback=_service,
                                         help=f"what to serve: {', '.join(SERVICES)}")] = "echo",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log every connection")] = False,
) -> None:
    """Serve a service until Ctrl-C or SIGTERM. Prints `listening ADDR` for each bound socket."""
    _logging(verbose)

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                server = await nursery.start(serve, service, transport)
                for bound in server.bound:
                    print(f"listening {bound}  service={service}  requested={transport}", flush=True)
                async for signum in signals:
                    logging.getLogger("netlab").info("%s: stopping", signal.Signals(signum).name)
                    nursery.cancel_scope.cancel()
                    break

    _run(main)


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

    async def main() -> None:
        if isinstance(transport.transport, StreamTransport):
            await _chat_stream(transport, timeout)
        else:
            await _chat_datagram(transport, timeout)

    _run(main)


async def _stdin_lines():
    while True:
        line = await trio.to_thread.run_sync(sys.stdin.buffer.readline, abandon_on_cancel=True)
        if not line:
            return
        yield line


def _write(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


async def _chat_stream(address: Address, timeout: float) -> None:
    from .errors import translate_os_errors

    transport = address.transport
    assert isinstance(transport, StreamTransport)
    stream = await transport.connect(address)
    async with stream, trio.open_nursery() as nursery:

        async def receive() -> None:
            with translate_os_errors(address, "receive from"):
                while data := await stream.receive_some(65536):
                    _write(data)
            nursery.cancel_scope.cancel()  # the server closed: we are done

        nursery.start_soon(receive)
        with translate_os_errors(address, "send to"):
            async for line in _stdin_lines():
                await stream.send_all(line if line.endswith(b"\n") else line + b"\n")
            await stream.send_eof()
        await trio.sleep(timeout)  # the server did not close after our EOF: stop waiting
        nursery.cancel_scope.cancel()


async def _chat_datagram(address: Address, timeout: float) -> None:
    transport = address.transport
    assert isinstance(transport, DatagramTransport)
    sent = 0
    received = 0
    done = trio.Event()
    async with await transport.connect(address) as sock, trio.open_nursery() as nursery:

        async def receive() -> None:
            nonlocal received
            while True:
                data = (await sock.receive()).data
                _write(data if data.endswith(b"\n") else data + b"\n")
                received += 1
                if done.is_set() and received >= sent:
                    nursery.cancel_scope.cancel()

        nursery.start_soon(receive)
        async for line in _stdin_lines():
            await sock.send(line.rstrip(b"\r\n"))
            sent += 1
        done.set()
        if received >= sent:
            nursery.cancel_scope.cancel()
        await trio.sleep(timeout)
        nursery.cancel_scope.cancel()
    if received < sent:
        raise TimeoutError(f"{sent - received} of {sent} datagrams got no reply within {timeout:g} s "
                           f"of the last one")


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


@app.command(epilog="Example: netlab compare --requests 200 --transports tcp,udp --json compare.json")
def compare(
    requests: Annotated[int, typer.Option("--requests", "-n", min=1, help="requests per transport and service")] = 1000,
    transports_opt: Annotated[Optional[str], typer.Option(
        "--transports", callback=_transport_names,
        help=f"comma-separated subset of: {', '.join(COMPARE_SCHEMES)}")] = None,
    services: Annotated[str, typer.Option(callback=_compare_services, metavar="LIST",
                                          help="comma-separated workloads: echo,sum")] = "echo,sum",
    size: Annotated[int, typer.Option(min=9, max=65000, help="echo request size in bytes")] = 64,
    timeout: Annotated[float, typer.Option(min=0.001, help="seconds to wait for each reply")] = 1.0,
    json_file: Annotated[Optional[Path], typer.Option("--json", help="also write the figures to this file")] = None,
) -> None:
    """Send the same echo and sum workload through every transport; check every reply."""
    from .experiments.compare import run_compare

    service_names = services
    names = transports_opt or list(COMPARE_SCHEMES)
    total = requests * len(names) * len(service_names)
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("comparing", total=total)
        rows = _run(lambda: run_compare(names, service_names, requests=requests, size=size, timeout=timeout,
                                        tick=lambda: progress.advance(task)))
    table = Table(title=f"netlab compare: {requests} requests each, closed loop", box=box.SIMPLE_HEAD,
                  pad_edge=False)
    wide = out.width >= 130  # narrower terminals get the addresses listed under the table
    columns = ["transport", "service", "requests", "verified", "lost", "dup", "out of order", "corrupt",
               "p50 µs", "p99 µs"] + (["address"] if wide else [])
    for column in columns:
        left = column in ("transport", "service", "address")
        table.add_column(column, justify="left" if left else "right", no_wrap=left)
    for row in rows:
        cells = [row.transport, row.service, str(row.requests), str(row.verified), str(row.lost),
                 str(row.duplicated), str(row.out_of_order), str(row.corrupted),
                 "-" if row.median_us is None else f"{row.median_us:.0f}",
                 "-" if row.p99_us is None else f"{row.p99_us:.0f}"]
        table.add_row(*cells, *([row.address] if wide else []))
    out.print(table)
    if not wide:
        for row in rows:
            out.print(f"  {row.transport}/{row.service}: {row.address}", highlight=False)
    for row in rows:
        if row.error:
            _say(f"{row.transport}/{row.service}: {row.error}")
    if json_file is not None:
        document = {"netlab": __version__, "requests": requests, "size": size, "timeout": timeout,
                    "results": [row.summary() for row in rows]}
        try:
            json_file.write_text(json.dumps(document, indent=2) + "\n")
        except OSError as exc:
            raise _fail(NetlabError(f"cannot write {json_file}: {exc.strerror}")) from None
        _say(f"wrote {json_file}")
    if any(row.error for row in rows):
        raise typer.Exit(1)


# typer names commands after functions; `serve` is taken by the library import
serve_cmd_info = app.registered_commands[0]
serve_cmd_info.name = "serve"


def main() -> None:
    app()
