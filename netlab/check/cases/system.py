"""Cases on the program as the machine sees it: reach.*, resources.idle_cpu, restart.reuse.

Each needs something of the check that a report may lack: a listening socket netlab can see
(reach), a program netlab started (``--run``), isolation (restart); the declarations say so,
and the case is skipped with its sentence where it is missing.
"""

from __future__ import annotations

import trio

from ..context import BUSY_SHARE, CaseContext
from ..exchange import _any_exchange
from ..reach import ipv6_verdict, reach_verdict, scope
from ..registry import IP, ISOLATED, LISTENER, RUN, CaseList, Condition
from ..restart import restart_verdict
from ..settings import Verdict

case = CaseList[CaseContext]()

#: loopback clients (::1 and 127.0.0.1) can reach the socket: it is not bound to one address only
_NOT_ONE_ADDRESS = Condition[CaseContext]("not bound to one address only",
                                          lambda ctx: ctx.listener is None or scope(ctx.listener) != "one")


def _bound_to_one(ctx: CaseContext) -> str:
    assert ctx.listener is not None
    return f"bound to {ctx.listener.bound_text} only: loopback clients of either version cannot reach it"


@case("reach.interfaces", "bound to loopback only, all interfaces, or one address: can another machine reach it?",
      needs=(LISTENER.otherwise(lambda ctx: f"no socket listens at {ctx.address} on this machine, so netlab cannot "
                                            f"see how it is bound (a server on another machine: if `connect` passed, "
                                            f"it is reachable from here)"),),
      extra=lambda settings: settings.startup + 5.0)
async def case_reach_interfaces(ctx: CaseContext) -> Verdict:
    return await reach_verdict(ctx)


@case("reach.ipv6", "reachable over IPv6 (::1) as well as IPv4",
      needs=(IP.otherwise("a unix socket has no IP version"), _NOT_ONE_ADDRESS.otherwise(_bound_to_one)))
async def case_reach_ipv6(ctx: CaseContext) -> Verdict:
    return await ipv6_verdict(ctx)


@case("resources.idle_cpu", "with --run: CPU use while idle after a client left (catches busy loops)",
      needs=(RUN.otherwise("needs --run: netlab measures the CPU time of a program it started"),),
      extra=lambda settings: settings.idle_window + 0.5)
async def case_idle_cpu(ctx: CaseContext) -> Verdict:
    program = ctx.program
    assert program is not None  # needs RUN
    full, ctx.deadline = ctx.deadline, min(ctx.deadline, trio.current_time() + ctx.timeout)
    await _any_exchange(ctx)  # within the usual timeout, answered or not: the measuring comes after
    ctx.deadline = full
    await trio.sleep(0.2)
    window = ctx.settings.idle_window
    before, start = program.cpu_seconds(), trio.current_time()
    await trio.sleep(window)
    used = (program.cpu_seconds() - before) / (trio.current_time() - start)
    if used > BUSY_SHARE:
        return "fail", (f"used {used:.0%} of a core for {window:g} s while idle, after a client left: a busy loop; "
                        f"most likely recv() returning b'' forever once the client has gone: stop when it does")
    return "pass", f"used {used:.0%} of a core while idle, after a client left"


#: an IP connection kind: TCP (and TLS over it), where a connection closed first waits in TIME_WAIT
_TCP = Condition[CaseContext]("TCP", lambda ctx: not ctx.address.is_unix and ctx.connected)


# last: it turns TIME_WAIT on and leaves the port with it
@case("restart.reuse", "with --run: stopped as Ctrl-C would with a client connected, it starts again at once "
      "(TIME_WAIT and SO_REUSEADDR)",
      needs=(RUN.otherwise("netlab did not start the server, so it cannot restart it (--run can)"),
             _TCP.otherwise("TIME_WAIT belongs to TCP connections: a datagram or unix socket server has none to "
                            "wait for"),
             ISOLATED.otherwise("needs isolation (run as root, or where user namespaces are allowed): on the host "
                                "it would leave TIME_WAIT on the port for whatever is checked next")),
      extra=lambda settings: settings.startup + 5.0)
async def case_restart(ctx: CaseContext) -> Verdict:
    assert ctx.program is not None  # needs RUN
    request = ctx.request("2", "3") if ctx.settings.service == "sum" else b"hello, netlab\n"
    status, text = await restart_verdict(ctx.program, ctx.address, request, startup=ctx.settings.startup,
                                         deadline=ctx.deadline)
    if status == "lesson":
        return ("fail" if ctx.netlab else "warn"), text
    return status, text


__all__ = ["case"]
