"""addressing: what does the server see as its peer's address?

Each case opens a server with the transports layer, has one client reach it, and records
what the server's socket call returned as the peer: ``getpeername()`` on the accepted
stream, the address from ``recvfrom()`` for datagrams. The table shows that raw Python
value (its ``repr``), netlab's text for it (`netlab.transports.addresses.format_sockaddr`)
and the client's own ``getsockname()``, which is not always the same thing:

* IPv4: a ``(host, port)`` 2-tuple; IPv6: a ``(host, port, flowinfo, scope_id)`` 4-tuple;
* an IPv4 client of an IPv6 socket bound to ``[::]`` with ``v6only=0`` (dual stack) is
  seen as the IPv4-mapped address ``::ffff:127.0.0.1``, although it calls itself
  ``127.0.0.1``;
* a unix client bound to a path is seen as that path (``str``); one that used Linux
  autobind as its abstract name (``bytes`` starting with NUL); an unbound unix datagram
  sender as ``None`` (nobody to reply to), and an unbound unix stream client as ``''``.

Clients that the transports layer does not make (a unix client bound to a path, an unbound
unix datagram sender) are plain sockets, still run inside `translate_os_errors`.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from dataclasses import dataclass

import trio

from ..results import ResultTable
from ..transports import (
    Address, Connection, DatagramEndpoint, connect_channel, get_transport, listen_connections, listen_datagrams,
    parse_address, socket_of, translate_os_errors,
)
from ..transports.addresses import format_sockaddr
from .base import Experiment, ExperimentOptions, ExperimentResult

WAIT = 2.0  # the longest a datagram may take to arrive on loopback before the case is reported empty


@dataclass
class Seen:
    case: str
    description: str
    server: str  # the server's address, as netlab writes it
    scheme: str  # the scheme its peer is written in
    peer: object  # what the server's socket call returned
    client_name: object  # what the client's getsockname() returned
    arrived: bool = True


async def _stream_peer(server_text: str, client_text: str | None = None, *,
                       bind_path: str | None = None) -> tuple[Address, object, object]:
    """(server address, peer as the server saw it, client's own name) for one connection."""
    listeners = await listen_connections(parse_address(server_text))
    try:
        bound = listeners.bound[0]
        target = parse_address(client_text.format(port=bound.port)) if client_text else bound
        client: Connection
        if bind_path is None:
            client = await get_transport(target.scheme).connect(target)
            client_sock = socket_of(client)
        else:
            client_sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client = trio.SocketStream(client_sock)
            with translate_os_errors(target, "connect to"):
                await client_sock.bind(bind_path)
                await client_sock.connect(target.unix_sockaddr())
        async with client:
            accepted = await listeners.listeners[0].accept()
            async with accepted:
                with translate_os_errors(bound, "getpeername on"):
                    peer = socket_of(accepted).getpeername()
                return bound, peer, client_sock.getsockname()
    finally:
        await listeners.aclose()


async def _datagram_peer(server_text: str, *, client: str) -> tuple[Address, object, object, bool]:
    """(server address, peer from recvfrom, client's own name, arrived) for one datagram.

    client: "connect" (the transports layer's client), "path:<p>" (a plain socket bound to
    a path) or "unbound" (a plain socket that never binds).
    """
    async with await listen_datagrams(parse_address(server_text)) as server:
        if client == "connect":
            async with await connect_channel(server.local) as sender:
                await sender.send(b"hello")
                name = sender.socket.getsockname()
                peer, arrived = await _recvfrom(server)
        else:
            raw = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            with raw:
                with translate_os_errors(server.local, "send to"):
                    if client.startswith("path:"):
                        await raw.bind(client[len("path:"):])
                    await raw.sendto(b"hello", server.local.unix_sockaddr())
                name = raw.getsockname()
                peer, arrived = await _recvfrom(server)
        return server.local, peer, name, arrived


async def _recvfrom(server: DatagramEndpoint) -> tuple[object, bool]:
    """The sender's address exactly as recvfrom() gives it (a `Message` would turn an empty
    one into None)."""
    with trio.move_on_after(WAIT):
        with translate_os_errors(server.local, "receive from"):
            _data, peer = await server.socket.recvfrom(65536)
        return peer, True
    return None, False


async def run(options: ExperimentOptions) -> ExperimentResult:
    result = ExperimentResult(name="addressing", question=EXPERIMENT.question, mode="loopback")
    tmp = tempfile.mkdtemp(prefix="nl-", dir="/tmp")
    seen: list[Seen] = []
    try:
        for case, description, server_text, client_text in (
            ("tcp", "TCP over IPv4", "tcp4:127.0.0.1:0", None),
            ("tcp6", "TCP over IPv6", "tcp6:[::1]:0", None),
            ("dual-stack", "IPv4 client of tcp6 on [::] with v6only=0", "tcp6:[::]:0?v6only=0",
             "tcp4:127.0.0.1:{port}"),
        ):
            bound, peer, name = await _stream_peer(server_text, client_text)
            seen.append(Seen(case, description, str(bound), bound.scheme, peer, name))
        for case, description, server_text in (
            ("udp", "UDP over IPv4", "udp4:127.0.0.1:0"),
            ("udp6", "UDP over IPv6", "udp6:[::1]:0"),
        ):
            bound, peer, name, arrived = await _datagram_peer(server_text, client="connect")
            seen.append(Seen(case, description, str(bound), bound.scheme, peer, name, arrived))
        bound, peer, name = await _stream_peer(f"unix:{tmp}/s.sock", bind_path=f"{tmp}/client.sock")
        seen.append(Seen("unix-path", "unix stream client bound to a path", str(bound), "unix", peer, name))
        bound, peer, name = await _stream_peer(f"unix:{tmp}/s2.sock")
        seen.append(Seen("unix-unbound", "unix stream client that never binds", str(bound), "unix", peer, name))
        for case, description, client in (
            ("unix-dgram-autobind", "unix-dgram client with autobind (netlab's connect)", "connect"),
            ("unix-dgram-path", "unix-dgram sender bound to a path", f"path:{tmp}/sender.sock"),
            ("unix-dgram-unbound", "unix-dgram sender that never binds", "unbound"),
        ):
            path = f"{tmp}/{case}.sock"
            bound, peer, name, arrived = await _datagram_peer(f"unix-dgram:{path}", client=client)
            seen.append(Seen(case, description, str(bound), "unix-dgram", peer, name, arrived))
            if os.path.exists(f"{tmp}/sender.sock"):
                os.unlink(f"{tmp}/sender.sock")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _report(result, seen)
    return result


def _fields(peer: object) -> dict[str, object] | None:
    if isinstance(peer, tuple) and len(peer) == 4:
        return {"host": peer[0], "port": peer[1], "flowinfo": peer[2], "scope_id": peer[3]}
    if isinstance(peer, tuple) and len(peer) == 2:
        return {"host": peer[0], "port": peer[1]}
    return None


def _report(result: ExperimentResult, seen: list[Seen]) -> None:
    table = ResultTable("What the server's socket call returned as the peer",
                        ["case", "server", "peer (raw Python value)", "netlab text", "client's getsockname()"], [])
    for s in seen:
        text = format_sockaddr(s.scheme, s.peer)
        result.facts[s.case] = {
            "description": s.description, "server": s.server, "arrived": s.arrived,
            "raw": repr(s.peer), "type": type(s.peer).__name__, "text": text, "fields": _fields(s.peer),
            "client_name": repr(s.client_name), "same_as_client_name": s.peer == s.client_name,
        }
        table.rows.append([s.description, s.server, repr(s.peer) if s.arrived else "(nothing arrived)", text,
                           repr(s.client_name)])
    result.tables.append(table)
    facts = result.facts
    findings = result.findings

    missing = [case for case, f in facts.items() if not f["arrived"]]
    if missing:
        findings.append(f"{', '.join(missing)}: no datagram arrived within {WAIT:.0f} s, so there is no peer to show.")
    v4 = [s for s in seen if s.case in ("tcp", "udp") and s.arrived]
    for s in v4:
        size = len(s.peer) if isinstance(s.peer, tuple) else "?"
        findings.append(f"{s.case}: an IPv4 peer is a {size}-tuple (host, port): {s.peer!r}.")
    for s in (s for s in seen if s.case in ("tcp6", "udp6") and s.arrived):
        f = facts[s.case]["fields"]
        if f is None:
            findings.append(f"{s.case}: the peer was {s.peer!r}, not a 4-tuple.")
            continue
        scope = (" A scope id is set only for link-local addresses (fe80::/10), which need an interface; "
                 "::1 has none." if f["scope_id"] == 0 else f" scope id {f['scope_id']} names an interface.")
        findings.append(f"{s.case}: an IPv6 peer is a 4-tuple (host, port, flowinfo, scope_id): {s.peer!r}, "
                        f"flowinfo {f['flowinfo']}, scope id {f['scope_id']}.{scope}")
    dual = next((s for s in seen if s.case == "dual-stack"), None)
    if dual is not None:
        host = dual.peer[0] if isinstance(dual.peer, tuple) else dual.peer
        own = dual.client_name[0] if isinstance(dual.client_name, tuple) else dual.client_name
        if isinstance(dual.peer, tuple) and isinstance(host, str) and host.startswith("::ffff:"):
            findings.append(f"dual-stack: the client calls itself {own!r}, but the server on {dual.server} sees "
                            f"{host!r} (an IPv4-mapped IPv6 address, in a {len(dual.peer)}-tuple); netlab "
                            f"writes it {facts['dual-stack']['text']}.")
        else:
            findings.append(f"dual-stack: the server on {dual.server} saw {dual.peer!r}, not an IPv4-mapped address.")
    for case, what in (("unix-path", "stream client"), ("unix-dgram-path", "datagram sender")):
        s = next(s for s in seen if s.case == case)
        if s.arrived and isinstance(s.peer, str) and s.peer:
            findings.append(f"{case}: a unix {what} bound to a path is seen as that path, a str: {s.peer!r}.")
        elif s.arrived:
            findings.append(f"{case}: a unix {what} bound to a path was seen as {s.peer!r}.")
    auto = next(s for s in seen if s.case == "unix-dgram-autobind")
    if auto.arrived and isinstance(auto.peer, bytes) and auto.peer.startswith(b"\0"):
        findings.append(f"unix-dgram-autobind: autobind gave the client an abstract name, bytes starting with NUL: "
                        f"{auto.peer!r}, which netlab writes {facts[auto.case]['text']}; replies can reach it, "
                        f"and there is no file to clean up.")
    elif auto.arrived:
        findings.append(f"unix-dgram-autobind: the autobound client was seen as {auto.peer!r}.")
    unbound = next(s for s in seen if s.case == "unix-dgram-unbound")
    if unbound.arrived:
        if unbound.peer is None:
            findings.append("unix-dgram-unbound: a sender that never binds is seen as None: the datagram arrives, "
                            "but the server has no address to answer.")
        else:
            findings.append(f"unix-dgram-unbound: a sender that never binds was seen as {unbound.peer!r}.")
    stream = next(s for s in seen if s.case == "unix-unbound")
    findings.append(f"unix-unbound: a unix stream client that never binds is seen as {stream.peer!r} "
                    f"(getpeername on the accepted socket); the connection itself is the way back to it.")


EXPERIMENT = Experiment(
    name="addressing",
    question="What does a server see as its peer? (tuples for IP, ::ffff:127.0.0.1 on dual stack, paths, "
             "abstract names, None)",
    run=run,
)
