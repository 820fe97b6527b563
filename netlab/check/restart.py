"""The restart case (``restart.reuse``): stop the server as Ctrl-C would, start it again at once.

What it teaches: the side of a TCP connection that closes first keeps it in TIME_WAIT for
60 s (so that a late segment of the old connection is not taken for part of a new one).
A server killed while a client is connected closes first, so its port has connections in
TIME_WAIT when it is started again, and ``bind`` fails with "Address already in use" unless
the listening socket set ``SO_REUSEADDR`` (Linux refuses even a new socket that sets it while
TIME_WAIT connections of a listener that did not set it remain)::

    client ── request ──> server           the first run serves a client
    client <── reply ─── server
             SIGINT ───> server            Ctrl-C: the kernel closes its sockets,
    client <── FIN ───── (server)          the server's side closes first
    client ── FIN ─────> (server)          -> TIME_WAIT on the server's port
             start ────> server'           bind(port): EADDRINUSE without SO_REUSEADDR

Isolated checks make the kernel keep no TIME_WAIT (`netlab.check.isolate`), so that one crash
fails one case; this case turns TIME_WAIT back on for itself, and runs last, so every other
case is unaffected. On the host it is skipped: it would leave TIME_WAIT for whatever is
checked next.
"""

from __future__ import annotations

import signal
from typing import Literal

import trio

from .. import netns
from ..errors import NetlabError
from ..transports import Address, get_transport, receive_data, send_data
from . import procnet
from .program import Program

Status = Literal["pass", "lesson", "fail", "skip"]
#: what TIME_WAIT's table may hold while this case runs (the kernel's default is larger)
KEPT = 4096
LESSON = ("TIME_WAIT: the side that closes a TCP connection first keeps it for 60 s, and a server killed with "
          "clients connected is that side; until those connections are gone, bind() of the same port fails "
          "with 'Address already in use' unless the listening socket sets SO_REUSEADDR. Fix: "
          "server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1) before bind() "
          "(socket.create_server sets it for you)")


async def restart_verdict(program: Program, address: Address, request: bytes, *, startup: float,
                          deadline: float) -> tuple[Status, str]:
    """Serve one client, stop the program as Ctrl-C would (SIGINT to its process group) with
    the client still connected, and start it again at once. (Where it applies, a program
    netlab started, an IP connection kind, isolation, is the case's declaration:
    `netlab.check.cases.system`.)"""
    problem = netns.write_sysctl(netns.TW_BUCKETS, KEPT)
    if problem is not None:
        return "skip", f"cannot turn TIME_WAIT back on in this namespace ({problem})"
    try:
        return await _restart(program, address, request, startup, deadline)
    finally:
        netns.write_sysctl(netns.TW_BUCKETS, 0)


async def _restart(program: Program, address: Address, request: bytes, startup: float,
                   deadline: float) -> tuple[Status, str]:
    port = address.port
    assert port is not None  # an inet connection address
    served = False
    conn = None
    try:
        with trio.move_on_at(deadline):
            conn = await get_transport(address.scheme).connect(address)
    except NetlabError as exc:
        return "fail", f"could not connect for the first run: {exc}"
    if conn is None:
        return "fail", "connecting for the first run took longer than the case's deadline"
    try:
        with trio.move_on_at(min(deadline, trio.current_time() + 2.0)):
            await send_data(conn, request)
            served = bool(await receive_data(conn))
        # Ctrl-C in the server's terminal, with this client still connected
        program.send_signal(signal.SIGINT)
        with trio.move_on_after(2.0):
            while program.running:
                await trio.sleep(0.02)
        if program.running:
            await program.stop(grace=0.5)
        with trio.move_on_after(1.0):  # the kernel's FIN for the dead server's socket
            while await receive_data(conn):
                pass
    except (NetlabError, OSError, trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        with trio.CancelScope(shield=True):
            await conn.aclose()
    waiting = procnet.time_wait(port)
    await program.stop(grace=0.5)
    program.start()
    sock = await program.wait_listening(startup)
    left = f"{waiting} connection{'s' if waiting != 1 else ''} of the first run in TIME_WAIT on port {port}"
    first = "" if served else " (the first run did not answer; it was stopped all the same)"
    if sock is not None:
        if not waiting:
            return "pass", (f"restarted at once and listens again on port {port}{first}; the first run left no "
                            f"connection in TIME_WAIT, so this shows only that the restart works")
        return "pass", f"restarted at once with {left}: it sets SO_REUSEADDR{first}"
    if program.running:
        return "fail", f"started again, but did not listen within {startup:g} s{first}"
    tail = program.stderr_tail()
    if "Address already in use" in tail or "Errno 98" in tail:
        return "lesson", (f"the restart failed: the program {program.death_note()}, with {left}. {LESSON}")
    return "fail", f"the restart failed: the program {program.death_note()}{first}"


__all__ = ["KEPT", "LESSON", "restart_verdict"]
