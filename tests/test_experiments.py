"""The named experiments overload, addressing, refused and size-limits.

Each experiment runs once per module (a sync fixture calling ``trio.run``: trio_mode runs
only the async tests inside trio) and the tests check that its JSON facts hold what its
paragraph states. No test asserts wall-clock speed: the only timing checked is a lower
bound that is inherent (an unconnected UDP client waits at least its timeout).

The host-wide counters in /proc/net/snmp are shared with everything else on the machine
(other tests may overflow UDP buffers at the same moment), so they are checked as lower
bounds; the per-socket SO_RXQ_OVFL count is checked exactly.
"""

from __future__ import annotations

import json
import socket
import sys

import pytest
import trio
from typer.testing import CliRunner

import netlab.cli.common
from netlab.cli import app
from netlab.experiments import EXPERIMENTS, ExperimentOptions, ExperimentResult
from netlab.experiments.size_limits import TRUNC_BUFFER, fragments, predicted_loss

MINE = ["overload", "addressing", "refused", "size-limits"]
#: options that keep each CLI run to about a second
FAST_ARGS = {"overload": ["--messages", "200"], "addressing": [], "refused": ["--timeout", "0.2"],
             "size-limits": []}


def run_experiment(name: str, **options) -> ExperimentResult:
    return trio.run(EXPERIMENTS[name].run, ExperimentOptions(**options))


def kernel_skip_reason() -> str | None:
    try:
        from netlab.experiments.kernel import kernel_mode_available
    except ImportError as exc:
        return f"kernel mode is not in this build: {exc}"
    return kernel_mode_available()


# -- overload --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def overload_result() -> ExperimentResult:
    return run_experiment("overload", messages=300)


@pytest.fixture(scope="module")
def overload(overload_result: ExperimentResult) -> dict:
    return overload_result.facts


@pytest.fixture(scope="module")
def overload_small_rcvbuf() -> dict:
    return run_experiment("overload", messages=300, rcvbuf=4096).facts


@pytest.mark.parametrize("name", ["udp", "udp6"])
def test_overload_udp_loses_exactly_what_so_rxq_ovfl_counts(overload: dict, name: str) -> None:
    f = overload[name]
    assert f["completed"] and f["sent"] == 300
    assert f["lost"] > 0
    assert f["lost"] == f["sent"] - f["delivered"]
    assert f["so_rxq_ovfl"] == f["lost"]
    # the /proc counter is host-wide: it rose by at least this socket's loss
    assert f["counter_delta"] is not None and f["counter_delta"] >= f["lost"]
    assert f["blocks"] == 0  # a UDP sender is never held back
    assert f["first_ones_kept"]


def test_overload_findings_state_the_counts(overload_result: ExperimentResult) -> None:
    udp = overload_result.facts["udp"]
    text = next(line for line in overload_result.findings if line.startswith("udp:"))
    assert f"{udp['delivered']} of {udp['sent']} datagrams delivered, {udp['lost']} lost" in text
    assert f"SO_RXQ_OVFL counted exactly {udp['lost']}" in text
    dgram = overload_result.facts["unix-dgram"]
    text = next(line for line in overload_result.findings if line.startswith("unix-dgram:"))
    assert "lost nothing" in text and f"blocked {dgram['blocks']} times" in text


@pytest.mark.parametrize("name", ["unix-dgram", "unix-seq", "tcp", "tcp6", "unix"])
def test_overload_reliable_transports_lose_nothing_and_hold_the_sender_back(overload: dict, name: str) -> None:
    f = overload[name]
    assert f["completed"]
    assert f["sent"] == f["delivered"] == 300
    assert f["lost"] == 0
    assert f["blocks"] > 0  # the sender met EAGAIN and waited
    assert 0 < f["in_flight_bytes"] < f["sent_bytes"]


def test_overload_tcp_in_flight_is_split_between_receiver_and_sender(overload: dict) -> None:
    f = overload["tcp"]
    assert 0 < f["queued_at_pause"] <= f["sent_at_pause"]
    assert f["sender_unsent"] is not None and f["sender_unsent"] >= 0


