"""Kernel mode: loss made by the kernel, in a private network namespace made for each run.

netlab's relay (`netlab.experiments.relay`) decides in Python which packets to drop. Kernel
mode lets the kernel do it instead, the way a lossy link would, so that TCP's real
retransmission machinery repairs the loss and UDP's real counters record it::

    parent (netlab compare --kernel, netlab experiment run loss --kernel)
      │  job (JSON on stdin)                                  events (JSON lines on stdout)
      ▼                                                                     ▲
    unshare --net -- python -c '...kernel.child_main()'      ──────────────┘
      1. lo up, MTU 1500 (a real link's size; tbf crawls at lo's 64 KiB)
      2. tc: tbf for a link rate; netem for delay, only where the kernel has it
      3. the server binds; then nftables, at the INPUT hook:
             udp dport PORT counter                                   (requests seen)
             udp dport PORT numgen random mod 100 < 10 counter drop   (requests lost)
             udp sport PORT counter / ... drop                        (replies seen / lost)
      4. /proc/net/snmp, snmp6, netstat read; the workload (`compare_one`, no relay) runs;
         the counters are read again; nft -j list ruleset gives the rule counters
      5. one JSON result; the process exits, and the namespace, its rules and its qdiscs
         vanish with it

Why these choices:

* **One namespace per (transport, service)**. /proc/net/snmp counts per namespace, so a
  namespace with one workload in it gives counters that belong to that workload alone,
  and several runs can go in parallel without mixing their figures.
* **The INPUT hook, not OUTPUT**. A drop in OUTPUT makes the sender's ``sendto`` fail
  with EPERM: the sender would know. A packet dropped on the way in is gone without a
  word, as on a real lossy link. On ``lo`` every packet passes INPUT exactly once.
* **numgen needs an integer**: 10 % is ``mod 100 < 10``, 12.5 % is ``mod 1000 < 125``;
  the smallest modulus that represents the rate exactly is used (rounded beyond 10⁻⁶).
* **Nothing to clean up**. The namespace dies with its last process, so the rules and
  qdiscs go with it also on Ctrl-C, SIGKILL or a crash; the child exits as soon as its
  parent is gone, and it refuses to touch any ruleset unless it really is in a namespace
  other than its parent's. The host's ruleset is never touched.
* **AF_UNIX never passes through netfilter** (nor through ``lo``'s qdisc). For unix
  transports a catch-all counter and drop rule are installed anyway, and the result shows
  what they saw: nothing. The loss is reported as not applied, not faked.

Attribution (`attribute`): UDP loss on loopback has exactly two causes, the rule and the
receive buffer, so ``lost == rule drops + RcvbufErrors (+ other UDP InErrors)`` must hold;
when it does not, the difference is printed. TCP loses nothing; what the rule dropped
shows up as ``Tcp RetransSegs``. (The kernel keeps one TCP MIB for IPv4 and IPv6.)

Needs a private network namespace (`netlab.netns`: as root, or in a user namespace where
the kernel allows them; nft and tc work there on the namespace's own lo), and the programs
unshare (util-linux), nft (nftables), ip and tc (iproute2).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from .. import netns
from ..errors import KernelModeError, MissingToolError, NetlabError, PrivilegeError
from ..transports import get_transport
from ..results import ResultTable
from .impair import ImpairmentError, Impairments

if TYPE_CHECKING:  # compare imports this module: its names are imported where they are used
    from .compare import TransportResult

#: the programs kernel mode runs, and the package each comes in
TOOLS: dict[str, str] = {"unshare": "util-linux", "nft": "nftables", "ip": "iproute2", "tc": "iproute2"}
#: a stream's reply waits at least this long: a lost segment costs an RTO (>= 200 ms), doubling
STREAM_TIMEOUT = 5.0
#: a datagram's reply on loopback comes in microseconds or not at all
DATAGRAM_TIMEOUT = 0.1
#: the impairments kernel mode can make, and with what
KERNEL_IMPAIRMENTS = {"loss": "nftables numgen at the input hook", "rate": "tbf on lo", "queue": "tbf's limit",
                      "delay": "netem on lo", "jitter": "netem on lo"}
TABLE = "netlab"
#: the counters read from /proc before and after a run ("Proto.Name")
SNMP_KEYS = (
    "Udp.InDatagrams", "Udp.OutDatagrams", "Udp.InErrors", "Udp.RcvbufErrors", "Udp.SndbufErrors",
    "Udp.InCsumErrors", "Udp.MemErrors",
    "Udp6.InDatagrams", "Udp6.OutDatagrams", "Udp6.InErrors", "Udp6.RcvbufErrors", "Udp6.SndbufErrors",
    "Udp6.InCsumErrors", "Udp6.MemErrors",
    "Tcp.InSegs", "Tcp.OutSegs", "Tcp.RetransSegs", "Tcp.InErrs",
    "TcpExt.TCPTimeouts", "TcpExt.TCPLossProbes", "TcpExt.TCPFastRetrans", "TcpExt.TCPSynRetrans",
    "TcpExt.TCPSpuriousRTOs",
)
CHILD_CODE = "import sys; from netlab.experiments.kernel import child_main; sys.exit(child_main())"
SKIP_REASON = "needs root and nftables: run as root; `make test` installs nftables when root"


# -- can it run here? -----------------------------------------------------------------------


def privilege_problem() -> str | None:
    """Why this process cannot make a namespace and its rules, or None if it can: netlab's one
    privilege rule (`netlab.netns.isolation`: root, else a user namespace, in which nft and tc
    work on the namespace's own lo)."""
    found = netns.isolation()
    if found.available:
        return None
    return (f"--kernel needs a private network namespace, and {found.detail}; or drop --kernel to make the loss "
            f"in netlab's relay")


def find_tools() -> dict[str, str]:
    """Absolute paths of unshare, nft, ip and tc; MissingToolError names the package to install."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin", "/bin"])
    found = {name: shutil.which(name, path=path) for name in TOOLS}
    missing = [name for name, where in found.items() if where is None]
    if missing:
        packages = sorted({TOOLS[name] for name in missing})
        raise MissingToolError(
            f"--kernel needs {', '.join(missing)}, not found on this machine: install "
            f"{' and '.join(packages)} (e.g. `apt-get install {' '.join(packages)}`)")
    return {name: str(where) for name, where in found.items()}


def check_kernel_mode() -> dict[str, str]:
    """Raise PrivilegeError or MissingToolError if kernel mode cannot run; else the tools."""
    problem = privilege_problem()
    if problem is not None:
        raise PrivilegeError(problem)
    return find_tools()


def kernel_mode_available() -> str | None:
    """None if kernel mode can run here, else the reason (for tests to skip with)."""
    try:
        check_kernel_mode()
    except KernelModeError as exc:
        return f"{SKIP_REASON} ({exc})"
    return None


# -- what the kernel is asked to do ---------------------------------------------------------


@dataclass(frozen=True)
class KernelImpairments:
    """What the namespace does to traffic. Loss per direction (forward = to the server);
    rate, queue, delay and jitter belong to lo's one qdisc, so they act on both ways."""

    loss_forward: float = 0.0
    loss_backward: float = 0.0
    rate: float | None = None  # bytes per second (tbf)
    queue: int = 256 * 1024  # tbf limit, bytes
    delay: float = 0.0  # seconds (netem)
    jitter: float = 0.0

    @classmethod
    def from_impairments(cls, forward: Impairments, backward: Impairments) -> KernelImpairments:
        """Translate relay settings; refuse what the kernel cannot do here (ImpairmentError)."""
        for settings in (forward, backward):
            other = [name for name in settings.active if name not in KERNEL_IMPAIRMENTS]
            if other:
                names = ", ".join("--" + name.replace("_", "-") for name in other)
                raise ImpairmentError(
                    f"{names}: not available with --kernel, which makes only loss (nftables), a link rate "
                    f"(tbf) and delay/jitter (netem, where the kernel has it); drop --kernel to use the relay")
        for name in ("rate", "queue", "delay", "jitter"):
            if getattr(forward, name) != getattr(backward, name):
                raise ImpairmentError(
                    f"--{name}: with --kernel it applies to the loopback link as a whole (one qdisc carries "
                    f"both directions); give one value, not FORWARD/BACKWARD")
        return cls(forward.loss, backward.loss, forward.rate, forward.queue, forward.delay, forward.jitter)

    def describe(self) -> str:
        parts = []
        if self.loss_forward or self.loss_backward:
            if self.loss_forward == self.loss_backward:
                parts.append(f"loss {100 * self.loss_forward:g}% each way (nftables)")
            else:
                parts.append(f"loss {100 * self.loss_forward:g}% to the server, "
                             f"{100 * self.loss_backward:g}% back (nftables)")
        if self.rate:
            parts.append(f"rate {self.rate:g} B/s, queue {self.queue} B (tbf)")
        if self.delay:
            parts.append(f"delay {self.delay * 1e3:g} ms ± {self.jitter * 1e3:g} ms (netem)")
        return ", ".join(parts) or "none"


def numgen_fraction(probability: float) -> tuple[int, int]:
    """(threshold, modulus) so that ``numgen random mod MODULUS < THRESHOLD`` drops with
    `probability`: the smallest power of ten that represents it exactly, up to 10**6."""
    if not 0.0 <= probability <= 1.0:
        raise ImpairmentError(f"loss is a probability: between 0 and 1, not {probability:g}")
    for modulus in (100, 1000, 10_000, 100_000, 1_000_000):
        threshold = probability * modulus
        if math.isclose(threshold, round(threshold), abs_tol=1e-6):
            return round(threshold), modulus
    return round(probability * 1_000_000), 1_000_000


def ruleset(kimp: KernelImpairments, proto: str | None, port: int | None) -> str:
    """The nft script for one run. `proto`/`port` None: a unix transport (catch-all rules,
    which will see nothing: that is the point)."""
    lines = [f"table inet {TABLE} {{", "  chain input {",
             "    type filter hook input priority 0; policy accept;",
             '    counter comment "all-input"']
    if proto is None:
        directions = [("any", "", kimp.loss_forward)]
    else:
        directions = [("forward", f"{proto} dport {port} ", kimp.loss_forward),
                      ("backward", f"{proto} sport {port} ", kimp.loss_backward)]
    for label, match, loss in directions:
        lines.append(f'    {match}counter comment "{label}-seen"')
        if loss > 0:
            threshold, modulus = numgen_fraction(loss)
            lines.append(f'    {match}numgen random mod {modulus} < {threshold} counter drop comment "{label}-drop"')
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def parse_nft_counters(listing: str) -> dict[str, int]:
    """``{comment: packets}`` for every commented rule with a counter in ``nft -j list ruleset``."""
    counters: dict[str, int] = {}
    for item in json.loads(listing).get("nftables", []):
        rule = item.get("rule")
        if not rule or "comment" not in rule:
            continue
        for expr in rule.get("expr", []):
            if isinstance(expr, dict) and "counter" in expr:
                counters[rule["comment"]] = int(expr["counter"]["packets"])
    return counters


def parse_qdisc_drops(listing: str) -> int:
    """Packets the qdiscs on lo dropped (tbf's full queue), from ``tc -s -j qdisc show``."""
    try:
        return sum(int(q.get("drops", 0)) for q in json.loads(listing or "[]"))
    except (ValueError, AttributeError):
        return 0


def parse_snmp(snmp: str, snmp6: str = "", netstat: str = "") -> dict[str, int]:
    """``{"Proto.Name": value}`` from /proc/net/snmp (and netstat: header line, value line)
    and /proc/net/snmp6 (``Udp6InErrors 0`` lines)."""
    values: dict[str, int] = {}
    for text in (snmp, netstat):
        lines = text.splitlines()
        for header, row in zip(lines[::2], lines[1::2]):
            proto, _, names = header.partition(":")
            _, _, numbers = row.partition(":")
            for name, number in zip(names.split(), numbers.split()):
                values[f"{proto}.{name}"] = int(number)
    for line in snmp6.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].startswith(("Udp6", "Ip6", "Icmp6", "UdpLite6")):
            proto = next(p for p in ("UdpLite6", "Udp6", "Icmp6", "Ip6") if parts[0].startswith(p))
            values[f"{proto}.{parts[0][len(proto):]}"] = int(parts[1])
    return values


