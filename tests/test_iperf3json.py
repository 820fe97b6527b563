"""compare --json and bench --json read by a real iperf3 consumer, in iperf3's shape all the way down.

The consumer is the ``iperf3`` package's ``TestResult`` (the parser behind ``iperf3.Client().run()``);
the reference documents in tests/data are real ``iperf3 -c ... -J`` outputs (iperf3 3.12, TCP and
UDP on loopback), so the shape is checked against iperf3 itself, not against netlab's own idea of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_no_traceback, invoke

from netlab.experiments.iperf3json import jitter_ms

iperf3 = pytest.importorskip("iperf3", reason="the iperf3 package is a test dependency: pip install -e '.[test]'")
DATA = Path(__file__).parent / "data"


def real(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"iperf3-{name}.json").read_text())


def read(document: dict[str, Any]) -> Any:
    """The consumer's reading of a document: TestResult takes the JSON text, as from libiperf."""
    result = iperf3.TestResult(json.dumps(document))
    assert result.error is None, result.error  # an "error" key, even null, is a failure to it
    return result


def same_keys(ours: dict[str, Any], theirs: dict[str, Any], where: str) -> None:
    missing = set(theirs) - set(ours)
    assert not missing, f"{where}: iperf3 has {sorted(missing)}, netlab has not"


def assert_iperf3_shape(ours: dict[str, Any], reference: dict[str, Any]) -> None:
    """Every key iperf3 writes at the places consumers read, netlab writes too."""
    for part in ("start", "end"):
        same_keys(ours[part], {k: v for k, v in reference[part].items()
                               if k in ("connected", "version", "system_info", "timestamp", "test_start", "streams",
                                        "sum_sent", "sum_received", "sum", "cpu_utilization_percent")}, part)
    same_keys(ours["start"]["test_start"], {k: 0 for k in reference["start"]["test_start"] if k != "target_bitrate"},
              "start.test_start")
    same_keys(ours["start"]["connected"][0], reference["start"]["connected"][0], "start.connected[0]")
    same_keys(ours["start"]["timestamp"], reference["start"]["timestamp"], "start.timestamp")
    for name in ("sum_sent", "sum_received", "sum", "cpu_utilization_percent"):
        if name in reference["end"]:
            theirs = {k: v for k, v in reference["end"][name].items() if k not in ("retransmits",)}
            same_keys(ours["end"][name], theirs, f"end.{name}")
    wanted = {k for k in reference["intervals"][0]["streams"][0]
              if k in ("socket", "start", "end", "seconds", "bytes", "bits_per_second", "omitted", "sender")}
    for interval in ours["intervals"]:
        assert set(interval) == {"streams", "sum"}
        for stream in interval["streams"]:
            same_keys(stream, dict.fromkeys(wanted), "intervals[].streams[]")
        same_keys(interval["sum"], dict.fromkeys(wanted - {"socket"}), "intervals[].sum")
    for stream in ours["end"]["streams"]:
        for side in ("sender", "receiver"):
            same_keys(stream[side], dict.fromkeys(("socket", "start", "end", "seconds", "bytes", "bits_per_second",
                                                   "sender")), f"end.streams[].{side}")
    assert "error" not in ours  # iperf3 writes it only on failure


def test_the_consumer_reads_real_iperf3_output() -> None:
    """The reference files are what the consumer was written for (so a failure below is netlab's)."""
    tcp, udp = read(real("tcp")), read(real("udp"))
    assert tcp.protocol == "TCP" and tcp.received_bytes == real("tcp")["end"]["sum_received"]["bytes"]
    assert udp.protocol == "UDP" and udp.packets == 77 and udp.lost_packets == 0


def test_jitter_is_rfc3550() -> None:
    assert jitter_ms([]) is None and jitter_ms([100.0]) == 0.0
    # D = 100 µs each step: J moves a sixteenth of the way to 100 µs each time
    expected = 0.0
    for _ in range(3):
        expected += (100 - expected) / 16
    assert jitter_ms([100.0, 200.0, 100.0, 200.0]) == pytest.approx(expected / 1000)


def compare_json(*args: str) -> dict[str, Any]:
    result = invoke(["compare", "-n", "30", "--json", *args])
    assert result.exit_code == 0, result.output
    assert_no_traceback(result)
    return json.loads(result.stdout)


