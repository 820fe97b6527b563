"""close: who closes first, and what does it leave behind? (FIN, ACK, TIME_WAIT)

Closing a TCP connection takes four segments: each side sends a FIN when it closes, and
the other acknowledges it. The side that sends the first FIN (the *active closer*) keeps
its end of the connection in TIME_WAIT for 60 s on Linux, so that a late segment of this
connection is not taken for one of a new connection on the same four numbers. Two cases,
over TCP on 127.0.0.1, each with a fresh server on a port the kernel picks:

* **client closes first**: the client sends a request, reads the reply, closes; the server
  reads end of stream and closes. TIME_WAIT is the client's, on its ephemeral port:
  harmless, the next connection takes another port.
* **server closes first**: the server answers and closes at once (as a server that serves
  one request per connection does); the client reads end of stream and closes. TIME_WAIT
  is the *server's*, on its well-known port: a new server that binds that port while it
  lasts fails with EADDRINUSE, even one that sets SO_REUSEADDR when the old listener did
  not. That is why ``netlab check`` restarts a program in a fresh network namespace (which
  has no TIME_WAIT) instead of on the host.

The TIME_WAIT sockets are read from ``/proc/net/tcp`` (state ``06``), matched on both ends'
ports, and the new binds are really tried: without SO_REUSEADDR, and with it.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import asdict, dataclass, field
import trio

from ..results import ResultTable
from .base import Experiment, ExperimentOptions, ExperimentResult

HOST = "127.0.0.1"
#: the cases' keys in the facts
CASES = ("client", "server", "server_reuseaddr")
_TIME_WAIT = "06"


@dataclass
class Case:
    name: str
    first: str  # "client" or "server": who closes first
    reuseaddr: bool = False  # whether the first server's listener set SO_REUSEADDR
    server_port: int = 0
    client_port: int = 0
    time_wait: list[str] = field(default_factory=list)  # "server" / "client": whose end is in TIME_WAIT
    rebind: str = ""  # a new listener on the server's port, without SO_REUSEADDR
    rebind_reuseaddr: str = ""  # the same, with SO_REUSEADDR
    reply: str = ""


def time_wait_ends(server_port: int, client_port: int) -> list[str]:
    """Whose ends of the connection (server:server_port <-> client:client_port) are in TIME_WAIT."""
    found: list[str] = []
    try:
        with open("/proc/net/tcp") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) < 4 or fields[3] != _TIME_WAIT:
            continue
        local, remote = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
        if (local, remote) == (server_port, client_port):
            found.append("server")
        elif (local, remote) == (client_port, server_port):
            found.append("client")
    return sorted(found)


def try_bind(port: int, reuseaddr: bool) -> str:
    """"bound" if a new listener could take `port` now, else the errno's name."""
    with socket.socket() as sock:
        if reuseaddr:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
            sock.listen()
        except OSError as exc:
            return errno.errorcode.get(exc.errno or 0, str(exc))
    return "bound"


async def _case(name: str, first: str, reuseaddr: bool = False) -> Case:
    case = Case(name, first, reuseaddr)
    listener = trio.socket.socket()
    with listener:
        if reuseaddr:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        await listener.bind((HOST, 0))
        listener.listen()
        case.server_port = listener.getsockname()[1]
        client = trio.socket.socket()
        with client:
            await client.connect((HOST, case.server_port))
            case.client_port = client.getsockname()[1]
            server, _ = await listener.accept()
            with server:
                await client.send(b"hello\n")
                await server.recv(100)
                await server.send(b"bye\n")
                case.reply = (await client.recv(100)).decode(errors="replace").strip()
                if first == "client":
                    client.close()
                    await server.recv(100)  # end of stream: the client's FIN
                    server.close()
                else:
                    server.close()
                    await client.recv(100)  # end of stream: the server's FIN
                    client.close()
                await trio.sleep(0.05)  # the last ACK
    case.time_wait = time_wait_ends(case.server_port, case.client_port)
    case.rebind = try_bind(case.server_port, reuseaddr=False)
    case.rebind_reuseaddr = try_bind(case.server_port, reuseaddr=True)
    return case


async def run(options: ExperimentOptions) -> ExperimentResult:
    result = ExperimentResult(name="close", question=EXPERIMENT.question, mode="loopback",
                              options={"transport": "tcp", "host": HOST})
    cases = [await _case("client closes first", "client"), await _case("server closes first", "server"),
             await _case("server closes first, its listener with SO_REUSEADDR", "server", reuseaddr=True)]
    table = ResultTable("closing a TCP connection, then binding a new server to the same port",
                        ["case", "server port", "client port", "in TIME_WAIT", "new bind", "with SO_REUSEADDR"], [])
    for key, c in zip(CASES, cases):
        table.rows.append([c.name, c.server_port, c.client_port, " and ".join(c.time_wait) or "nobody", c.rebind,
                           c.rebind_reuseaddr])
        result.facts[key] = asdict(c)
    result.tables.append(table)
    client, server, reused = cases
    said = result.findings.append

    def in_time_wait(c: Case) -> str:
        if c.time_wait == [c.first]:
            return f"the {c.first}'s end is in TIME_WAIT (/proc/net/tcp, state 06)"
        return f"in TIME_WAIT: {' and '.join(c.time_wait) or 'nobody'}"

    said(f"{client.name}: {in_time_wait(client)}: the side that sends the first FIN keeps the connection for 60 s. "
         f"Here that is the client's ephemeral port {client.client_port}; the server's port was free at once "
         f"(a new bind: {client.rebind}).")
    said(f"{server.name}: {in_time_wait(server)}, on the server's own port {server.server_port}: a new server "
         f"binding it got {server.rebind}, and {server.rebind_reuseaddr} with SO_REUSEADDR"
         + (f"; when the first listener had set SO_REUSEADDR too, the new bind with it got {reused.rebind_reuseaddr}"
            f" (without it: {reused.rebind}): Linux lets a TIME_WAIT end go only to a socket that asks, and only "
            f"when the old one allowed it" if reused.rebind_reuseaddr != server.rebind_reuseaddr else "")
         + ". A server that closes first and restarts at once fails to bind for a minute: that is why netlab "
           "check restarts a program in a fresh network namespace, which has no TIME_WAIT.")
    return result


EXPERIMENT = Experiment(
    name="close",
    question="Who closes first, and what is left behind? (FIN, ACK, and TIME_WAIT on the side that closed first)",
    run=run,
)



__all__ = ["EXPERIMENT", "time_wait_ends", "try_bind"]