def read_snmp() -> dict[str, int]:
    """The counters in `SNMP_KEYS` for this process's network namespace."""

    def text(path: str) -> str:
        try:
            with open(path) as file:
                return file.read()
        except OSError:
            return ""

    values = parse_snmp(text("/proc/net/snmp"), text("/proc/net/snmp6"), text("/proc/net/netstat"))
    return {key: values.get(key, 0) for key in SNMP_KEYS}


# -- attribution: does what was lost add up to what the kernel counted? ---------------------


def attribute(transport: str, result: Any) -> dict[str, Any]:
    """Explain one kernel-mode result's losses from its counters; ``sentence`` says it in words.

    `result` is a `TransportResult` whose ``kernel`` holds ``rules`` (nft counters) and
    ``snmp`` (deltas).
    """
    kernel = result.kernel or {}
    rules: dict[str, int] = kernel.get("rules", {})
    snmp: dict[str, int] = kernel.get("snmp", {})
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
    queue_drops = int(kernel.get("qdisc_drops", 0))
    lost = result.lost
    label = f"{transport}/{result.service}"
    facts: dict[str, Any] = {
        "lost": lost, "rule_dropped": drops, "rule_dropped_forward": drops_forward,
        "rule_dropped_backward": drops_backward, "packets_seen": seen, "rcvbuf_errors": rcvbuf,
        "other_in_errors": other_errors, "retrans_segs": retrans, "syn_retrans": syn_retrans,
        "qdisc_drops": queue_drops, "explained": None, "unexplained": None,
    }
    if target.target == "unix":
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
        if queue_drops or (kernel.get("impairments") or {}).get("rate"):
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


