"""Kernel mode: loss made by nftables in a private network namespace, and what it costs.

Tests marked `needs_kernel` run only as root with unshare, nft, ip and tc installed (CI
runs as root; `make test` installs nftables when root); elsewhere they skip and say why.
The rest (rules, parsing, attribution arithmetic, the privilege and missing-tool errors,
the relay-mode experiment) run everywhere.

Every kernel run checks that nothing is left behind: no process in the run's namespace
(so the namespace itself is gone), and no netlab table in the host's ruleset, which these
tests only ever read.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console
from typer.testing import CliRunner

import netlab.cli.common
from netlab.cli import app
from netlab.errors import KernelModeError, MissingToolError, PrivilegeError
from netlab.experiments import EXPERIMENTS, ExperimentOptions
from netlab.experiments import kernel
from netlab.impair import kernel as kernel_impairments  # patched where check_kernel_mode and find_tools read them
from netlab.experiments.compare import CompareSettings
from netlab.experiments.impair import ImpairmentError, Impairments
from netlab.experiments.kernel import KernelImpairments, numgen_fraction, run_in_namespace

from helpers import eventually_blocking

UNAVAILABLE = kernel.kernel_mode_available()
needs_kernel = pytest.mark.skipif(UNAVAILABLE is not None, reason=kernel.SKIP_REASON)
LOSS = KernelImpairments(loss_forward=0.1, loss_backward=0.1)


# -- helpers ----------------------------------------------------------------------------------


def processes_in(netns: str) -> list[int]:
    """Every process whose network namespace is `netns` (``net:[inode]``)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/net") == netns:
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def host_tables() -> str:
    """The host's nftables tables (read only)."""
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    is_child = b"child_main" in cmdline.read()
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid and is_child:
                found.append(int(entry))
    return found


def assert_nothing_left(netns: str) -> None:
    eventually_blocking(lambda: not processes_in(netns), timeout=5.0, what=f"no process left in {netns}")
    assert "netlab" not in host_tables()


def settings(name: str, messages: int = 200, rate: float | None = 1000.0, **kw) -> CompareSettings:
    return CompareSettings(transports=(name,), services=("echo",), messages=messages, rate=rate, **kw)


def invoke(args: list[str]):
    return CliRunner().invoke(app, args, prog_name="netlab")


@pytest.fixture(autouse=True)
def piped_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netlab.cli.common, "out", Console(width=160))


# -- the rules and the arithmetic (no privilege needed) ---------------------------------------


@pytest.mark.parametrize(("probability", "expected"), [
    (0.1, (10, 100)), (0.01, (1, 100)), (1.0, (100, 100)), (0.0, (0, 100)),
    (0.125, (125, 1000)), (0.0005, (5, 10_000)), (0.12345, (12345, 100_000)), (1 / 3, (333333, 1_000_000)),
])
def test_numgen_takes_the_smallest_exact_modulus(probability: float, expected: tuple[int, int]) -> None:
    assert numgen_fraction(probability) == expected


def test_ruleset_drops_at_the_input_hook_per_direction() -> None:
    script = kernel.ruleset(KernelImpairments(0.1, 0.125), "udp", 5000)
    assert "hook input" in script and "hook output" not in script  # OUTPUT would tell the sender (EPERM)
    assert 'udp dport 5000 numgen random mod 100 < 10 counter drop comment "forward-drop"' in script
    assert 'udp sport 5000 numgen random mod 1000 < 125 counter drop comment "backward-drop"' in script
    assert 'udp dport 5000 counter comment "forward-seen"' in script
    unix = kernel.ruleset(LOSS, None, None)
    assert 'counter comment "any-seen"' in unix and "numgen random mod 100 < 10 counter drop" in unix
    assert "drop" not in kernel.ruleset(KernelImpairments(), "tcp", 80)


