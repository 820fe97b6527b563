"""The sentences a case says when something went wrong: stuck, no reply, the program gone.

Hints are given only where the evidence supports them: a server is called stuck where the
kernel shows it (`stuck_note`: a connection completed but never accepted, an accept queue
full), "the request has no newline" only where a newline could be the reason
(`newline_hint`), and what became of a program netlab runs (`program_state`) once it has had
a moment to finish exiting (`settled_state`), with the likely fix (`_fix`).
"""

from __future__ import annotations

import trio

from .context import BUSY_SHARE, CaseContext, waiting_in_queue
from .conversation import CONNECT_TIMED_OUT, Conversation
from .judge import shown


def stuck_note(ctx: CaseContext, conv: Conversation) -> str | None:
    """"the server is stuck: ..." when the kernel shows it: this connection was completed but
    never accepted, or connecting timed out while the accept queue held connections nobody
    accepted. With --run, the CPU the program used meanwhile tells spinning (a loop on an
    earlier connection) from blocked (an earlier client, input(), a sleep). None otherwise:
    a server that accepted and did not answer is not called stuck here."""
    if conv.accepted is False:
        queue = waiting_in_queue(ctx)
        others = f" with {queue - 1} other{'s' if queue > 2 else ''}" if queue is not None and queue > 1 else ""
        text = (f"the server is stuck: it never accepted this connection (the kernel completed it, and it waited "
                f"in the accept queue{others})")
    elif conv.timed_out:
        queue = waiting_in_queue(ctx)
        if not queue:
            return None
        text = (f"the server is stuck: its accept queue is full ({queue} connection{'s' if queue > 1 else ''} "
                f"the kernel completed wait there, never accepted), so new ones are not even completed")
    else:
        return None
    busy = conv.busy
    if busy is not None and busy > BUSY_SHARE:
        return text + (f"; meanwhile the program used {busy:.0%} of a core: it spins, most likely on an earlier "
                       f"connection whose recv() returns b'' for ever, and never gets back to accept(); when recv() "
                       f"returns b'', close that connection and accept the next")
    if busy is not None:
        return text + ("; meanwhile the program used next to no CPU: it is blocked somewhere other than accept() "
                       "(on an earlier client, input(), a sleep); accept clients in a loop, each served in a thread "
                       "of its own or until it leaves")
    return text


def why_no_reply(ctx: CaseContext, conv: Conversation, request: bytes, *, waited: str = "") -> str:
    """The sentence for a conversation that brought no reply at all."""
    stuck = stuck_note(ctx, conv)
    if conv.refused is not None:
        return f"could not connect: {conv.refused}" + (f": {stuck}" if stuck else "")
    if conv.reset and not conv.received:
        return f"the connection broke before any reply to {shown(request)}"
    if conv.closed:
        return f"the server closed the connection without replying to {shown(request)}"
    if stuck:
        return f"no reply to {shown(request)} within {ctx.timeout:g} s{waited}: {stuck}"
    hint = newline_hint(ctx, request)
    if not hint and not ctx.transport.reliable:
        hint = " (datagrams can be lost, but every try went unanswered)"
    return f"no reply to {shown(request)} within {ctx.timeout:g} s{waited}: the server accepted it but never " \
           f"answered{hint}"


#: cases whose request ends with a newline (echo) or that answer the request format in use (sum)
_ECHOED_LINES = frozenset({"echo.small", "framing.split"})
_SUM_ANSWERED = frozenset({"sum.small", "sum.negative", "sum.decimal", "sum.large", "framing.split",
                           "framing.long"})


def newline_hint(ctx: CaseContext, request: bytes) -> str:
    """" (the request has no newline: ...)" where the evidence supports it, else "".

    Only on a byte stream, for a request with no newline, and only where a newline could be
    the reason: for echo, if data ending in a newline was echoed before (the server reads
    lines); for sum, if no request in this format has been answered yet (then the format is
    the likely reason). `--request` is suggested for sum only (echo has no request format),
    and not when it was ``auto`` already (it found no format, or found this one)."""
    if not ctx.stream or request.endswith(b"\n"):
        return ""
    if ctx.settings.service == "echo":
        if not ctx.passed & _ECHOED_LINES:
            return ""
        return (" (this data has no newline, and data ending in one was echoed: the server reads a line and "
                "waits for its newline; echo what arrives, as it arrives)")
    if ctx.passed & _SUM_ANSWERED or ctx.settings.request == "auto":
        return ""
    return (" (the request has no newline: a server that reads a line waits for one; try --request auto, or a "
            "format ending in \\n)")


def program_state(ctx: CaseContext) -> str | None:
    """What went wrong with the program, when netlab runs it and something did: "the program
    exited with status 1; last stderr lines: ..." or that it stopped listening."""
    program = ctx.program
    if program is None:
        return None
    if program.running and not program.listening():
        program.wait_exit(1.0)  # a program dying of an exception closes its sockets a moment before it is gone
    if not program.running:
        return f"the program {program.death_note()}"
    if not program.listening():
        return "the program no longer listens: it closed its listening socket"
    return None


async def settled_state(ctx: CaseContext, within: float = 1.0) -> str | None:
    """`program_state`, once a program that stopped listening has had `within` seconds to
    finish exiting: a program dying of an exception closes its sockets a moment before the
    kernel reports it gone, and "it exited with status 1 (ValueError…)" is the true story,
    not "it closed its listening socket"."""
    program = ctx.program
    if program is not None and program.running and not program.listening():
        with trio.move_on_at(min(trio.current_time() + within, ctx.deadline)):
            while program.running:
                await trio.sleep(0.02)
    return program_state(ctx)


def _fix(ctx: CaseContext, *, left: bool = False) -> str:
    """The likely fix, once the program died or stopped listening."""
    program = ctx.program
    if program is not None and program.exit_status() in (None, 0):
        return (": it stops after one client; serve clients in a loop (while True: conn, addr = "
                "server.accept()) and keep the listening socket open")
    if left:
        return ": an error escaped when a client left; treat recv() == b'' and ConnectionResetError as 'this " \
               "client is gone' and go on serving the others"
    return ": an error escaped; catch it (try/except ValueError), answer with an error message, go on serving"


def _queue_full(ctx: CaseContext, reason: str) -> str:
    """": the server is stuck: its accept queue is full ..." after a connect that timed out."""
    if not reason.endswith(CONNECT_TIMED_OUT):
        return ""
    conv = Conversation(refused=reason, timed_out=True)
    note = stuck_note(ctx, conv)
    return f": {note}" if note else ""


def _program_gone(ctx: CaseContext) -> str:
    state = program_state(ctx)
    return f" ({state})" if state else ""


__all__ = ["newline_hint", "program_state", "settled_state", "stuck_note", "why_no_reply"]
