"""netlab.explore from Python: every figure checked against the socket module or the kernel.

Loopback only: 127.0.0.1, ::1, localhost, numeric addresses, unix sockets in short private
directories, and abstract names with a random suffix.
"""

from __future__ import annotations

import errno
import os
import secrets
import socket
import stat
from pathlib import Path

import pytest
import trio

from netlab.errors import AddressError, AddressInUseError, ResolveError, UnknownNameError
from netlab.explore import constants, decode_escapes, explain, hexdump, host_info, prefixes, raw_client, raw_listen
from netlab.explore import resolve as resolve_host
from netlab.explore.constants import NO_DESCRIPTION
from netlab.explore.host import ipv6_from_proc
from netlab.runner import serve
from netlab.transports import get_transport, parse_address
from netlab.transports.unix import probe_path

HAVE_IPV6 = socket.has_ipv6 and os.path.exists("/proc/net/if_inet6")


def socket_constants(prefix: str) -> dict[str, int]:
    return {name: int(getattr(socket, name)) for name in dir(socket)
            if name.startswith(prefix) and isinstance(getattr(socket, name), int)
            and not isinstance(getattr(socket, name), bool)}


def read_somaxconn() -> int:
    with open("/proc/sys/net/core/somaxconn") as file:
        return int(file.read())


# -- constants --------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["AF_", "SOCK_", "IPPROTO_", "SO_", "MSG_", "TCP_", "SOL_", "AI_", "EAI_"])
def test_constants_agree_with_the_socket_module(prefix: str) -> None:
    expected = socket_constants(prefix)
    table = constants(prefix)
    shown = {name: row.value for row in table.rows for name in row.names}
    assert shown == expected  # every name, each once, with the socket module's value
    assert [row.value for row in table.rows] == sorted(set(expected.values()))


def test_every_name_sharing_a_value_is_shown() -> None:
    # find, in the socket module itself, a value that several names with one prefix share
    shared = None
    for prefix in prefixes():
        by_value: dict[int, list[str]] = {}
        for name, value in socket_constants(prefix).items():
            by_value.setdefault(value, []).append(name)
        for value, names in by_value.items():
            if len(names) > 1:
                shared = (prefix, value, sorted(names))
                break
        if shared:
            break
    assert shared, "this socket module has no shared values to test with"
    prefix, value, names = shared
    row = next(row for row in constants(prefix).rows if row.value == value)
    assert sorted(row.names) == names
    assert row.shared


def test_the_lectures_dict_would_lose_a_name_here() -> None:
    lecture = {getattr(socket, n): n for n in dir(socket) if n.startswith("IPPROTO_")}
    ours = [name for row in constants("IPPROTO_").rows for name in row.names]
    assert len(ours) > len(lecture)  # IPPROTO_IP and IPPROTO_HOPOPTS are both 0


def test_prefix_is_case_insensitive_and_gets_its_underscore() -> None:
    table = constants("so")
    assert table.prefix == "SO_"
    names = [name for row in table.rows for name in row.names]
    assert "SO_REUSEADDR" in names
    assert not any(name.startswith(("SOCK_", "SOL_", "SOMAXCONN")) for name in names)
    assert "AF_DECnet" in [n for row in constants("af").rows for n in row.names]


def test_meanings_are_written_or_honestly_missing() -> None:
    rows = {name: meaning for row in constants("SO_").rows for name, meaning in zip(row.names, row.meanings)}
    assert "TIME_WAIT" in rows["SO_REUSEADDR"]
    everything = [m for p in prefixes() for row in constants(p).rows for m in row.meanings]
    assert NO_DESCRIPTION in everything  # we do not pretend to know all of them


def test_unknown_prefix_lists_valid_ones() -> None:
    with pytest.raises(UnknownNameError, match="AF_.*SOCK_"):
        constants("NOPE_")


# -- resolve ----------------------------------------------------------------------------


@pytest.mark.parametrize("host,service", [("127.0.0.1", "80"), ("localhost", None), ("127.0.0.1", 0)])
async def test_resolve_rows_are_getaddrinfos(host: str, service) -> None:
    expected = socket.getaddrinfo(host, service)
    result = await resolve_host(host, service)
    assert len(result.rows) == len(expected)
    for row, (family, socktype, proto, canonname, sockaddr) in zip(result.rows, expected):
        assert row.family == socket.AddressFamily(family).name
        assert row.type == socket.SocketKind(socktype).name
        assert getattr(socket, row.protocol) == proto
        assert row.sockaddr == sockaddr
        assert row.numbers == (family, socktype, proto)


