"""framing: where does a request end on a stream, and what happens to clients that do not say?

TCP carries bytes, not messages: a protocol over it must say where a request ends. Three
clients of the kind students write talk to netlab's sum server under each framing
(``line``, ``quiet:MS``, ``eof``), over TCP:

* **naive**: one ``send("2 3")`` with no newline, then one ``recv``;
* **two sends**: ``send("2")``, ``send("3")``, then one ``recv`` (each send taken for a message);
* **careful**: ``send("2 3\\n")``, half-closes (``shutdown(SHUT_WR)``), reads until ``\\n``.

Each runs directly, through the relay with ``--slice 1:1`` (every byte its own write, as
fast as they go), and through the relay with ``--slice 1:1`` and a ``--rate`` that spaces
the bytes twice the quiet time apart (a slow or congested path). A client that gets
nothing waits a bounded time and is reported as "waited N s, no reply". The servers
run with ``--accept lenient``, so an ``ERR`` names the numbers the server found. The
findings are computed from what each client got, and quote the hint the server logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from typing import cast

import trio

from ..errors import NetlabError
from ..impair.decisions import Impairments
from ..impair.relay import Relay, run_relay
from ..results import ResultTable
from ..server import Server, serve
from ..server.unfinished import HINT_AFTER
from ..services.framing import DEFAULT_QUIET, Framing
from ..services.sum import SumService
from ..transports import ByteStream, get_transport, parse_address
from .base import Experiment, ExperimentOptions, ExperimentResult

ADDRESS = "tcp:127.0.0.1:0"
FRAMINGS = (Framing("line"), Framing("quiet", DEFAULT_QUIET), Framing("eof"))
#: seconds between the bytes on the slow path: twice the quiet time, so each byte is a pause
GAP = 2 * DEFAULT_QUIET
RIGHT = b"5"

Client = Callable[[ByteStream], Awaitable[bytes]]


async def _naive(stream: ByteStream) -> bytes:
    await stream.send_all(b"2 3")
    return bytes(await stream.receive_some(1024))


async def _two_sends(stream: ByteStream) -> bytes:
    await stream.send_all(b"2")
    await stream.send_all(b"3")
    return bytes(await stream.receive_some(1024))


async def _careful(stream: ByteStream) -> bytes:
    await stream.send_all(b"2 3\n")
    await stream.send_eof()
    reply = bytearray()
    while b"\n" not in reply and (data := await stream.receive_some(1024)):
        reply += data
    return bytes(reply)


#: name -> (what it does, the client)
CLIENTS: dict[str, tuple[str, Client]] = {
    "naive": ("one send of '2 3' without \\n, one recv", _naive),
    "two sends": ("send '2', send '3', one recv", _two_sends),
    "careful": ("'2 3\\n', half-close, read to \\n", _careful),
}
PATHS = ("direct", "relay --slice 1:1", f"relay --slice 1:1 --rate {1 / GAP:g}")


@dataclass
class Cell:
    client: str
    path: str
    framing: str
    outcome: str  # "reply", "closed" (the server closed without a reply), "no reply" (waited), "error"
    reply: str | None
    correct: bool
    elapsed_s: float
    address: str = ""  # where the client connected (the server, or the relay in front of it)


def _shown(reply: bytes) -> str:
    return reply.decode("utf-8", "backslashreplace").rstrip("\r\n")


async def _try(client: Client, address: str, wait: float) -> tuple[str, str | None, float]:
    start = time.perf_counter()
    target = parse_address(address)
    try:
        async with cast(ByteStream, await get_transport(target.scheme).connect(target)) as stream:  # tcp: a byte stream
            with trio.move_on_after(wait):
                reply = await client(stream)
                return ("reply" if reply else "closed"), (_shown(reply) if reply else None), time.perf_counter() - start
    except (NetlabError, trio.BrokenResourceError) as exc:
        return "error", str(exc), time.perf_counter() - start
    return "no reply", None, time.perf_counter() - start


@contextmanager
def _hints_kept(records: list[logging.LogRecord]) -> Iterator[None]:
    """Keep the servers' log lines (the hints) for the findings instead of printing them."""
    logger = logging.getLogger("netlab.server")

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler, propagate = Keep(logging.INFO), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _where(cells: list[Cell], framing: bool = True) -> str:
    """``quiet:200 through relay --slice 1:1``, ``directly and through ...``"""
    parts = [(f"{c.framing} " if framing else "") + ("directly" if c.path == "direct" else f"through {c.path}")
             for c in cells]
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else "".join(parts)


