"""refused: what happens when you connect where nothing listens?

Each case aims a client of the transports layer at an address nobody serves, and records
how it failed: which call, the netlab error, the errno behind it, and how long it took.

* TCP (IPv4 and IPv6): the port is held by a socket that is bound but never listens, so
  nothing else can take it; the kernel answers the SYN with a reset, and ``connect``
  fails at once with ECONNREFUSED.
* UDP, unconnected: a datagram is sent with ``sendto`` to a port that was free a moment
  ago; the kernel's ICMP port-unreachable never reaches an unconnected socket, so the
  client just waits for a reply until ``--timeout`` and gets no error at all.
* UDP, connected (IPv4 and IPv6): ``connect`` only records the peer and the first ``send``
  succeeds; the ICMP port-unreachable then comes back as ECONNREFUSED on the next call.
* unix stream, unix-dgram, unix-seq: no file at the path gives ENOENT; a stale file (its
  socket was closed without removing it) gives ECONNREFUSED.

Elapsed times are measured, for the reader; only the unconnected UDP case has a known
bound (it waits at least ``--timeout``).
"""

from __future__ import annotations

import errno
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass

import trio

from ..errors import NetlabError
from ..results import ResultTable
from ..transports import connect_channel, get_transport, listen_datagrams, parse_address, translate_os_errors
from .base import Experiment, ExperimentOptions, ExperimentResult


@dataclass
class Outcome:
    case: str
    description: str
    address: str
    outcome: str  # "error", "timeout" or "reply"
    failed_at: str | None = None  # the call that failed: connect, send, receive
    error: str | None = None  # the netlab error class
    errno: str | None = None  # its errno name
    message: str | None = None
    elapsed_ms: float = 0.0
    waited_for: float | None = None  # the timeout, where the client waited for a reply
    no_ports_delta: int | None = None  # host-wide Udp NoPorts rise while it waited


def _errno_name(exc: NetlabError) -> str | None:
    number = getattr(exc, "errno", None)
    return errno.errorcode.get(number, str(number)) if number is not None else None


def _failed(outcome: Outcome, exc: NetlabError, at: str, start: float) -> Outcome:
    outcome.elapsed_ms = round((time.perf_counter() - start) * 1000, 3)
    outcome.outcome, outcome.failed_at = "error", at
    outcome.error, outcome.errno, outcome.message = type(exc).__name__, _errno_name(exc), str(exc)
    return outcome


def _udp_no_ports() -> int | None:
    """The host-wide count of UDP datagrams that found no socket (each answered by ICMP)."""
    try:
        with open("/proc/net/snmp") as f:
            rows = [line.split() for line in f if line.startswith("Udp:")]
        return int(dict(zip(rows[0][1:], rows[1][1:]))["NoPorts"])
    except (OSError, KeyError, IndexError, ValueError):
        return None


def _free_udp_port(family: socket.AddressFamily, host: str) -> int:
    """A UDP port nobody has bound right now (the kernel's pick, released at once)."""
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


async def _tcp(case: str, family: socket.AddressFamily, host: str, scheme: str) -> Outcome:
    holder = trio.socket.socket(family, socket.SOCK_STREAM)  # bound, never listening: holds the port
    with holder:
        await holder.bind((host, 0))
        port = holder.getsockname()[1]
        address = parse_address(f"{scheme}:{'[' + host + ']' if ':' in host else host}:{port}")
        outcome = Outcome(case, f"TCP connect to a port bound but not listening ({scheme})", str(address), "reply")
        start = time.perf_counter()
        try:
            stream = await get_transport(address.scheme).connect(address)
        except NetlabError as exc:
            return _failed(outcome, exc, "connect", start)
        await stream.aclose()
        outcome.outcome, outcome.elapsed_ms = "connected", round((time.perf_counter() - start) * 1000, 3)
        return outcome