async def test_resolve_rows_parse_back_to_the_same_endpoint() -> None:
    result = await resolve_host("127.0.0.1", 7000)
    usable = [row for row in result.rows if row.address]
    assert {row.type for row in usable} == {"SOCK_STREAM", "SOCK_DGRAM"}
    for row in usable:
        address = parse_address(row.address)
        assert str(address) == row.address
        assert (address.host, address.port) == row.sockaddr[:2]
        assert get_transport(address.scheme).socktype.name == row.type
        assert get_transport(address.scheme).family.name == row.family
    raw = [row for row in result.rows if not row.address]
    assert all("no transport" in row.note for row in raw)


@pytest.mark.skipif(not HAVE_IPV6, reason="no IPv6")
async def test_resolve_filters_family_and_type() -> None:
    result = await resolve_host("::1", "53", family="6", socktype="dgram")
    assert [(row.family, row.type, row.protocol, row.address) for row in result.rows] == [
        ("AF_INET6", "SOCK_DGRAM", "IPPROTO_UDP", "udp6:[::1]:53")]


async def test_service_names_and_numbers_agree() -> None:
    try:
        port = socket.getservbyname("http", "tcp")
    except OSError:
        pytest.skip("no http in /etc/services")
    by_name = await resolve_host("127.0.0.1", "http", socktype="stream")
    by_number = await resolve_host("127.0.0.1", str(port), socktype="stream")
    assert [row.address for row in by_name.rows] == [row.address for row in by_number.rows] == [
        f"tcp4:127.0.0.1:{port}"]


async def test_canonical_name_only_when_asked() -> None:
    plain = await resolve_host("localhost", "80", socktype="stream")
    asked = await resolve_host("localhost", "80", socktype="stream", canonical=True)
    assert plain.rows[0].canonname == ""
    assert asked.rows[0].canonname == socket.getaddrinfo("localhost", 80, 0, socket.SOCK_STREAM, 0,
                                                         socket.AI_CANONNAME)[0][3]
    assert "AI_CANONNAME" in asked.call


async def test_unknown_service_is_the_resolvers_error() -> None:
    with pytest.raises(ResolveError, match="Servname not supported"):
        await resolve_host("localhost", "no-such-service-xyz")


async def test_a_host_name_idna_cannot_encode_is_a_resolve_error() -> None:
    with pytest.raises(ResolveError, match="not a valid host name"):
        await resolve_host("a" * 64 + ".test", "80")


async def test_family_unix_takes_the_host_as_the_path() -> None:
    result = await resolve_host("/tmp/x.sock", family="unix")
    assert [row.address for row in result.rows] == ["unix:/tmp/x.sock", "unix-dgram:/tmp/x.sock"]
    assert "does not resolve AF_UNIX" in result.notes[0]
    abstract = await resolve_host("@name", family="unix", socktype="dgram")
    assert [row.address for row in abstract.rows] == ["unix-dgram:@name"]
    with pytest.raises(AddressError, match="no port or service"):
        await resolve_host("/tmp/x.sock", "80", family="unix")
    with pytest.raises(AddressError, match="107"):
        await resolve_host("/" + "x" * 120, family="unix")


# -- host -------------------------------------------------------------------------------


@pytest.mark.process
def test_host_info_agrees_with_the_socket_module() -> None:
    info = host_info()
    assert info.hostname == socket.gethostname()
    assert [(i.index, i.name) for i in info.interfaces] == list(socket.if_nameindex())
    try:
        expected = socket.gethostbyname(info.hostname)
    except OSError:
        assert not info.gethostbyname.ok and info.gethostbyname.error
    else:
        assert info.gethostbyname.address == expected
        canonical, aliases, addresses = socket.gethostbyname_ex(info.hostname)
        ex = info.gethostbyname_ex
        assert (ex.canonical, list(ex.aliases), list(ex.addresses)) == (canonical, aliases, addresses)
    loopback = next(i for i in info.interfaces if i.name == "lo")
    assert "127.0.0.1" in [a.address for a in loopback.ipv4]
    assert loopback.up is True
    if HAVE_IPV6:
        assert ("::1", 128, "host") in [(a.address, a.prefixlen, a.scope) for a in loopback.ipv6]


