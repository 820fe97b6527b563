"""`netlab experiment run NAME --trace`: findings that cite the packets they rest on; and the
close experiment (who closes first, whose end is in TIME_WAIT), with and without packets.

What is checked is what each finding says about which packets (a RST from the refused port,
an ICMP port unreachable quoting the datagram, a segment sent again after the loss rule
dropped it, the fragments of the largest datagram, ...), looked up in the ladder by the
numbers the finding cites; never the wording. Tests that capture need a private network
namespace (root, or unprivileged user namespaces); loss --kernel needs kernel mode (root
and nftables). Elsewhere they skip and say how to enable them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import trio
from helpers import assert_no_traceback, invoke

from netlab import netns
from netlab.experiments import EXPERIMENTS, ExperimentOptions
from netlab.experiments import kernel as kernel_mode
from netlab.trace import read_pcap
from netlab.trace.lessons import Lesson, TracedExperiment, trace_experiment

NO_NAMESPACES = netns.isolation().detail if netns.isolation().mode is None else None
needs_namespace = pytest.mark.skipif(
    NO_NAMESPACES is not None,
    reason=f"capturing needs a private network namespace ({NO_NAMESPACES}): run as root, or allow unprivileged "
           f"user namespaces (sysctl kernel.unprivileged_userns_clone=1)")
needs_kernel = pytest.mark.skipif(kernel_mode.kernel_mode_available() is not None, reason=kernel_mode.SKIP_REASON)


def traced(name: str, **options: object) -> TracedExperiment:
    return trio.run(trace_experiment, name, ExperimentOptions(**options))  # type: ignore[arg-type]


def lesson(found: TracedExperiment, start: str) -> Lesson:
    return next(lesson for lesson in found.lessons if lesson.text.startswith(start))


def cited(found: TracedExperiment, item: Lesson) -> list:
    """The rows a lesson cites, and check that its text names exactly those numbers (or a prefix)."""
    rows = found.ladders[item.ladder].rows
    named = [int(n) for n in re.findall(r"#(\d+)", item.text)]
    assert set(named) <= set(item.packets), (named, item.packets)
    return [rows[n - 1] for n in item.packets]


# -- close, without packets --------------------------------------------------------------------------


def test_close_the_side_that_closes_first_keeps_time_wait() -> None:
    result = trio.run(EXPERIMENTS["close"].run, ExperimentOptions())
    client, server, reused = (result.facts[k] for k in ("client", "server", "server_reuseaddr"))
    assert client["time_wait"] == ["client"] and client["rebind"] == "bound"
    assert server["time_wait"] == ["server"] and server["rebind"] == "EADDRINUSE"
    assert server["rebind_reuseaddr"] == "EADDRINUSE"  # the old listener did not allow it
    assert reused["time_wait"] == ["server"] and reused["rebind_reuseaddr"] == "bound"
    assert any("fresh network namespace" in f for f in result.findings)


# -- --trace --------------------------------------------------------------------------------------------


@needs_namespace
@pytest.mark.process
def test_refused_shows_the_rst_and_the_icmp_port_unreachable() -> None:
    found = traced("refused", timeout=0.3)
    for case in ("tcp", "tcp6"):
        syn, reset = cited(found, lesson(found, f"{case}:"))
        assert syn.packet.flags == ["SYN"] and syn.rightward
        assert "RST" in reset.packet.flags and not reset.rightward and reset.conversation is syn.conversation
        port = int(found.result.facts[case]["address"].rsplit(":", 1)[1])
        assert syn.packet.dport == port == reset.packet.sport
    for case, proto in (("udp-unconnected", "icmp"), ("udp-connected", "icmp"), ("udp6-connected", "icmp6")):
        sent, icmp = cited(found, lesson(found, f"{case}:"))
        assert sent.packet.proto == "udp" and icmp.packet.proto == proto and icmp.packet.icmp_text == "port unreachable"
        assert icmp.packet.quoted["dport"] == sent.packet.dport and icmp.conversation is sent.conversation


@needs_namespace
@pytest.mark.process
def test_boundaries_cites_the_segments_and_datagrams_of_the_ten_sends() -> None:
    found = traced("boundaries")
    tcp = cited(found, lesson(found, "tcp:"))
    assert b"".join(r.packet.payload for r in tcp) == b"".join(bytes([65 + i]) * 10 for i in range(10))
    assert all(r.packet.proto == "tcp" and r.rightward for r in tcp)
    udp = cited(found, lesson(found, "udp:"))
    assert [r.packet.payload for r in udp] == [bytes([65 + i]) * 10 for i in range(10)]


@needs_namespace
@pytest.mark.process
def test_size_limits_shows_the_fragments_of_the_largest_datagram() -> None:
    found = traced("size-limits")
    for name in ("udp", "udp6"):
        rows = cited(found, lesson(found, f"{name}:"))
        first, last = rows[0], rows[-1]
        assert first.packet.proto == "udp" and first.packet.payload_len == found.result.facts["limits"][name]["largest"]
        assert first.packet.fragment == {"id": first.packet.ip_id, "offset": 0, "more": True}
        assert last.packet.proto == "fragment" and last.packet.fragment["more"] is False
        assert last.packet.ip_id == first.packet.ip_id and last.rightward and last.conversation is first.conversation


@needs_namespace
@pytest.mark.process
def test_framing_shows_the_request_acknowledged_into_the_receive_buffer() -> None:
    found = traced("framing")
    request, ack, closed, *after = cited(found, lesson(found, "the naive client's request"))
    assert request.packet.payload == b"2 3" and request.rightward
    assert not ack.rightward and ack.rel_ack == 4 and ack.packet.payload_len == 0  # acknowledged, not answered
    assert "FIN" in closed.packet.flags and closed.rightward
    assert not any(r.packet.payload_len for r in request.conversation.rows if not r.rightward and r.n < closed.n)
    request, reply = cited(found, lesson(found, "under quiet framing"))
    assert reply.packet.payload == b"5\n" and reply.packet.time - request.packet.time >= 0.2


@needs_namespace
@pytest.mark.process
def test_close_cites_the_fins_in_order_and_the_pcap_holds_them(tmp_path: Path) -> None:
    pcap = tmp_path / "close.pcap"
    result = invoke(["experiment", "run", "close", "--trace", "--json", "--pcap", str(pcap)])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    packets = document["trace"]["ladders"][""]["packets"]
    for item, first in zip(document["trace"]["lessons"], ("client", "server", "server")):
        fins = [packets[n - 1] for n in item["packets"] if "FIN" in packets[n - 1]["flags"]]
        assert [p["direction"] for p in fins] == (["→", "←"] if first == "client" else ["←", "→"])
    assert len(read_pcap(pcap)) == len(packets)


@needs_kernel
@pytest.mark.process
def test_loss_kernel_shows_a_retransmission_of_a_dropped_segment() -> None:
    found = traced("loss", kernel=True, messages=300)
    item = lesson(found, "tcp: the loss rule dropped")
    rows = cited(found, item)
    again = [r for r in rows if r.retransmission_of is not None]
    assert again, item.text
    original = found.ladders["tcp"].rows[again[0].retransmission_of - 1]
    assert original.packet.seq == again[0].packet.seq and original.source == again[0].source
    assert any(r.lost for r in rows)  # the dropped one (or the ACK of it), drawn where it was sent
    assert not found.ladders["unix-dgram"].rows and not found.ladders["unix-seq"].rows


def test_trace_is_refused_where_there_is_nothing_to_show() -> None:
    result = invoke(["experiment", "run", "addressing", "--trace"])
    assert result.exit_code == 2 and "--trace is for" in result.stderr
    assert_no_traceback(result)
    result = invoke(["experiment", "run", "loss", "--trace"])
    assert result.exit_code == 2 and "needs --kernel" in result.stderr
    result = invoke(["experiment", "run", "close", "--pcap", "x.pcap"])
    assert result.exit_code == 2 and "--pcap goes with --trace" in result.stderr