def test_overload_rcvbuf_option_reaches_the_receiver(overload: dict, overload_small_rcvbuf: dict) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        granted = probe.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    for name in ("udp", "unix-dgram", "tcp", "unix"):
        assert overload_small_rcvbuf[name]["rcvbuf"] == granted, name
    # a smaller receive buffer keeps fewer of the same burst
    assert overload_small_rcvbuf["udp"]["delivered"] < overload["udp"]["delivered"]
    assert overload_small_rcvbuf["udp"]["so_rxq_ovfl"] == overload_small_rcvbuf["udp"]["lost"]
    assert overload_small_rcvbuf["unix-dgram"]["lost"] == 0


# -- addressing ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def addressing() -> ExperimentResult:
    return run_experiment("addressing")


def test_addressing_dual_stack_peer_is_ipv4_mapped(addressing: ExperimentResult) -> None:
    f = addressing.facts["dual-stack"]
    assert f["fields"]["host"] == "::ffff:127.0.0.1"
    assert len(f["fields"]) == 4
    assert f["text"] == f"tcp6:[::ffff:127.0.0.1]:{f['fields']['port']}"
    assert "('127.0.0.1'," in f["client_name"]  # the client calls itself plain IPv4
    assert not f["same_as_client_name"]
    assert any("'::ffff:127.0.0.1'" in line for line in addressing.findings)


def test_addressing_ip_tuples(addressing: ExperimentResult) -> None:
    for name in ("tcp", "udp"):
        f = addressing.facts[name]
        assert f["type"] == "tuple" and set(f["fields"]) == {"host", "port"}
        assert f["fields"]["host"] == "127.0.0.1"
        assert f["text"] == f"{name}4:127.0.0.1:{f['fields']['port']}"
    for name in ("tcp6", "udp6"):
        f = addressing.facts[name]
        assert set(f["fields"]) == {"host", "port", "flowinfo", "scope_id"}
        assert f["fields"]["host"] == "::1"
        assert f["text"] == f"{name}:[::1]:{f['fields']['port']}"


def test_addressing_unix_peers(addressing: ExperimentResult) -> None:
    facts = addressing.facts
    assert facts["unix-path"]["type"] == "str" and facts["unix-path"]["raw"].endswith("/client.sock'")
    assert facts["unix-dgram-path"]["type"] == "str" and facts["unix-dgram-path"]["raw"].endswith("/sender.sock'")
    auto = facts["unix-dgram-autobind"]
    assert auto["type"] == "bytes" and auto["raw"].startswith("b'\\x00")
    assert auto["text"].startswith("unix-dgram:@") and auto["same_as_client_name"]
    assert facts["unix-dgram-unbound"]["arrived"]
    assert facts["unix-dgram-unbound"]["raw"] == "None"
    assert facts["unix-dgram-unbound"]["text"] == "(unbound)"
    assert facts["unix-unbound"]["raw"] == "''"
    assert any("seen as None" in line for line in addressing.findings)


# -- refused ---------------------------------------------------------------------------------

REFUSED_TIMEOUT = 0.2


@pytest.fixture(scope="module")
def refused() -> ExperimentResult:
    return run_experiment("refused", timeout=REFUSED_TIMEOUT)


def test_refused_tcp_fails_at_connect(refused: ExperimentResult) -> None:
    for name in ("tcp", "tcp6"):
        f = refused.facts[name]
        assert (f["outcome"], f["failed_at"], f["errno"], f["error"]) == \
            ("error", "connect", "ECONNREFUSED", "ConnectionRefusedError")


def test_refused_unconnected_udp_waits_for_its_timeout(refused: ExperimentResult) -> None:
    f = refused.facts["udp-unconnected"]
    assert f["outcome"] == "timeout" and f["errno"] is None
    assert f["elapsed_ms"] >= REFUSED_TIMEOUT * 1000  # a lower bound, not a speed
    assert f["udp_noports_delta"] is None or f["udp_noports_delta"] >= 1
    assert any("udp-unconnected" in line and "no error" in line for line in refused.findings)