@pytest.mark.process
def test_ioctl_fallback_finds_the_same_primary_ipv4() -> None:
    by_ip = host_info()
    by_ioctl = host_info(use_ip_command=False)
    assert "ioctl" in by_ioctl.sources["ipv4"]
    lo = lambda info: next(i for i in info.interfaces if i.name == "lo")  # noqa: E731
    assert [(a.address, a.prefixlen, a.scope) for a in lo(by_ioctl).ipv4] == [("127.0.0.1", 8, "host")]
    for a, b in zip(by_ip.interfaces, by_ioctl.interfaces):
        if b.ipv4:  # the ioctl knows only the primary address: it must be one of ip's
            assert b.ipv4[0].address in [x.address for x in a.ipv4]


@pytest.mark.process
def test_a_host_name_that_does_not_resolve_is_a_fact(monkeypatch) -> None:
    def fail(_name):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "gethostbyname", fail)
    monkeypatch.setattr(socket, "gethostbyname_ex", fail)
    info = host_info("lonely-host")
    assert not info.gethostbyname.ok
    assert "Name or service not known" in info.gethostbyname.error
    assert "/etc/hosts" in info.gethostbyname.error
    assert info.as_dict()["gethostbyname_ex"] == {"call": "gethostbyname_ex('lonely-host')", "ok": False,
                                                  "error": info.gethostbyname_ex.error}


def test_if_inet6_lines_are_decoded(tmp_path) -> None:
    sample = tmp_path / "if_inet6"
    sample.write_text("fe8000000000000000fc00fffe000001 04 40 20 80     eth0\n"
                      "00000000000000000000000000000001 01 80 10 80       lo\n"
                      "fd000000000000000000000000000002 04 40 00 82     eth0\n")
    found = ipv6_from_proc(str(sample))
    assert [(a.address, a.prefixlen, a.scope, a.flags) for a in found["eth0"]] == [
        ("fe80::fc:ff:fe00:1", 64, "link", ("permanent",)),
        ("fd00::2", 64, "global", ("nodad", "permanent"))]
    assert found["lo"][0].address == "::1"
    assert ipv6_from_proc(str(tmp_path / "missing")) is None


# -- addr explain -----------------------------------------------------------------------


