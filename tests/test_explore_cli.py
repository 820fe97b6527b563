"""The exploration commands from the command line: host, resolve, constants, raw, addr explain.

Sync tests with typer's CliRunner, plus real `python -m netlab` processes where a command
has to run while the test talks to it (servers, `raw --listen`). Loopback only.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import signal
import socket
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from netlab.cli import app
from netlab.transports import parse_address

runner = CliRunner()

HAVE_IPV6 = socket.has_ipv6 and os.path.exists("/proc/net/if_inet6")


def run(*args: str, input: str | None = None):
    return runner.invoke(app, list(args), input=input)


def assert_one_line_error(result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("netlab: error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def http_server(tmp_path):
    """A ThreadingHTTPServer on 127.0.0.1, an ephemeral port, serving an empty directory."""
    (tmp_path / "index.html").write_text("<h1>netlab</h1>\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


# -- every command: an example in --help, and JSON that parses ---------------------------


@pytest.mark.parametrize("command", [["host"], ["resolve"], ["constants"], ["raw"], ["addr", "explain"]])
def test_every_command_shows_an_example(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Example: netlab " + " ".join(command) in " ".join(result.stdout.split())


def test_addr_is_a_group_with_explain() -> None:
    result = run("addr", "--help")
    assert result.exit_code == 0 and "explain" in result.stdout
    assert "Example: netlab addr explain" in result.stdout


@pytest.mark.parametrize("args", [
    ["host"], ["resolve", "127.0.0.1", "80"], ["resolve", "/tmp/x.sock", "--family", "unix"],
    ["constants", "AF_"], ["constants"], ["addr", "explain", "tcp:127.0.0.1:0"],
    ["addr", "explain", "unix-dgram:@netlab-json-test"],
])
@pytest.mark.process
def test_json_parses(args: list[str]) -> None:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)


def test_raw_json_parses(http_server: int) -> None:
    result = run("raw", f"tcp:127.0.0.1:{http_server}", "--send", r"GET / HTTP/1.0\r\n\r\n", "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["ended"] == "peer closed"
    assert document["text"].startswith("HTTP/1.0 200")
    assert bytes.fromhex(document["hex"]).decode() == document["text"]


# -- host -------------------------------------------------------------------------------


@pytest.mark.process
def test_host_shows_the_real_names_and_addresses() -> None:
    result = run("host")
    assert result.exit_code == 0
    assert socket.gethostname() in result.stdout
    for _index, name in socket.if_nameindex():
        assert name in result.stdout
    assert "127.0.0.1/8" in result.stdout


@pytest.mark.process
def test_host_reports_an_unresolvable_name_as_a_fact(monkeypatch) -> None:
    def fail(_name):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "gethostbyname", fail)
    monkeypatch.setattr(socket, "gethostbyname_ex", fail)
    result = run("host", "--json")
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["gethostbyname"]["ok"] is False
    assert "Name or service not known" in document["gethostbyname"]["error"]
    text = run("host")
    assert text.exit_code == 0 and "failed" in text.stdout


# -- resolve ----------------------------------------------------------------------------


def test_resolve_table_names_family_type_protocol() -> None:
    result = run("resolve", "127.0.0.1", "80", "--type", "dgram")
    assert result.exit_code == 0
    assert "AF_INET" in result.stdout and "SOCK_DGRAM" in result.stdout and "IPPROTO_UDP" in result.stdout
    assert "udp4:127.0.0.1:80" in result.stdout


def test_resolve_unknown_host_is_one_line_exit_1() -> None:
    assert_one_line_error(run("resolve", "no-such-host.invalid", "http"), 1, "no-such-host.invalid")


def test_resolve_unknown_service_is_one_line_exit_1() -> None:
    assert_one_line_error(run("resolve", "localhost", "no-such-service-xyz"), 1, "Servname")


def test_resolve_bad_options_are_usage_errors() -> None:
    assert run("resolve", "localhost", "--family", "5").exit_code == 2
    assert run("resolve", "localhost", "--type", "raw").exit_code == 2
    assert_one_line_error(run("resolve", "/tmp/x.sock", "80", "--family", "unix"), 2, "no port or service")


def _families() -> list[tuple[str, str, str, str]]:
    cases = [("tcp4:127.0.0.1:0", "127.0.0.1", "4", "stream"), ("udp4:127.0.0.1:0", "127.0.0.1", "4", "dgram")]
    if HAVE_IPV6:
        cases += [("tcp6:[::1]:0", "::1", "6", "stream"), ("udp6:[::1]:0", "::1", "6", "dgram")]
    return cases


@pytest.mark.parametrize("serve_at,host,family,kind", _families())
@pytest.mark.process
def test_a_resolve_row_pasted_into_send_reaches_a_server(netlab_process, serve_at, host, family, kind) -> None:
    server = netlab_process("serve", "--transport", serve_at, "--service", "sum")
    port = parse_address(server.listening).port
    resolved = run("resolve", host, str(port), "--family", family, "--type", kind, "--json")
    assert resolved.exit_code == 0, resolved.stderr
    rows = json.loads(resolved.stdout)["rows"]
    assert len(rows) == 1
    pasted = rows[0]["address"]
    assert pasted == server.listening.replace("tcp:", "tcp4:" if family == "4" else "tcp6:", 1).replace(
        "udp:", "udp4:" if family == "4" else "udp6:", 1)
    sent = run("send", "--transport", pasted, "2 3", "--timeout", "5")
    assert sent.exit_code == 0, sent.stderr
    assert sent.stdout == "5\n"


# -- constants --------------------------------------------------------------------------


def test_constants_show_every_name_of_a_shared_value() -> None:
    names = [n for n in dir(socket) if n.startswith("IPPROTO_") and isinstance(getattr(socket, n), int)]
    shared = [n for n in names if getattr(socket, n) == 0]
    assert len(shared) > 1  # IPPROTO_IP and IPPROTO_HOPOPTS
    result = run("constants", "ipproto")
    assert result.exit_code == 0
    for name in names:
        assert name in result.stdout
    document = json.loads(run("constants", "IPPROTO_", "--json").stdout)
    zero = next(row for row in document["rows"] if row["value"] == 0)
    assert sorted(zero["names"]) == sorted(shared) and zero["shared"]


def test_constants_bad_prefix_is_exit_1_with_suggestions() -> None:
    assert_one_line_error(run("constants", "NOPE_"), 1, "AF_", "SO_")


# -- raw --------------------------------------------------------------------------------


def test_raw_gets_an_http_status_line(http_server: int) -> None:
    result = run("raw", f"tcp:127.0.0.1:{http_server}", "--send", r"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert result.exit_code == 0, result.stderr
    status = result.stdout.splitlines()[0]
    assert status.startswith(("HTTP/1.0 200", "HTTP/1.1 200")), status
    assert "<h1>netlab</h1>" in result.stdout
    assert "the peer closed" in result.stderr


def test_raw_hex_and_byte_limit(http_server: int) -> None:
    result = run("raw", f"tcp:127.0.0.1:{http_server}", "--send", r"GET / HTTP/1.0\r\n\r\n", "--bytes", "4",
                 "--hex", "-q")
    assert result.exit_code == 0
    assert result.stdout == "00000000  48 54 54 50" + " " * 39 + "|HTTP|\n"


@pytest.mark.process
def test_raw_reads_stdin_and_half_closes(netlab_process) -> None:
    server = netlab_process("serve", "--transport", "tcp:127.0.0.1:0", "--service", "sum")
    result = run("raw", server.listening, input="2 3\n40 2\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "5\n42\n"  # sum answers, and closes once it reads our EOF
    assert "half-closed" in result.stderr and "the peer closed" in result.stderr


def test_raw_refused_is_one_line_exit_1() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert_one_line_error(run("raw", f"tcp:127.0.0.1:{port}", "--send", "x"), 1, "refused")


def test_raw_bad_escape_and_misplaced_options_are_usage_errors() -> None:
    assert run("raw", "tcp:127.0.0.1:9", "--send", r"\q").exit_code == 2
    assert run("raw", "tcp:127.0.0.1:9", "--reply", "x").exit_code == 2
    assert run("raw", "--listen", "tcp:127.0.0.1:0", "--send", "x").exit_code == 2


@pytest.mark.process
def test_raw_listen_shows_a_datagrams_sender(netlab_process) -> None:
    listener = netlab_process("raw", "--listen", "udp:127.0.0.1:0", "--count", "1", "--reply", r"ack\n")
    port = parse_address(listener.listening).port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.bind(("127.0.0.1", 0))
        sender.settimeout(5)
        sender.sendto(b"hello", ("127.0.0.1", port))
        assert sender.recvfrom(100)[0] == b"ack\n"
        me = "udp:%s:%d" % sender.getsockname()
    code, out, err = listener.finish()
    assert code == 0, err
    assert f"[{me}] datagram, 5 bytes:\nhello\n" in out
    assert f"[{me}] replied 4 bytes" in out


@pytest.mark.process
def test_raw_listen_json_lines_and_a_stream_client(netlab_process) -> None:
    listener = netlab_process("raw", "--listen", "tcp:127.0.0.1:0", "--count", "1", "--json")
    first = json.loads(listener.first_line)
    assert first["event"] == "listening"
    with socket.create_connection(("127.0.0.1", parse_address(first["detail"]).port)) as client:
        me = "tcp:%s:%d" % client.getsockname()
        client.sendall(b"GET / HTTP/1.0\r\n\r\n")
    code, out, _err = listener.finish()
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in events] == ["connected", "data", "closed"]
    assert all(e["peer"] == me for e in events)
    assert events[1]["text"] == "GET / HTTP/1.0\r\n\r\n"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.process
def test_raw_listen_stops_cleanly_on_a_signal(netlab_process, netlab_dir, signum) -> None:
    path = os.path.join(netlab_dir, "raw.sock")
    listener = netlab_process("raw", "--listen", f"unix:{path}")
    assert listener.listening == f"unix:{path}"
    listener.signal(signum)
    code, _out, err = listener.finish()
    assert code == 0 and "Traceback" not in err
    assert not os.path.exists(path)  # the listener removed its own socket file


# -- addr explain -----------------------------------------------------------------------


def test_explain_json_matches_getsockopt_on_the_same_kind_of_socket() -> None:
    result = run("addr", "explain", "udp:127.0.0.1:0?rcvbuf=30000&sndbuf=40000", "--json")
    assert result.exit_code == 0, result.stderr
    facts = json.loads(result.stdout)["probes"][0]["facts"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mine:
        mine.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 30000)
        mine.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 40000)
        assert facts["SO_RCVBUF"]["value"] == mine.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        assert facts["SO_SNDBUF"]["value"] == mine.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)


def test_explain_backlog_is_capped_by_somaxconn() -> None:
    with open("/proc/sys/net/core/somaxconn") as file:
        somaxconn = int(file.read())
    for asked in (5, 65535):
        document = json.loads(run("addr", "explain", f"tcp:127.0.0.1:0?backlog={asked}", "--json").stdout)
        backlog = document["probes"][0]["facts"]["backlog"]
        assert backlog["value"] == min(asked, somaxconn)
        assert "/proc/sys/net/core/somaxconn" in backlog["source"]


def test_explain_text_on_a_regular_file(netlab_dir: Path) -> None:
    path = os.path.join(netlab_dir, "data.txt")
    with open(path, "w") as file:
        file.write("precious\n")
    result = run("addr", "explain", f"unix:{path}")
    assert result.exit_code == 0
    assert "not a socket" in result.stdout
    assert "never removes it" in result.stdout
    assert open(path).read() == "precious\n"


def test_explain_text_on_a_stale_socket(netlab_dir: Path) -> None:
    path = os.path.join(netlab_dir, "stale.sock")
    with socket.socket(socket.AF_UNIX) as old:
        old.bind(path)
    result = run("addr", "explain", f"unix:{path}")
    assert result.exit_code == 0
    assert "stale" in result.stdout and "explain leaves it alone" in result.stdout
    assert os.path.exists(path)


def test_explain_a_bad_address_is_a_usage_error() -> None:
    result = run("addr", "explain", "tcp:::1:80")
    assert result.exit_code == 2
    assert "brackets" in result.stderr