def test_counters_parse_from_proc_and_nft() -> None:
    snmp = ("Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n"
            "Udp: 256 0 624 1000 624 0\n"
            "Tcp: RtoAlgorithm RetransSegs\nTcp: 1 312\n")
    snmp6 = "Udp6InDatagrams                 \t7\nUdp6RcvbufErrors                \t2\n"
    netstat = "TcpExt: TCPTimeouts TCPSynRetrans\nTcpExt: 4 1\n"
    values = kernel.parse_snmp(snmp, snmp6, netstat)
    assert values["Udp.RcvbufErrors"] == 624 and values["Udp.InDatagrams"] == 256
    assert values["Tcp.RetransSegs"] == 312 and values["TcpExt.TCPSynRetrans"] == 1
    assert values["Udp6.RcvbufErrors"] == 2 and values["Udp6.InDatagrams"] == 7
    listing = json.dumps({"nftables": [
        {"metainfo": {"version": "1.0.6"}},
        {"rule": {"comment": "forward-drop", "expr": [{"match": {}}, {"counter": {"packets": 120, "bytes": 9}},
                                                      {"drop": None}]}},
        {"rule": {"expr": [{"counter": {"packets": 5, "bytes": 1}}]}},  # no comment: not ours
    ]})
    assert kernel.parse_nft_counters(listing) == {"forward-drop": 120}
    assert kernel.parse_qdisc_drops('[{"kind":"tbf","drops":3},{"kind":"noqueue","drops":0}]') == 3


def _fake(transport: str, lost: int, rules: dict, snmp: dict, error: str | None = None):
    return SimpleNamespace(service="echo", lost=lost, error=error, kernel={"rules": rules, "snmp": snmp})


def test_attribution_says_when_udp_adds_up_and_when_it_does_not() -> None:
    rules = {"forward-drop": 120, "backward-drop": 131}
    good = kernel.attribute("udp", _fake("udp", 251, rules, {"Udp.RcvbufErrors": 0}))
    assert good["unexplained"] == 0
    assert good["sentence"] == ("udp/echo: 251 lost = 251 dropped by the loss rule (120 requests, 131 replies) "
                                "+ 0 receive-buffer overflows")
    bad = kernel.attribute("udp", _fake("udp", 260, rules, {"Udp.RcvbufErrors": 4, "Udp.InErrors": 4}))
    assert bad["unexplained"] == 5 and "+5 do not add up" in bad["sentence"]
    tcp = kernel.attribute("tcp", _fake("tcp", 0, {"forward-drop": 30, "backward-drop": 20},
                                        {"Tcp.RetransSegs": 312}))
    assert tcp["sentence"].startswith("tcp/echo: 0 lost, 312 segments retransmitted")
    unix = kernel.attribute("unix-dgram", _fake("unix-dgram", 0, {"all-input": 0, "any-drop": 0}, {}))
    assert "AF_UNIX never passes through netfilter" in unix["sentence"]


def test_kernel_mode_refuses_what_it_cannot_make() -> None:
    with pytest.raises(ImpairmentError, match="--duplicate: not available with --kernel"):
        KernelImpairments.from_impairments(Impairments(duplicate=0.1), Impairments())
    with pytest.raises(ImpairmentError, match="one value, not FORWARD/BACKWARD"):
        KernelImpairments.from_impairments(Impairments(delay=0.005), Impairments(delay=0.001))
    kimp = KernelImpairments.from_impairments(Impairments(loss=0.1), Impairments(loss=0.2))
    assert (kimp.loss_forward, kimp.loss_backward) == (0.1, 0.2)


# -- privilege and tools: one line, exit 1 ----------------------------------------------------


NO_ROOT = ("--kernel needs root (CAP_SYS_ADMIN for a private network namespace, CAP_NET_ADMIN for its nftables "
           "rules) and this process is uid 1000: run it as root, e.g. `sudo netlab ... --kernel`")


