"""A sum or an echo, sent and judged: the exchanges most cases are made of.

`sum_exchange` asks for a sum (in the request format in use) and judges the reply
(`judge_sum`: leniently in the assignment profile, byte for byte in the netlab one, with the
likely cause of a wrong answer: a fixed-size read, floats, a reply before the whole request);
`echo_exchange` sends bytes and expects them back unchanged (`_changed` says how they came
back otherwise). `_any_exchange` and `_two_clients` are the plain requests of the service in
use, for cases about something else (a second client, what is left after bad input).
"""

from __future__ import annotations

from collections.abc import Callable

from ..transports import Address
from . import judge
from .context import CaseContext
from .conversation import KEEP, Conversation, converse, pause_for, split_pieces
from .judge import shown
from .settings import Verdict
from .wording import why_no_reply


def _sum_done(ctx: CaseContext, a: str, b: str, request: bytes, *, exact: bool) -> Callable[[bytes], bool]:
    if not ctx.stream:
        return bool  # one message is one reply
    if ctx.netlab:
        lines = ctx.oracle(request).count(b"\n")
        return lambda got: got.count(b"\n") >= lines
    return lambda got: got.endswith(b"\n") and judge.sum_matches(got, a, b, exact=exact)


def judge_sum(ctx: CaseContext, a: str, b: str, request: bytes, conv: Conversation, *, exact: bool,
              split: bool = False) -> Verdict:
    """The verdict on a sum conversation."""
    if ctx.netlab:
        want = ctx.oracle(request)
        if conv.received == want:
            return "pass", f"{shown(request)} -> {shown(conv.received)}"
        if not conv.received:
            return "fail", why_no_reply(ctx, conv, request)
        return "fail", (f"{shown(request)} -> {shown(conv.received)}, expected {shown(want)} exactly "
                        f"(netlab's line protocol)" + _overflowed(conv) + _early(conv, split))
    if judge.sum_matches(conv.received, a, b, exact=exact):
        return "pass", f"{shown(request)} -> {shown(conv.received)}"
    if not conv.received:
        text = why_no_reply(ctx, conv, request)
        if split and (conv.closed or conv.reset) and len(conv.pieces) < 2:
            text += ": it read the first piece and gave up; loop until the request is complete"
        return "fail", text
    total = judge.expected_sum(a, b)
    text = f"{shown(request)} -> {shown(conv.received)}, expected a reply ending in {total}" + _overflowed(conv)
    cut = judge.truncation(request, conv.received)
    found = judge.numbers_in(conv.received)
    if split and conv.early:
        text += _early(conv, split)
    elif cut is not None:
        text += (f": that is the sum of the first {cut} bytes of the request only: the server reads a fixed "
                 f"{cut} bytes (recv({cut})); read until the request is complete (a newline)")
    elif found and exact and abs(float(found[-1]) - float(total)) <= abs(float(total)) * 1e-9:
        text += (": close, but not exact: the server adds floats (float() keeps about 16 digits); "
                 "add integers as int (Python's ints are exact)")
    elif not found:
        text += ": the reply has no number in it"
    if cut is None and len(request) > 16 and not (split and conv.early) and "sum.small" in ctx.passed:
        text += (f" (the request is {len(request)} bytes: a server that reads a fixed 16 or 32 bytes, "
                 f"recv(16), sees only part of it)")
    return "fail", text


def _overflowed(conv: Conversation) -> str:
    """" (it sent more than 64 KiB ...)" when the conversation stopped reading at `KEEP`."""
    if not conv.overflow:
        return ""
    return (f" (it sent more than {len(conv.received):,} bytes without the right reply; netlab read no further: "
            f"answer each request with one line)")


def _early(conv: Conversation, split: bool) -> str:
    if split and conv.early:
        return (": the reply came before the whole request had arrived: the server reads once and answers "
                "what it has; loop until the request is complete (until the newline)")
    return ""


