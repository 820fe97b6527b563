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
from .errors import AddressError, NetlabError
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
    timeout: Annotated[float, typer.Option(help="seconds to wait for the reply", min=0.0)] = 5.0,
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
        missing = sent - received
        _say(f"{missing} of {sent} datagrams got no reply within {timeout:g} s")
        nursery.cancel_scope.cancel()


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
    services: Annotated[Optional[str], typer.Option(help="comma-separated: echo,sum")] = None,
    size: Annotated[int, typer.Option(min=9, max=65000, help="echo request size in bytes")] = 64,
    timeout: Annotated[float, typer.Option(min=0.001, help="seconds to wait for each reply")] = 1.0,
    json_file: Annotated[Optional[Path], typer.Option("--json", help="also write the figures to this file")] = None,
) -> None:
    """Send the same echo and sum workload through every transport; check every reply."""
    from .experiments.compare import run_compare

    service_names = [s.strip() for s in (services or "echo,sum").split(",") if s.strip()]
    for name in service_names:
        if name not in ("echo", "sum"):
            raise _fail(AddressError(f"compare knows the echo and sum workloads, not {name!r}"))
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

    datagram = isinstance(address.transport, DatagramTransport)

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

    datagram = isinstance(address.transport, DatagramTransport)

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
