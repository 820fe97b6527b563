"""Kernel impairments: loss, a link rate and delay made by the kernel, in a private network
namespace, and the kernel's own counters of what it did.

netlab's relay (`netlab.impair.relay`) decides in Python which packets to drop. Here the
kernel does it instead, the way a lossy link would, so that TCP's real retransmission
machinery repairs the loss and UDP's real counters record it. Inside a namespace of its
own (`netlab.netns`; `netlab.experiments.kernel` runs compare's workloads in one each):

  1. lo up, MTU 1500 (a real link's size; tbf crawls at lo's 64 KiB)
  2. tc (`tc_setup`): tbf for a link rate; netem for delay, only where the kernel has it
  3. the server binds; then nftables (`ruleset`), at the INPUT hook:
         udp dport PORT counter                                   (requests seen)
         udp dport PORT numgen random mod 100 < 10 counter drop   (requests lost)
         udp sport PORT counter / ... drop                        (replies seen / lost)
  4. /proc/net/snmp, snmp6 and netstat are read before and after (`read_snmp`), and
     ``nft -j list ruleset`` gives the rule counters (`parse_nft_counters`)

Why these choices:

* **The INPUT hook, not OUTPUT**. A drop in OUTPUT makes the sender's ``sendto`` fail
  with EPERM: the sender would know. A packet dropped on the way in is gone without a
  word, as on a real lossy link. On ``lo`` every packet passes INPUT exactly once.
* **numgen needs an integer**: 10 % is ``mod 100 < 10``, 12.5 % is ``mod 1000 < 125``;
  the smallest modulus that represents the rate exactly is used (rounded beyond 10⁻⁶).
* **AF_UNIX never passes through netfilter** (nor through ``lo``'s qdisc): a transport
  that does not `uses_ip` gets a catch-all counter and drop rule anyway, and the result
  shows what they saw: nothing. The loss is reported as not applied, not faked.

Needs a private network namespace (`netlab.netns`: as root, or in a user namespace where
the kernel allows them; nft and tc work there on the namespace's own lo), and the programs
unshare (util-linux), nft (nftables), ip and tc (iproute2).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass

from .. import netns
from ..errors import ImpairmentError, KernelModeError, MissingToolError, PrivilegeError
from .decisions import Impairments

#: the programs kernel mode runs, and the package each comes in
TOOLS: dict[str, str] = {"unshare": "util-linux", "nft": "nftables", "ip": "iproute2", "tc": "iproute2"}
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
#: how nftables names the IP protocols of the transports that `uses_ip`
NFT_PROTOCOLS: dict[int, str] = {socket.IPPROTO_TCP: "tcp", socket.IPPROTO_UDP: "udp"}
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
    """The nft script for one run. `proto` (`NFT_PROTOCOLS`) and `port`: the server's; None
    for a transport that does not `uses_ip` (catch-all rules, which will see nothing: that
    is the point)."""
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


# -- running the tools inside the namespace -------------------------------------------------


def run_tool(tool: str, *args: str, stdin: str | None = None, what: str) -> subprocess.CompletedProcess[str]:
    """Run one of `TOOLS`; KernelModeError names the step (`what`) and the tool's last word when it fails."""
    done = subprocess.run([tool, *args], input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()
        raise KernelModeError(f"{what} failed: {' '.join([os.path.basename(tool), *args])}: "
                              f"{reason[-1] if reason else f'exit {done.returncode}'}")
    return done


def tc_setup(tools: dict[str, str], kimp: KernelImpairments) -> tuple[bool, list[str]]:
    """Set up lo's qdiscs for `kimp` (netem delay, tbf rate): (whether the kernel has netem,
    what could not be applied)."""
    tc = tools["tc"]
    probe = subprocess.run([tc, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"], capture_output=True)
    netem = probe.returncode == 0
    if netem:
        run_tool(tc, "qdisc", "del", "dev", "lo", "root", what="removing the netem probe")
    not_applied = []
    parent = ["root"]
    if kimp.delay or kimp.jitter:
        if netem:
            delay = [f"{kimp.delay * 1e3:g}ms"] + ([f"{kimp.jitter * 1e3:g}ms"] if kimp.jitter else [])
            run_tool(tc, "qdisc", "add", "dev", "lo", "root", "handle", "1:", "netem", "delay", *delay,
                     what="netem delay")
            parent = ["parent", "1:1"]
        else:
            not_applied.append("delay (this kernel has no netem qdisc)")
    if kimp.rate:
        burst = max(3200, int(kimp.rate / 100))
        run_tool(tc, "qdisc", "add", "dev", "lo", *parent, "tbf", "rate", f"{int(kimp.rate * 8)}bit", "burst",
                 str(burst), "limit", str(max(kimp.queue, burst)), what="tbf rate")
    return netem, not_applied