@pytest.mark.parametrize("args", [
    ["experiment", "run", "loss", "--kernel", "-n", "10"],
    ["compare", "--kernel", "--loss", "0.1", "-n", "10", "--transports", "udp"],
])
def test_without_privilege_one_line_and_exit_1(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    monkeypatch.setattr(kernel_impairments, "privilege_problem", lambda: NO_ROOT)
    result = invoke(args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"netlab: error: {NO_ROOT}"], result.output


def test_privilege_follows_netlabs_one_namespace_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernel mode asks netlab.netns, like check: root, else a user namespace, else the reason."""
    from netlab import netns

    monkeypatch.setattr(kernel.netns, "isolation", lambda: netns.Isolation(None, "no namespaces here (test)"))
    problem = kernel.privilege_problem()
    assert problem is not None and "no namespaces here (test)" in problem and "drop --kernel" in problem
    with pytest.raises(PrivilegeError):
        kernel.check_kernel_mode()
    monkeypatch.setattr(kernel.netns, "isolation", lambda: netns.Isolation("user", "user namespaces"))
    assert kernel.privilege_problem() is None


def test_a_missing_tool_names_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = kernel_impairments.shutil.which
    monkeypatch.setattr(kernel_impairments.shutil, "which", lambda name, path=None: None if name in ("nft", "tc")
                        else real_which(name, path=path))
    with pytest.raises(MissingToolError, match=r"needs nft, tc.*install iproute2 and nftables"):
        kernel.find_tools()


# -- the loss experiment through the relay (no privilege needed) ------------------------------


async def test_loss_experiment_through_the_relay_states_what_it_measured() -> None:
    result = await EXPERIMENTS["loss"].run(ExperimentOptions(messages=200, loss=0.1, seed=3))
    assert result.mode == "relay"
    t = result.facts["transports"]
    for name in ("udp", "unix-dgram"):  # a relay drops datagrams of any family
        f = t[name]
        assert f["lost"] == f["dropped_forward"] + f["dropped_backward"] > 0
        assert f"{name} lost {f['lost']} of 200" in " ".join(result.findings)
    for name in ("tcp", "unix-seq"):  # and cannot make a connection lose anything
        assert t[name]["verified"] == 200 and "loss" in t[name]["not_applied"]
    assert any("tcp and unix-seq delivered all 200 messages byte-exact" in f for f in result.findings)


# -- kernel mode (root, nftables) -------------------------------------------------------------


@needs_kernel
@pytest.mark.process
async def test_tcp_through_kernel_loss_delivers_everything_and_retransmits() -> None:
    r = await run_in_namespace("tcp", "echo", settings("tcp", 200), LOSS)
    a = r.kernel["attribution"]
    assert (r.lost, r.verified, r.corrupted, r.error) == (0, 200, 0, None)
    assert a["rule_dropped"] > 0 and a["retrans_segs"] > 0
    assert r.kernel["snmp"]["Tcp.RetransSegs"] == a["retrans_segs"]
    assert_nothing_left(r.kernel["netns"])


@needs_kernel
@pytest.mark.process
async def test_udp_loss_is_exactly_what_the_rule_dropped() -> None:
    r = await run_in_namespace("udp", "echo", settings("udp", 300), LOSS)
    rules, a = r.kernel["rules"], r.kernel["attribution"]
    assert r.lost > 0 and r.error is None
    assert a["rcvbuf_errors"] == 0  # a modest rate: the receive buffer never overflows
    assert r.lost == rules["forward-drop"] + rules["backward-drop"] + a["rcvbuf_errors"]
    # every request reached the input hook; every reply of a request that got through did too
    assert rules["forward-seen"] == 300
    assert rules["backward-seen"] == 300 - rules["forward-drop"]
    assert a["unexplained"] == 0 and " lost = " in a["sentence"]
    assert_nothing_left(r.kernel["netns"])


@needs_kernel
@pytest.mark.process
async def test_unix_datagrams_never_meet_the_rule() -> None:
    r = await run_in_namespace("unix-dgram", "echo", settings("unix-dgram", 200), LOSS)
    assert r.lost == 0 and r.verified == 200
    assert r.kernel["rules"]["all-input"] == 0 and r.kernel["rules"]["any-drop"] == 0
    assert "loss (unix sockets bypass netfilter)" in r.not_applied
    assert_nothing_left(r.kernel["netns"])


@needs_kernel
@pytest.mark.process
async def test_loss_experiment_facts_support_its_findings() -> None:
    result = await EXPERIMENTS["loss"].run(ExperimentOptions(messages=300, loss=0.1, kernel=True))
    assert result.mode == "kernel"
    t = result.facts["transports"]
    findings = " ".join(result.findings)
    tcp, udp = t["tcp"], t["udp"]
    assert tcp["verified"] == 300 and tcp["lost"] == 0 and tcp["retrans_segs"] > 0
    assert (f"TCP delivered all 300 messages byte-exact through 10% loss each way: the rule dropped "
            f"{tcp['dropped_forward'] + tcp['dropped_backward']} of its segments (data and ACKs) and the kernel "
            f"retransmitted {tcp['retrans_segs']}.") in findings
    assert udp["lost"] == udp["dropped_forward"] + udp["dropped_backward"] + udp["rcvbuf_errors"]
    assert udp["unexplained"] == 0
    assert (f"udp lost {udp['lost']} of 300 ({100 * udp['lost'] / 300:.1f}%" in findings
            and "that accounts for every one" in findings)
    for name in ("unix-dgram", "unix-seq"):
        assert t[name]["lost"] == 0 and t[name]["packets_seen"] == 0
    assert "unix-dgram and unix-seq lost 0: AF_UNIX never passes through netfilter" in findings
    assert "netlab" not in host_tables()


@needs_kernel
@pytest.mark.process
def test_compare_kernel_cli_json(tmp_path: Path) -> None:
    out = tmp_path / "k.json"
    result = invoke(["compare", "--kernel", "--loss", "0.1", "-n", "100", "--rate", "500", "--transports", "tcp,udp",
                     "--service", "echo", "--json-file", str(out)])
    assert result.exit_code == 0, result.output
    assert "what the kernel counted" in result.output and "netem" in result.output
    data = json.loads(out.read_text())
    assert data["start"]["kernel"]["loss_forward"] == 0.1
    rows = {r["transport"]: r for r in data["end"]["results"]}
    assert rows["tcp"]["lost"] == 0 and rows["tcp"]["kernel"]["attribution"]["retrans_segs"] > 0
    udp = rows["udp"]["kernel"]["attribution"]
    assert udp["unexplained"] == 0 and rows["udp"]["lost"] == udp["rule_dropped"] + udp["rcvbuf_errors"]
    for r in rows.values():
        assert_nothing_left(r["kernel"]["netns"])


# -- interrupted runs leave nothing behind ----------------------------------------------------


def _start_child(messages: int = 20_000) -> tuple[subprocess.Popen, str]:
    """The kernel-mode child, started directly, running until its first events; its netns."""
    tools = kernel.find_tools()
    job = kernel._job("udp", "echo", settings("udp", messages, rate=1000.0), LOSS, tools)
    child = subprocess.Popen(kernel.child_command(tools), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(json.dumps(job).encode())
    child.stdin.close()
    ready = json.loads(child.stdout.readline())
    assert ready["event"] == "ready", ready
    assert ready["netns"] != os.readlink("/proc/self/ns/net")
    assert json.loads(child.stdout.readline())["event"] == "progress"  # traffic is flowing
    return child, ready["netns"]


@needs_kernel
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
@pytest.mark.process
def test_a_child_stopped_mid_run_leaves_nothing(signum: int) -> None:
    child, netns = _start_child()
    assert processes_in(netns) == [child.pid]
    assert "netlab" not in host_tables()  # the rules live in the namespace only
    child.send_signal(signum)
    child.wait(timeout=10)
    assert_nothing_left(netns)


@needs_kernel
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name)
@pytest.mark.process
def test_a_parent_stopped_mid_run_leaves_nothing(signum: int) -> None:
    parent = subprocess.Popen([sys.executable, "-m", "netlab", "experiment", "run", "loss", "--kernel",
                               "-n", "20000"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        eventually_blocking(lambda: len(children_of(parent.pid)) == 4, what="the four kernel-mode children started")
        namespaces = set()
        for pid in children_of(parent.pid):
            try:
                namespaces.add(os.readlink(f"/proc/{pid}/ns/net"))
            except OSError:
                pass
        time.sleep(0.3)  # let the runs get under way
        parent.send_signal(signum)
        code = parent.wait(timeout=15)
        assert code == (130 if signum == signal.SIGINT else -signal.SIGKILL)
        if signum == signal.SIGINT:
            assert b"Traceback" not in (parent.stderr.read() if parent.stderr else b"")
        for netns in namespaces:
            assert_nothing_left(netns)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


@pytest.mark.process
def test_the_child_refuses_to_run_outside_a_namespace() -> None:
    job = kernel._job("udp", "echo", settings("udp", 10), LOSS, {"nft": "nft", "ip": "ip", "tc": "tc",
                                                                 "unshare": "unshare"})
    done = subprocess.run([sys.executable, "-c", kernel.CHILD_CODE], input=json.dumps(job).encode(),
                          capture_output=True, timeout=30)
    assert done.returncode == 1
    event = json.loads(done.stdout.decode().splitlines()[-1])
    assert event["event"] == "error" and "not in a private network namespace" in event["message"]


def test_kernel_mode_error_is_a_netlab_error() -> None:
    from netlab.errors import NetlabError

    assert issubclass(PrivilegeError, KernelModeError) and issubclass(MissingToolError, KernelModeError)
    assert issubclass(KernelModeError, NetlabError)