async def test_explain_reports_what_getsockopt_reads_on_the_same_kind_of_socket() -> None:
    rcvbuf, sndbuf = 70000, 50000
    result = await explain(f"tcp:127.0.0.1:0?rcvbuf={rcvbuf}&sndbuf={sndbuf}&backlog=65535")
    facts = result.probes[0].facts
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as mine:
        mine.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        mine.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        assert facts["SO_RCVBUF"].value == mine.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        assert facts["SO_SNDBUF"].value == mine.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    assert facts["backlog"].value == min(65535, read_somaxconn())
    assert "somaxconn" in facts["backlog"].source
    low, high = (int(x) for x in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    port = parse_address(result.probes[0].bound).port
    assert low <= port <= high and facts["port"].value == port


async def test_explain_defaults_match_a_plain_socket() -> None:
    result = await explain("udp:127.0.0.1:0")
    facts = result.probes[0].facts
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mine:
        assert facts["SO_RCVBUF"].value == mine.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    assert facts["max datagram"].value == 65507
    assert "backlog" not in facts


@pytest.mark.skipif(not HAVE_IPV6, reason="no IPv6")
@pytest.mark.parametrize("host", ["::", "::1"])
@pytest.mark.parametrize("v6only", [0, 1])
async def test_explain_reads_back_v6only(host: str, v6only: int) -> None:
    result = await explain(f"tcp6:[{host}]:0?v6only={v6only}")
    assert f"setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, {v6only})" in result.server_calls
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as mine:
        mine.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
        mine.bind((host, 0))
        kernel = mine.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
    fact = result.probes[0].facts["IPV6_V6ONLY"]
    assert fact.value == kernel
    if kernel != v6only:  # Linux: bound to one IPv6 address, a socket is IPv6-only whatever was set
        assert "before bind" in fact.note


async def test_explain_plans_the_calls_in_order() -> None:
    result = await explain("tcp:127.0.0.1:0?rcvbuf=8192&backlog=7")
    calls = result.server_calls
    order = [next(i for i, c in enumerate(calls) if c.startswith(prefix))
             for prefix in ("getaddrinfo", "socket(AF_INET, SOCK_STREAM)", "setsockopt(SOL_SOCKET, SO_REUSEADDR",
                            "setsockopt(SOL_SOCKET, SO_RCVBUF, 8192)", "bind(", "listen(7)")]
    assert order == sorted(order)


async def test_explain_tls_plans_certificates_and_the_handshake() -> None:
    """The TLS plan is the TLS transport's own: the certificates before TCP's calls, the
    handshake after; the TLS options say what applies without them, not a kernel default."""
    plain = await explain("tls:127.0.0.1:0")
    assert "throwaway CA" in plain.server_calls[0]
    assert plain.server_calls.index("listen(4096)") < next(
        i for i, call in enumerate(plain.server_calls) if call.startswith("TLS handshake"))
    told = await explain("tls:127.0.0.1:0?ca=/etc/netlab/ca.pem")
    assert told.server_calls[0].startswith("refused: ?ca= on a server")  # as server_context says
    assert "load_verify_locations('/etc/netlab/ca.pem')" in told.client_calls[0]
    assert told.client_calls[-2].startswith("TLS handshake") and "'127.0.0.1'" in told.client_calls[-2]
    assert told.options["ca"].source == "given"
    assert all("kernel" not in told.options[name].source for name in ("cert", "key", "insecure"))
    given = await explain("tls:localhost:0?cert=/c.pem&key=/k.pem")
    assert "load_cert_chain('/c.pem', '/k.pem')" in given.server_calls[0]
    insecure = await explain("tls:localhost:0?insecure=1")
    assert "CERT_NONE" in insecure.client_calls[0] and "not checked" in insecure.client_calls[-2]
    assert insecure.server_calls[0].startswith("refused: ?insecure= is a client option")


async def test_explain_unix_dgram_plans_the_servers_send_buffer(netlab_dir: Path) -> None:
    told = await explain(f"unix-dgram:{netlab_dir}/d.sock")
    assert told.server_calls[1].startswith("setsockopt(SOL_SOCKET, SO_SNDBUF, 67108864)")
    given = await explain(f"unix-dgram:{netlab_dir}/d.sock?sndbuf=100000")
    assert [c for c in given.server_calls if "SO_SNDBUF" in c] == ["setsockopt(SOL_SOCKET, SO_SNDBUF, 100000)"]


async def test_explain_a_busy_port_probes_port_zero_and_says_so() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = await explain(f"tcp:127.0.0.1:{port}")
    probe = result.probes[0]
    assert parse_address(probe.bound).port != port
    assert any(f"port {port} is in use" in note and "port 0" in note for note in probe.notes)


async def test_explain_a_privileged_port_probes_port_zero_and_says_so(monkeypatch) -> None:
    if os.geteuid() == 0:  # root may bind port 1: make bind() answer as it does for everyone else

        class Unprivileged(socket.socket):
            def bind(self, address):
                if isinstance(address, tuple) and 0 < address[1] < 1024:
                    raise PermissionError(errno.EACCES, "Permission denied")
                return super().bind(address)

        monkeypatch.setattr(socket, "socket", Unprivileged)
    result = await explain("tcp:127.0.0.1:1")
    monkeypatch.undo()
    assert parse_address(result.probes[0].bound).port != 1
    assert any("privileged" in note and "port 0" in note for note in result.probes[0].notes)


async def test_explain_an_unresolvable_host_is_a_fact_not_a_crash() -> None:
    result = await explain("tcp:" + "a" * 64 + ".test:80")
    assert result.probes == []
    assert "not a valid host name" in result.notes[0]


async def test_explain_a_regular_file_says_not_a_socket_and_leaves_it(netlab_dir: Path) -> None:
    path = os.path.join(netlab_dir, "notes.txt")
    with open(path, "w") as file:
        file.write("keep me\n")
    before = os.stat(path)
    result = await explain(f"unix:{path}")
    after = os.stat(path)
    assert result.target["state"].value == "not-socket"
    assert result.target["kind"].value == "regular file"
    assert (before.st_ino, before.st_mtime_ns, before.st_size) == (after.st_ino, after.st_mtime_ns, after.st_size)
    assert open(path).read() == "keep me\n"
    assert sorted(os.listdir(netlab_dir)) == ["notes.txt"]


@pytest.mark.parametrize("scheme,kind", [("unix", socket.SOCK_STREAM), ("unix-dgram", socket.SOCK_DGRAM)])
async def test_explain_a_stale_socket_says_stale_and_keeps_it(netlab_dir: Path, scheme: str, kind) -> None:
    path = os.path.join(netlab_dir, "old.sock")
    with socket.socket(socket.AF_UNIX, kind) as old:
        old.bind(path)  # closed without unlink: a stale socket file
    inode = os.stat(path).st_ino
    result = await explain(f"{scheme}:{path}")
    assert result.target["state"].value == "stale"
    assert "would remove" in result.target["then"].value
    assert stat.S_ISSOCK(os.lstat(path).st_mode) and os.stat(path).st_ino == inode
    assert path not in (result.probes[0].bound or "")


async def test_explain_a_live_socket_says_live(netlab_dir: Path) -> None:
    path = os.path.join(netlab_dir, "live.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as live:
        live.bind(path)
        live.listen()
        result = await explain(f"unix:{path}")
        assert result.target["state"].value == "live"
        assert "refuse" in result.target["then"].value


async def test_explain_never_creates_the_socket_file(netlab_dir: Path) -> None:
    path = os.path.join(netlab_dir, "new.sock")
    result = await explain(f"unix:{path}?mode=0640&rcvbuf=100000")
    assert not os.path.exists(path)
    assert os.listdir(netlab_dir) == []
    probe = result.probes[0]
    assert probe.facts["file mode"].value == "0640"  # ?mode= applied, in a private directory
    assert "private temporary directory" in probe.notes[0] and not os.path.exists(parse_address(probe.bound).path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mine:
        mine.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 100000)
        assert probe.facts["SO_RCVBUF"].value == mine.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    assert result.reading["length"].value == len(path.encode())


async def test_explain_abstract_names_are_probed_by_connect_and_never_bound() -> None:
    name = f"netlab-test-{secrets.token_hex(4)}"
    free = await explain(f"unix-dgram:@{name}")
    assert free.target["state"].value == "free"
    assert free.probes[0].bound != f"unix-dgram:@{name}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as holder:
        holder.bind(b"\0" + name.encode())
        held = await explain(f"unix-dgram:@{name}")
    assert held.target["state"].value == "live"


def test_probe_path_removes_nothing(netlab_dir: Path) -> None:
    path = os.path.join(netlab_dir, "s")
    with socket.socket(socket.AF_UNIX) as old:
        old.bind(path)
    assert probe_path(path, socket.SOCK_STREAM).state == "stale"
    assert os.path.exists(path)
    assert probe_path(os.path.join(netlab_dir, "none"), socket.SOCK_STREAM).state == "missing"


async def test_serve_still_replaces_stale_and_refuses_regular_files(netlab_dir: Path) -> None:
    """claim_path now uses probe_path: the visible behaviour must not have changed."""
    stale = os.path.join(netlab_dir, "stale.sock")
    with socket.socket(socket.AF_UNIX) as old:
        old.bind(stale)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve, "echo", f"unix:{stale}")
        assert str(server.address) == f"unix:{stale}"
        with pytest.raises(AddressInUseError, match="running server"):
            await nursery.start(serve, "echo", f"unix:{stale}")
        nursery.cancel_scope.cancel()
    regular = os.path.join(netlab_dir, "file")
    open(regular, "w").close()
    address = parse_address(f"unix:{regular}")
    with pytest.raises(AddressInUseError, match="not a socket"):
        await get_transport(address.scheme).listen(address)
    assert os.path.isfile(regular)


# -- raw --------------------------------------------------------------------------------


def test_escapes() -> None:
    assert decode_escapes(r"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    assert decode_escapes(r"\x00\xffA\t\\n\0") == b"\x00\xffA\t\\n\x00"
    assert decode_escapes("é") == "é".encode()
    for bad in (r"\q", "\\", r"\x4", r"\xZZ"):
        with pytest.raises(ValueError):
            decode_escapes(bad)


def test_hexdump() -> None:
    lines = hexdump(b"HTTP/1.0 200 OK\r\nServer", offset=16).splitlines()
    assert lines[0] == "00000010  48 54 54 50 2f 31 2e 30  20 32 30 30 20 4f 4b 0d  |HTTP/1.0 200 OK.|"
    assert lines[1].startswith("00000020  0a 53 65 72 76 65 72") and lines[1].endswith("|.Server|")


async def test_raw_listen_reports_a_datagrams_sender() -> None:
    events = []
    async with trio.open_nursery() as nursery:
        listening = await nursery.start(lambda task_status: raw_listen(
            "udp:127.0.0.1:0", reply=b"ack", count=1, on_event=events.append, task_status=task_status))
        port = parse_address(listening.bound[0]).port
        with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            await sender.bind(("127.0.0.1", 0))
            await sender.sendto(b"hello", ("127.0.0.1", port))
            with trio.fail_after(5):
                assert await sender.recvfrom(100) == (b"ack", ("127.0.0.1", port))
            me = sender.getsockname()
    datagram = next(e for e in events if e.kind == "datagram")
    assert datagram.peer == f"udp:{me[0]}:{me[1]}" and datagram.data == b"hello"


async def test_raw_listen_cannot_answer_an_unbound_unix_datagram(netlab_dir: Path) -> None:
    events = []
    path = os.path.join(netlab_dir, "d.sock")
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: raw_listen(
            f"unix-dgram:{path}", reply=b"x", count=1, on_event=events.append, task_status=task_status))
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as unbound:
            unbound.sendto(b"hi", path)
    assert [e.kind for e in events] == ["listening", "datagram", "note"]
    assert events[1].peer == "(unbound)" and "cannot reply" in events[2].detail


async def test_raw_stream_with_data_does_not_half_close() -> None:
    """--send keeps the write side open: the server sees no EOF until the client gives up."""
    events = []
    async with trio.open_nursery() as nursery:
        listening = await nursery.start(lambda task_status: raw_listen(
            "tcp:127.0.0.1:0", count=1, on_event=events.append, task_status=task_status))
        result = await raw_client(listening.bound[0], b"ping", timeout=0.3)
    assert result.ended == "timeout" and not result.half_closed and result.sent == 4
    kinds = [e.kind for e in events]
    assert kinds == ["listening", "connected", "data", "closed"]
    assert events[1].peer == result.local  # the listener saw our address


async def test_raw_stream_from_a_source_half_closes_and_reads_to_the_end() -> None:
    async def lines():
        yield b"2 3\n"
        yield b"10 20\n"

    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve, "sum", "tcp:127.0.0.1:0")
        result = await raw_client(server.address, source=lines(), timeout=5)
        nursery.cancel_scope.cancel()
    assert result.half_closed and result.ended == "peer closed"
    assert result.data == b"5\n30\n"


