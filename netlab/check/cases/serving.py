"""Cases on serving clients: clients.*, protocol.banner, input.bad, survives.*, close.on_eof."""

from __future__ import annotations

import trio

from ..context import CaseContext, was_accepted
from ..conversation import _BROKEN, KEEP, converse, open_connection, reset
from ..exchange import _any_exchange, _two_clients
from ..judge import shown
from ...transports import receive_data, send_data
from ..registry import CONNECTIONS, SUM, CaseList
from ..settings import Verdict
from ..wording import _fix, _program_gone, _queue_full, program_state, settled_state, stuck_note, why_no_reply

case = CaseList[CaseContext]()


@case("clients.sequential", "a second client is served after the first leaves")
async def case_sequential(ctx: CaseContext) -> Verdict:
    first, _ = await _any_exchange(ctx)
    if first[0] != "pass":
        return "fail", f"the first client was not served: {first[1]}"
    second, conv = await _two_clients(ctx)
    if second[0] == "pass":
        return "pass", "a second client, after the first left, was served too"
    if conv.refused is not None or program_state(ctx):
        return "fail", (f"the second client was not served ({second[1]}){_program_gone(ctx)}: the server served "
                        f"one client, then stopped accepting; accept clients in a loop (while True: conn, addr = "
                        f"server.accept())")
    return "fail", f"the second client, after the first left, was not served: {second[1]}"


@case("clients.concurrent", "a second client is served while the first holds its connection open, idle")
async def case_concurrent(ctx: CaseContext) -> Verdict:
    idle = await open_connection(ctx)
    if isinstance(idle, str):
        return "fail", f"could not connect: {idle}{_queue_full(ctx, idle)}"
    try:
        verdict, conv = await _two_clients(ctx)
        idle_accepted = was_accepted(ctx, idle) if verdict[0] != "pass" else True
    finally:
        with trio.CancelScope(shield=True):
            await idle.aclose()
    if verdict[0] == "pass":
        return "pass", "a second client was served while the first held its connection open, idle"
    if idle_accepted is False:  # not one client at a time: none at all
        return "fail", f"the server accepted neither the idle first client nor the second: {verdict[1]}"
    if conv.silent or (not conv.received and not conv.refused):
        return "fail", (f"while one client held its connection open and idle, a second got no reply within "
                        f"{ctx.timeout:g} s: the server serves one client at a time; use a thread per client "
                        f"(socketserver.ThreadingTCPServer) or select")
    return "fail", f"while one client held its connection open, a second was not served: {verdict[1]}"


@case("protocol.banner", "the server sends nothing before the request",
      needs=(CONNECTIONS.otherwise("a datagram server can only answer: it cannot send before a request"),))
async def case_banner(ctx: CaseContext) -> Verdict:
    opened = await open_connection(ctx)
    if isinstance(opened, str):
        return "fail", f"could not connect: {opened}{_queue_full(ctx, opened)}"
    quiet = min(0.5, ctx.timeout / 4)
    received = b""
    async with opened:
        with trio.move_on_after(quiet):
            try:
                while len(received) <= KEEP and (data := await receive_data(opened)) is not None:
                    received += data
            except _BROKEN:
                pass
    if received:
        return "fail", (f"the server sent {shown(received)} before any request: a client that reads one reply "
                        f"gets this greeting instead of its answer; send only replies")
    return "pass", f"nothing came before the request ({quiet:g} s)"


