"""``netlab trace``: a command in a private network namespace, and every packet on its loopback
(the capturing and decoding is `netlab.trace`)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from ..output import Outputs
from ..services import SERVICES
from . import common
from .common import (SETTINGS, JsonFileOpt, PlotOpt, address_value, app, complete_schemes, complete_services, emit,
                     service_name, wrote)
from .group import say

_TRACE = "Capture"


@app.command(context_settings={**SETTINGS, "allow_interspersed_args": False},
             epilog="Example: netlab trace --serve tcp:127.0.0.1:7000 --pcap t.pcap -- "
                    "netlab send --transport tcp:127.0.0.1:7000 '2 3'")
def trace(
    command: Annotated[Optional[list[str]], typer.Argument(metavar="-- CMD...", help="the command to trace, "
                                                           "after -- ; a netlab command may leave out `netlab` (a "
                                                           "program named like one: give its path)")]
    = None,
    serve_at: Annotated[Optional[list[str]], typer.Option(
        "--serve", metavar="ADDR", callback=lambda v: [str(address_value(a)) for a in v or []],
        autocompletion=complete_schemes,
        help="start netlab's server on ADDR inside the trace first (repeatable)")] = None,
    service: Annotated[str, typer.Option("--service", "-s", callback=service_name, autocompletion=complete_services,
                                         help=f"with --serve: {', '.join(SERVICES)}")] = "sum",
    pcap: Annotated[Optional[Path], typer.Option("--pcap", metavar="FILE",
                                                 help="also write the packets to FILE (pcap: Wireshark, "
                                                      "tcpdump -r)")] = None,
    max_packets: Annotated[int, typer.Option(min=1, rich_help_panel=_TRACE,
                                             help="stop capturing after this many packets")] = 20_000,
    seconds: Annotated[float, typer.Option(min=0.1, rich_help_panel=_TRACE,
                                           help="stop the command and the capture after this many seconds")] = 60.0,
    mtu: Annotated[Optional[int], typer.Option(min=68, max=65536, rich_help_panel=_TRACE,
                                               help="lo's MTU in the trace (1500: large datagrams leave as IP "
                                                    "fragments, as on a real link)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of the ladder: the conversations "
                                                         "and one object per packet")] = False,
    json_file: JsonFileOpt = None,
    plot_file: PlotOpt = None,
) -> None:
    """Run a command in a private network namespace and show its packets: a ladder diagram of every
    segment and datagram, in 80 columns (needs root or user namespaces)."""
    from ..trace import Limits, TraceSettings, run_trace, write_pcap
    from ..trace.plot import plot as draw
    from ..trace.view import show

    if not command:
        raise UsageError("give the command to trace after --: netlab trace -- netlab send ...")
    if command[0] in typer.main.get_command(app).commands:  # type: ignore[attr-defined]  # a click Group
        command = ["netlab", *command]
    outputs = Outputs(json=json_file, plot=plot_file)
    outputs.check()
    if pcap is not None:
        Outputs(json=pcap).check()
    settings = TraceSettings(command, serve_at or [], service, Limits(packets=max_packets, seconds=seconds), mtu)
    result = run_trace(settings)
    emit(as_json, result.as_json, partial(show, common.out, result), outputs,
         lambda path: draw(result.ladder(), path, title="netlab trace: " + " ".join(command)))
    if pcap is not None:
        write_pcap(pcap, result.frames)
        wrote(pcap)
    if result.timed_out or result.exit_code != 0:
        say("the traced command " + ("ran out of time" if result.timed_out else
                                     f"exited with status {result.exit_code}"))
        raise typer.Exit(1)
