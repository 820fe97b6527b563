"""How the `netlab` command shows results: one table renderer, and the views built on it.

Every table the CLI prints is made by `table` (rich). The views below take the console to
print on (the CLI's, which tests replace) and a result from the library; they decide
layout only: every figure and every sentence of conclusion comes from the library.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from rich import box
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # the views import nothing heavy until they run
    from .bench.core import BenchResult
    from .check import CheckReport
    from .experiments.base import ResultTable
    from .experiments.compare import CompareSettings, TransportResult
    from .experiments.relay import Relay
    from .explore import ConstantsTable, Explanation, HostInfo, RawEvent, RawResult, Resolution
    from .explore.explain import Fact
    from .runner import Limits, Server
    from .transports import Address, Transport


@dataclass(frozen=True)
class Column:
    """A column's header and layout: right-aligned (figures), never wrapped, folded when
    too long instead of cut short."""

    name: str
    right: bool = False
    no_wrap: bool = False
    fold: bool = False


def table(columns: Iterable[str | Column], rows: Iterable[Sequence[object]], *, title: str | None = None,
          left_title: bool = True, pad_edge: bool = True, framed: bool = False) -> Table:
    """The one table renderer: `rows` of cells (shown with ``str``) under `columns`.

    Tables are ruled under the header only, unless `framed` (a box around every cell)."""
    made = Table(title=title, box=box.HEAVY_HEAD if framed else box.SIMPLE_HEAD, pad_edge=pad_edge,
                 title_justify="left" if left_title else "center")
    for column in columns:
        spec = Column(column) if isinstance(column, str) else column
        made.add_column(spec.name, justify="right" if spec.right else "left", no_wrap=spec.no_wrap,
                        overflow="fold" if spec.fold else "ellipsis")
    for row in rows:
        made.add_row(*(str(cell) for cell in row))
    return made


def result_table(data: ResultTable, *, left: Sequence[str] | None = None, first_left: bool = False) -> Table:
    """A library's `ResultTable`; with `left` given, the columns it names (and the first, with
    `first_left`) are text and the others right-aligned figures."""
    columns = [Column(str(name), right=left is not None and not (first_left and i == 0) and name not in left)
               for i, name in enumerate(data.columns)]
    return table(columns, data.rows, title=data.title)


def dash(value: object) -> str:
    if value is None or value == "" or value == [] or value == ():
        return "-"
    return str(value)


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


# -- netlab transports ----------------------------------------------------------------------


def transports(console: Console, registry: Iterable[Transport]) -> None:
    console.print(table([Column(c, no_wrap=True) for c in ("scheme", "family", "type", "reliable", "ordered",
                                                            "boundaries")],
                        ([t.scheme, t.family_name, t.socktype.name, yes_no(t.reliable), yes_no(t.ordered),
                          yes_no(t.boundaries)] for t in registry),
                        title="netlab transports", left_title=False, framed=True))
    console.print("tcp and udp follow the host (a name may give both families); unix-dgram is reliable and "
                  "ordered on Linux, where a full receiver blocks the sender instead of dropping. "
                  "Options per scheme: netlab transports --json.", highlight=False)


# -- netlab serve and relay -----------------------------------------------------------------


def serving(server: Server, *, service: str, requested: Address, limits: Limits) -> None:
    """serve's `listening ADDR` line per bound socket, and one warning for wildcard addresses."""
    settings = server.service.describe(stream=not server.transport.boundaries)
    for bound in server.bound:
        print(f"listening {bound}  service={service}{'  ' + settings if settings else ''}  requested={requested}  "
              f"{limits.describe()}", flush=True)
    wildcards = [str(bound) for bound in server.bound if bound.is_wildcard]
    if wildcards:  # one line, even when '*' gave an IPv4 and an IPv6 socket
        logging.getLogger("netlab").warning(
            "warning: %s listen%s on all interfaces: anyone who can reach this machine can connect",
            " and ".join(wildcards), "" if len(wildcards) > 1 else "s")


def relaying(running: Relay) -> None:
    for bound in running.bound:
        print(f"listening {bound}  to={running.to}  seed={running.seed}", flush=True)
    print(f"  forward: {running.forward.describe()}\n  backward: {running.backward.describe()}", flush=True)


# -- netlab relay ---------------------------------------------------------------------------

_RELAY_COUNTS = ["received", "passed", "dropped", "queue_dropped", "duplicated", "reordered", "corrupted", "bytes"]


def relay_summary(console: Console, running: Relay) -> str:
    """Print the relay's counts per direction; return the one line on the rest."""
    stats = running.stats
    console.print(table(["direction"] + [Column(name.replace("_", " "), right=True) for name in _RELAY_COUNTS],
                        ([label, *(getattr(direction, n) for n in _RELAY_COUNTS)]
                         for label, direction in (("forward", stats.forward), ("backward", stats.backward))),
                        title="relay summary", left_title=False))
    extra = f"connections {stats.connections}, upstream failures {stats.upstream_failures}"
    if stats.unanswerable:
        extra += f", datagrams from unbound senders {stats.unanswerable}"
    if stats.send_failures:
        extra += f", datagrams that could not be sent {stats.send_failures}"
    return extra