def attribution_table(results: Sequence[Any]) -> ResultTable:
    """The per-transport attribution columns, for `netlab compare --kernel`."""
    table = ResultTable("what the kernel counted (per run, in its own network namespace)",
                        ["transport", "service", "lost", "rule dropped →/←", "rule saw", "RcvbufErrors",
                         "RetransSegs", "unexplained"], [])
    for r in results:
        a = (r.kernel or {}).get("attribution")
        if a is None:
            table.rows.append([r.transport, r.service, r.lost, "-", "-", "-", "-", "-"])
            continue
        table.rows.append([r.transport, r.service, r.lost, f"{a['rule_dropped_forward']}/{a['rule_dropped_backward']}",
                           a["packets_seen"], a["rcvbuf_errors"], a["retrans_segs"], a["unexplained"]])
    return table


# -- the parent: run one workload in a fresh namespace --------------------------------------


def reply_timeout(settings: Any, kimp: KernelImpairments, name: str) -> float:
    """How long a run in the namespace waits for a reply: the caller's timeout, or enough for
    the link (and, for a connection, for TCP's retransmission timer)."""
    if settings.timeout is not None:
        return float(settings.timeout)
    link = 2 * (kimp.delay + kimp.jitter) + (2 * kimp.queue / kimp.rate if kimp.rate else 0.0)
    connected = get_transport(name).connected
    return max(STREAM_TIMEOUT, link + 1.0) if connected else DATAGRAM_TIMEOUT + link


