"""The lab's own commands: serve, send, chat, transports."""

from __future__ import annotations

import sys
from dataclasses import asdict
from functools import partial
from typing import Annotated, Optional

import trio
import typer

from .. import render
from ..client import open_client, run_chat
from ..lifecycle import run_until_signalled
from ..server import Limits, Server, serve
from ..services import SERVICES, get_service
from ..transports import TRANSPORTS
from . import common
from .common import (JsonOpt, TransportOpt, accept_mode, app, complete_services, emit, framing_text, log_to_stderr,
                     print_json, service_name)

_LIMITS = "Limits (see the README's Limits and safety)"
_CLIENTS = "Testing your own client (see the README)"


@app.command("serve", epilog="Example: netlab serve --transport unix:/tmp/sum.sock --service sum")
def serve_cmd(
    transport: TransportOpt,
    service: Annotated[str, typer.Option("--service", "-s", callback=service_name, autocompletion=complete_services,
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
        callback=framing_text, metavar="line|quiet[:MS]|eof", rich_help_panel=_CLIENTS,
        help="sum on streams: where a request ends. line: at \\n (default); quiet: also after MS ms "
             "with nothing more (default 200); eof: when the client half-closes")] = None,
    accept: Annotated[Optional[str], typer.Option(
        callback=accept_mode, metavar="strict|lenient", rich_help_panel=_CLIENTS,
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
    log_to_stderr(verbose)
    servers: list[Server] = []

    def listening(server: Server) -> None:
        servers.append(server)
        render.serving(server, service=service, requested=transport, limits=limits, as_json=as_json)

    trio.run(partial(run_until_signalled, partial(serve, served, transport, limits=limits), started=listening,
                     drain=Server.drain, grace=limits.grace))
    if as_json:
        for server in servers:
            print_json({"event": "stopped", "stats": asdict(server.stats)}, indent=None)


@app.command(epilog='Example: netlab send --transport tcp:127.0.0.1:7000 "2 3"')
def send(
    transport: TransportOpt,
    message: Annotated[str, typer.Argument(help="the request; for sum, two numbers: \"2 3\"")],
    service: Annotated[Optional[str], typer.Option(
        "--service", "-s", callback=service_name, autocompletion=complete_services,
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

    emit(as_json, lambda: {"transport": str(transport), "request": message,
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

    from ..explore.raw import read_lines  # os.read in a thread: safe to abandon when the server closes

    def received(data: bytes) -> None:
        print_json({"received": data.decode("utf-8", "backslashreplace")}, indent=None)

    trio.run(partial(run_chat, transport, read_lines(sys.stdin.buffer), received if as_json else _write,
                     timeout=timeout, newline=not no_newline, half_close=half_close))


def _write(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


@app.command(epilog="Example: netlab transports --json")
def transports(as_json: JsonOpt = False) -> None:
    """The schemes netlab speaks: socket family and type, and what delivery each promises."""
    emit(as_json, lambda: [{"scheme": t.scheme, "family": t.family_name, "type": t.socktype.name, "kind": t.kind,
                             "reliable": t.reliable, "ordered": t.ordered, "boundaries": t.boundaries,
                             "options": sorted(t.options), "summary": t.summary} for t in TRANSPORTS.values()],
          lambda: render.transports(common.out, TRANSPORTS.values()))