# -- netlab compare -------------------------------------------------------------------------


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _pct(part: int, whole: int) -> str:
    return f"{part} ({100 * part / whole:.1f}%)" if whole and part else str(part)


def compare(console: Console, settings: CompareSettings, results: Sequence[TransportResult],
            conclusions: Sequence[str]) -> None:
    """compare's delivery and latency tables, where each server was, and `conclusions`."""
    mode = f"open loop at {settings.rate:g} msg/s" if settings.rate else "closed loop"
    impaired = f"; forward: {settings.forward.describe()}; backward: {settings.backward.describe()}" \
        if settings.impaired else ""
    wide = console.width >= 150  # narrower terminals get the addresses listed under the tables
    text = ("transport", "service", "address")
    columns = [Column(c, right=c not in text, no_wrap=c in text)
               for c in ("transport", "service", "sent", "delivered", "lost", "dup", "out of order", "corrupt",
                         "trunc", "boundaries (msgs→reads)") + (("address",) if wide else ())]
    console.print(table(columns, (
        [r.transport, r.service, r.sent, r.delivered, _pct(r.lost, r.planned), _pct(r.duplicated, r.planned),
         f"{r.reordered} (max {r.max_displacement})" if r.reordered else "0", r.corrupted, r.truncated,
         f"{r.replies}→{r.reads} " + ("kept" if r.boundaries_kept else "not kept"),
         *((r.via or r.address,) if wide else ())]
        for r in results), title=f"netlab compare: {settings.messages} messages each, {mode}, "
                                 f"{settings.concurrency} client(s){impaired}"))

    def dropped(r: TransportResult) -> str:
        if r.relay is None:
            return "-"
        # the relay's JSON counts per direction (compare types them as plain JSON objects)
        f, b = cast("dict[str, int]", r.relay["forward"]), cast("dict[str, int]", r.relay["backward"])
        return f"{f['dropped'] + f['queue_dropped']}/{b['dropped'] + b['queue_dropped']}"

    text = ("transport", "service", "not applied")
    columns = [Column(c, right=c not in text, no_wrap=c in ("transport", "service"))
               for c in ("transport", "service", "p50", "p90", "p99", "p99.9", "max", "goodput",
                         "relay dropped →/←", "not applied")]
    console.print(table(columns, (
        [r.transport, r.service, _us(r.p50_us), _us(r.p90_us), _us(r.p99_us), _us(r.p999_us), _us(r.max_us),
         f"{r.goodput_bps / 1e3:,.1f} kb/s", dropped(r), ", ".join(n.replace("_", "-") for n in r.not_applied) or "-"]
        for r in results), title="round trip in µs, goodput, and what the relay did (→ requests, ← replies)"))
    if not wide or settings.impaired:
        for r in results:
            via = f" via relay {r.via}" if r.via else ""
            console.print(f"  {r.transport}/{r.service}: server {r.address}{via}", highlight=False)
    for line in conclusions:
        console.print(line, highlight=False)


def kernel_compare(console: Console, results: Sequence[TransportResult], conclusions: Sequence[str]) -> None:
    """compare --kernel's attribution table under compare's own tables."""
    from .experiments.kernel import attribution_table, environment_note

    console.print(result_table(attribution_table(results), left=("transport", "service")))
    for r in results:
        attribution = cast("dict[str, str] | None", r.kernel and r.kernel.get("attribution"))  # kernel's JSON
        if attribution:
            console.print(f"  {attribution['sentence']}", highlight=False)
    console.print(environment_note(results), highlight=False)
    for line in conclusions:
        console.print(line, highlight=False)


# -- netlab bench ---------------------------------------------------------------------------


def bench(console: Console, result: BenchResult) -> None:
    from .bench.core import tables

    for data in tables(result):
        console.print(result_table(data, left=("server", "why", "target", "where"), first_left=True))
    env = result.environment
    pinned = env.get("pin", {})
    console.print(f"pin={result.settings.pin} (server cores {pinned.get('server_cpus') or 'any'}, load generator "
                  f"cores {pinned.get('client_cpus') or 'any'}); {env['cores']} cores, Linux {env['kernel']}, "
                  f"Python {env['python']}, trio {env['trio']}, loopback MTU {env['loopback_mtu']}; load average "
                  f"{env['loadavg']} -> {env['loadavg_end']}", highlight=False)


# -- the lecture's exploration ---------------------------------------------------------------