@pytest.mark.parametrize("transport", ["tcp", "tcp6", "unix"])
def test_compare_on_a_stream_reads_as_iperf3_tcp(transport: str) -> None:
    document = compare_json("--transports", transport, "--service", "echo", "--size", "100")
    assert_iperf3_shape(document, real("tcp"))
    consumer = read(document)
    ours = document["end"]["results"][0]
    assert consumer.protocol == ("TCP" if transport != "unix" else "UNIX")
    assert consumer.num_streams == 1 and consumer.blksize == 100
    assert consumer.remote_port == (None if transport == "unix" else int(ours["address"].rsplit(":", 1)[1]))
    # what went out (requests, framing included) and what came back verified (30 echoes of 100 bytes)
    assert document["end"]["sum_sent"]["bytes"] == ours["sent_bytes"] >= 30 * 100
    assert document["end"]["sum_received"]["bytes"] == 30 * 100
    assert document["end"]["sum_received"]["bits_per_second"] == pytest.approx(
        30 * 100 * 8 / document["end"]["sum_received"]["seconds"])
    if transport != "unix":
        assert consumer.received_bytes == 30 * 100 and consumer.sent_bytes == ours["sent_bytes"]
        assert consumer.received_Mbps == pytest.approx(consumer.received_bps / 1e6)
    assert 0 <= consumer.local_cpu_total and consumer.local_cpu_total == consumer.remote_cpu_total
    streams = [s for i in document["intervals"] for s in i["streams"]]
    assert sum(s["bytes"] for s in streams) == 30 * 100
    assert sum(s["netlab"]["sent"] for s in streams) == ours["sent"] == 30


def test_compare_on_udp_reads_as_iperf3_udp_with_its_loss() -> None:
    document = compare_json("--transports", "udp", "--service", "echo", "--loss", "0.2/0", "--seed", "5",
                            "-n", "200", "--rate", "2000")
    assert_iperf3_shape(document, real("udp"))
    consumer = read(document)
    ours = document["end"]["results"][0]
    assert consumer.protocol == "UDP"
    assert consumer.packets == ours["sent"] == 200
    assert consumer.lost_packets == ours["lost"] > 0
    assert consumer.lost_percent == pytest.approx(100 * ours["lost"] / 200)
    assert consumer.jitter_ms is not None and consumer.jitter_ms >= 0
    assert consumer.bytes == ours["delivered"] * 64
    udp = document["end"]["streams"][0]["udp"]
    assert udp["lost_packets"] == ours["lost"] and udp["out_of_order"] == ours["reordered"]


def test_compare_of_every_transport_is_one_test_of_many_streams() -> None:
    document = compare_json("--service", "sum", "-n", "10")
    assert_iperf3_shape(document, real("udp"))
    consumer = read(document)
    results = document["end"]["results"]
    assert consumer.protocol == "MIXED" and consumer.num_streams == len(results)
    assert [c["netlab"]["transport"] for c in document["start"]["connected"]] == [r["transport"] for r in results]
    assert document["end"]["sum_sent"]["packets"] == sum(r["sent"] for r in results)
    assert document["end"]["sum"]["packets"] == sum(r["sent"] for r in results)
    # runs made one after another: their times follow each other, the sum's seconds add up
    streams = [s["sender"] for s in document["end"]["streams"]]
    assert all(a["end"] <= b["start"] + 1e-3 for a, b in zip(streams, streams[1:]))
    assert document["end"]["sum_sent"]["seconds"] == pytest.approx(sum(s["seconds"] for s in streams), rel=1e-6)
    # each interval holds the streams running in it, and its sum adds them
    for interval in document["intervals"]:
        assert interval["sum"]["bytes"] == sum(s["bytes"] for s in interval["streams"])


@pytest.mark.process
def test_bench_reads_as_iperf3(tmp_path: Path) -> None:
    result = invoke(["bench", "datagrams", "--transports", "udp", "--baselines", "trio", "--duration", "0.2",
                     "--warmup", "0", "--repeats", "2", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert_iperf3_shape(document, real("udp"))
    consumer = read(document)
    assert consumer.protocol == "UDP" and consumer.duration == 0.2 and consumer.omit == 0
    mine = [r for r in document["end"]["runs"] if r["server"] == "netlab"]
    assert consumer.packets == sum(r["result"]["sent"] for r in mine)
    assert consumer.lost_packets == sum(r["result"]["dropped"] for r in mine)
    assert consumer.seconds == pytest.approx(sum(r["result"]["elapsed"] for r in mine))
    assert len(document["intervals"]) == len(document["end"]["runs"]) == 4  # one interval per run
    assert consumer.remote_cpu_total > 0  # the server's CPU, read from /proc over each window
    assert consumer.local_cpu_total == pytest.approx(consumer.local_cpu_user + consumer.local_cpu_system)


@pytest.mark.process
def test_bench_stream_reads_as_iperf3_tcp() -> None:
    result = invoke(["bench", "stream", "--transports", "tcp", "--baselines", "none", "--no-iperf3", "--duration",
                     "0.2", "--warmup", "0", "--repeats", "1", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert_iperf3_shape(document, real("tcp"))
    consumer = read(document)
    (row,) = [r for r in document["end"]["results"] if r["server"] == "netlab"]
    assert consumer.protocol == "TCP"
    assert consumer.received_bytes == consumer.sent_bytes == row["details"]["bytes"] > 0
    assert consumer.received_MB_s == pytest.approx(consumer.received_bps / 8 / 1024 / 1024)
