"""Cases on the answers themselves: connect, sum.*, echo.*, framing.*, lines.*."""

from __future__ import annotations

import random

from ..context import CaseContext
from ..conversation import converse, open_connection
from ..exchange import _any_exchange, echo_exchange, sum_exchange
from ..judge import shown
from ..registry import BYTE_STREAMS, ECHO, NETLAB, SUM, CaseList
from ..settings import Verdict
from ..wording import _program_gone, _queue_full, why_no_reply

case = CaseList[CaseContext]()


@case("connect", "accepts a connection (datagrams: answers a request) at the address")
async def case_connect(ctx: CaseContext) -> Verdict:
    if ctx.connected:
        opened = await open_connection(ctx)
        if isinstance(opened, str):
            return "fail", f"could not connect to {ctx.address}: {opened}{_program_gone(ctx)}{_queue_full(ctx, opened)}"
        await opened.aclose()
        return "pass", f"accepted a connection at {ctx.address}"
    verdict, conv = await _any_exchange(ctx)
    if conv.refused is not None:
        return "fail", f"nothing answers at {ctx.address}: {conv.refused}"
    if verdict[0] == "pass" or conv.received:
        return "pass", f"a request to {ctx.address} got a reply"
    return "fail", f"no reply at {ctx.address} within {ctx.timeout:g} s: nothing seems to serve there"


async def _sum_case(ctx: CaseContext, a: str, b: str, *, exact: bool = False) -> Verdict:
    verdict, _ = await sum_exchange(ctx, a, b, exact=exact)
    return verdict


@case("sum.small", "2 3 -> 5", services=SUM)
async def case_sum_small(ctx: CaseContext) -> Verdict:
    return await _sum_case(ctx, "2", "3")


@case("sum.negative", "-10 3 -> -7", services=SUM)
async def case_sum_negative(ctx: CaseContext) -> Verdict:
    return await _sum_case(ctx, "-10", "3")


@case("sum.decimal", "0.1 0.2 -> 0.3 (a float within 1e-9 is fine in the assignment profile)", services=SUM)
async def case_sum_decimal(ctx: CaseContext) -> Verdict:
    return await _sum_case(ctx, "0.1", "0.2")


@case("sum.large", "two 20-digit integers, added exactly", services=SUM)
async def case_sum_large(ctx: CaseContext) -> Verdict:
    return await _sum_case(ctx, "12345678901234567890", "98765432109876543210", exact=True)


async def _echo_case(ctx: CaseContext, data: bytes) -> Verdict:
    verdict, _ = await echo_exchange(ctx, data)
    return verdict


@case("echo.small", "a short line comes back unchanged", services=ECHO)
async def case_echo_small(ctx: CaseContext) -> Verdict:
    return await _echo_case(ctx, b"hello, netlab\n")


@case("echo.binary", "all 256 byte values come back unchanged", services=ECHO)
async def case_echo_binary(ctx: CaseContext) -> Verdict:
    return await _echo_case(ctx, bytes(range(256)))


def _limit(ctx: CaseContext) -> str:
    return ctx.transport.limit_summary(ctx.address) or "a few hundred KiB"


@case("echo.large", "1 MiB comes back unchanged (streams)", services=ECHO,
      needs=(BYTE_STREAMS.otherwise(lambda ctx: f"a message carries at most {_limit(ctx)}: 1 MiB does not fit one"),))
async def case_echo_large(ctx: CaseContext) -> Verdict:
    """1 MiB of reproducible random bytes."""
    return await _echo_case(ctx, random.Random(1).randbytes(1 << 20))


LONG_A, LONG_B = "1" * 30, "2" * 30


@case("framing.split", "a request arriving in pieces, with pauses, is answered whole",
      needs=(BYTE_STREAMS.otherwise("this transport keeps message boundaries: a request cannot arrive in pieces"),))
async def case_framing_split(ctx: CaseContext) -> Verdict:
    if ctx.settings.service == "echo":
        verdict, _ = await echo_exchange(ctx, b"a message in three pieces\n", split=True)
        return verdict
    verdict, _ = await sum_exchange(ctx, "12", "30", split=True)
    return verdict


@case("framing.long", "a request longer than a 16-byte read (two 30-digit numbers; 64 bytes for echo)")
async def case_framing_long(ctx: CaseContext) -> Verdict:
    if ctx.settings.service == "echo":
        verdict, _ = await echo_exchange(ctx, bytes(range(48, 112)))  # 64 bytes: four 16-byte reads
        return verdict
    verdict, _ = await sum_exchange(ctx, LONG_A, LONG_B)
    return verdict


@case("lines.pipelined", "three requests in one write get three replies, in order", services=SUM, profiles=NETLAB,
      needs=(BYTE_STREAMS.otherwise("pipelining is a byte-stream matter: each message here is one request"),))
async def case_pipelined(ctx: CaseContext) -> Verdict:
    request = b"1 2\n3 4\n5 6\n"
    want = ctx.oracle(request)
    conv = await converse(ctx, [request], lambda got: got.count(b"\n") >= 3)
    if conv.received == want:
        return "pass", f"three requests in one write -> {shown(conv.received)}"
    if not conv.received:
        return "fail", why_no_reply(ctx, conv, request)
    return "fail", (f"three requests in one write -> {shown(conv.received)}, expected {shown(want)}: answer every "
                    f"line, in order")


@case("lines.crlf", "a CRLF request gets a CRLF reply", services=SUM, profiles=NETLAB)
async def case_crlf(ctx: CaseContext) -> Verdict:
    request = b"2 3\r\n"
    want = ctx.oracle(request)
    conv = await converse(ctx, [request], lambda got: got.endswith(b"\n"))
    if conv.received == want:
        return "pass", f"{shown(request)} -> {shown(conv.received)} (the line ending mirrored)"
    if not conv.received:
        return "fail", why_no_reply(ctx, conv, request)
    return "fail", f"{shown(request)} -> {shown(conv.received)}, expected {shown(want)} (CRLF mirrored)"


__all__ = ["case"]