async def sum_exchange(ctx: CaseContext, a: str, b: str, *, exact: bool = False, split: bool = False,
                       address: Address | None = None) -> tuple[Verdict, Conversation]:
    request = ctx.request(a, b)
    pieces = split_pieces(request) if split else [request]
    conv = await converse(ctx, pieces, _sum_done(ctx, a, b, request, exact=exact), pause=pause_for(ctx) if split
                          else 0.0, address=address)
    return judge_sum(ctx, a, b, request, conv, exact=exact, split=split), conv


async def echo_exchange(ctx: CaseContext, data: bytes, *, split: bool = False,
                        address: Address | None = None) -> tuple[Verdict, Conversation]:
    """Send `data`, expect it back unchanged. The connection stays open until the echo is
    back (an echo client waits for its echo before it closes)."""
    pieces = split_pieces(data) if split else [data]
    conv = await converse(ctx, pieces, lambda got: len(got) >= len(data), eof=False,
                          pause=pause_for(ctx) if split else 0.0, address=address, keep=len(data) + KEEP)
    if conv.received == data:
        return ("pass", f"{_size(data)} came back unchanged"), conv
    if not conv.received:
        return ("fail", why_no_reply(ctx, conv, data)), conv
    got = conv.received
    if got == data[:len(got)]:
        text = f"only the first {len(got)} of {len(data)} bytes came back"
        if split and len(got) == len(b"".join(split_pieces(data)[:1])):
            text += ": the server answered the first piece and stopped; loop until the client closes"
        elif got.endswith(b"\n"):
            text += (": they end at a newline: the server echoes a line at a time and waits for the next "
                     "newline; echo what arrives, as it arrives")
        elif len(data) >= 32:
            text += (": the server reads a fixed amount, or stops at a short read; loop until recv() returns "
                     "b'' (or keep echoing what arrives)")
        return ("fail", text), conv
    return ("fail", f"{_size(data)} sent, {_changed(data, got)}"), conv


def _changed(data: bytes, got: bytes) -> str:
    """What came back instead of the echo, shown as the bytes it is; that the server decodes
    the data as text only where re-encoding the data gives these bytes."""
    came = f"{shown(got)} came back" if len(got) <= 60 else f"{len(got):,} different bytes came back, {shown(got)}"
    if got[:2] in (b"b'", b'b"') and data[:2] != got[:2]:
        return (f"{came}: the text of a Python bytes object (str(data) or f'{{data}}'), not the bytes; send the "
                f"bytes themselves (conn.sendall(data))")
    for errors in ("replace", "ignore", "backslashreplace"):
        redone = data.decode("utf-8", errors).encode("utf-8")
        if redone != data and redone[:len(got)] == got:
            return (f"{came}, first different at byte {_first_difference(data, got)}: the server decodes the data "
                    f"as text (errors={errors!r}) and encodes it again, which changes every byte that is not "
                    f"UTF-8; echo the bytes as they came")
    redone = data.decode("latin-1").encode("utf-8")
    if redone != data and redone[:len(got)] == got:
        return (f"{came}, first different at byte {_first_difference(data, got)}: the server decodes the data as "
                f"Latin-1 text and sends it as UTF-8; echo the bytes as they came")
    return f"{came} instead: not the data sent; an echo server sends back the bytes it received, unchanged"


def _size(data: bytes) -> str:
    return shown(data) if len(data) <= 40 else f"{len(data):,} bytes"


def _first_difference(a: bytes, b: bytes) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


async def _any_exchange(ctx: CaseContext) -> tuple[Verdict, Conversation]:
    if ctx.settings.service == "echo":
        return await echo_exchange(ctx, b"hello\n")
    return await sum_exchange(ctx, "2", "3")


async def _two_clients(ctx: CaseContext) -> tuple[Verdict, Conversation]:
    if ctx.settings.service == "echo":
        return await echo_exchange(ctx, b"another client\n")
    return await sum_exchange(ctx, "40", "2")


__all__ = ["echo_exchange", "judge_sum", "sum_exchange"]