def _job(name: str, service: str, settings: Any, kimp: KernelImpairments, tools: dict[str, str]) -> dict[str, Any]:
    return {
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


async def run_in_namespace(name: str, service: str, settings: Any, kimp: KernelImpairments,
                           tick: Callable[[], None] = lambda: None,
                           tools: dict[str, str] | None = None) -> TransportResult:
    """Run one (transport, service) workload in a private network namespace; a TransportResult
    with ``kernel`` filled in (counters, rules, attribution). Raises KernelModeError when the
    namespace or its rules cannot be made."""
    from .compare import TransportResult

    tools = tools or check_kernel_mode()
    job = json.dumps(_job(name, service, settings, kimp, tools)).encode()
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


async def run_compare_kernel(settings: Any, kimp: KernelImpairments,
                             tick: Callable[[], None] = lambda: None) -> list[TransportResult]:
    """`run_compare` with the kernel making the loss: one namespace per (transport, service),
    all at once when `settings.runs_in_parallel` (each namespace counts only its own run)."""
    tools = check_kernel_mode()
    from .compare import for_each_pair

    return await for_each_pair(settings, lambda name, service: run_in_namespace(name, service, settings, kimp,
                                                                                tick, tools))


def kernel_start(settings: Any, kimp: KernelImpairments, results: Sequence[Any]) -> dict[str, Any]:
    """What kernel mode did, for the ``start`` of `netlab compare --kernel --json`."""
    return {"impairments": kimp.describe(), **asdict(kimp),
            "rules": {"loss_forward": numgen_fraction(kimp.loss_forward),
                      "loss_backward": numgen_fraction(kimp.loss_backward)},
            "reply_timeouts": {name: reply_timeout(settings, kimp, name) for name in settings.transports},
            "netem": all((r.kernel or {}).get("netem") for r in results),
            "namespace_per_run": True, "lo_mtu": 1500, "hook": "input"}


def environment_note(results: Sequence[Any]) -> str:
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


def _run(tool: str, *args: str, stdin: str | None = None, what: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([tool, *args], input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()
        raise KernelModeError(f"{what} failed: {' '.join([os.path.basename(tool), *args])}: "
                              f"{reason[-1] if reason else f'exit {done.returncode}'}")
    return done


def _tc_setup(tools: dict[str, str], kimp: KernelImpairments) -> tuple[bool, list[str]]:
    """(whether the kernel has netem, what could not be applied)."""
    tc = tools["tc"]
    probe = subprocess.run([tc, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"], capture_output=True)
    netem = probe.returncode == 0
    if netem:
        _run(tc, "qdisc", "del", "dev", "lo", "root", what="removing the netem probe")
    not_applied = []
    parent = ["root"]
    if kimp.delay or kimp.jitter:
        if netem:
            delay = [f"{kimp.delay * 1e3:g}ms"] + ([f"{kimp.jitter * 1e3:g}ms"] if kimp.jitter else [])
            _run(tc, "qdisc", "add", "dev", "lo", "root", "handle", "1:", "netem", "delay", *delay,
                 what="netem delay")
            parent = ["parent", "1:1"]
        else:
            not_applied.append("delay (this kernel has no netem qdisc)")
    if kimp.rate:
        burst = max(3200, int(kimp.rate / 100))
        _run(tc, "qdisc", "add", "dev", "lo", *parent, "tbf", "rate", f"{int(kimp.rate * 8)}bit", "burst",
             str(burst), "limit", str(max(kimp.queue, burst)), what="tbf rate")
    return netem, not_applied


async def _child_run(job: dict[str, Any]) -> dict[str, Any]:
    from .compare import CompareSettings, compare_one

    tools, kimp = job["tools"], KernelImpairments(**job["kernel"])
    s = job["settings"]
    settings = CompareSettings(transports=(job["transport"],), services=(job["service"],), messages=s["messages"],
                               size=s["size"], rate=s["rate"], concurrency=s["concurrency"], timeout=s["timeout"],
                               seed=s["seed"], parallel=False)
    netem, not_applied = _tc_setup(tools, kimp)
    state: dict[str, Any] = {}

    async def on_server(address: Any) -> None:
        transport = get_transport(address.scheme)
        proto = port = None
        if transport.target == "inet":
            proto = "tcp" if transport.socktype == socket.SOCK_STREAM else "udp"
            port = address.port
        state["ruleset"] = ruleset(kimp, proto, port)
        await trio.to_thread.run_sync(partial(_run, tools["nft"], "-f", "-", stdin=state["ruleset"],
                                              what="installing the loss rule"))
        state["before"] = read_snmp()
        _emit({"event": "ready", "pid": os.getpid(), "netns": os.readlink("/proc/self/ns/net"),
               "server": str(address)})

    step = max(1, settings.messages // 100)
    count = {"sent": 0, "reported": 0}

    def tick() -> None:
        count["sent"] += 1
        if count["sent"] - count["reported"] >= step or count["sent"] == settings.messages:
            _emit({"event": "progress", "ticks": count["sent"] - count["reported"]})
            count["reported"] = count["sent"]

    result = await compare_one(job["transport"], job["service"], settings, tick, on_server=on_server)
    after = read_snmp()
    before = state.get("before", {key: 0 for key in SNMP_KEYS})
    listing = _run(tools["nft"], "-j", "list", "ruleset", what="reading the rule counters").stdout
    qdiscs = _run(tools["tc"], "-s", "-j", "qdisc", "show", "dev", "lo", what="reading the qdisc counters").stdout
    loss_asked = bool(kimp.loss_forward or kimp.loss_backward)
    if get_transport(job["transport"]).target == "unix":
        if loss_asked:
            not_applied.append("loss (unix sockets bypass netfilter)")
        if kimp.rate or kimp.delay:
            not_applied.append("rate/delay (unix sockets bypass lo's qdisc)")
    result.not_applied = sorted(set(result.not_applied) | set(not_applied))
    result.kernel = {
        "netns": os.readlink("/proc/self/ns/net"), "netem": netem, "impairments": asdict(kimp),
        "rules": parse_nft_counters(listing), "snmp": {key: after[key] - before[key] for key in SNMP_KEYS},
        "qdisc_drops": parse_qdisc_drops(qdiscs),
        "ruleset": state.get("ruleset"),
    }
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
        _run(tools["ip"], "link", "set", "lo", "up", what="bringing lo up")
        _run(tools["ip"], "link", "set", "lo", "mtu", "1500", what="setting lo's MTU")
        result = trio.run(_child_run, job)
    except KeyboardInterrupt:
        return 130
    except NetlabError as exc:
        _emit({"event": "error", "message": str(exc)})
        return 1
    _emit({"event": "result", "result": result})
    return 0


if __name__ == "__main__":
    sys.exit(child_main())