def test_refused_connected_udp_gets_econnrefused(refused: ExperimentResult) -> None:
    for name in ("udp-connected", "udp6-connected"):
        f = refused.facts[name]
        assert (f["outcome"], f["failed_at"], f["errno"]) == ("error", "receive", "ECONNREFUSED")


@pytest.mark.parametrize("scheme", ["unix", "unix-dgram", "unix-seq"])
def test_refused_unix_enoent_and_stale(refused: ExperimentResult, scheme: str) -> None:
    assert refused.facts[f"{scheme}-no-file"]["errno"] == "ENOENT"
    assert refused.facts[f"{scheme}-stale"]["errno"] == "ECONNREFUSED"
    assert refused.facts[f"{scheme}-stale"]["failed_at"] == "connect"


# -- size-limits -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def size_limits() -> ExperimentResult:
    return run_experiment("size-limits", size=2000)


def fresh_sndbuf(socktype: int) -> int:
    with socket.socket(socket.AF_UNIX, socktype) as s:
        return s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)


def test_size_limits_udp(size_limits: ExperimentResult) -> None:
    limits = size_limits.facts["limits"]
    assert (limits["udp"]["largest"], limits["udp"]["first_refused"]) == (65507, 65508)
    assert (limits["udp6"]["largest"], limits["udp6"]["first_refused"]) == (65527, 65528)
    for name in ("udp", "udp6"):
        assert limits[name]["refused_with"] == "EMSGSIZE"
        assert limits[name]["arrived_whole"]


def test_size_limits_unix_from_the_send_buffer(size_limits: ExperimentResult) -> None:
    limits = size_limits.facts["limits"]
    assert limits["unix-dgram"]["largest"] == fresh_sndbuf(socket.SOCK_DGRAM) - 32
    assert limits["unix-seq"]["largest"] == fresh_sndbuf(socket.SOCK_SEQPACKET) - 32
    for name in ("unix-dgram", "unix-seq"):
        assert limits[name]["refused_with"] == "EMSGSIZE"
        assert limits[name]["largest"] == limits[name]["sndbuf"] - 32
        assert any(line.startswith(f"{name}: the largest datagram is {limits[name]['largest']}")
                   for line in size_limits.findings)


def test_size_limits_truncation(size_limits: ExperimentResult) -> None:
    truncation = size_limits.facts["truncation"]
    for name in ("udp", "udp6", "unix-dgram", "unix-seq"):
        t = truncation[name]
        assert t["msg_trunc"], name
        assert (t["sent"], t["peek_size"], t["kept"], t["lost_tail"]) == (2000, 2000, TRUNC_BUFFER, 2000 - TRUNC_BUFFER)
        assert t["next_read_is_next_message"]
    tcp = truncation["tcp"]
    assert not tcp["msg_trunc"] and tcp["lost_tail"] == 0
    assert "fragmentation" not in size_limits.facts  # only with --kernel


def test_fragment_arithmetic() -> None:
    assert fragments(8192) == 6  # 8200 bytes of UDP in 1480-byte pieces
    assert fragments(1472) == 1 and fragments(1473) == 2
    assert predicted_loss(0.01, 6) == pytest.approx(0.0585, abs=1e-4)


def test_size_limits_kernel_without_kernel_mode_is_a_labelled_prediction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "netlab.impair.kernel", None)  # as if the module were absent
    result = run_experiment("size-limits", kernel=True, loss=0.01)
    frag = result.facts["fragmentation"]
    assert frag["measured"] is False
    assert frag["predicted_loss_large"] == pytest.approx(predicted_loss(0.01, 6))
    assert any("PREDICTION" in line and "not available in this build" in line for line in result.findings)


