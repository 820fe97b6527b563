"""Plain helpers shared by several test modules (fixtures live in conftest.py).

Import them by name: ``from helpers import table_rows, within_binomial``.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import random
import re
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import trio
from typer.testing import CliRunner

from netlab.cli import app
from netlab.runner import Client
from netlab.transports import COMPARE_SCHEMES, Connection, MessageChannel, Transport, receive_data, send_data


T = TypeVar("T")

#: how long `eventually` waits by default: generous, since the machine may be loaded; a
#: deadline for a test that is stuck, never a measure of speed
EVENTUALLY = 10.0


def _described(condition: Callable[[], object], what: str | None) -> str:
    if what:
        return what
    try:
        return inspect.getsource(condition).strip()
    except (OSError, TypeError):
        return repr(condition)


async def eventually(condition: Callable[[], T], *, timeout: float = EVENTUALLY, interval: float = 0.01,
                     what: str | None = None) -> T:
    """Wait until `condition()` is true and return what it returned: checked at once, then
    every `interval` s, for at most `timeout` s (trio's clock: under a fake clock no time
    passes). Fails naming `what` (by default the condition's source) if it never comes::

        await eventually(lambda: server.stats.active == 0)

    For a counter the code under test moves, where nothing else can be waited on; wait for
    an event (a reply, a log record: `LogWatch.wait_for`) where there is one."""
    with trio.move_on_after(timeout):
        while not (value := condition()):
            await trio.sleep(interval)
        return value
    raise AssertionError(f"not so within {timeout:g} s: {_described(condition, what)}")


def eventually_blocking(condition: Callable[[], T], *, timeout: float = EVENTUALLY, interval: float = 0.05,
                        what: str | None = None) -> T:
    """`eventually` outside trio (a test of processes): blocks, polling every `interval` s."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"not so within {timeout:g} s: {_described(condition, what)}")
        time.sleep(interval)
    return value


def payload(size: int) -> bytes:
    """`size` reproducible random bytes."""
    return random.Random(size).randbytes(size)


# -- talking below the service ----------------------------------------------------------


def framed(reply: bytes, transport: Transport) -> bytes:
    """A line reply as it comes back: with its newline on a byte stream, as one message where
    the transport keeps boundaries."""
    return reply if transport.boundaries else reply + b"\n"


async def send_request(conn: Connection, transport: Transport, request: bytes) -> None:
    """One request: a line on a byte stream, one message where the transport keeps boundaries."""
    await send_data(conn, request if transport.boundaries else request + b"\n")


async def read_pieces(conn: Connection, timeout: float = 10) -> list[bytes]:
    """Everything until end of stream: the chunks of a byte stream, or the messages."""
    out = []
    with trio.fail_after(timeout):
        while (data := await receive_data(conn)) is not None:
            out.append(data)
    return out


async def read_to_end(conn: Connection, timeout: float = 10) -> bytes:
    """Everything until end of stream, joined."""
    return b"".join(await read_pieces(conn, timeout))


async def read_line(conn: Connection, timeout: float = 10) -> bytes:
    """Bytes until a newline (or end of stream), however the reads cut them: the careful
    client's read."""
    received = b""
    with trio.fail_after(timeout):
        while b"\n" not in received and (data := await receive_data(conn)) is not None:
            received += data
    return received


class LogWatch(logging.Handler):
    """Every record of a logger, kept, with a way to wait for one (the server's hints).
    Records come from trio tasks in the test's own thread, so waking a trio.Event is safe."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._waiters: list[trio.Event] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        for event in self._waiters:
            event.set()

    def matching(self, text: str) -> list[logging.LogRecord]:
        return [record for record in self.records if text in record.getMessage()]

    async def wait_for(self, text: str, count: int = 1, timeout: float = 10) -> list[logging.LogRecord]:
        """The first `count` records whose message holds `text`, once there are that many."""
        with trio.fail_after(timeout):
            while len(found := self.matching(text)) < count:
                event = trio.Event()
                self._waiters.append(event)
                try:
                    await event.wait()
                finally:
                    self._waiters.remove(event)
        return found[:count]


@contextlib.contextmanager
def watching(name: str) -> Iterator[LogWatch]:
    """Every record of logger `name` (debug level up), to wait on, while the block runs."""
    logger = logging.getLogger(name)
    watch, level = LogWatch(), logger.level
    logger.addHandler(watch)
    logger.setLevel(logging.DEBUG)
    try:
        yield watch
    finally:
        logger.removeHandler(watch)
        logger.setLevel(level)


def message_channel(client: Client) -> MessageChannel:
    """The message channel under a client of a message transport."""
    assert isinstance(client.connection, MessageChannel), client.connection
    return client.connection


def within_binomial(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    """Whether `count` successes in `n` trials is within `sigmas` standard deviations (+1,
    for tiny n) of what probability `p` predicts."""
    mean = n * p
    spread = sigmas * math.sqrt(n * p * (1 - p)) + 1
    return abs(count - mean) <= spread


# -- the CLI, through typer's CliRunner ---------------------------------------------------


def invoke(args: list[str], input: str | None = None):
    return CliRunner().invoke(app, args, input=input, prog_name="netlab")


def assert_no_traceback(result) -> None:
    assert "Traceback" not in result.output, result.output
    # CliRunner catches what escapes the command; only SystemExit (typer.Exit) may escape
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


# -- compare's delivery table ---------------------------------------------------------------

INT_COLUMNS = ["sent", "delivered", "lost", "duplicated", "reordered", "corrupted", "truncated"]
#: a count, possibly followed by "(12.1%)" or "(max 3)"
CELL = re.compile(r"(\d+)(?: \([^)]*\))?")


def table_rows(output: str) -> dict[tuple[str, str], dict[str, int]]:
    """The data rows of compare's delivery table: (transport, service) -> integer columns."""
    delivery = output.split("round trip in µs")[0]
    rows = {}
    for line in delivery.splitlines():
        cells = line.split(None, 2)
        if len(cells) == 3 and cells[0] in COMPARE_SCHEMES and cells[1] in ("echo", "sum"):
            key = (cells[0], cells[1])
            assert key not in rows, f"row {key} printed twice"
            counts = [int(m.group(1)) for m in CELL.finditer(cells[2])][: len(INT_COLUMNS)]
            rows[key] = dict(zip(INT_COLUMNS, counts))
    return rows