async def _udp_unconnected(timeout: float) -> Outcome:
    port = _free_udp_port(socket.AF_INET, "127.0.0.1")
    target = parse_address(f"udp4:127.0.0.1:{port}")
    outcome = Outcome("udp-unconnected", "UDP sendto from an unconnected socket, then wait for a reply",
                      str(target), "reply", waited_for=timeout)
    async with await listen_datagrams(parse_address("udp4:127.0.0.1:0")) as client:
        before = _udp_no_ports()
        start = time.perf_counter()
        try:
            await client.send_to(b"anyone there?", ("127.0.0.1", port))
        except NetlabError as exc:
            return _failed(outcome, exc, "send", start)
        with trio.move_on_after(timeout) as waiting:
            try:
                await client.receive()
            except NetlabError as exc:
                return _failed(outcome, exc, "receive", start)
        outcome.elapsed_ms = round((time.perf_counter() - start) * 1000, 3)
        outcome.outcome = "timeout" if waiting.cancelled_caught else "reply"
        after = _udp_no_ports()
        outcome.no_ports_delta = None if before is None or after is None else after - before
        return outcome


async def _udp_connected(case: str, family: socket.AddressFamily, host: str, scheme: str, timeout: float) -> Outcome:
    port = _free_udp_port(family, host)
    target = parse_address(f"{scheme}:{'[' + host + ']' if ':' in host else host}:{port}")
    outcome = Outcome(case, f"UDP connect + send, then wait for a reply ({scheme})", str(target), "reply",
                      waited_for=timeout)
    start = time.perf_counter()
    try:
        client = await connect_channel(target)
    except NetlabError as exc:
        return _failed(outcome, exc, "connect", start)
    async with client:
        try:
            await client.send(b"anyone there?")
        except NetlabError as exc:
            return _failed(outcome, exc, "send", start)
        with trio.move_on_after(timeout) as waiting:
            try:
                await client.receive()
            except NetlabError as exc:
                return _failed(outcome, exc, "receive", start)
        outcome.elapsed_ms = round((time.perf_counter() - start) * 1000, 3)
        outcome.outcome = "timeout" if waiting.cancelled_caught else "reply"
        return outcome


async def _unix(case: str, scheme: str, socktype: int, path: str, *, stale: bool) -> Outcome:
    address = parse_address(f"{scheme}:{path}")
    if stale:
        # a socket that is closed without removing its file leaves a stale file behind
        leftover = socket.socket(socket.AF_UNIX, socktype)
        with translate_os_errors(address, "bind"):
            leftover.bind(path)
        leftover.close()
    what = "a stale socket file (its socket closed)" if stale else "a path with no file"
    outcome = Outcome(case, f"{scheme} connect to {what}", str(address), "reply")
    start = time.perf_counter()
    try:
        client = await get_transport(address.scheme).connect(address)
    except NetlabError as exc:
        return _failed(outcome, exc, "connect", start)
    await client.aclose()
    outcome.outcome, outcome.elapsed_ms = "connected", round((time.perf_counter() - start) * 1000, 3)
    return outcome


async def run(options: ExperimentOptions) -> ExperimentResult:
    timeout = options.timeout
    result = ExperimentResult(name="refused", question=EXPERIMENT.question, mode="loopback",
                              options={"timeout": timeout})
    outcomes: list[Outcome] = []
    tmp = tempfile.mkdtemp(prefix="nl-", dir="/tmp")
    try:
        outcomes.append(await _tcp("tcp", socket.AF_INET, "127.0.0.1", "tcp4"))
        outcomes.append(await _tcp("tcp6", socket.AF_INET6, "::1", "tcp6"))
        outcomes.append(await _udp_unconnected(timeout))
        outcomes.append(await _udp_connected("udp-connected", socket.AF_INET, "127.0.0.1", "udp4", timeout))
        outcomes.append(await _udp_connected("udp6-connected", socket.AF_INET6, "::1", "udp6", timeout))
        for scheme, socktype in (("unix", socket.SOCK_STREAM), ("unix-dgram", socket.SOCK_DGRAM),
                                 ("unix-seq", socket.SOCK_SEQPACKET)):
            outcomes.append(await _unix(f"{scheme}-no-file", scheme, socktype, f"{tmp}/{scheme}-none.sock",
                                        stale=False))
            outcomes.append(await _unix(f"{scheme}-stale", scheme, socktype, f"{tmp}/{scheme}-stale.sock",
                                        stale=True))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _report(result, outcomes, timeout)
    return result