@case("input.bad", "non-numbers get an error reply or a clean close, not silence", services=SUM)
async def case_bad_input(ctx: CaseContext) -> Verdict:
    request = ctx.request("hello", "world")
    conv = await converse(ctx, [request], lambda got: got.endswith(b"\n"))
    if ctx.netlab:
        want_end = ctx.oracle(request)[-1:] if ctx.stream else b""
        if conv.received.startswith(b"ERR ") and conv.received.endswith(want_end or conv.received[-1:]):
            return "pass", f"{shown(request)} -> {shown(conv.received)}"
        if not conv.received:
            return "fail", why_no_reply(ctx, conv, request)
        return "fail", f"{shown(request)} -> {shown(conv.received)}, expected one line 'ERR <reason>'"
    if conv.received:
        return "pass", f"{shown(request)} -> {shown(conv.received)}"
    if conv.closed or conv.reset:
        gone = _program_gone(ctx)
        return "warn", (f"{shown(request)}: the connection closed without a reply{gone}; an error message "
                        f"would tell the user what was wrong")
    stuck = stuck_note(ctx, conv)
    if stuck:
        return "fail", f"{shown(request)}: no reply and no close within {ctx.timeout:g} s: {stuck}"
    return "fail", (f"{shown(request)}: no reply and no close within {ctx.timeout:g} s: the server neither "
                    f"answered nor closed the connection (a thread that died holding it, or one waiting for more "
                    f"input)")


@case("survives.bad_input", "after bad input, a new client is served")
async def case_survives_bad_input(ctx: CaseContext) -> Verdict:
    bad = b"\xff\xfe not text \x00\n" if ctx.settings.service == "echo" else ctx.request("hello", "world")
    await converse(ctx, [bad], lambda got: got.endswith(b"\n") and ctx.settings.service != "echo",
                   eof=ctx.settings.service != "echo",
                   deadline=min(ctx.deadline, trio.current_time() + min(1.0, ctx.timeout / 3)))
    state = await settled_state(ctx)
    if state:
        return "fail", f"after the bad input {shown(bad)}, {state}{_fix(ctx)}"
    verdict, conv = await _two_clients(ctx)
    if verdict[0] == "pass":
        return "pass", f"after the bad input {shown(bad)}, a new client was served"
    return "fail", f"after the bad input {shown(bad)}, a new client was not served: {verdict[1]}{_program_gone(ctx)}"


@case("survives.disconnect", "clients that leave at once or reset mid-request do not take the server down",
      needs=(CONNECTIONS.otherwise("datagrams have no connection to leave"),))
async def case_survives_disconnect(ctx: CaseContext) -> Verdict:
    for abrupt in (False, True):
        opened = await open_connection(ctx)
        if isinstance(opened, str):
            state = await settled_state(ctx)
            return "fail", f"could not connect: {opened}{_queue_full(ctx, opened)}" + (
                f"; after a client left, {state}{_fix(ctx, left=True)}" if state else "")
        if abrupt:
            try:
                await send_data(opened, ctx.request("2", "") if ctx.settings.service == "sum" else b"half a mess")
            except _BROKEN:
                pass
            await trio.sleep(min(0.1, ctx.timeout / 10))
            await reset(opened)
        else:
            await opened.aclose()
    await trio.sleep(min(0.1, ctx.timeout / 10))
    state = await settled_state(ctx)
    if state:
        return "fail", (f"clients that left (one closed at once, one reset mid-request) took the server down: "
                        f"{state}{_fix(ctx, left=True)}")
    verdict, _ = await _two_clients(ctx)
    if verdict[0] == "pass":
        return "pass", "after a client closed at once and another reset mid-request, a new client was served"
    return "fail", f"after clients that left abruptly, a new client was not served: {verdict[1]}"


@case("close.on_eof", "after the client's end of stream, the server closes the connection",
      needs=(CONNECTIONS.otherwise("datagrams have no connection to close"),))
async def case_close_on_eof(ctx: CaseContext) -> Verdict:
    if ctx.settings.service == "echo":
        request, done = b"bye\n", (lambda got: False)
    else:
        request, done = ctx.request("2", "3"), (lambda got: False)
    conv = await converse(ctx, [request], done, settle=False)
    if conv.closed or conv.reset:
        return "pass", "after the client's end of stream, the server closed the connection"
    if conv.refused is not None:
        return "fail", why_no_reply(ctx, conv, request)
    stuck = stuck_note(ctx, conv)
    if stuck:
        return "fail", f"the client sent {shown(request)} and its end of stream (EOF): {stuck}"
    return "fail", (f"the client sent {shown(request)} and its end of stream (EOF), and {ctx.timeout:g} s later the "
                    f"connection was still open: the server never closes connections; when recv() returns b'' "
                    f"the client is done: close the connection (and stop reading)")


__all__ = ["case"]
