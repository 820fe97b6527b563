"""What the `netlab` commands share: the app, the consoles, the option types and their
validators, the shell completion of their values, and how a command ends (`emit`).

Commands print tables through ``common.out`` and progress through ``common.err_console``,
looked up at each call (``from . import common``; not ``from .common import out``): tests
replace them with consoles of a fixed width.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Optional

import trio
import typer

from .. import __version__, render
from ..errors import AddressError, ServiceOptionError
from ..output import Outputs
from ..services import SERVICES, Framing
from ..transports import COMPARE_SCHEMES, TRANSPORTS, Address, parse_address
from .group import NetlabGroup, help_when_bare, say

SETTINGS = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    cls=NetlabGroup,
    help="netlab, a socket lab: one service core (echo, sum) over TCP, UDP, IPv6 and unix sockets.",
    pretty_exceptions_enable=False,
    context_settings=SETTINGS,
)


def _version(value: bool) -> None:
    if value:
        print(f"netlab {__version__} (Python {sys.version.split()[0]}, trio {trio.__version__})")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _main(ctx: typer.Context,
          version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="print netlab's version and exit")] = False) -> None:
    """netlab, a socket lab: one service core (echo, sum) over TCP, UDP, IPv6 and unix sockets."""
    help_when_bare(ctx)


def command_group(name: str, help: str, epilog: str | None = None) -> typer.Typer:
    """A group of commands under `app` (``netlab NAME COMMAND``); given no command, it shows
    its help."""
    group = typer.Typer(cls=NetlabGroup, help=help, epilog=epilog, context_settings=SETTINGS)
    group.callback(invoke_without_command=True)(help_when_bare)
    app.add_typer(group, name=name)
    return group


out = render.console()
err_console = render.console(stderr=True)


def one_of(names: Sequence[str]) -> str:
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else ", ".join(names)


# -- validators: each raises typer.BadParameter, which typer words with the option's name --


def address_value(value: str) -> Address:
    try:
        return parse_address(value)
    except AddressError as exc:
        raise typer.BadParameter(str(exc)) from None


def address_text(value: str) -> str:
    address_value(value)
    return value


def service_name(value: Optional[str]) -> Optional[str]:
    if value is not None and value not in SERVICES:
        raise typer.BadParameter(f"unknown service {value!r} (known: {', '.join(SERVICES)})")
    return value


def framing_text(value: Optional[str]) -> Optional[str]:
    if value is not None:
        try:
            Framing.parse(value)
        except ServiceOptionError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value


def accept_mode(value: Optional[str]) -> Optional[str]:
    if value is not None and value not in ("strict", "lenient"):
        raise typer.BadParameter(f"{value!r}: use strict or lenient")
    return value


def transport_list(value: Optional[str]) -> Optional[list[str]]:
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in COMPARE_SCHEMES]
    if unknown or not names:
        raise typer.BadParameter(f"unknown transport {unknown[0] if unknown else value!r} "
                                 f"(known: {', '.join(COMPARE_SCHEMES)})")
    return names


def escaped_bytes(value: Optional[str]) -> Optional[bytes]:
    from ..explore import decode_escapes

    if value is None:
        return None
    try:
        return decode_escapes(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


# -- shell completion of values: each list is read only when completing -------------------


def completes(names: Callable[[], Sequence[str]]) -> Callable[[str], list[str]]:
    """Shell completion of one value among `names()` (called only when completing)."""
    return lambda incomplete: [name for name in names() if name.startswith(incomplete)]


def completes_list(names: Callable[[], Sequence[str]]) -> Callable[[str], list[str]]:
    """Shell completion of a comma-separated list: the last item, after what is typed."""
    def complete(incomplete: str) -> list[str]:
        done, _, last = incomplete.rpartition(",")
        head = done + "," if done else ""
        taken = set(done.split(","))
        return [head + name for name in names() if name.startswith(last) and name not in taken]
    return complete


def _experiment_names() -> list[str]:
    from ..experiments import EXPERIMENTS

    return list(EXPERIMENTS)


complete_schemes = completes(lambda: [f"{scheme}:" for scheme in TRANSPORTS])
complete_services = completes(lambda: list(SERVICES))
complete_transports = completes_list(lambda: list(COMPARE_SCHEMES))
complete_experiments = completes(_experiment_names)


TransportOpt = Annotated[Address, typer.Option("--transport", "-t", parser=address_value, metavar="ADDR",
                                               autocompletion=complete_schemes,
                                               help="where: tcp:HOST:PORT, udp:…, tcp6:[::1]:PORT, unix:PATH, "
                                                    "unix-dgram:@NAME (see `netlab transports`)")]
TransportsOpt = Annotated[Optional[str], typer.Option(
    "--transports", callback=transport_list, autocompletion=complete_transports, help=f"comma-separated subset of: {', '.join(COMPARE_SCHEMES)}")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON on stdout instead of tables")]
JsonFileOpt = Annotated[Optional[Path], typer.Option("--json-file", metavar="FILE",
                                                     help="also write the JSON document to FILE")]
PlotOpt = Annotated[Optional[Path], typer.Option("--plot", metavar="FILE",
                                                 help="draw the figures to FILE (.png, .svg, .pdf, ...; "
                                                      "no extension: .png is added)")]


# -- how a command ends --------------------------------------------------------------------


def wrote(path: Path) -> None:
    say(f"wrote {path}")


def print_json(document: object, indent: int | None = 2) -> None:
    print(json.dumps(document, indent=indent), flush=True)


def emit(as_json: bool, document: Callable[[], object], view: Callable[[], None], outputs: Outputs = Outputs(),
         draw: Callable[[str], None] | None = None) -> None:
    """How every command ends: the JSON `document()` on stdout with --json, else the `view`
    (tables); then the files `outputs` asks for (the same document, the plot)."""
    made = functools.cache(document)
    if as_json:
        print_json(made())
    else:
        view()
    outputs.write(made, draw, wrote=wrote)


def log_to_stderr(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="netlab: %(message)s", force=True)