def _report(result: ExperimentResult, outcomes: list[Outcome], timeout: float) -> None:
    table = ResultTable("Connecting where nothing listens",
                        ["case", "address", "outcome", "failed at", "errno", "netlab error", "elapsed ms"], [])
    for o in outcomes:
        result.facts[o.case] = {
            "description": o.description, "address": o.address, "outcome": o.outcome, "failed_at": o.failed_at,
            "error": o.error, "errno": o.errno, "message": o.message, "elapsed_ms": o.elapsed_ms,
            "timeout_s": o.waited_for,
        }
        if o.case == "udp-unconnected":
            result.facts[o.case]["udp_noports_delta"] = o.no_ports_delta
        shown = f"timed out after {timeout:g} s, no error" if o.outcome == "timeout" else o.outcome
        table.rows.append([o.description, o.address, shown, o.failed_at or "-", o.errno or "-", o.error or "-",
                           f"{o.elapsed_ms:.3f}"])
    result.tables.append(table)
    facts = result.facts
    findings = result.findings

    def errors(cases: list[str]) -> list[str]:
        return [c for c in cases if facts[c]["outcome"] == "error"]

    tcp = errors(["tcp", "tcp6"])
    if tcp:
        slowest = max(facts[c]["elapsed_ms"] for c in tcp)
        findings.append(f"{' and '.join(tcp)}: connect failed at once with "
                        f"{'/'.join(sorted({facts[c]['errno'] for c in tcp}))}, in at most {slowest:.3f} ms: "
                        f"the kernel answered the SYN with a reset.")
    for c in ("tcp", "tcp6"):
        if facts[c]["outcome"] != "error":
            findings.append(f"{c}: the connect to a port nobody listens on ended as {facts[c]['outcome']!r}.")
    un = facts["udp-unconnected"]
    if un["outcome"] == "timeout":
        findings.append(f"udp-unconnected: the sendto succeeded and no error ever came: the client waited its whole "
                        f"--timeout ({un['elapsed_ms']:.0f} ms for {timeout:g} s) and gave up."
                        + _no_ports_text(un["udp_noports_delta"]))
    else:
        findings.append(f"udp-unconnected: ended as {un['outcome']!r}"
                        + (f" with {un['errno']} at {un['failed_at']}" if un["errno"] else "")
                        + f" after {un['elapsed_ms']:.1f} ms.")
    for c in ("udp-connected", "udp6-connected"):
        f = facts[c]
        if f["outcome"] == "error":
            findings.append(f"{c}: connect and the first send succeeded; the ICMP port-unreachable came back as "
                            f"{f['errno']} on the {f['failed_at']}, {f['elapsed_ms']:.3f} ms after the connect."
                            if f["failed_at"] == "receive" else
                            f"{c}: failed at {f['failed_at']} with {f['errno']} after {f['elapsed_ms']:.3f} ms.")
        else:
            findings.append(f"{c}: no error: it ended as {f['outcome']!r} after {f['elapsed_ms']:.0f} ms.")
    if facts["udp-unconnected"]["outcome"] == "timeout":
        fast = [c for c in ("tcp", "tcp6", "udp-connected", "udp6-connected") if facts[c]["outcome"] == "error"]
        if fast:
            slowest = max(facts[c]["elapsed_ms"] for c in fast)
            ratio = facts["udp-unconnected"]["elapsed_ms"] / max(slowest, 1e-3)
            findings.append(f"An error is an answer: {', '.join(fast)} knew within {slowest:.1f} ms; the unconnected "
                            f"UDP client waited about {ratio:,.0f} times as long and learned nothing.")
    for scheme in ("unix", "unix-dgram", "unix-seq"):
        none, stale = facts[f"{scheme}-no-file"], facts[f"{scheme}-stale"]
        findings.append(f"{scheme}: no file gives {none['errno'] or none['outcome']}, a stale file gives "
                        f"{stale['errno'] or stale['outcome']}; netlab reports both as "
                        f"{', '.join(sorted({x['error'] for x in (none, stale) if x['error']})) or 'no error'}.")


def _no_ports_text(delta: int | None) -> str:
    if delta is None:
        return ""
    if delta >= 1:
        more = "" if delta == 1 else f" (host-wide: {delta - 1} more from other traffic)"
        return (f" Meanwhile the host's Udp NoPorts counter rose by {delta}{more}: the kernel did answer the "
                f"datagram with an ICMP port-unreachable, but it does not report that to an unconnected socket.")
    return " The host's Udp NoPorts counter did not move: the datagram may have found a socket after all."


EXPERIMENT = Experiment(
    name="refused",
    question="What happens when you connect where nothing listens? (TCP: refused at once; UDP: silence, "
             "unless connected)",
    run=run,
    uses=("timeout",),
)
