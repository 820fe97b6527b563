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

from ..transports import COMPARE_SCHEMES, DatagramTransport, SeqpacketTransport, StreamTransport, parse_address
from .base import Experiment, ExperimentOptions, ExperimentResult, ResultTable

SENDS = 10
SIZE = 10


async def _stream(transport: StreamTransport, address) -> list[int]:
    listeners = await transport.open_listeners(address)
    try:
        bound = transport.listener_address(listeners[0], address)
        client = await transport.connect(bound)
        server = await listeners[0].accept()
        async with client, server:
            for i in range(SENDS):
                await client.send_all(bytes([65 + i]) * SIZE)
            await trio.sleep(0.05)  # let everything arrive before the first read
            reads: list[int] = []
            while sum(reads) < SENDS * SIZE:
                reads.append(len(await server.receive_some(65536)))
            return reads
    finally:
        for listener in listeners:
            await listener.aclose()


async def _seqpacket(transport: SeqpacketTransport, address) -> list[int]:
    listeners = await transport.open_listeners(address)
    try:
        client = await transport.connect(transport.listener_address(listeners[0], address))
        server = await listeners[0].accept()
        async with client, server:
            for i in range(SENDS):
                await client.send(bytes([65 + i]) * SIZE)
            await trio.sleep(0.05)
            reads = []
            for _ in range(SENDS):
                message = await server.receive()
                assert message is not None
                reads.append(len(message.data))
            return reads
    finally:
        for listener in listeners:
            await listener.aclose()


async def _datagram(transport: DatagramTransport, address) -> list[int]:
    async with await transport.bind(address) as server, await transport.connect(server.local) as client:
        for i in range(SENDS):
            await client.send(bytes([65 + i]) * SIZE)
        await trio.sleep(0.05)
        reads = []
        with trio.move_on_after(1.0):
            while sum(reads) < SENDS * SIZE:
                reads.append(len((await server.receive()).data))
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
            transport = address.transport
            if isinstance(transport, StreamTransport):
                reads = await _stream(transport, address)
            elif isinstance(transport, SeqpacketTransport):
                reads = await _seqpacket(transport, address)
            else:
                assert isinstance(transport, DatagramTransport)
                reads = await _datagram(transport, address)
            kept = reads == [SIZE] * SENDS
            result.facts[name] = {"sends": SENDS, "reads": len(reads), "bytes_per_read": reads, "kept": kept,
                                  "declared_boundaries": transport.boundaries}
            table.rows.append([name, SENDS, len(reads), " ".join(map(str, reads)), "yes" if kept else "no"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result.tables.append(table)
    merged = [n for n, f in result.facts.items() if not f["kept"]]
    kept = [n for n, f in result.facts.items() if f["kept"]]
    if merged:
        result.findings.append(
            f"{', '.join(merged)}: {SENDS} sends came out as "
            + ", ".join(f"{result.facts[n]['reads']} read(s)" for n in merged)
            + ": a byte stream keeps no message boundaries, so a protocol over it must frame its messages "
            "(netlab's sum uses one line per request).")
    if kept:
        result.findings.append(f"{', '.join(kept)}: every send arrived as exactly one read of {SIZE} bytes: "
                               "datagram and seqpacket sockets deliver whole messages.")
    surprises = [n for n, f in result.facts.items() if f["kept"] != f["declared_boundaries"] and f["kept"]]
    if surprises:
        result.findings.append(f"{', '.join(surprises)} kept the boundaries this time although a stream does "
                               "not promise to: the reads happened to line up with the writes.")
    return result


EXPERIMENT = Experiment(
    name="boundaries",
    question="Do ten small sends arrive as ten reads? (TCP merges them; UDP keeps each message)",
    run=run,
)
