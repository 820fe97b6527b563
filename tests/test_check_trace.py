"""``netlab check --trace``: a failed case keeps the packets of its conversation: under the case
in the terminal, in --json, in the JUnit and Gradescope reports, and as a pcap beside them.

The ladder is checked by what it says (a TCP connection's SYN, the request's bytes, the
server's reply and its FIN), never by its layout. Tests that run a check need namespaces of
their own (root, or unprivileged user namespaces); the rest need nothing.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import dpkt
import pytest
from helpers import invoke

import netlab.cli.common
from netlab import render
from netlab.check import CheckReport, CheckSettings, check_server, check_usage, junit
from netlab.check import isolate
from netlab.check.grading import Rubric, gradescope
from netlab.check.packets import NOT_TRACED, ONE_CHECK, WIDTH, ladder_lines, pcap_files
from netlab.check.report import CaseResult
from netlab.check.view import check_report
from netlab.errors import UsageError
from netlab.trace import Frame, Frames, read_pcap
from netlab.trace.pcap import pcap_bytes

STUDENTS = Path(__file__).parent / "students"
#: reads once: a request in pieces gets ERR, then the server closes (framing.split fails)
SINGLE_RECV = f"{sys.executable} {STUDENTS / 'single_recv.py'}"
needs_isolation = pytest.mark.skipif(not isolate.isolation().available,
                                     reason=f"needs root or user namespaces ({isolate.isolation().detail})")


# -- frames made by hand: no namespace needed --------------------------------------------------------


def tcp_frame(src: int, dst: int, flags: int, seq: int, ack: int = 0, data: bytes = b"") -> bytes:
    segment = dpkt.tcp.TCP(sport=src, dport=dst, seq=seq, ack=ack, flags=flags, win=65535, data=data)
    ip = dpkt.ip.IP(src=socket.inet_aton("127.0.0.1"), dst=socket.inet_aton("127.0.0.1"), p=6, data=segment)
    ip.len = len(bytes(ip))
    return bytes(dpkt.ethernet.Ethernet(type=dpkt.ethernet.ETH_TYPE_IP, data=ip))


SYN, ACK, PSH, FIN, RST = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_PUSH, dpkt.tcp.TH_FIN, dpkt.tcp.TH_RST


def a_reset_conversation() -> Frames:
    """A client sends "12", the server answers nothing and resets."""
    frames = [tcp_frame(40000, 50000, SYN, 100), tcp_frame(50000, 40000, SYN | ACK, 900, 101),
              tcp_frame(40000, 50000, ACK, 101, 901), tcp_frame(40000, 50000, PSH | ACK, 101, 901, b"12"),
              tcp_frame(50000, 40000, RST | ACK, 901, 103)]
    return Frames([Frame(100.0 + i / 1000, "lo", data, True) for i, data in enumerate(frames)])


def test_the_ladder_of_a_case_names_its_packets_in_80_columns() -> None:
    lines = ladder_lines(a_reset_conversation())
    assert lines[0].startswith("T1 TCP connection 127.0.0.1:40000") and "127.0.0.1:50000" in lines[0]
    rows = [line for line in lines if re.match(r"\s+\d+\s", line)]
    assert len(rows) == 5
    assert "SYN" in rows[0] and "SYN ACK" in rows[1] and '"12"' in rows[3]
    assert "RST" in rows[4] and "◀" in rows[4]  # the server's, drawn from the right
    assert all(len(line) <= WIDTH for line in lines)


def test_no_packets_is_said_and_why() -> None:
    assert ladder_lines(Frames(), unix=True) == ("(no packets: unix sockets never reach the network stack)",)
    assert "no packets" in ladder_lines(Frames())[0]
    cut = ladder_lines(dataclasses.replace(a_reset_conversation(), stopped_by="packets"))
    assert cut[-1].startswith("(the capture stopped at its limit of packets")


def traced_report() -> CheckReport:
    frames = a_reset_conversation()
    report = CheckReport("python3 server.py", "sum", "assignment", "'{a} {b}\\n'", isolation="isolated: ...")
    report.cases = [CaseResult("connect", "connect", "pass", "accepted", 0.01),
                    CaseResult("framing.split", "framing", "fail", "the server reset the connection", 0.02,
                               ladder_lines(frames), pcap_bytes(frames.frames))]
    return report


def test_the_report_round_trips_with_its_packets_and_pcap() -> None:
    report = traced_report()
    data = json.loads(json.dumps(report.as_json()))
    assert "packets" not in data["cases"][0] and "pcap" not in data["cases"][0]  # a passed case keeps none
    assert data["cases"][1]["packets"] == list(report.cases[1].packets)
    back = CheckReport.from_json(data)
    assert back == report and back.cases[1].pcap == report.cases[1].pcap
    with pytest.raises(ValueError):
        CheckReport.from_json({**data, "cases": [{**data["cases"][1], "pcap": "not base64!"}]})


def test_the_terminal_shows_the_packets_under_the_failed_case() -> None:
    console = render.console(width=80)
    with console.capture() as captured:
        check_report(console, traced_report())
    text = captured.get()
    below = text[text.index("framing.split failed; its packets:"):]
    assert "T1 TCP connection" in below and "RST" in below
    assert text.index("its packets") < text.index("1 passed, 1 failed")
    assert all(len(line) <= 80 for line in text.splitlines())


def test_junit_and_gradescope_carry_the_packets_of_the_failed_case() -> None:
    report = traced_report()
    case = ET.fromstring(junit([report])).find(".//testcase[@name='framing.split']")
    assert case is not None and case.find("failure") is not None
    out = case.find("system-out")
    assert out is not None and out.text is not None and "RST" in out.text and "its packets:" in out.text
    tests = gradescope(report, Rubric())["tests"]
    assert isinstance(tests, list)
    failed = next(t for t in tests if str(t["name"]).startswith("framing.split"))
    assert "its packets:" in failed["output"] and "SYN ACK" in failed["output"]
    passed = next(t for t in tests if str(t["name"]).startswith("connect"))
    assert "packets" not in passed["output"]


def test_pcap_files_go_beside_each_report(tmp_path: Path) -> None:
    report = traced_report()
    found = pcap_files(report, "alice", [tmp_path, tmp_path / "gs", tmp_path])
    assert [path for path, _ in found] == [tmp_path / "alice.framing.split.pcap",
                                           tmp_path / "gs" / "alice.framing.split.pcap"]
    path, data = found[0]
    path.write_bytes(data)
    assert len(read_pcap(path)) == 5


# -- what --trace goes with ----------------------------------------------------------------------------


def test_trace_needs_the_namespaces_netlab_makes() -> None:
    with pytest.raises(UsageError, match="--no-namespaces"):
        check_usage(run="python3 s.py", trace=True, namespaces=False)
    with pytest.raises(UsageError, match="--run or --client"):
        check_usage(targets=["tcp:127.0.0.1:50000"], trace=True)
    assert check_usage(run="python3 s.py", trace=True) == "server"
    assert check_usage(client="python3 c.py", listen="tcp:127.0.0.1:50000", trace=True) == "client"
    result = invoke(["check", "--run", "python3 s.py", "--trace", "--no-namespaces"])
    assert result.exit_code == 2 and "--no-namespaces" in result.stderr


@pytest.mark.process
async def test_where_there_are_no_namespaces_the_report_says_no_packets_were_kept(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isolate, "_forced_off", ["off for this test"])
    report = await check_server(run=f"{SINGLE_RECV} 0",  # port 0: wherever the kernel puts it, on the host
                                settings=CheckSettings(timeout=2.0, only=("connect", "framing.split"), trace=True))
    assert report.isolation.startswith("not isolated") and report.isolation.endswith(NOT_TRACED)
    assert report.outcome("framing.split") == "fail"
    assert all(not case.packets and case.pcap is None for case in report.cases)


# -- a real check ---------------------------------------------------------------------------------------


@needs_isolation
@pytest.mark.process
def test_a_failed_case_shows_its_conversation_and_its_pcap_opens(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netlab.cli.common, "out", render.console(width=80))
    args = ["check", "--run", SINGLE_RECV, "--case", "connect", "--case", "framing.split", "--timeout", "2",
            "--trace", "--junit", str(tmp_path / "report.xml")]
    shown = invoke(args)
    assert shown.exit_code == 1, shown.output  # framing.split failed
    text = shown.stdout
    below = text[text.index("framing.split failed; its packets:"):]
    assert "T1 TCP connection" in below and "SYN" in below and "FIN" in below
    assert "connect failed" not in text  # a passed case keeps nothing
    assert all(len(line) <= 80 for line in text.splitlines())

    document = json.loads(invoke([*args, "--json"]).stdout)
    cases = {case["id"]: case for case in document["cases"]}
    assert "packets" not in cases["connect"]
    lines = cases["framing.split"]["packets"]
    rows = [line for line in lines if re.match(r"\s+\d+\s", line)]
    assert "SYN" in rows[0] and "▶" in rows[0]  # the checker connects
    assert any('"12"' in row and "▶" in row for row in rows)  # the first piece of the request
    assert any("ERR" in row and "◀" in row for row in rows)  # the answer to half a request
    assert any(("FIN" in row or "RST" in row) and "◀" in row for row in rows)  # then it closes

    pcap = tmp_path / f"{ONE_CHECK}.framing.split.pcap"
    assert pcap.is_file() and not (tmp_path / f"{ONE_CHECK}.connect.pcap").exists()
    assert len(read_pcap(pcap)) == len(rows)
    if shutil.which("tcpdump"):
        dumped = subprocess.run(["tcpdump", "-nn", "-r", str(pcap)], capture_output=True, text=True, timeout=60)
        assert dumped.returncode == 0, dumped.stderr
        assert len(dumped.stdout.splitlines()) == len(rows)
        assert "Flags [S]" in dumped.stdout and ("Flags [F." in dumped.stdout or "Flags [R" in dumped.stdout)


@needs_isolation
@pytest.mark.process
def test_a_folder_writes_each_submissions_pcap_beside_its_gradescope_report(tmp_path: Path) -> None:
    good, bad = tmp_path / "subs" / "good" / "server.py", tmp_path / "subs" / "bad" / "server.py"
    for path, source in ((good, "sum_server.py"), (bad, "single_recv.py")):
        path.parent.mkdir(parents=True)
        path.write_text((STUDENTS / source).read_text())
        (path.parent / "common.py").write_text((STUDENTS / "common.py").read_text())
    (tmp_path / "results").mkdir()
    result = invoke(["check", "--run", f"{sys.executable} {{}}", str(good), str(bad), "--case", "framing.split",
                     "--timeout", "2", "--trace", "--gradescope", str(tmp_path / "results" / "{}" / "results.json")])
    assert result.exit_code == 1, result.output
    assert (tmp_path / "results" / "bad" / "bad.framing.split.pcap").is_file()
    assert not list((tmp_path / "results" / "good").glob("*.pcap"))
    output = json.loads((tmp_path / "results" / "bad" / "results.json").read_text())["tests"][0]["output"]
    assert "its packets:" in output and "SYN" in output