@pytest.mark.skipif(kernel_skip_reason() is not None, reason=str(kernel_skip_reason()))
@pytest.mark.process
def test_size_limits_kernel_fragments_each_datagram() -> None:
    result = run_experiment("size-limits", kernel=True, loss=0.1, messages=200)
    frag = result.facts["fragmentation"]
    assert result.mode == "kernel" and frag["measured"]
    small, large = frag["small"], frag["large"]
    assert small["rule_seen"] == 200  # one packet each
    assert large["rule_seen"] == 6 * 200 == large["snmp"]["Ip.FragCreates"]
    assert large["delivered"] == large["snmp"]["Ip.ReasmOKs"]
    assert large["snmp"]["Udp.RcvbufErrors"] == 0
    assert small["lost"] == small["rule_dropped"]  # one packet lost = one datagram lost


# -- the command line --------------------------------------------------------------------------


@pytest.fixture
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    monkeypatch.setattr(netlab.cli.common, "out", Console(width=160))


def invoke(args: list[str]):
    return CliRunner().invoke(app, args, prog_name="netlab")


def test_cli_lists_the_experiments() -> None:
    result = invoke(["experiment", "list", "--json"])
    assert result.exit_code == 0, result.output
    names = {row["name"] for row in json.loads(result.stdout)}
    assert set(MINE) <= names


@pytest.mark.parametrize("name", MINE)
def test_cli_json_parses(name: str) -> None:
    result = invoke(["experiment", "run", name, "--json", *FAST_ARGS[name]])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["name"] == name and data["facts"] and data["findings"]


def test_cli_overload_table_and_plot(tmp_path, wide_console: None) -> None:
    png = tmp_path / "overload.png"
    result = invoke(["experiment", "run", "overload", "--messages", "100", "--rcvbuf", "4096", "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert "unix-dgram" in result.stdout and "SO_RXQ_OVFL" in result.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- framing -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def framing() -> ExperimentResult:
    return run_experiment("framing")


def _cell(result: ExperimentResult, client: str, framing: str, path: str = "direct") -> dict:
    [cell] = [c for c in result.facts["cells"] if c["client"] == client and c["framing"] == framing
              and c["path"] == path]
    return cell


def test_framing_every_client_meets_every_framing_on_every_path(framing: ExperimentResult) -> None:
    assert len(framing.facts["cells"]) == 3 * 3 * 3
    assert len(framing.tables[0].rows) == 3 * 3


def test_framing_naive_clients_hang_under_line_framing(framing: ExperimentResult) -> None:
    """Not timing: with line framing nothing but a newline ends the request."""
    for client in ("naive", "two sends"):
        cell = _cell(framing, client, "line")
        assert cell["outcome"] == "no reply"
        assert cell["elapsed_s"] >= framing.facts["wait_s"]
    assert framing.facts["hints"] >= 12  # each of them, under line and eof framing, on every path
    assert "framing=line" in framing.facts["hint"] and "end the request with \\n" in framing.facts["hint"]
    assert any(f.startswith("line framing: naive and two sends got no reply") for f in framing.findings)


def test_framing_quiet_answers_the_naive_client(framing: ExperimentResult) -> None:
    assert _cell(framing, "naive", "quiet:200")["reply"] == "5"  # one send: one piece, then the pause


def test_framing_eof_waits_for_the_half_close(framing: ExperimentResult) -> None:
    assert _cell(framing, "naive", "eof")["outcome"] == "no reply"
    assert all(_cell(framing, "careful", "eof", path)["correct"] for path in ("direct", "relay --slice 1:1"))


def test_framing_careful_client_works_under_line_framing_however_the_bytes_are_cut(framing: ExperimentResult) -> None:
    paths = {c["path"] for c in framing.facts["cells"]}
    assert all(_cell(framing, "careful", "line", path)["correct"] for path in paths)


def test_cli_framing_json() -> None:
    result = invoke(["experiment", "run", "framing", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["name"] == "framing" and data["findings"] and data["facts"]["cells"]
