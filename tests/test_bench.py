"""`netlab bench`: every mode runs briefly and its JSON is consistent. Never a speed.

Benchmarks are not tests: nothing here asserts that anything is fast, only that each mode
runs end to end (servers in their own processes, the load generator in its own) and that
what it reports adds up: counts match histograms, ratios pair repeats, every run is there.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from netlab.bench import core
from netlab.bench.core import BenchSettings, planned_runs, report, run_bench, tables
from netlab.cli import app
from netlab.errors import BenchError
from netlab.transports import COMPARE_SCHEMES, get_transport, parse_address

QUICK = {"duration": 0.1, "warmup": 0.02, "repeats": 1, "baselines": ("trio",)}
BASELINES = Path(__file__).resolve().parent.parent / "benchmarks" / "baselines"


def quick(mode: str, transports: tuple[str, ...], **extra: object) -> core.BenchResult:
    settings = BenchSettings(mode, transports, **{**QUICK, **extra})  # type: ignore[arg-type]
    ticks: list[str] = []
    result = run_bench(settings, progress=ticks.append)
    assert len(ticks) == planned_runs(settings)
    assert not result.failed, result.failed
    json.dumps(report(result))  # everything in it is JSON
    return result


def rows(result: core.BenchResult, mode: str | None = None) -> list[core.Row]:
    return [r for r in result.rows if mode is None or r.mode == mode]


def check_latency_rows(result: core.BenchResult, mode: str) -> None:
    for row in rows(result, mode):
        assert row.median is not None and row.low <= row.median <= row.high
        assert len(row.values) == result.settings.repeats
        # what was counted is what the histogram holds
        assert row.count == row.details["histogram_count"] > 0
        assert row.details["p50_us"] <= row.details["p99_us"] <= row.details["max_us"]
        if row.server == "netlab":
            assert row.ratios["trio"]["pairs"] == result.settings.repeats


@pytest.fixture(scope="module")
def pingpong() -> core.BenchResult:
    return quick("pingpong", ("tcp", "udp", "unix-seq"), repeats=2)


@pytest.mark.process
def test_pingpong_counts_match_histograms_and_ratios_pair_repeats(pingpong: core.BenchResult) -> None:
    result = pingpong
    check_latency_rows(result, "pingpong")
    assert {(r.transport, r.server) for r in rows(result)} == {
        (t, s) for t in ("tcp", "udp", "unix-seq") for s in ("netlab", "trio")}
    runs = [r for r in result.runs if r.transport == "tcp" and r.server == "netlab"]
    assert sorted(r.repeat for r in runs) == [0, 1]
    for run in result.runs:  # each run's own count and elapsed time give its rate
        assert run.value == pytest.approx(run.result["count"] / run.result["elapsed"])
        assert run.result["mismatched"] == 0
    # a ratio is the median of per-repeat ratios
    netlab = next(r for r in rows(result) if r.transport == "tcp" and r.server == "netlab")
    trio = {r.repeat: r.value for r in result.runs if r.transport == "tcp" and r.server == "trio"}
    mine = {r.repeat: r.value for r in result.runs if r.transport == "tcp" and r.server == "netlab"}
    ratios = sorted(mine[k] / trio[k] for k in mine)
    assert netlab.ratios["trio"]["min"] == pytest.approx(ratios[0])
    assert netlab.ratios["trio"]["max"] == pytest.approx(ratios[-1])
    targets = {(t["target"], t["transport"]) for t in result.targets}
    assert ("trio_floor", "tcp") in targets and ("trio_floor", "unix-seq") in targets


@pytest.mark.process
def test_environment_is_recorded(pingpong: core.BenchResult) -> None:
    env = pingpong.environment
    for key in ("cores", "kernel", "python", "trio", "loopback_mtu", "default_socket_buffers", "sysctl",
                "rlimit_nofile", "loadavg", "loadavg_end"):
        assert key in env, key
    assert env["pin"]["mode"] == "same" and env["pin"]["server_cpus"] == env["pin"]["client_cpus"]


@pytest.mark.process
def test_rate_counts_add_up() -> None:
    result = quick("rate", ("tcp", "unix-dgram"), rate=2000.0, repeats=2)
    for row in rows(result, "rate"):
        d = row.details
        assert d["sent"] == d["answered"] + d["lost"]
        assert row.count == d["histogram_count"] == d["answered"] > 0
        assert d["send_lag_p99_us"] is not None


@pytest.mark.process
def test_stream_counts_bytes_into_discard_servers() -> None:
    result = quick("stream", ("tcp", "unix-seq", "udp"), chunk=65536, iperf3=False)
    for row in rows(result, "stream"):
        assert row.details["bytes"] > 0 and row.median is not None
        assert row.details["gbit_s"] == pytest.approx(row.median * 8 / 1000)
    assert {"transport": "udp", "reason": core._NOT_APPLICABLE["stream"]} in result.skipped


@pytest.mark.process
def test_stream_without_iperf3_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "iperf3_path", lambda: None)
    result = quick("stream", ("tcp",), repeats=1, chunk=65536)
    assert any(s["transport"] == "iperf3" and "not installed" in s["reason"] for s in result.skipped)
    assert all(r.server != "iperf3" for r in result.rows)


@pytest.mark.skipif(core.iperf3_path() is None, reason="iperf3 is not installed")
@pytest.mark.process
def test_stream_with_iperf3_gives_a_ratio() -> None:
    result = quick("stream", ("tcp",), repeats=1, duration=1.0, warmup=0.0, chunk=65536)
    netlab = next(r for r in rows(result) if r.server == "netlab")
    assert "iperf3" in netlab.ratios
    assert any(t["target"] == "iperf3" for t in result.targets)


@pytest.mark.process
def test_datagrams_sent_are_taken_or_dropped() -> None:
    result = quick("datagrams", ("udp", "unix-dgram", "unix-seq"))
    for row in rows(result, "datagrams"):
        d = row.details
        assert row.count == d["sent"] - d["dropped"] > 0
        if row.transport != "udp":
            assert d["dropped"] == 0  # unix senders wait instead


@pytest.mark.process
def test_relay_datagrams_and_streams_through_each_relay() -> None:
    result = quick("relay", ("udp", "unix-dgram", "unix", "unix-seq", "tls"), baselines=("select",), rate=2000.0)
    assert result.settings.servers == ("netlab", "select")
    for row in rows(result, "relay-datagrams"):
        d = row.details
        assert row.count + d["lost"] == d["sent"] > 0  # every datagram came back or is counted lost
        assert d["drops_counted"] == (row.transport == "udp")
    for row in rows(result, "relay-stream"):
        assert row.details["bytes"] > 0 and row.median is not None
    assert {r.transport for r in result.rows} == {"udp", "unix-dgram", "unix", "unix-seq"}
    assert any(s["transport"] == "tls" for s in result.skipped)
    assert {t["transport"] for t in result.targets if t["target"] == "relay_select"} == {"udp", "unix-dgram"}


def _socat_relays() -> int:
    """socat processes relaying with fork, on this machine (their children included)."""
    count = 0
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        count += bool(cmdline and cmdline[0].endswith(b"socat") and any(b",fork" in part for part in cmdline))
    return count


@pytest.mark.process
def test_relay_socat_runs_where_it_can_and_says_why_not_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    socat_before = _socat_relays()
    settings = BenchSettings("relay", ("udp", "unix-dgram"), **{**QUICK, "baselines": ("socat",)})  # type: ignore[arg-type]
    result = run_bench(settings)
    by = {(r.transport, r.server): r for r in result.rows}
    assert _socat_relays() <= socat_before, "socat's per-client children outlived the run"
    if core.socat_path() is None:
        assert "socat is not installed" in (by["udp", "socat"].error or "")
    else:
        assert by["udp", "socat"].count > 0
        assert by["udp", "socat"].details["server_cpu_us_per_msg"] is None  # its CPU is its children's
    assert "no fork mode" in (by["unix-dgram", "socat"].error or "")
    monkeypatch.setattr(core, "socat_path", lambda: None)
    result = run_bench(BenchSettings("relay", ("tcp",), **{**QUICK, "baselines": ("socat",)}))  # type: ignore[arg-type]
    assert "socat is not installed" in (next(r for r in result.rows if r.server == "socat").error or "")


@pytest.mark.process
def test_connect_counts_match_histograms() -> None:
    result = quick("connect", ("tcp", "unix-seq"), repeats=2)
    check_latency_rows(result, "connect")
    assert all(r.details["failures"] == 0 for r in rows(result))


@pytest.mark.process
def test_tls_connect_and_pingpong_count_real_replies() -> None:
    """Every server speaks TLS with the run's certificate, and the load generator verifies
    it: a connection that answers its echo is a handshake that succeeded."""
    result = quick("connect", ("tcp", "tls"), baselines=tuple(core.BASELINES))
    check_latency_rows(result, "connect")
    assert {(r.transport, r.server) for r in rows(result)} == {
        (t, s) for t in ("tcp", "tls") for s in ("netlab", *core.BASELINES)}
    assert all(r.details["failures"] == 0 for r in rows(result))
    for connections in (1, 3):  # blocking, then epoll (non-blocking SSLSockets)
        result = quick("pingpong", ("tls",), connections=connections)
        check_latency_rows(result, "pingpong")
        assert all(run.result["mismatched"] == 0 and run.result["connections"] == connections
                   for run in result.runs)


@pytest.mark.process
def test_tls_stream_rate_and_hold_run() -> None:
    result = quick("stream", ("tls",), chunk=65536, iperf3=False)
    assert all(row.details["bytes"] > 0 for row in rows(result))
    result = quick("rate", ("tls",), rate=2000.0, connections=2)
    assert all(row.details["answered"] > 0 and row.details["mismatched"] == 0 for row in rows(result))
    result = quick("concurrency", ("tls",), levels=(2,), hold=20)
    assert all(row.details["held"] == row.details["answering"] == 20 for row in rows(result, "hold"))


@pytest.mark.process
def test_concurrency_levels_and_hold() -> None:
    result = quick("concurrency", ("tcp",), levels=(1, 4), hold=40, repeats=1)
    check_latency_rows(result, "concurrency")
    assert {(r.transport, r.level) for r in rows(result, "concurrency")} == {("tcp", 1), ("tcp", 4)}
    hold = rows(result, "hold")
    assert {(r.transport, r.server) for r in hold} == {("tcp", "netlab"), ("tcp", "trio")}
    for row in hold:
        assert row.details["held"] == row.details["answering"] == 40
        assert row.details["server_rss_held"] >= row.details["server_rss_before"] > 0
    target = next(t for t in result.targets if t["target"] == "hold_10k")
    assert target["value"] == 40 and target["met"] is False  # 40 is not 10,000


@pytest.mark.process
def test_a_server_that_cannot_start_is_reported_not_fatal(tmp_path: Path) -> None:
    settings = BenchSettings("pingpong", ("unix",), duration=0.1, warmup=0.0, repeats=1, baselines=("trio",),
                             baselines_dir=str(tmp_path))
    result = run_bench(settings)
    trio = next(r for r in result.rows if r.server == "trio")
    assert "not found" in (trio.error or "")
    assert next(r for r in result.rows if r.server == "netlab").median is not None
    assert result.failed


@pytest.mark.process
def test_tables_have_a_row_per_transport_and_the_targets(pingpong: core.BenchResult) -> None:
    drawn = tables(pingpong)
    headline = drawn[0]
    assert [row[0] for row in headline.rows] == ["tcp", "udp", "unix-seq"]
    assert headline.columns[-1] == "netlab/trio"
    assert any(t.title == "targets" for t in drawn)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": "nope"}, "unknown mode"),
    ({"mode": "pingpong", "transports": ("nope",)}, "unknown transport"),
    ({"mode": "pingpong", "baselines": ("nope",)}, "unknown baseline"),
    ({"mode": "pingpong", "pin": "both"}, "--pin"),
    ({"mode": "pingpong", "size": 4}, "at least 8"),
    ({"mode": "pingpong", "repeats": 0}, "at least 1"),
    ({"mode": "concurrency", "levels": (0,)}, "at least 1"),
    ({"mode": "pingpong", "before": "/nonexistent"}, "not a netlab source tree"),
])
def test_settings_refuse_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BenchSettings(**kwargs)


# -- the CLI --------------------------------------------------------------------------------


def invoke(args: list[str]):
    return CliRunner().invoke(app, args, prog_name="netlab")


def test_cli_help_shows_an_example() -> None:
    result = invoke(["bench", "--help"])
    assert result.exit_code == 0
    assert "Example: netlab bench" in result.output


@pytest.mark.parametrize("args", [
    ["bench", "sideways"],
    ["bench", "pingpong", "--transports", "nope"],
    ["bench", "pingpong", "--baselines", "nope"],
    ["bench", "pingpong", "--pin", "both"],
    ["bench", "concurrency", "--levels", "1,x"],
    ["bench", "pingpong", "--size", "4"],
    ["bench"],
])
def test_cli_usage_errors_exit_2_without_traceback(args: list[str]) -> None:
    result = invoke(args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


@pytest.mark.process
def test_cli_writes_json_and_plot(tmp_path: Path) -> None:
    out, png = tmp_path / "b.json", tmp_path / "b.png"
    result = invoke(["bench", "pingpong", "--transports", "unix", "--baselines", "trio", "--duration", "0.1",
                     "--warmup", "0", "--repeats", "1", "--json-file", str(out), "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert "netlab/trio" in result.output and "pin=same" in result.output
    data = json.loads(out.read_text())
    assert set(data) == {"start", "intervals", "end"}  # iperf3 -J's shape ("error" only on failure)
    assert data["start"]["settings"]["mode"] == "pingpong"
    for row in data["end"]["results"]:
        assert row["count"] == row["details"]["histogram_count"]
    assert png.stat().st_size > 0


def test_cli_unwritable_json_exits_1(tmp_path: Path) -> None:
    result = invoke(["bench", "pingpong", "--json-file", str(tmp_path / "no" / "such" / "dir.json")])
    assert result.exit_code == 1
    assert f"directory {tmp_path / 'no'} does not exist" in result.output


@pytest.mark.process
def test_cli_a_failed_server_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "baselines_dir", lambda settings: tmp_path)
    result = invoke(["bench", "pingpong", "--transports", "unix", "--baselines", "trio", "--duration", "0.1",
                     "--warmup", "0", "--repeats", "1"])
    assert result.exit_code == 1
    assert "not found" in result.output and "Traceback" not in result.output


# -- the baseline servers ---------------------------------------------------------------------


@pytest.mark.parametrize("script", sorted(core.BASELINES.values()))
@pytest.mark.process
def test_baseline_servers_echo_and_discard_on_every_transport(script: str, tmp_path: Path) -> None:
    """Each baseline prints the address it bound and echoes (or discards) on all seven transports."""
    procs: dict[tuple[str, bool], tuple[subprocess.Popen, str]] = {}
    try:
        certificate = core.certificate_options(tmp_path / "certificate")
        for name, template in COMPARE_SCHEMES.items():
            if get_transport(parse_address(template.format(dir=tmp_path)).scheme).encrypted:
                template += certificate
            for discard in (False, True) if name in ("tcp", "tls", "unix-dgram", "unix-seq") else (False,):
                directory = tmp_path / f"{name}-{discard}"
                directory.mkdir()
                argv = [sys.executable, str(BASELINES / script), template.format(dir=directory)]
                proc = subprocess.Popen(argv + (["--discard"] if discard else []), stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
                procs[name, discard] = (proc, "")
        for key, (proc, _) in procs.items():
            assert proc.stdout is not None
            procs[key] = (proc, proc.stdout.readline().strip())
        for (name, discard), (proc, bound) in procs.items():
            target = core.loadgen_target(bound)
            sock = socket.socket(target["family"], target["type"])
            with sock:
                sock.settimeout(5 if not discard else 0.3)
                if target["family"] == socket.AF_UNIX and target["type"] == socket.SOCK_DGRAM:
                    sock.bind("")
                address = tuple(target["address"]) if isinstance(target["address"], list) else target["address"]
                sock.connect(address)
                if "tls" in target:  # verified against the CA the baseline printed
                    sock.settimeout(5)
                    context = ssl.create_default_context(cafile=target["tls"]["ca"])
                    sock = context.wrap_socket(sock, server_hostname=target["tls"]["server_hostname"])
                    sock.settimeout(5 if not discard else 0.3)
                    assert sock.version(), (script, name)
                sock.send(b"hello baseline")
                if discard:
                    with pytest.raises((TimeoutError, socket.timeout)):
                        sock.recv(100)
                else:
                    assert sock.recv(100) == b"hello baseline", (script, name)
    finally:
        for proc, _ in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc, _ in procs.values():
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.process
def test_baseline_usage_error() -> None:
    result = subprocess.run([sys.executable, str(BASELINES / "trio_echo.py")], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode != 0 and "usage:" in result.stderr


@pytest.mark.process
def test_loadgen_reports_errors_as_json() -> None:
    spec = {"mode": "pingpong", "family": int(socket.AF_UNIX), "type": int(socket.SOCK_STREAM),
            "address": "/nonexistent/socket", "size": 64, "warmup": 0, "duration": 0.1}
    began = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "netlab.bench.loadgen", json.dumps(spec)], capture_output=True,
                            text=True, timeout=30, env={**os.environ})
    assert result.returncode == 1
    assert "error" in json.loads(result.stdout)
    assert time.monotonic() - began < 30


def _loadgen(spec: dict) -> tuple[int, dict]:
    result = subprocess.run([sys.executable, "-m", "netlab.bench.loadgen", json.dumps(spec)], capture_output=True,
                            text=True, timeout=60)
    return result.returncode, json.loads(result.stdout)


@pytest.mark.parametrize(("server", "reason"), [
    ("tls", "certificate verify failed"),  # a certificate the CA given did not sign
    ("tcp", "TLS handshake with the server failed"),  # no TLS at all: the echo of the client's own hello
])
@pytest.mark.process
def test_loadgen_tls_refuses_a_server_it_cannot_verify_at_once(server: str, reason: str, tmp_path: Path) -> None:
    """Not counted as failed connections, over and over: one clear error."""
    options = core.certificate_options(tmp_path / "theirs") if server == "tls" else ""
    core.certificate_options(tmp_path / "ours")
    proc = subprocess.Popen([sys.executable, str(BASELINES / "threads_echo.py"), f"{server}:127.0.0.1:0{options}"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = proc.stdout.readline().strip().partition("?")[0].rpartition(":")[2]
        target = core.loadgen_target(f"tls:127.0.0.1:{port}?ca={tmp_path / 'ours' / 'ca.pem'}")
        for mode in ("connect", "pingpong"):
            code, out = _loadgen({**target, "mode": mode, "size": 64, "warmup": 0, "duration": 0.1})
            assert code == 1 and reason in out["error"], out
    finally:
        proc.terminate()
        proc.wait(10)


def test_loadgen_target_needs_the_ca_of_a_tls_server() -> None:
    target = core.loadgen_target("tls:127.0.0.1:4433?ca=/some/ca.pem")
    assert target["tls"] == {"ca": "/some/ca.pem", "server_hostname": "127.0.0.1"}
    assert "tls" not in core.loadgen_target("tcp:127.0.0.1:4433")
    with pytest.raises(BenchError, match=r"no \?ca=FILE"):
        core.loadgen_target("tls:127.0.0.1:4433")


@pytest.mark.process
def test_cli_plots_relay_mode(tmp_path: Path) -> None:
    """relay's runs measure relay-datagrams (and relay-stream): its plot draws them."""
    png = tmp_path / "relay.png"
    result = invoke(["bench", "relay", "--transports", "udp", "--baselines", "select", "--duration", "0.1",
                     "--warmup", "0", "--repeats", "1", "--rate", "2000", "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert png.stat().st_size > 0