async def test_raw_eof_flag_half_closes_after_data() -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve, "echo", "tcp:127.0.0.1:0")
        result = await raw_client(server.address, b"abc", eof=True, timeout=5)
        nursery.cancel_scope.cancel()
    assert result.half_closed and result.ended == "peer closed" and result.data == b"abc"


async def test_raw_reply_then_half_close_ends_a_send_client() -> None:
    async with trio.open_nursery() as nursery:
        listening = await nursery.start(lambda task_status: raw_listen(
            "tcp:127.0.0.1:0", reply=b"HTTP/1.0 200 OK\r\n\r\nhi", count=1, task_status=task_status))
        with trio.fail_after(3):  # the reply's half-close ends it, not the 10 s timeout
            result = await raw_client(listening.bound[0], b"GET / HTTP/1.0\r\n\r\n", timeout=10)
    assert result.ended == "peer closed" and result.data == b"HTTP/1.0 200 OK\r\n\r\nhi"


async def test_raw_byte_limit_and_datagrams() -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve, "echo", "udp:127.0.0.1:0")
        whole = await raw_client(server.address, b"hello", timeout=0.2)
        cut = await raw_client(server.address, b"hello", max_bytes=2, timeout=5)
        empty = await raw_client(server.address, b"", timeout=0.2)
        nursery.cancel_scope.cancel()
    assert (whole.data, whole.reads, whole.ended) == (b"hello", [5], "timeout")
    assert (cut.data, cut.ended) == (b"he", "byte limit")
    assert (empty.data, empty.reads) == (b"", [0])  # an empty datagram, answered by an empty one


async def test_raw_client_errors_are_netlab_errors() -> None:
    from netlab.errors import ConnectionRefusedError

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        await raw_client(f"tcp:127.0.0.1:{port}", b"x", timeout=2)
