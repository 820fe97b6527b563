"""netlab trace: decoding, the ladder's content from known conversations, the pcap, the bounds,
and that nothing escapes the namespace.

The ladder is checked by what it says (which packets, in which order, from which side, with
which numbers and bytes), never by its exact layout. Tests that capture need a private
network namespace: as root, or where the kernel allows unprivileged user namespaces
(``unshare -rn true`` works); elsewhere they skip and say so.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import dpkt
import pytest
from helpers import assert_no_traceback, invoke

from netlab import netns
from netlab.errors import PrivilegeError
from netlab.trace import Frame, Ladder, Limits, TraceSettings, decode, read_pcap, run_trace, write_pcap
from netlab.trace.packets import preview

NO_NAMESPACES = netns.isolation().detail if netns.isolation().mode is None else None
needs_namespace = pytest.mark.skipif(
    NO_NAMESPACES is not None,
    reason=f"capturing needs a private network namespace ({NO_NAMESPACES}): run as root, or allow unprivileged "
           f"user namespaces (sysctl kernel.unprivileged_userns_clone=1)")


# -- frames made by hand: decoding and the ladder, no namespace needed ------------------------------


def tcp_frame(src: tuple[str, int], dst: tuple[str, int], flags: int, seq: int, ack: int = 0,
              data: bytes = b"") -> bytes:
    segment = dpkt.tcp.TCP(sport=src[1], dport=dst[1], seq=seq, ack=ack, flags=flags, win=65535, data=data)
    ip = dpkt.ip.IP(src=socket.inet_aton(src[0]), dst=socket.inet_aton(dst[0]), p=6, data=segment)
    ip.len = len(bytes(ip))
    return bytes(dpkt.ethernet.Ethernet(type=dpkt.ethernet.ETH_TYPE_IP, data=ip))


def udp_frame(src: tuple[str, int], dst: tuple[str, int], data: bytes) -> bytes:
    datagram = dpkt.udp.UDP(sport=src[1], dport=dst[1], data=data)
    datagram.ulen = len(bytes(datagram))
    ip = dpkt.ip.IP(src=socket.inet_aton(src[0]), dst=socket.inet_aton(dst[0]), p=17, data=datagram)
    ip.len = len(bytes(ip))
    return bytes(dpkt.ethernet.Ethernet(type=dpkt.ethernet.ETH_TYPE_IP, data=ip))


def icmp_unreachable(quoted_ip: bytes) -> bytes:
    message = dpkt.icmp.ICMP(type=3, code=3, data=dpkt.icmp.ICMP.Unreach(data=quoted_ip))
    ip = dpkt.ip.IP(src=socket.inet_aton("127.0.0.1"), dst=socket.inet_aton("127.0.0.1"), p=1, data=message)
    ip.len = len(bytes(ip))
    return bytes(dpkt.ethernet.Ethernet(type=dpkt.ethernet.ETH_TYPE_IP, data=ip))


C, S = ("127.0.0.1", 40000), ("127.0.0.1", 7000)
SYN, ACK, PSH, FIN = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_PUSH, dpkt.tcp.TH_FIN


def request_reply(isn_c: int = 1000, isn_s: int = 5000, lose_request: bool = False) -> list[bytes]:
    """A request/reply over TCP as it goes on a wire; with `lose_request`, the request is sent twice
    (the first copy was lost: no ACK came for it)."""
    frames = [tcp_frame(C, S, SYN, isn_c), tcp_frame(S, C, SYN | ACK, isn_s, isn_c + 1),
              tcp_frame(C, S, ACK, isn_c + 1, isn_s + 1),
              tcp_frame(C, S, PSH | ACK, isn_c + 1, isn_s + 1, b"2 3\n")]
    if lose_request:
        frames.append(tcp_frame(C, S, PSH | ACK, isn_c + 1, isn_s + 1, b"2 3\n"))
    frames += [tcp_frame(S, C, PSH | ACK, isn_s + 1, isn_c + 5, b"5\n"), tcp_frame(C, S, ACK, isn_c + 5, isn_s + 3),
               tcp_frame(C, S, FIN | ACK, isn_c + 5, isn_s + 3), tcp_frame(S, C, FIN | ACK, isn_s + 3, isn_c + 6),
               tcp_frame(C, S, ACK, isn_c + 6, isn_s + 4)]
    return frames


def ladder_of(frames: list[bytes], drops: bool = False) -> Ladder:
    return Ladder([decode(f, 100.0 + i * 0.001) for i, f in enumerate(frames)], drops=drops)


def test_a_tcp_conversation_in_relative_numbers() -> None:
    ladder = ladder_of(request_reply())
    (t1,) = ladder.conversations
    assert t1.tag == "T1" and t1.initiator == C and t1.responder == S
    rows = ladder.rows
    assert [r.label() for r in rows[:3]] == ["SYN", "SYN ACK", "ACK"]
    assert [r.rightward for r in rows[:3]] == [True, False, True]
    assert (rows[0].rel_seq, rows[1].rel_seq, rows[1].rel_ack) == (0, 0, 1)  # Wireshark's relative numbers
    request, reply = rows[3], rows[4]
    assert request.rel_seq == 1 and request.packet.payload == b"2 3\n" and request.rightward
    assert reply.rel_seq == 1 and reply.rel_ack == 5 and reply.packet.payload == b"5\n" and not reply.rightward
    assert '"2 3\\n"' in request.detail() and "seq 1:5" in request.detail()
    facts = t1.facts()
    assert facts["handshake"] == [1, 2, 3]
    assert facts["data_from_initiator"] == {"segments": 1, "bytes": 4, "packets": [4]}
    assert facts["fin"] == ["initiator", "responder"] and facts["time_wait"] == "initiator"
    assert facts["lost"] == [] and facts["retransmissions"] == []


def test_a_retransmission_marks_the_first_copy_lost_where_packets_can_be_dropped() -> None:
    ladder = ladder_of(request_reply(lose_request=True), drops=True)
    first, again = ladder.rows[3], ladder.rows[4]
    assert again.retransmission_of == first.n and first.lost and not again.lost
    assert "LOST" in first.detail() and f"again (#{first.n})" in again.detail()
    assert "✗" in ladder.line(first.n) and "✗" not in ladder.line(again.n)  # drawn where it would have arrived


def test_without_a_loss_rule_a_retransmission_is_not_called_a_loss() -> None:
    ladder = ladder_of(request_reply(lose_request=True))  # on loopback: a tail loss probe, a slow ACK
    first, again = ladder.rows[3], ladder.rows[4]
    assert again.retransmission_of == first.n and not first.lost
    assert "LOST" not in first.detail() and "not acknowledged in time" in first.detail()


def test_a_lost_ack_is_blamed_instead_of_the_segment_it_acknowledged() -> None:
    frames = request_reply()
    acked = tcp_frame(S, C, ACK, 5001, 1005)  # the server had the request...
    ladder = ladder_of(frames[:4] + [acked, frames[3]] + frames[4:], drops=True)  # ...the client sent it again
    ack_row, again = ladder.rows[4], ladder.rows[5]
    assert again.retransmission_of == 4 and ack_row.lost and not ladder.rows[3].lost


def test_a_new_syn_after_the_close_is_a_new_connection() -> None:
    ladder = ladder_of(request_reply() + request_reply(isn_c=9000, isn_s=12000))
    assert [c.tag for c in ladder.conversations] == ["T1", "T2"]
    assert ladder.rows[9].conversation is ladder.conversations[1] and ladder.rows[9].rel_seq == 0


def test_udp_and_the_icmp_that_answers_it_share_a_flow() -> None:
    datagram = udp_frame(C, ("127.0.0.1", 9), b"anyone there?")
    quoted = bytes(dpkt.ethernet.Ethernet(datagram).data)[:28]
    ladder = ladder_of([datagram, icmp_unreachable(quoted)])
    (u1,) = ladder.conversations
    sent, answer = ladder.rows
    assert u1.proto == "udp" and sent.label() == "UDP 13" and sent.rightward
    assert answer.conversation is u1 and not answer.rightward
    assert answer.label() == "ICMP port unreachable" and "for udp to :9" in answer.detail()
    assert u1.facts()["icmp"] == [{"n": 2, "message": "port unreachable"}]


def test_ladder_lines_fit_and_payload_is_escaped() -> None:
    frames = request_reply() + [udp_frame(C, S, b"\x00\x1b[31mred" + b"x" * 200)]
    for width in (60, 80):
        assert all(len(line) <= width for line in ladder_of(frames).lines(width))
    assert preview(b"\x1b[31m\n") == '"\\x1b[31m\\n"'  # a terminal escape is shown, never sent
    assert preview(b"a" * 20, 4) == '"aaaa…"'


@pytest.mark.process
def test_pcap_round_trip(tmp_path: Path) -> None:
    frames = [Frame(100.0 + i / 1000, "lo", data, True) for i, data in enumerate(request_reply())]
    path = tmp_path / "t.pcap"
    assert write_pcap(path, frames) == len(frames)
    back = read_pcap(path)
    assert [data for _, data in back] == [f.data for f in frames]
    assert [round(ts, 6) for ts, _ in back] == [round(f.time, 6) for f in frames]
    if shutil.which("tcpdump"):
        shown = subprocess.run(["tcpdump", "-nn", "-r", str(path)], capture_output=True, text=True, timeout=60)
        lines = shown.stdout.splitlines()
        assert len(lines) == len(frames), shown
        assert "Flags [S]" in lines[0] and "Flags [P.]" in lines[3] and "length 4" in lines[3]


def test_without_namespaces_trace_says_what_it_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    import netlab.trace.run as run

    monkeypatch.setattr(run, "isolation", lambda: netns.Isolation(None, "not root, and no user namespaces here"))
    with pytest.raises(PrivilegeError, match="private network namespace.*not root"):
        run_trace(TraceSettings(["true"]))
    result = invoke(["trace", "--", "true"])
    assert result.exit_code == 1 and result.stderr.startswith("netlab: error: netlab trace captures inside")
    assert_no_traceback(result)


# -- real captures --------------------------------------------------------------------------------

INET = {"tcp": "tcp:127.0.0.1:7000", "tcp6": "tcp6:[::1]:7000", "tls": "tls:127.0.0.1:7000",
        "udp": "udp:127.0.0.1:7000", "udp6": "udp6:[::1]:7000"}


def send_traced(transport: str, **limits: Any) -> Any:
    address = INET[transport]
    client = address + ("?insecure=1" if transport == "tls" else "")
    return run_trace(TraceSettings(["netlab", "send", "--transport", client, "2 3"], serve=[address],
                                   limits=Limits(**limits)))


@needs_namespace
@pytest.mark.parametrize("transport", list(INET))
@pytest.mark.process
def test_a_request_and_reply_on_every_inet_transport(transport: str) -> None:
    result = send_traced(transport)
    assert result.exit_code == 0 and result.output == b"5\n"
    ladder = result.ladder()
    host = "::1" if transport.endswith("6") else "127.0.0.1"
    assert all(p.src == host == p.dst for p in ladder.packets)
    (conversation,) = [c for c in ladder.conversations if c.responder == (host, 7000)]
    rows = conversation.rows
    sent = [r for r in rows if r.rightward and r.packet.payload_len]
    back = [r for r in rows if not r.rightward and r.packet.payload_len]
    if transport.startswith("udp"):
        assert conversation.proto == "udp"
        assert [r.packet.payload.rstrip(b"\n") for r in sent] == [b"2 3"]
        assert [r.packet.payload.rstrip(b"\n") for r in back] == [b"5"]
        assert sent[0].n < back[0].n
        return
    facts = conversation.facts()
    assert conversation.proto == "tcp" and facts["handshake"] == [rows[0].n, rows[1].n, rows[2].n]
    assert [r.label() for r in rows[:3]] == ["SYN", "SYN ACK", "ACK"]
    if transport == "tls":  # the handshake's records, then the request, all of it ciphertext
        assert len(sent) >= 2 and len(back) >= 1
        assert not any(b"2 3" in r.packet.payload for r in rows)
    else:
        assert [r.packet.payload for r in sent] == [b"2 3\n"] and [r.packet.payload for r in back] == [b"5\n"]
        assert sent[0].rel_seq == 1 and back[0].rel_ack == 5  # relative to each side's SYN
    ends = [r for r in rows if "FIN" in r.packet.flags or "RST" in r.packet.flags]
    assert "FIN" in ends[0].packet.flags
    if transport == "tls":
        # the client's FIN; the server's close_notify comes after it, unread, so the client's kernel resets
        assert "TLS handshake" in sent[0].detail() and "TLS application data" in back[-1].detail()
        assert "RST" in ends[-1].packet.flags or {r.rightward for r in ends} == {True, False}
        assert rows[2].n < sent[0].n < ends[0].n
    else:
        assert [r.label() for r in ends if r.retransmission_of is None] == ["FIN ACK", "FIN ACK"]
        assert {r.rightward for r in ends} == {True, False}  # each side closes
        assert rows[2].n < sent[0].n < back[-1].n < ends[0].n  # handshake, request, reply, close
    assert all(len(line) <= 80 for line in ladder.lines(80))


@needs_namespace
@pytest.mark.process
def test_the_done_when_command_draws_it_all_and_the_pcap_holds_the_same(tmp_path: Path) -> None:
    pcap = tmp_path / "t.pcap"
    result = invoke(["trace", "--serve", "tcp:127.0.0.1:7000", "--pcap", str(pcap), "--",
                     "netlab", "send", "--transport", "tcp:127.0.0.1:7000", "2 3"])
    assert result.exit_code == 0, result.output
    assert_no_traceback(result)
    lines = result.stdout.splitlines()
    assert lines[0] == "5"
    ladder = [line for line in lines if "│" in line]
    assert all(len(line) <= 80 for line in lines)
    said = [next(i for i, line in enumerate(ladder) if what in line)
            for what in (" SYN ", " SYN ACK ", '"2 3\\n"', '"5\\n"', " FIN ACK ")]
    assert said == sorted(said)  # in the order they happened
    captured = read_pcap(pcap)
    assert len(captured) == len(ladder)
    if shutil.which("tcpdump"):
        shown = subprocess.run(["tcpdump", "-nn", "-r", str(pcap)], capture_output=True, text=True, timeout=60)
        assert len(shown.stdout.splitlines()) == len(ladder)
        assert "Flags [S]," in shown.stdout and "Flags [F.]," in shown.stdout and "length 4" in shown.stdout


@needs_namespace
@pytest.mark.process
def test_json_has_one_object_per_packet_and_the_plot_is_drawn(tmp_path: Path) -> None:
    svg = tmp_path / "t.svg"
    result = invoke(["trace", "--json", "--plot", str(svg), "--serve", "udp:127.0.0.1:7000", "--",
                     "send", "--transport", "udp:127.0.0.1:7000", "2 3"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["output"] == "5\n" and document["exit_code"] == 0
    packets = document["packets"]
    assert [p["n"] for p in packets] == list(range(1, len(packets) + 1))
    assert [(p["proto"], p["direction"], p["payload"].rstrip("\n")) for p in packets] == \
        [("udp", "→", "2 3"), ("udp", "←", "5")]
    assert document["conversations"][0]["datagrams_from_initiator"] == [1]
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()


@needs_namespace
@pytest.mark.process
def test_unix_sockets_never_reach_the_network_stack_and_the_trace_says_so(tmp_path: Path) -> None:
    path = f"/tmp/nl-trace-{uuid.uuid4().hex[:8]}.sock"
    result = run_trace(TraceSettings(["netlab", "send", "--transport", f"unix:{path}", "2 3"],
                                     serve=[f"unix:{path}"]))
    assert result.exit_code == 0 and result.output == b"5\n"
    assert result.frames == [] and "unix sockets never reach the network stack" in result.notes()[0]
    states = {(e["path"], e["state"]) for e in result.unix}
    assert (path, "listening") in states  # the server's socket, as the kernel listed it
    assert (path, "closed") in states  # and its end, when the server stopped


@needs_namespace
@pytest.mark.process
def test_nothing_escapes_the_namespace() -> None:
    marker = f"netlab-escape-{uuid.uuid4().hex[:8]}"
    with socket.socket() as listener, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as inbox:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        inbox.bind(("127.0.0.1", 0))
        tcp_port, udp_port = listener.getsockname()[1], inbox.getsockname()[1]
        stop = threading.Event()

        def host_chatter() -> None:  # the host's own loopback traffic, all the while
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as chatter:
                while not stop.wait(0.01):
                    chatter.sendto(b"host", ("127.0.0.1", udp_port))

        thread = threading.Thread(target=host_chatter)
        thread.start()
        script = (f"import socket, subprocess\n"
                  f"subprocess.Popen(['sleep', '300', '{marker}'], start_new_session=True)\n"
                  f"u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b'{marker}', ('127.0.0.1', {udp_port}))\n"
                  f"try:\n    socket.create_connection(('127.0.0.1', {tcp_port}), timeout=2); print('connected')\n"
                  f"except OSError as e:\n    print('refused' if isinstance(e, ConnectionRefusedError) else e)\n")
        try:
            result = run_trace(TraceSettings([sys.executable, "-c", script]))
        finally:
            stop.set()
            thread.join()
        assert result.output.strip() == b"refused"  # the host's listener is not there, inside
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()
        inbox.setblocking(False)
        received = []
        while True:
            try:
                received.append(inbox.recv(100))
            except BlockingIOError:
                break
        assert received and set(received) == {b"host"}  # the host's chatter only; not the trace's datagram
    ladder = result.ladder()
    assert ladder.rows  # the trace's own datagram and refused SYN were captured...
    assert not any(r.packet.payload == b"host" for r in ladder.rows)  # ...and none of the host's traffic
    assert any(r.packet.payload == marker.encode() for r in ladder.rows)
    assert any("RST" in r.packet.flags for r in ladder.rows)
    leftover = []  # what the command started with setsid died with the namespace
    for entry in Path("/proc").iterdir():
        try:
            if marker.encode() in (entry / "cmdline").read_bytes():
                leftover.append(entry.name)
        except OSError:
            continue
    assert leftover == []


@needs_namespace
@pytest.mark.process
def test_the_capture_stops_at_its_limits() -> None:
    result = send_traced("tcp", packets=4)
    assert result.capture["stopped_by"] == "packets" and len(result.frames) == 4
    assert any("stopped at its limit of 4 packets" in note for note in result.notes())
    started = time.monotonic()
    slow = run_trace(TraceSettings(["sleep", "300"], limits=Limits(seconds=1)))
    assert slow.timed_out and slow.exit_code is None
    assert time.monotonic() - started < 120  # bounded by the limit (generously), not by the command