def host(console: Console, info: HostInfo) -> None:
    rows: list[list[str]] = [["gethostname()", info.hostname]]
    for lookup in (info.gethostbyname, info.gethostbyname_ex):
        if not lookup.ok:
            result = f"[red]failed[/red]: {lookup.error}"
        elif lookup.address is not None:
            result = lookup.address
        else:
            result = (f"canonical name {lookup.canonical}, aliases {dash(', '.join(lookup.aliases))}, "
                      f"addresses {dash(', '.join(lookup.addresses))}")
        rows.append([lookup.call, result])
    console.print(table(["call", "result"], rows, title="this host", left_title=False, pad_edge=False))
    rows = []
    for interface in info.interfaces:
        state = {True: "up", False: "down", None: "?"}[interface.up]
        addresses = [("IPv4", a) for a in interface.ipv4] + [("IPv6", a) for a in interface.ipv6]
        if not addresses:
            rows.append([str(interface.index), interface.name, state, "-", "(no address)", "-", ""])
        for i, (family, a) in enumerate(addresses):
            where = f"{a.address}/{a.prefixlen}" if a.prefixlen is not None else a.address
            rows.append([str(interface.index) if i == 0 else "", interface.name if i == 0 else "",
                         state if i == 0 else "", family, where, a.scope, ", ".join(a.flags)])
    columns = [Column(c, no_wrap=c != "flags", right=c == "index")
               for c in ("index", "name", "state", "family", "address", "scope", "flags")]
    console.print(table(columns, rows, title="interfaces", left_title=False, pad_edge=False))
    console.print("sources: " + "; ".join(f"{k}: {v}" for k, v in info.sources.items()), highlight=False)


def resolution(console: Console, result: Resolution, canonical: bool) -> None:
    columns = ["family", "type", "protocol"] + (["canonical name"] if canonical else []) + \
              ["socket address", "netlab address"]
    rows = ([row.family, row.type, row.protocol] + ([dash(row.canonname)] if canonical else [])
            + [repr(row.sockaddr), row.address or f"- ({row.note})"] for row in result.rows)
    console.print(table([Column(c, no_wrap=True) for c in columns], rows, title=result.call, pad_edge=False),
                  highlight=False)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)


def prefixes(console: Console, counts: dict[str, int]) -> None:
    console.print(table(["prefix", Column("names", right=True)], counts.items(),
                        title="socket constant prefixes", left_title=False, pad_edge=False))


def constants(console: Console, result: ConstantsTable) -> None:
    rows = []
    shared = 0
    for row in result.rows:
        shared += row.shared
        for i, (name, meaning) in enumerate(zip(row.names, row.meanings)):
            first = i == 0
            rows.append([str(row.value) if first else "", hex(row.value) if first and row.value >= 0 else "",
                         name + (" *" if row.shared else ""), meaning])
    columns = [Column("value", right=True, no_wrap=True), Column("hex", right=True, no_wrap=True),
               Column("name", no_wrap=True), Column("meaning")]
    console.print(table(columns, rows, title=f"socket.{result.prefix}*", pad_edge=False), highlight=False)
    if shared:
        console.print(f"* {shared} value(s) have several names: a {{value: name}} dict, like the lecture's "
                      f"get_constants, keeps only one of them.", highlight=False)


def _facts(title: str, facts: dict[str, Fact], columns: Sequence[str] = ("", "value", "how we know", "note")) -> Table:
    def shown(value: object) -> str:
        return "-" if value is None else ("yes" if value is True else "no" if value is False else str(value))

    return table([Column(c, no_wrap=c in ("", "value"), fold=True) for c in columns],
                 ([name, shown(fact.value), fact.source, fact.note] for name, fact in facts.items()),
                 title=title, pad_edge=False)


def explanation(console: Console, result: Explanation) -> None:
    console.print(_facts(f"How netlab reads {result.given}", result.reading, ("", "value", "from", "note")),
                  highlight=False)
    console.print(_facts("Options", result.options, ("", "value", "", "meaning")), highlight=False)
    console.print("What it will do", style="italic", highlight=False)
    for who, calls in (("as a server (netlab serve)", result.server_calls),
                       ("as a client (netlab send, chat, raw)", result.client_calls)):
        console.print(f"  {who}:", highlight=False)
        for number, call in enumerate(calls, 1):
            console.print(f"    {number:2}. {call}", highlight=False, markup=False)
    console.print()
    if result.target:
        console.print(_facts("The target now (looked at, not changed)", result.target), highlight=False)
    for note in result.notes:
        console.print(f"[red]could not probe[/red]: {note}", highlight=False)
    for probe in result.probes:
        title = f"What the kernel applied: throwaway {probe.family} socket"
        if probe.bound:
            title += f", bound {probe.bound}"
        if probe.error:
            console.print(f"{title}: [red]{probe.error}[/red]", highlight=False)
            continue
        console.print(_facts(title, probe.facts), highlight=False)
        for note in probe.notes:
            console.print(f"  {note}", highlight=False, markup=False)
        console.print()
    console.print(_facts("System settings that apply", result.system), highlight=False)


