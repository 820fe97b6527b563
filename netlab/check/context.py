"""What a case works with (`CaseContext`), and what the kernel shows about the server meanwhile.

A case talks to the server only through netlab's transports, so every case runs on every
transport; the context says which one, how to write a request (`fmt`), the program netlab
started (with ``--run``) and its listening socket as the kernel lists it.

When no reply came, the kernel's tables still tell something: whether the server ever
accepted the connection (a TCP connection waiting in the accept queue has no socket inode in
``/proc/net/tcp``: `was_accepted`), how many wait there never accepted (`waiting_in_queue`),
and, with ``--run``, the program's share of a core meanwhile (`_CpuWatch`; above `BUSY_SHARE`
it spins).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

import trio

from ..services import get_service
from ..transports import Address, Connection, Transport, get_transport, socket_of
from . import procnet
from .judge import RequestFormat
from .procnet import ListeningSocket
from .program import Program
from .settings import CheckSettings

#: the share of one core above which an idle server counts as busy-looping (an idle server
#: blocked in accept() or recv() uses next to nothing; a spinning one takes what it can get,
#: which on a loaded machine can be well under a whole core)
BUSY_SHARE = 0.1


@dataclass
class CaseContext:
    """What a case works with: where the server is, how to write a request, the program."""

    address: Address
    settings: CheckSettings
    fmt: RequestFormat
    program: Program | None = None
    #: the server's listening socket as the kernel lists it, when netlab can see it
    listener: ListeningSocket | None = None
    deadline: float = 0.0
    #: the ids of the cases passed so far (a hint may depend on what already worked)
    passed: set[str] = field(default_factory=set)
    #: this check runs in namespaces of its own (`netlab.check.isolate`)
    isolated: bool = False

    @property
    def transport(self) -> Transport:
        return get_transport(self.address.scheme)

    @property
    def stream(self) -> bool:
        """The server's connections are byte streams (no message boundaries)."""
        return not get_transport(self.address.scheme).boundaries

    @property
    def connected(self) -> bool:
        return get_transport(self.address.scheme).connected

    @property
    def netlab(self) -> bool:
        return self.settings.profile == "netlab"

    @property
    def timeout(self) -> float:
        return self.settings.timeout

    def remaining(self) -> float:
        return max(0.0, self.deadline - trio.current_time())

    def request(self, a: str, b: str) -> bytes:
        return self.fmt.render(a, b)

    def oracle(self, request: bytes) -> bytes:
        """What netlab's own service answers to `request` on this transport."""
        service = get_service(self.settings.service)
        if self.stream:
            return service.new_session().receive_data(request)
        return service.handle_datagram(request) or b""


def _namespace_pid(ctx: CaseContext) -> int | str:
    """Whose /proc/PID/net tables show the server's sockets (those of the network namespace
    that process is in): the process holding the listening socket, else the program's first
    process, else ours."""
    if ctx.listener is not None and ctx.listener.pid is not None and os.path.exists(f"/proc/{ctx.listener.pid}"):
        return ctx.listener.pid
    program = ctx.program
    if program is not None and program.running and program.pid is not None:
        return program.pid
    return "self"


def was_accepted(ctx: CaseContext, conn: Connection) -> bool | None:
    """Whether the server accepted `conn` (TCP only: the kernel lists a connection waiting in
    the accept queue with no socket inode); None where that cannot be seen."""
    if ctx.transport.protocol != socket.IPPROTO_TCP:  # only /proc/net/tcp shows it
        return None
    try:
        sock = socket_of(conn)
        local, peer = sock.getsockname(), sock.getpeername()
    except (OSError, TypeError):
        return None
    return procnet.accepted(peer[1], (local[0], local[1]), _namespace_pid(ctx))


def waiting_in_queue(ctx: CaseContext) -> int | None:
    """How many connections wait in the server's accept queue, never accepted (TCP, when
    netlab can see its listening socket)."""
    if ctx.listener is None or not ctx.listener.tcp:
        return None
    return procnet.accept_queue(ctx.listener.inode, _namespace_pid(ctx))


class _CpuWatch:
    """The program's share of a core from now until `share()`."""

    def __init__(self, ctx: CaseContext) -> None:
        self.program = ctx.program
        self.start = trio.current_time()
        self.before = self.program.cpu_seconds() if self.program is not None else 0.0

    def share(self) -> float | None:
        if self.program is None or not self.program.running:
            return None
        elapsed = trio.current_time() - self.start
        return (self.program.cpu_seconds() - self.before) / elapsed if elapsed > 0 else None


__all__ = ["BUSY_SHARE", "CaseContext", "waiting_in_queue", "was_accepted"]
