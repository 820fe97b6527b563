"""The lecture's exploration: host, resolve, constants, raw, addr explain."""

from __future__ import annotations

import json
import sys
from functools import partial
from typing import TYPE_CHECKING, Annotated, Optional

import trio
import typer

from .. import render
from ..errors import UsageError
from ..lifecycle import run_until_signalled
from ..transports import Address, get_transport
from . import common
from .common import (JsonOpt, address_text, address_value, app, command_group, emit, escaped_bytes, print_json)
from .group import say

if TYPE_CHECKING:
    from ..explore import RawEvent


@app.command(epilog="Example: netlab host --json")
def host(as_json: JsonOpt = False) -> None:
    """This machine: its host name, gethostbyname(_ex) of it, and every interface's addresses."""
    from ..explore import host_info

    info = host_info()
    emit(as_json, info.as_dict, partial(render.host, common.out, info))


def _family_opt(value: Optional[str]) -> Optional[str]:
    from ..explore.resolve import FAMILIES

    if value is not None and value.lower() not in FAMILIES:
        raise typer.BadParameter(f"{value!r}: use 4, 6 or unix")
    return value


def _type_opt(value: Optional[str]) -> Optional[str]:
    from ..explore.resolve import TYPES

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
    from ..explore import resolve as do_resolve

    result = trio.run(partial(do_resolve, host, service, family=family, socktype=socktype, canonical=canonical))
    emit(as_json, result.as_dict, partial(render.resolution, common.out, result, canonical))


@app.command(epilog="Example: netlab constants IPPROTO_")
def constants(
    prefix: Annotated[Optional[str], typer.Argument(help="AF_, SOCK_, IPPROTO_, SO_, MSG_, TCP_, ... "
                                                         "(any case; leave out to list every prefix)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The socket module's constants with a prefix: value, every name sharing it, what it means."""
    from ..explore import constants as find_constants
    from ..explore import prefixes

    if prefix is None:
        counts = prefixes()
        emit(as_json, lambda: {"prefixes": counts}, partial(render.prefixes, common.out, counts))
        return
    result = find_constants(prefix)
    emit(as_json, result.as_dict, partial(render.constants, common.out, result))


@app.command(epilog="Example: netlab raw tcp:127.0.0.1:8123 --send 'GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n'")
def raw(
    address: Annotated[Address, typer.Argument(parser=address_value, metavar="ADDR",
                                               help="where to connect (or, with --listen, where to listen)")],
    send: Annotated[Optional[bytes], typer.Option(
        "--send", parser=escaped_bytes, metavar="TEXT",
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
        "--reply", parser=escaped_bytes, metavar="TEXT",
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
    from ..explore import raw_client
    from ..explore.raw import read_chunks, read_lines

    datagram = get_transport(address.scheme).boundaries  # one read per message: show where each begins
    source = None
    if send is None:
        source = read_lines(sys.stdin.buffer) if datagram else read_chunks(sys.stdin.buffer)
    shown = {} if as_json else {"on_event": partial(render.raw_received, hexdump=hexdump, datagram=datagram)}
    result = trio.run(partial(raw_client, address, send, source=source, timeout=timeout, max_bytes=nbytes, eof=eof,
                              **shown))
    if as_json:
        print_json(result.as_dict())
    elif not quiet:
        say(render.raw_summary(result, address, timeout=timeout, nbytes=nbytes, datagram=datagram))


def _raw_listen(address: Address, reply: Optional[bytes], count: Optional[int], hexdump: bool,
                as_json: bool) -> None:
    from ..explore import raw_listen

    def on_event(event: RawEvent) -> None:
        if as_json:
            print(json.dumps(event.as_dict()), flush=True)
        else:
            render.raw_listened(event, hexdump=hexdump)

    trio.run(partial(run_until_signalled, partial(raw_listen, address, reply=reply, count=count, on_event=on_event)))


addr_app = command_group("addr", help="Addresses: how netlab reads one, and what the kernel makes of it.",
                         epilog="Example: netlab addr explain unix:/tmp/sum.sock")


@addr_app.command(epilog="Example: netlab addr explain 'tcp:127.0.0.1:7000?rcvbuf=65536&backlog=16'")
def explain(
    address: Annotated[str, typer.Argument(callback=address_text, metavar="ADDR",
                                           help="any netlab address: tcp:HOST:PORT, udp6:[::1]:53, unix:PATH, ...")],
    as_json: JsonOpt = False,
) -> None:
    """How netlab reads ADDR, the socket calls it makes, and what the kernel applies (a throwaway bind)."""
    from ..explore import explain as do_explain

    result = trio.run(do_explain, address)
    emit(as_json, result.as_dict, partial(render.explanation, common.out, result))

