"""Kernel mode of `netlab compare` and `netlab experiment run loss`: each workload runs in a
private network namespace made for it, where the kernel makes the loss (`netlab.impair.kernel`:
the rules, the qdiscs and the counters), and the losses are then explained from what the
kernel counted::

    parent (netlab compare --kernel, netlab experiment run loss --kernel)
      │  job (JSON on stdin)                                  events (JSON lines on stdout)
      ▼                                                                     ▲
    unshare --net -- python -c '...kernel.child_main()'      ──────────────┘
      1. lo up, MTU 1500; tc for a rate or delay (`netlab.impair.kernel.tc_setup`)
      2. the server binds; then the nftables rules for its port (`netlab.impair.kernel.ruleset`)
      3. /proc/net/snmp, snmp6, netstat read; the workload (`compare_one`, no relay) runs;
         the counters are read again; nft -j list ruleset gives the rule counters
      4. one JSON result; the process exits, and the namespace, its rules and its qdiscs
         vanish with it

Why these choices:

* **One namespace per (transport, service)**. /proc/net/snmp counts per namespace, so a
  namespace with one workload in it gives counters that belong to that workload alone,
  and several runs can go in parallel without mixing their figures.
* **Nothing to clean up**. The namespace dies with its last process, so the rules and
  qdiscs go with it also on Ctrl-C, SIGKILL or a crash; the child exits as soon as its
  parent is gone, and it refuses to touch any ruleset unless it really is in a namespace
  other than its parent's. The host's ruleset is never touched.

Attribution (`attribute`): UDP loss on loopback has exactly two causes, the rule and the
receive buffer, so ``lost == rule drops + RcvbufErrors (+ other UDP InErrors)`` must hold;
when it does not, the difference is printed. TCP loses nothing; what the rule dropped
shows up as ``Tcp RetransSegs``. (The kernel keeps one TCP MIB for IPv4 and IPv6.) A
transport that does not use IP (AF_UNIX) never meets the rule.

The kernel-impairment names this module held before `netlab.impair.kernel` took them
(`KernelImpairments`, `check_kernel_mode`, `ruleset`, ...) are still importable from here.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, fields
from functools import partial
from typing import Any

import trio

from .. import netns
from ..errors import KernelModeError, NetlabError, PrivilegeError
from ..impair.kernel import (
    KERNEL_IMPAIRMENTS, NFT_PROTOCOLS, SKIP_REASON, SNMP_KEYS, TABLE, TOOLS, KernelImpairments, check_kernel_mode,
    find_tools, kernel_mode_available, numgen_fraction, parse_nft_counters, parse_qdisc_drops, parse_snmp,
    privilege_problem, read_snmp, ruleset, run_tool, tc_setup,
)
from ..results import ResultTable
from ..transports import Address, get_transport
from .compare import compare_one, for_each_pair
from .compare_types import CompareSettings, TransportResult

#: a stream's reply waits at least this long: a lost segment costs an RTO (>= 200 ms), doubling
STREAM_TIMEOUT = 5.0
#: a datagram's reply on loopback comes in microseconds or not at all
DATAGRAM_TIMEOUT = 0.1
CHILD_CODE = "import sys; from netlab.experiments.kernel import child_main; sys.exit(child_main())"


def _section(kernel: Mapping[str, object], key: str) -> Mapping[str, object]:
    """One part of what the child reported (its JSON), or nothing."""
    value = kernel.get(key)
    return value if isinstance(value, dict) else {}


def _counters(kernel: Mapping[str, object], key: str) -> dict[str, int]:
    """Counters the child reported under `key` (``rules``: nft's, ``snmp``: /proc's deltas)."""
    return {name: value for name, value in _section(kernel, key).items() if isinstance(value, int)}


def attribute(transport: str, result: TransportResult) -> dict[str, Any]:
    """Explain one kernel-mode result's losses from its counters; ``sentence`` says it in words.

    `result.kernel` holds ``rules`` (nft counters) and ``snmp`` (deltas).
    """
    kernel = result.kernel or {}
    rules = _counters(kernel, "rules")
    snmp = _counters(kernel, "snmp")
    target = get_transport(transport)
    drops_forward = rules.get("forward-drop", 0) + rules.get("any-drop", 0)
    drops_backward = rules.get("backward-drop", 0)
    seen = rules.get("all-input", 0)
    rcvbuf = snmp.get("Udp.RcvbufErrors", 0) + snmp.get("Udp6.RcvbufErrors", 0)
    in_errors = snmp.get("Udp.InErrors", 0) + snmp.get("Udp6.InErrors", 0)
    other_errors = max(in_errors - rcvbuf, 0)
    retrans = snmp.get("Tcp.RetransSegs", 0)
    syn_retrans = snmp.get("TcpExt.TCPSynRetrans", 0)
    drops = drops_forward + drops_backward
    qdisc_drops = kernel.get("qdisc_drops", 0)
    queue_drops = qdisc_drops if isinstance(qdisc_drops, int) else 0
    lost = result.lost
    label = f"{transport}/{result.service}"
    facts: dict[str, Any] = {
        "lost": lost, "rule_dropped": drops, "rule_dropped_forward": drops_forward,
        "rule_dropped_backward": drops_backward, "packets_seen": seen, "rcvbuf_errors": rcvbuf,
        "other_in_errors": other_errors, "retrans_segs": retrans, "syn_retrans": syn_retrans,
        "qdisc_drops": queue_drops, "explained": None, "unexplained": None,
    }
    if not target.uses_ip:
        facts["explained"], facts["unexplained"] = 0, lost
        sentence = (f"{label}: {lost} lost; the loss rule saw {seen} packets and dropped {drops}: AF_UNIX never "
                    "passes through netfilter, so the kernel loss rule cannot touch it")
        if lost:
            sentence += f" ({lost} unexplained by the rule: {result.error or 'no reply within the timeout'})"
    elif not target.connected:  # datagrams: every loss is counted somewhere
        explained = drops + queue_drops + rcvbuf + other_errors
        facts["explained"], facts["unexplained"] = explained, lost - explained
        causes = (f"{drops} dropped by the loss rule ({drops_forward} requests, {drops_backward} replies) + "
                  f"{rcvbuf} receive-buffer overflows")
        if queue_drops or _section(kernel, "impairments").get("rate"):
            causes += f" + {queue_drops} dropped by the full tbf queue"
        if other_errors:
            causes += f" + {other_errors} other UDP InErrors"
        if lost == explained:
            sentence = f"{label}: {lost} lost = {causes}"
        else:
            sentence = (f"{label}: {lost} lost, but the kernel counted {explained} ({causes}): "
                        f"{lost - explained:+d} do not add up"
                        + (" (replies still on their way when the timeout ended?)" if lost > explained else
                           " (the kernel counted more drops than messages went missing)"))
    else:
        facts["explained"], facts["unexplained"] = 0, lost
        sentence = (f"{label}: {lost} lost, {retrans} segments retransmitted (the rule dropped {drops} "
                    f"segments, data and ACKs: {drops_forward} toward the server, {drops_backward} back)")
        if syn_retrans:
            sentence += (f"; {syn_retrans} of the retransmissions were in the handshake (SYN or SYN-ACK): each costs "
                         "at least 1 s, and a connection with no RTT sample from its handshake starts with a 3 s "
                         "retransmission timeout (RFC 6298 5.7)")
        if lost:
            sentence += (f"; {lost} replies had not arrived within the timeout: TCP was still retransmitting"
                         if not result.error else f"; the run failed: {result.error}")
    facts["sentence"] = sentence
    return facts


def attribution_table(results: Sequence[TransportResult]) -> ResultTable:
    """The per-transport attribution columns, for `netlab compare --kernel`."""
    table = ResultTable("what the kernel counted (per run, in its own network namespace)",
                        ["transport", "service", "lost", "rule dropped →/←", "rule saw", "RcvbufErrors",
                         "RetransSegs", "unexplained"], [])
    for r in results:
        a = (r.kernel or {}).get("attribution")
        if not isinstance(a, dict):
            table.rows.append([r.transport, r.service, r.lost, "-", "-", "-", "-", "-"])
            continue
        table.rows.append([r.transport, r.service, r.lost, f"{a['rule_dropped_forward']}/{a['rule_dropped_backward']}",
                           a["packets_seen"], a["rcvbuf_errors"], a["retrans_segs"], a["unexplained"]])
    return table


# -- the parent: run one workload in a fresh namespace --------------------------------------


def reply_timeout(settings: CompareSettings, kimp: KernelImpairments, name: str) -> float:
    """How long a run in the namespace waits for a reply: the caller's timeout, or enough for
    the link (and, for a connection, for TCP's retransmission timer)."""
    if settings.timeout is not None:
        return float(settings.timeout)
    link = 2 * (kimp.delay + kimp.jitter) + (2 * kimp.queue / kimp.rate if kimp.rate else 0.0)
    connected = get_transport(name).connected
    return max(STREAM_TIMEOUT, link + 1.0) if connected else DATAGRAM_TIMEOUT + link


def _job(name: str, service: str, settings: CompareSettings, kimp: KernelImpairments,
         tools: dict[str, str], trace: bool = False) -> dict[str, Any]:
    return {
        "trace": trace,
        "transport": name, "service": service,
        "settings": {"messages": settings.messages, "size": settings.size, "rate": settings.rate,
                     "concurrency": settings.concurrency, "timeout": reply_timeout(settings, kimp, name),
                     "seed": settings.seed},
        "kernel": asdict(kimp), "tools": tools,
        "parent": {"pid": os.getpid(), "netns": os.readlink("/proc/self/ns/net")},
    }


def child_command(tools: dict[str, str]) -> list[str]:
    # -c, not -m: the package imports this module first, and runpy would warn about it
    return netns.unshare_command([sys.executable, "-c", CHILD_CODE])


async def run_in_namespace(name: str, service: str, settings: CompareSettings, kimp: KernelImpairments,
                           tick: Callable[[], None] = lambda: None,
                           tools: dict[str, str] | None = None, trace: bool = False) -> TransportResult:
    """Run one (transport, service) workload in a private network namespace; a TransportResult
    with ``kernel`` filled in (counters, rules, attribution). With `trace`, the namespace's
    frames too (``kernel["frames"]``: `netlab.trace.capture`, as [time, interface, base64]).
    Raises KernelModeError when the namespace or its rules cannot be made."""
    tools = tools or check_kernel_mode()
    job = json.dumps(_job(name, service, settings, kimp, tools, trace)).encode()
    final: dict[str, Any] = {}
    errors: list[bytes] = []

    async with trio.open_nursery() as nursery:
        process = await nursery.start(partial(trio.run_process, child_command(tools), stdin=job,
                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False))

        async def collect_stderr() -> None:
            async for chunk in process.stderr:
                errors.append(chunk)

        nursery.start_soon(collect_stderr)
        buffer = b""
        async for chunk in process.stdout:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                try:
                    event = json.loads(line)
                except ValueError:  # not one of ours: a library printing
                    continue
                if event["event"] == "progress":
                    for _ in range(event["ticks"]):
                        tick()
                elif event["event"] in ("result", "error"):
                    final = event
    stderr = b"".join(errors).decode(errors="replace").strip()
    if final.get("event") == "error":
        raise KernelModeError(final["message"])
    if final.get("event") != "result":
        last = stderr.splitlines()[-1] if stderr else "no output"
        if "unshare" in last and ("Operation not permitted" in last or "Permission denied" in last):
            raise PrivilegeError(f"cannot make a private network namespace ({last}): --kernel needs root; "
                                 "in a container, also CAP_SYS_ADMIN")
        code = process.returncode
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
        raise KernelModeError(f"the kernel-mode run of {name}/{service} ended without a result ({how}): {last}")
    data = final["result"]
    known = {f.name for f in fields(TransportResult)}
    result = TransportResult(**{k: v for k, v in data.items() if k in known})
    assert result.kernel is not None  # the child always reports what the kernel counted
    result.kernel["attribution"] = attribute(name, result)
    return result


async def run_compare_kernel(settings: CompareSettings, kimp: KernelImpairments,
                             tick: Callable[[], None] = lambda: None) -> list[TransportResult]:
    """`run_compare` with the kernel making the loss: one namespace per (transport, service),
    all at once when `settings.runs_in_parallel` (each namespace counts only its own run)."""
    tools = check_kernel_mode()
    return await for_each_pair(settings, lambda name, service: run_in_namespace(name, service, settings, kimp,
                                                                                tick, tools))


def kernel_start(settings: CompareSettings, kimp: KernelImpairments,
                 results: Sequence[TransportResult]) -> dict[str, Any]:
    """What kernel mode did, for the ``start`` of `netlab compare --kernel --json`."""
    return {"impairments": kimp.describe(), **asdict(kimp),
            "rules": {"loss_forward": numgen_fraction(kimp.loss_forward),
                      "loss_backward": numgen_fraction(kimp.loss_backward)},
            "reply_timeouts": {name: reply_timeout(settings, kimp, name) for name in settings.transports},
            "netem": all((r.kernel or {}).get("netem") for r in results),
            "namespace_per_run": True, "lo_mtu": 1500, "hook": "input"}


def environment_note(results: Sequence[TransportResult]) -> str:
    """One line on what the namespaces had: netem or not, what was not applied."""
    netem = [bool((r.kernel or {}).get("netem")) for r in results]
    have = "available" if netem and all(netem) else "not available in this kernel (no delay or jitter in kernel mode)"
    return (f"kernel mode: each run in its own network namespace, lo MTU 1500, loss by an nftables numgen rule "
            f"at the input hook; netem {have}. AF_UNIX traffic never passes through netfilter or lo's qdisc.")


# -- the child: runs inside the namespace ---------------------------------------------------


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _die_with_parent(parent_pid: int) -> None:
    """Exit as soon as the parent is gone, so a killed parent leaves no namespace behind.

    (Not PR_SET_PDEATHSIG: that fires when the parent *thread* ends, and trio starts
    processes from worker threads that end after 10 s idle.)"""

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(0.2)

    threading.Thread(target=watch, name="netlab-parent-watch", daemon=True).start()


async def _child_run(job: dict[str, Any]) -> dict[str, Any]:
    tools, kimp = job["tools"], KernelImpairments(**job["kernel"])
    s = job["settings"]
    settings = CompareSettings(transports=(job["transport"],), services=(job["service"],), messages=s["messages"],
                               size=s["size"], rate=s["rate"], concurrency=s["concurrency"], timeout=s["timeout"],
                               seed=s["seed"], parallel=False)
    netem, not_applied = tc_setup(tools, kimp)
    installed: dict[str, str] = {}  # the ruleset, once the server is bound
    before = {key: 0 for key in SNMP_KEYS}  # the counters then (0 if it never was)

    async def on_server(address: Address) -> None:
        transport = get_transport(address.scheme)
        proto = port = None
        if transport.uses_ip:  # rules for the server's port; AF_UNIX gets catch-all rules that see nothing
            proto, port = NFT_PROTOCOLS[transport.protocol], address.port
        installed["ruleset"] = ruleset(kimp, proto, port)
        await trio.to_thread.run_sync(partial(run_tool, tools["nft"], "-f", "-", stdin=installed["ruleset"],
                                              what="installing the loss rule"))
        before.update(read_snmp())
        _emit({"event": "ready", "pid": os.getpid(), "netns": os.readlink("/proc/self/ns/net"),
               "server": str(address)})

    step = max(1, settings.messages // 100)
    count = {"sent": 0, "reported": 0}

    def tick() -> None:
        count["sent"] += 1
        if count["sent"] - count["reported"] >= step or count["sent"] == settings.messages:
            _emit({"event": "progress", "ticks": count["sent"] - count["reported"]})
            count["reported"] = count["sent"]

    if job.get("trace"):
        from ..trace.capture import capture

        with capture(refuse=job["parent"]["netns"], linger=0) as frames:
            result = await compare_one(job["transport"], job["service"], settings, tick, on_server=on_server)
            await trio.sleep(0.05)  # the closing segments
    else:
        result = await compare_one(job["transport"], job["service"], settings, tick, on_server=on_server)
    after = read_snmp()
    listing = run_tool(tools["nft"], "-j", "list", "ruleset", what="reading the rule counters").stdout
    qdiscs = run_tool(tools["tc"], "-s", "-j", "qdisc", "show", "dev", "lo",
                      what="reading the qdisc counters").stdout
    loss_asked = bool(kimp.loss_forward or kimp.loss_backward)
    if not get_transport(job["transport"]).uses_ip:
        if loss_asked:
            not_applied.append("loss (unix sockets bypass netfilter)")
        if kimp.rate or kimp.delay:
            not_applied.append("rate/delay (unix sockets bypass lo's qdisc)")
    result.not_applied = sorted(set(result.not_applied) | set(not_applied))
    result.kernel = {
        "netns": os.readlink("/proc/self/ns/net"), "netem": netem, "impairments": asdict(kimp),
        "rules": parse_nft_counters(listing), "snmp": {key: after[key] - before[key] for key in SNMP_KEYS},
        "qdisc_drops": parse_qdisc_drops(qdiscs),
        "ruleset": installed.get("ruleset"),
    }
    if job.get("trace"):
        result.kernel["frames"] = [[f.time, f.interface, base64.b64encode(f.data).decode()] for f in frames.frames]
        result.kernel["capture"] = frames.summary()
    return asdict(result)


def child_main() -> int:
    """Entry point inside the namespace: job JSON on stdin, JSON events on stdout."""
    try:
        job = json.loads(sys.stdin.read())
    except ValueError:
        print("netlab.experiments.kernel: this is kernel mode's child: run `netlab compare --kernel` "
              "or `netlab experiment run loss --kernel`", file=sys.stderr)
        return 2
    _die_with_parent(job["parent"]["pid"])
    try:
        netns.refuse_host(job["parent"]["netns"])
        tools = job["tools"]
        run_tool(tools["ip"], "link", "set", "lo", "up", what="bringing lo up")
        run_tool(tools["ip"], "link", "set", "lo", "mtu", "1500", what="setting lo's MTU")
        result = trio.run(_child_run, job)
    except KeyboardInterrupt:
        return 130
    except NetlabError as exc:
        _emit({"event": "error", "message": str(exc)})
        return 1
    _emit({"event": "result", "result": result})
    return 0


__all__ = [
    # compare's kernel mode
    "CHILD_CODE", "DATAGRAM_TIMEOUT", "STREAM_TIMEOUT", "attribute", "attribution_table", "child_command", "child_main",
    "environment_note", "kernel_start", "reply_timeout", "run_compare_kernel", "run_in_namespace",
    # the kernel impairments, from netlab.impair.kernel, where they were before it
    "KERNEL_IMPAIRMENTS", "NFT_PROTOCOLS", "SKIP_REASON", "SNMP_KEYS", "TABLE", "TOOLS", "KernelImpairments",
    "check_kernel_mode", "find_tools", "kernel_mode_available", "numgen_fraction", "parse_nft_counters",
    "parse_qdisc_drops", "parse_snmp", "privilege_problem", "read_snmp", "ruleset",
]


if __name__ == "__main__":
    sys.exit(child_main())
