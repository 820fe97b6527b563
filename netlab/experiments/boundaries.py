"""boundaries: do ten small sends arrive as ten reads?

For each transport, a sender makes ten separate ``send`` calls of ten bytes each; only when
all ten are sent does the receiver start reading, with a buffer large enough for all of
them. A byte stream (TCP, unix stream) hands over whatever has arrived, so the ten writes
come out merged; datagram and seqpacket sockets hand over one message per read.
"""

from __future__ import annotations

import shutil
import tempfile

import trio

from ..results import ResultTable
from ..transports import (
    COMPARE_SCHEMES, Address, get_transport, open_pair, parse_address, receive_message, send_data,
)
from .base import Experiment, ExperimentOptions, ExperimentResult

SENDS = 10
SIZE = 10


async def _reads(address: Address) -> list[int]:
    """Ten sends from a client, then what each of the server's reads returned."""
    async with open_pair(address) as pair:
        for i in range(SENDS):
            await send_data(pair.client, bytes([65 + i]) * SIZE)
        await trio.sleep(0.05)  # let everything arrive before the first read
        reads: list[int] = []
        with trio.move_on_after(1.0):  # a datagram that never came is not waited for
            while sum(reads) < SENDS * SIZE:
                message = await receive_message(pair.server)
                if message is None:
                    break
                reads.append(len(message.data))
        return reads


async def run(options: ExperimentOptions) -> ExperimentResult:
    result = ExperimentResult(
        name="boundaries", question=EXPERIMENT.question, mode="loopback",
        options={"sends": SENDS, "size": SIZE},
    )
    table = ResultTable(f"{SENDS} sends of {SIZE} bytes, read after all were sent",
                        ["transport", "sends", "reads", "bytes per read", "boundaries kept"], [])
    tmp = tempfile.mkdtemp(prefix="nl-", dir="/tmp")
    try:
        for name, template in COMPARE_SCHEMES.items():
            address = parse_address(template.format(dir=tmp))
            reads = await _reads(address)
            kept = reads == [SIZE] * SENDS
            result.facts[name] = {"sends": SENDS, "reads": len(reads), "bytes_per_read": reads, "kept": kept,
                                  "declared_boundaries": get_transport(address.scheme).boundaries}
            table.rows.append([name, SENDS, len(reads), " ".join(map(str, reads)), "yes" if kept else "no"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result.tables.append(table)
    merged = [n for n, f in result.facts.items() if not f["kept"]]
    whole = [n for n, f in result.facts.items() if f["kept"] and f["declared_boundaries"]]
    if merged:
        result.findings.append(
            f"{', '.join(merged)}: {SENDS} sends came out as "
            + ", ".join(f"{result.facts[n]['reads']} read(s)" for n in merged)
            + ": a byte stream keeps no message boundaries, so a protocol over it must frame its messages "
            "(netlab's sum uses one line per request).")
    if whole:
        result.findings.append(f"{', '.join(whole)}: every send arrived as exactly one read of {SIZE} bytes: "
                               "datagram and seqpacket sockets deliver whole messages.")
    surprises = [n for n, f in result.facts.items() if f["kept"] != f["declared_boundaries"] and f["kept"]]
    if surprises:
        why = ("the reads happened to line up with the writes (under TLS, each send is one TLS record, "
               "and a read returns at most one record)"
               if any(get_transport(n).encrypted for n in surprises) else
               "the reads happened to line up with the writes")
        result.findings.append(f"{', '.join(surprises)} kept the boundaries this time although a stream does "
                               f"not promise to: {why}.")
    return result


EXPERIMENT = Experiment(
    name="boundaries",
    question="Do ten small sends arrive as ten reads? (TCP merges them; UDP keeps each message)",
    run=run,
)
