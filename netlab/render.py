"""How the `netlab` command shows results: one table renderer, and the views built on it.

Every table the CLI prints is made by `table` (rich). The views below take the console to
print on (the CLI's, which tests replace) and a result from the library; they decide
layout only: every figure and every sentence of conclusion comes from the library.
`netlab check`'s views are `netlab.check.view`'s, and `netlab trace`'s `netlab.trace.view`'s,
on the same tables.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from .plaintext import printable

if TYPE_CHECKING:  # the views import nothing heavy until they run
    from .bench.core import BenchResult
    from .results import ResultTable
    from .experiments.compare import CompareSettings, TransportResult
    from .experiments.relay import Relay
    from .explore import ConstantsTable, Explanation, HostInfo, RawEvent, RawResult, Resolution
    from .explore.explain import Fact
    from .server import Limits, Server
    from .transports import Address, Transport


#: the width of output that is not a terminal (a pipe, a file): fixed, so that what a script
#: reads depends neither on who ran it nor on $COLUMNS (which some programs set for their
#: children: Python's readline does)
PLAIN_WIDTH = 200


def console(*, stderr: bool = False, width: int | None = None) -> Console:
    """The console a command prints on: on a terminal, the terminal's width; otherwise plain
    text (no colour, no cursor moves) `PLAIN_WIDTH` wide. `width` (tests) fixes it."""
    stream = sys.stderr if stderr else sys.stdout
    if width is None and not stream.isatty():
        width = PLAIN_WIDTH
    return Console(stderr=stderr, width=width)


@dataclass(frozen=True)
class Column:
    """A column's header and layout. `right`: right-aligned (figures). `wrap`: its cells are
    sentences that may wrap at spaces (None: decided from the cells: text over 32
    characters with spaces in it); every other column is never wrapped nor cut. `key`: the
    column repeats in every part of a table split to fit (default: the first column)."""

    name: str
    right: bool = False
    wrap: bool | None = None
    key: bool = False

    @property
    def justify(self) -> str:
        return "right" if self.right else "left"


#: a sentence column never gets narrower than this when a table is fitted (unless its text is)
_PROSE_WIDTH = 24


class FitTable:
    """A table that fits the width it is printed at and loses nothing.

    When its columns are wider than the console, they are dealt into several tables
    printed one under the other, each repeating the key columns (the first column, unless
    columns say `key`): the rows stay whole, no cell is cut short, and figures are never
    wrapped. Only sentence columns (`Column.wrap`) wrap, at spaces. A single column wider
    than the console on its own folds onto several lines rather than losing characters.
    Ruled under the header only, unless `framed` (a box around every cell)."""

    def __init__(self, columns: Sequence[Column], rows: Sequence[Sequence[Text]], *, title: str | None,
                 left_title: bool, pad_edge: bool, framed: bool) -> None:
        self.columns = list(columns)
        self.rows = [list(row) for row in rows]
        self.title, self.left_title, self.pad_edge, self.framed = title, left_title, pad_edge, framed
        keys = [i for i, c in enumerate(self.columns) if c.key]
        self.keys = keys or [0]
        self.prose = [self._is_prose(i) for i in range(len(self.columns))]

    def _cells(self, index: int) -> list[str]:
        return [self.columns[index].name] + [row[index].plain for row in self.rows]

    def _is_prose(self, index: int) -> bool:
        wrap = self.columns[index].wrap
        if wrap is not None:
            return wrap
        return any(len(cell) > 32 and " " in cell for cell in self._cells(index)[1:])

    def _width(self, index: int) -> int:
        """What the column needs: its longest line; for sentences, at most `_PROSE_WIDTH`
        unless one word is longer."""
        lines = [line for cell in self._cells(index) for line in (cell.splitlines() or [""])]
        widest = max(cell_len(line) for line in lines)
        if not self.prose[index]:
            return widest
        longest_word = max((cell_len(word) for line in lines for word in line.split()), default=0)
        return min(widest, max(longest_word, _PROSE_WIDTH))

    def _table_width(self, indexes: Sequence[int]) -> int:
        n = len(indexes)  # cells padded by one space each side, one divider between, two edges
        return sum(self._width(i) for i in indexes) + 2 * n - (0 if self.pad_edge else 2) + (n - 1) + 2

    def parts(self, width: int) -> list[list[int]]:
        """The column indexes of each table printed at `width` (the key columns in each)."""
        everything = list(range(len(self.columns)))
        if self._table_width(everything) <= width or self._table_width(self.keys) > width:
            return [everything]
        parts: list[list[int]] = []
        current: list[int] = []
        for index in everything:
            if index in self.keys:
                continue
            if current and self._table_width(self.keys + current + [index]) > width:
                parts.append(current)
                current = []
            current.append(index)
        if current:
            parts.append(current)
        return [sorted(self.keys + part) for part in parts]

    def _table(self, indexes: Sequence[int], title: str | None, width: int) -> Table:
        cramped = self._table_width(indexes) > width  # one column too wide on its own: fold it
        made = Table(title=None if title is None else Text(title), box=box.HEAVY_HEAD if self.framed else
                     box.SIMPLE_HEAD, pad_edge=self.pad_edge, title_justify="left" if self.left_title else "center")
        for index in indexes:
            column, prose = self.columns[index], self.prose[index]
            made.add_column(Text(column.name), justify="right" if column.right else "left",
                            no_wrap=not (prose or cramped), overflow="fold",
                            min_width=None if prose or cramped else self._width(index))
        for row in self.rows:
            made.add_row(*(row[i] for i in indexes))
        return made

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        parts = self.parts(options.max_width)
        for number, indexes in enumerate(parts):
            title = self.title if number == 0 else None
            if number:
                yield Text(f"(continued: {', '.join(self.columns[i].name for i in indexes if i not in self.keys)})",
                           style="italic")
            yield self._table(indexes, title, options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        widths = [self._table_width(part) for part in self.parts(options.max_width)]
        return Measurement(min(widths), min(max(widths), options.max_width))


def plain(text: str) -> Text:
    """`text` as rich shows it exactly: never read as markup (``[/b]`` in a program's output
    stays ``[/b]``), control characters (a terminal's escape sequences) written as ``\\xNN``."""
    return Text(printable(text))


def cell(value: object) -> Text:
    """A table cell: a `Text` as it is (styled by the view), anything else as `plain` text."""
    return value if isinstance(value, Text) else plain(str(value))


def markup_free(text: str) -> str:
    """`text` for a place that reads rich markup (a progress bar's description): shown as
    written, control characters escaped."""
    return escape(printable(text))


def table(columns: Iterable[str | Column], rows: Iterable[Sequence[object]], *, title: str | None = None,
          left_title: bool = True, pad_edge: bool = True, framed: bool = False) -> FitTable:
    """The one table renderer: `rows` of cells under `columns`, fitted to the width it is
    printed at (`FitTable`). Cells and the title are plain text (`cell`): whatever they hold,
    a program's output included, is never taken for markup or a terminal's control sequence."""
    specs = [Column(column) if isinstance(column, str) else column for column in columns]
    return FitTable(specs, [[cell(value) for value in row] for row in rows],
                    title=None if title is None else plain(title).plain, left_title=left_title,
                    pad_edge=pad_edge, framed=framed)


def result_table(data: ResultTable, *, left: Sequence[str] | None = None, first_left: bool = False,
                 keys: Sequence[str] = ()) -> FitTable:
    """A library's `ResultTable`; with `left` given, the columns it names (and the first, with
    `first_left`) are text and the others right-aligned figures. `keys`: the columns that
    together name a row, repeated when the table is split to fit (default: the first)."""
    columns = [Column(str(name), right=left is not None and not (first_left and i == 0) and name not in left,
                      key=name in keys) for i, name in enumerate(data.columns)]
    return table(columns, data.rows, title=data.title)


def dash(value: object) -> str:
    if value is None or value == "" or value == [] or value == ():
        return "-"
    return str(value)


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


# -- netlab transports ----------------------------------------------------------------------


def transports(console: Console, registry: Iterable[Transport]) -> None:
    console.print(table([Column(c) for c in ("scheme", "family", "type", "reliable", "ordered",
                                                            "boundaries")],
                        ([t.scheme, t.family_name, t.socktype.name, yes_no(t.reliable), yes_no(t.ordered),
                          yes_no(t.boundaries)] for t in registry),
                        title="netlab transports", left_title=False, framed=True))
    console.print("tcp and udp follow the host (a name may give both families); unix-dgram is reliable and "
                  "ordered on Linux, where a full receiver blocks the sender instead of dropping. "
                  "Options per scheme: netlab transports --json.", highlight=False)


# -- netlab serve and relay -----------------------------------------------------------------


def serving(server: Server, *, service: str, requested: Address, limits: Limits, as_json: bool = False) -> None:
    """serve's `listening ADDR` line per bound socket (with --json, a JSON object per line),
    with the service's settings and the limits that apply to its transport, and one warning
    for wildcard addresses."""
    settings = server.service.describe(stream=not server.transport.boundaries)
    for bound in server.bound:
        if as_json:
            print(json.dumps({"event": "listening", "address": str(bound), "service": service,
                              "settings": settings, "requested": str(requested),
                              "limits": limits.applying_to(server.transport)}),
                  flush=True)
        else:
            print(f"listening {bound}  service={service}{'  ' + settings if settings else ''}  "
                  f"requested={requested}  {limits.describe(server.transport)}", flush=True)
    wildcards = [str(bound) for bound in server.bound if bound.is_wildcard]
    if wildcards:  # one line, even when '*' gave an IPv4 and an IPv6 socket
        logging.getLogger("netlab").warning(
            "warning: %s listen%s on all interfaces: anyone who can reach this machine can connect",
            " and ".join(wildcards), "" if len(wildcards) > 1 else "s")


def relaying(running: Relay, *, as_json: bool = False) -> None:
    """relay's `listening ADDR` line per bound socket, and what it does each way (with --json,
    one JSON object per bound socket)."""
    for bound in running.bound:
        if as_json:
            print(json.dumps({"event": "listening", "address": str(bound), "to": str(running.to), "seed": running.seed,
                              "forward": running.forward.describe(), "backward": running.backward.describe(),
                              "limits": running.limits()}),
                  flush=True)
        else:
            print(f"listening {bound}  to={running.to}  seed={running.seed}  {running.describe()}", flush=True)
    if not as_json:
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
    if stats.refused:
        extra += f", refused (max-connections) {stats.refused}"
    if stats.broken:
        extra += f", ended abruptly {stats.broken}"
    if stats.queue_full:
        extra += f", dropped on a full client queue {stats.queue_full}"
    for direction, dropped in (("→", stats.kernel_dropped_forward), ("←", stats.kernel_dropped_backward)):
        if dropped is not None:  # datagrams: sent = received + dropped by the kernel before the relay read them
            extra += f", kernel dropped {direction} {dropped} before the relay read them"
    return extra


# -- netlab compare -------------------------------------------------------------------------


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _pct(part: int, whole: int) -> str:
    return f"{part} ({100 * part / whole:.1f}%)" if whole and part else str(part)


def bits_per_second(value: float) -> str:
    """A rate in bits/s with an SI prefix, three figures at most: 812 b/s, 6.41 Mb/s."""
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            value /= scale
            break
    else:
        prefix = ""
    digits = 0 if value >= 100 or not prefix else 1 if value >= 10 else 2
    return f"{value:.{digits}f} {prefix}b/s"


def compare(console: Console, settings: CompareSettings, results: Sequence[TransportResult],
            conclusions: Sequence[str]) -> None:
    """compare's delivery and latency tables, where each server was, and `conclusions`."""
    from .experiments.compare import boundaries_cell, boundaries_note

    mode = f"open loop at {settings.rate:g} msg/s" if settings.rate else "closed loop"
    impaired = f"; forward: {settings.forward.describe()}; backward: {settings.backward.describe()}" \
        if settings.impaired else ""
    keys = [Column("transport", key=True), Column("service", key=True)]
    columns = keys + [Column(c, right=True) for c in ("sent", "delivered", "lost", "dup", "out of order", "corrupt",
                                                      "trunc")] + [Column("boundaries (msgs→reads)")]
    console.print(table(columns, (
        [r.transport, r.service, r.sent, r.delivered, _pct(r.lost, r.planned), _pct(r.duplicated, r.planned),
         f"{r.reordered} (max {r.max_displacement})" if r.reordered else "0", r.corrupted, r.truncated,
         boundaries_cell(r, settings)]
        for r in results), title=f"netlab compare: {settings.messages} messages each, {mode}, "
                                 f"{settings.concurrency} client(s){impaired}"))
    note = boundaries_note(settings, results)
    if note:
        console.print(note, highlight=False)

    def dropped(r: TransportResult) -> str:
        if r.relay is None:
            return "-"
        # the relay's JSON counts per direction (compare types them as plain JSON objects)
        f, b = cast("dict[str, int]", r.relay["forward"]), cast("dict[str, int]", r.relay["backward"])
        return f"{f['dropped'] + f['queue_dropped']}/{b['dropped'] + b['queue_dropped']}"

    relayed = any(r.relay is not None or r.not_applied for r in results)  # else those columns are all "-"
    columns = keys + [Column(c, right=True) for c in ("p50", "p90", "p99", "p99.9", "max", "goodput")]
    if relayed:
        columns += [Column("relay dropped →/←", right=True), Column("not applied")]
    console.print(table(columns, (
        [r.transport, r.service, _us(r.p50_us), _us(r.p90_us), _us(r.p99_us), _us(r.p999_us), _us(r.max_us),
         bits_per_second(r.goodput_bps)]
        + ([dropped(r), ", ".join(n.replace("_", "-") for n in r.not_applied) or "-"] if relayed else [])
        for r in results), title="round trip in µs, goodput" + (", and what the relay did (→ requests, ← replies)"
                                                                  if relayed else "")))
    via = any(r.via for r in results)
    # no padding at the table's edges: a tls address with its ?ca= path then fits whole in 80 columns
    console.print(table(keys + [Column("server")] + ([Column("through the relay at")] if via else []), (
        [r.transport, r.service, r.address] + ([r.via or "-"] if via else []) for r in results),
        title="where the servers were", pad_edge=False))
    for line in conclusions:
        console.print(line, highlight=False)


def kernel_compare(console: Console, results: Sequence[TransportResult], conclusions: Sequence[str]) -> None:
    """compare --kernel's attribution table under compare's own tables."""
    from .experiments.kernel import attribution_table, environment_note

    console.print(result_table(attribution_table(results), left=("transport", "service"),
                               keys=("transport", "service")))
    for r in results:
        attribution = cast("dict[str, str] | None", r.kernel and r.kernel.get("attribution"))  # kernel's JSON
        if attribution:
            console.print(f"  {attribution['sentence']}", highlight=False)
    console.print(environment_note(results), highlight=False)
    for line in conclusions:
        console.print(line, highlight=False)


# -- netlab bench ---------------------------------------------------------------------------


def bench(console: Console, result: BenchResult, details: bool = False) -> None:
    """bench's tables and the line on the machine. The development targets' table and the raw
    /proc/loadavg fields only with `details` (``bench --details``); otherwise the one-minute
    load, which is what says whether the machine was busy."""
    from .bench.core import tables

    for data in tables(result):
        if data.title == "targets" and not details:
            continue
        console.print(result_table(data, left=("server", "why", "target", "where"), first_left=True,
                                   keys=("transport", "conns", "server", "target")))
    env = result.environment
    pinned = env.get("pin", {})
    if details:
        load = f"load average {env['loadavg']} -> {env['loadavg_end']}"
    else:
        def one_minute(text: str | None) -> str:
            return (text or "?").split()[0]

        load = f"load {one_minute(env.get('loadavg'))} before, {one_minute(env.get('loadavg_end'))} after (1-minute)"
    console.print(f"pin={result.settings.pin} (server cores {pinned.get('server_cpus') or 'any'}, load generator "
                  f"cores {pinned.get('client_cpus') or 'any'}); {env['cores']} cores, Linux {env['kernel']}, "
                  f"Python {env['python']}, trio {env['trio']}, loopback MTU {env['loopback_mtu']}; {load}",
                  highlight=False)


# -- the lecture's exploration ---------------------------------------------------------------


def host(console: Console, info: HostInfo) -> None:
    rows: list[list[str | Text]] = [["gethostname()", info.hostname]]
    for lookup in (info.gethostbyname, info.gethostbyname_ex):
        if not lookup.ok:
            result: str | Text = Text.assemble(("failed", "red"), f": {plain(str(lookup.error)).plain}")
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
    columns = [Column(c, right=c == "index", wrap=c == "flags")
               for c in ("index", "name", "state", "family", "address", "scope", "flags")]
    console.print(table(columns, rows, title="interfaces", left_title=False, pad_edge=False))
    console.print("sources: " + "; ".join(f"{k}: {v}" for k, v in info.sources.items()), highlight=False)


def resolution(console: Console, result: Resolution, canonical: bool) -> None:
    columns = ["family", "type", "protocol"] + (["canonical name"] if canonical else []) + \
              ["socket address", "netlab address"]
    rows = ([row.family, row.type, row.protocol] + ([dash(row.canonname)] if canonical else [])
            + [repr(row.sockaddr), row.address or f"- ({row.note})"] for row in result.rows)
    console.print(table(columns, rows, title=result.call, pad_edge=False),
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
    columns = [Column("value", right=True), Column("hex", right=True), Column("name"), Column("meaning", wrap=True)]
    console.print(table(columns, rows, title=f"socket.{result.prefix}*", pad_edge=False), highlight=False)
    if shared:
        console.print(f"* {shared} value(s) have several names: a {{value: name}} dict, like the lecture's "
                      f"get_constants, keeps only one of them.", highlight=False)


def _facts(title: str, facts: dict[str, Fact],
           columns: Sequence[str] = ("", "value", "how we know", "note")) -> FitTable:
    def shown(value: object) -> str:
        return "-" if value is None else ("yes" if value is True else "no" if value is False else str(value))

    return table([Column(c, wrap=c not in ("", "value")) for c in columns],
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


__all__ = ["PLAIN_WIDTH", "Column", "FitTable", "bench", "bits_per_second", "cell", "compare", "console", "constants",
           "dash", "explanation", "host", "kernel_compare", "markup_free", "plain", "prefixes", "raw_data",
           "raw_listened", "raw_received", "raw_summary", "relay_summary", "relaying", "resolution", "result_table",
           "serving", "table", "transports", "yes_no"]