# -- netlab raw: bytes as they came (stdout), or a hexdump -------------------------------------


def _write_bytes(data: bytes) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def raw_data(data: bytes, *, hexdump: bool, offset: int, datagram: bool) -> None:
    from .explore import hexdump as dump

    if hexdump:
        if data:
            print(dump(data, offset), flush=True)
    elif datagram and not data.endswith(b"\n"):
        _write_bytes(data + b"\n")
    else:
        _write_bytes(data)


def raw_received(event: RawEvent, *, hexdump: bool, datagram: bool) -> None:
    """raw's client side: what arrived, as it arrives."""
    if event.kind not in ("data", "datagram"):
        return
    if hexdump and datagram:  # each datagram dumps from offset 0: say where one begins
        print(f"datagram, {len(event.data)} bytes from {event.peer}:", flush=True)
    raw_data(event.data, hexdump=hexdump, offset=event.offset, datagram=datagram)


def raw_summary(result: RawResult, address: Address, *, timeout: float, nbytes: int | None, datagram: bool) -> str:
    """raw's client side: the one line on what was sent and received, and why it stopped."""
    why = {"peer closed": "the peer closed the connection",
           "timeout": f"nothing more arrived for {timeout:g} s",
           "byte limit": f"--bytes {nbytes} reached"}[result.ended]
    unit = "datagram" if datagram else "read"
    got = f"{result.received} bytes in {len(result.reads)} {unit}{'s' if len(result.reads) != 1 else ''}"
    sent = f"sent {result.sent} bytes" + (" then half-closed" if result.half_closed else "")
    return f"{sent}; received {got} from {result.peer or address}; stopped: {why}"


def raw_listened(event: RawEvent, *, hexdump: bool) -> None:
    """raw --listen: one line per event, and the data that came."""
    who = f"[#{event.client} {event.peer}]" if event.client is not None else f"[{event.peer}]"
    if event.kind == "listening":
        print(f"listening {event.detail}", flush=True)
    elif event.kind == "connected":
        print(f"{who} connected" + (f" ({event.detail})" if event.detail else ""), flush=True)
    elif event.kind in ("data", "datagram"):
        what = "datagram, " if event.kind == "datagram" else ""
        extra = f" ({event.detail})" if event.detail else ""
        print(f"{who} {what}{len(event.data)} bytes{extra}:", flush=True)
        raw_data(event.data, hexdump=hexdump, offset=event.offset, datagram=True)
    elif event.kind == "replied":
        print(f"{who} replied {len(event.data)} bytes", flush=True)
    elif event.kind == "half-closed":
        print(f"{who} half-closed: {event.detail}", flush=True)
    else:  # closed, note
        print(f"{who} {event.detail}", flush=True)


__all__ = ["Column", "bench", "compare", "constants", "dash", "explanation", "host", "kernel_compare", "prefixes",
           "raw_data", "raw_listened", "raw_received", "raw_summary", "relay_summary", "relaying", "resolution",
           "result_table", "serving", "table", "transports", "yes_no"]


# -- netlab check ------------------------------------------------------------------------------

_OUTCOME_STYLE = {"pass": "green", "fail": "bold red", "warn": "yellow", "skip": "dim"}


def check_summary(report: CheckReport) -> str:
    summary = report.summary
    return (f"{summary['pass']} passed, {summary['fail']} failed, {summary['warn']} warnings, "
            f"{summary['skip']} skipped")


def check_report(console: Console, report: CheckReport) -> None:
    """One row per case: its id, the outcome, and the sentence saying what happened."""
    made = table([Column("case", no_wrap=True), Column("result", no_wrap=True), Column("what happened", fold=True)],
                 [], title=f"netlab check {report.service} ({report.profile} profile): {report.target}")
    for case in report.cases:
        made.add_row(case.id, f"[{_OUTCOME_STYLE[case.outcome]}]{case.outcome}[/]", case.detail)
    console.print(made)
    if report.request is not None:
        console.print(f"requests written as {report.request}", highlight=False)
    console.print(check_summary(report), highlight=False)


def check_grades(console: Console, graded: Sequence[tuple[str, CheckReport]]) -> None:
    """One row per submission: cases passed, and the ids that failed or warned."""
    console.print(table(
        [Column("submission", fold=True), Column("passed", right=True, no_wrap=True), Column("failed", fold=True),
         Column("warnings", fold=True)],
        ([name, f"{r.summary['pass']}/{len(r.cases) - r.summary['skip']}", dash(", ".join(r.failed)),
          dash(", ".join(r.warned))] for name, r in graded),
        title="netlab check: one row per submission"))