def _findings(cells: list[Cell], wait: float, hints: int, hint: str | None) -> list[str]:
    findings: list[str] = []

    def of(client: str, framing: str | None = None, path: str | None = None) -> list[Cell]:
        return [c for c in cells if c.client == client and (framing is None or c.framing.startswith(framing))
                and (path is None or c.path == path)]

    quiet = str(FRAMINGS[1])
    hung_line = [c.client for c in cells if c.framing == "line" and c.outcome == "no reply" and c.path == "direct"]
    if hung_line:
        findings.append(
            f"line framing: {' and '.join(hung_line)} got no reply (waited {wait:g} s): the server waits for the "
            f"\\n that ends a request, the client waits for a reply, and neither gives way. The servers logged "
            f"{hints} hints, one for each connection whose request stayed unfinished for {HINT_AFTER:g} s"
            + (f", such as: \"{hint}\"" if hint else "") + ".")
    naive_ok = [c for c in of("naive", "quiet") if c.correct]
    naive_bad = [c for c in of("naive", "quiet") if not c.correct]
    if naive_ok:
        text = (f"{quiet} framing: the naive client got 5 {_where(naive_ok, False)}: a request "
                f"that arrives in one piece, or in pieces less than {DEFAULT_QUIET * 1e3:g} ms apart, ends at "
                f"the pause after it")
        if naive_bad:
            got = naive_bad[0].reply or naive_bad[0].outcome
            text += (f"; {_where(naive_bad, False)}, where the bytes came {GAP * 1e3:g} ms apart, "
                     f"it got {got!r}: each pause ended a request, so the server answered a piece of it. "
                     f"Quiet framing guesses the end of a request from timing, which the network does not keep")
        findings.append(text + ".")
    merged = [c for c in of("two sends", "quiet", "direct") if c.reply is not None and "'23'" in c.reply]
    if merged:
        findings.append(
            f"two sends are not two messages: under {quiet} framing the client got {merged[0].reply!r}: TCP "
            f"delivered '2' and '3' as the bytes '23', with no boundary between them, and no framing on the "
            f"server can put back a boundary the client never sent (send '2 3', or '2\\n' then '3\\n').")
    careful_ok = [c for c in of("careful") if c.correct]
    careful_bad = [c for c in of("careful") if not c.correct]
    if careful_ok:
        text = f"the careful client got 5 in {len(careful_ok)} of {len(of('careful'))} cases"
        if careful_bad:
            text += (f", all but {_where(careful_bad)}, where it got "
                     f"{careful_bad[0].reply or careful_bad[0].outcome!r}: a pause ends a request there even when "
                     f"the client framed it")
        text += (". Saying where a request ends (\\n, and a half-close) and reading until the reply is complete "
                 "makes a client independent of how the network cuts the bytes; guessing from pauses does not.")
        findings.append(text)
    hung_eof = sorted({c.client for c in cells if c.framing == "eof" and c.outcome == "no reply"})
    if hung_eof:
        findings.append(f"eof framing: {' and '.join(hung_eof)} got no reply: only a half-close ends a request "
                        f"there, and they never half-close.")
    return findings


async def run(options: ExperimentOptions) -> ExperimentResult:
    slow_transit = len(b"2 3\n") * GAP
    wait = max(options.timeout, slow_transit + 1.0)
    result = ExperimentResult(
        name="framing", question=EXPERIMENT.question, mode="relay",
        options={"framings": [str(f) for f in FRAMINGS], "paths": list(PATHS), "wait_s": wait,
                 "accept": "lenient", "transport": "tcp"},
    )
    slow = Impairments(slice=(1, 1), rate=1 / GAP)
    cells: list[Cell] = []
    records: list[logging.LogRecord] = []
    servers: list[Server] = []
    with _hints_kept(records):
        async with trio.open_nursery() as nursery:
            targets: list[tuple[str, str, str]] = []  # (framing, path, address)
            for framing in FRAMINGS:
                server: Server = await nursery.start(partial(serve, SumService(framing=framing, accept="lenient"),
                                                             ADDRESS))
                servers.append(server)
                targets.append((str(framing), PATHS[0], str(server.address)))
                for path, forward in ((PATHS[1], Impairments(slice=(1, 1))), (PATHS[2], slow)):
                    relay: Relay = await nursery.start(partial(run_relay, ADDRESS, server.address, forward=forward,
                                                               backward=Impairments(), seed=options.seed))
                    targets.append((str(framing), path, str(relay.address)))

            async with trio.open_nursery() as clients:
                for name, (_, client) in CLIENTS.items():
                    for framing_text, path, address in targets:

                        async def one(name: str = name, client: Client = client, framing_text: str = framing_text,
                                      path: str = path, address: str = address) -> None:
                            outcome, reply, elapsed = await _try(client, address, wait)
                            cells.append(Cell(name, path, framing_text, outcome, reply,
                                              outcome == "reply" and reply is not None and reply.encode() == RIGHT,
                                              round(elapsed, 3), address))

                        clients.start_soon(one)
            nursery.cancel_scope.cancel()
    order = {(n, p, str(f)): i for i, (n, p, f) in enumerate((n, p, f) for n in CLIENTS for p in PATHS
                                                              for f in FRAMINGS)}
    cells.sort(key=lambda c: order[(c.client, c.path, c.framing)])
    hints = sum(s.stats.hints for s in servers)
    hint = next((r.getMessage() for r in records if "framing=line" in r.getMessage()), None)

    def show(cell: Cell) -> str:
        if cell.outcome == "no reply":
            return f"waited {wait:g} s, no reply"
        if cell.outcome == "closed":
            return "closed, no reply"
        return cell.reply or ""

    table = ResultTable("what each client got (sum --accept lenient over tcp; the right answer is 5)",
                        ["client", "path"] + [str(f) for f in FRAMINGS], [])
    for name in CLIENTS:
        for path in PATHS:
            row = {c.framing: show(c) for c in cells if c.client == name and c.path == path}
            table.rows.append([name, path] + [row.get(str(f), "") for f in FRAMINGS])
    result.tables.append(table)
    result.tables.append(ResultTable("the clients", ["client", "what it does"],
                                     [[name, what] for name, (what, _) in CLIENTS.items()]))
    result.facts = {"quiet_ms": DEFAULT_QUIET * 1e3, "slow_gap_ms": GAP * 1e3, "wait_s": wait, "hints": hints,
                    "hint": hint, "cells": [asdict(c) for c in cells]}
    result.findings = _findings(cells, wait, hints, hint)
    return result


EXPERIMENT = Experiment(
    name="framing",
    question="Where does a request end on a stream? Naive clients vs line, quiet and eof framing, with and "
             "without a network that splits",
    run=run,
    uses=("timeout", "seed"),
)
