"""The address grammar: canonical forms, defaults, and an error that names every problem."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from netlab.errors import AddressError
from netlab.transports import TRANSPORTS, Address, get_transport, parse_address
from netlab.transports.addresses import UNIX_PATH_MAX, bound_address, format_sockaddr


def assert_round_trips(address: Address) -> None:
    text = str(address)
    again = parse_address(text)
    assert again == address, (text, again)
    assert str(again) == text


# -- canonical forms ---------------------------------------------------------------------

ROUND_TRIP = [
    "tcp:127.0.0.1:7000",
    "tcp:127.0.0.1:0",
    "tcp4:10.1.2.3:65535",
    "tcp6:[::1]:0",
    "tcp:[::1]:7000",
    "tcp:[2001:db8::1]:443",
    "tcp6:[fe80::1%eth0]:7000",
    "udp6:[fe80::abcd%lo]:9",
    "tcp:[::ffff:127.0.0.1]:80",
    "udp:*:9999",
    "tcp6:*:80",
    "udp:0.0.0.0:53",
    "tcp:[::]:7000?v6only=0",
    "udp6:[::]:7000?v6only=1",
    "tcp:localhost:7000",
    "tcp:example.com.:80",
    "tcp:my_host-1.lan:80",
    "tcp:127.0.0.1:7000?backlog=5&rcvbuf=65536&sndbuf=4096",
    "udp:127.0.0.1:7000?rcvbuf=1",
    "unix:/tmp/sum.sock",
    "unix:relative.sock",
    "unix:./dir/x.sock",
    "unix:/tmp/sum.sock?mode=0660",
    "unix:/tmp/sum.sock?backlog=1&mode=0600",
    "unix-dgram:/tmp/d.sock?mode=0644&sndbuf=1048576",
    "unix:/tmp/with%20space.sock",
    "unix:/tmp/per%25cent.sock",
    "unix:/tmp/what%3F.sock",
    "unix:/tmp/amp&eq=.sock",
    "unix:/tmp/caf%C3%A9.sock",
    "unix:/tmp/bad%FFbyte.sock",
    "unix:%40not-abstract.sock",
    "unix:@netlab-echo",
    "unix-dgram:@netlab-echo",
    "unix:@with%20space%3F",
    "unix-dgram:@a?sndbuf=300000",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_canonical_forms_round_trip(text: str) -> None:
    address = parse_address(text)
    assert_round_trips(address)
    assert str(address) == text  # these are already canonical


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("tcp:7000", "tcp:127.0.0.1:7000"),
        ("tcp4:7000", "tcp4:127.0.0.1:7000"),
        ("udp:0", "udp:127.0.0.1:0"),
        ("tcp6:7000", "tcp6:[::1]:7000"),
        ("udp6:53", "udp6:[::1]:53"),
        ("tcp::7000", "tcp:127.0.0.1:7000"),
        ("tcp:[0:0:0:0:0:0:0:1]:7000", "tcp:[::1]:7000"),
        ("tcp:[2001:DB8::1]:7000", "tcp:[2001:db8::1]:7000"),
        ("tcp:[::1%]:7000", "tcp:[::1]:7000"),
        ("tcp:LocalHost:007", "tcp:localhost:7"),
        ("unix:/tmp/x.sock?mode=660", "unix:/tmp/x.sock?mode=0660"),
        ("unix:/tmp/x.sock?mode=0o640", "unix:/tmp/x.sock?mode=0640"),
        ("unix:/tmp/x.sock?mode=0600&backlog=3", "unix:/tmp/x.sock?backlog=3&mode=0600"),
        ("tcp:[::]:1?v6only=yes", "tcp:[::]:1?v6only=1"),
        ("tcp:[::]:1?v6only=off", "tcp:[::]:1?v6only=0"),
        ("unix:/tmp/with space.sock", "unix:/tmp/with%20space.sock"),
        ("unix:/tmp/%61.sock", "unix:/tmp/a.sock"),
        ("unix:/tmp/café.sock", "unix:/tmp/caf%C3%A9.sock"),
        ("unix-dgram:@x y", "unix-dgram:@x%20y"),
    ],
)
def test_canonical_form_of_loose_input(text: str, canonical: str) -> None:
    address = parse_address(text)
    assert str(address) == canonical
    assert_round_trips(address)


def test_default_hosts_are_loopback() -> None:
    assert parse_address("tcp:7000") == Address("tcp", host="127.0.0.1", port=7000)
    assert parse_address("tcp6:7000") == Address("tcp6", host="::1", port=7000)
    assert parse_address("udp6:7000").host == "::1"
    assert parse_address("udp4:7000").host == "127.0.0.1"


def test_fields() -> None:
    v6 = parse_address("tcp6:[fe80::1%eth0]:7000?v6only=1")
    assert (v6.host, v6.port, v6.option("v6only")) == ("fe80::1%eth0", 7000, True)
    assert v6.option("backlog", 42) == 42
    assert parse_address("tcp:[::1]:1").host_family == socket.AF_INET6
    assert parse_address("tcp:127.0.0.1:1").host_family == socket.AF_INET
    assert parse_address("tcp:localhost:1").host_family is None
    assert parse_address("udp:*:1").is_wildcard
    assert parse_address("tcp:[::]:1").is_wildcard
    assert not parse_address("tcp:127.0.0.1:1").is_wildcard

    path = parse_address("unix:/tmp/a%3Fb.sock?mode=0660")
    assert path.path == "/tmp/a?b.sock"
    assert path.option("mode") == 0o660
    assert path.is_unix and not path.is_abstract
    assert path.unix_sockaddr() == "/tmp/a?b.sock"

    abstract = parse_address("unix-dgram:@netlab-echo")
    assert abstract.abstract == "netlab-echo" and abstract.path is None
    assert abstract.is_unix and abstract.is_abstract
    assert abstract.unix_sockaddr() == b"\0netlab-echo"

    assert parse_address("unix:%40x").path == "@x"  # a file named @x, not an abstract name
    assert parse_address("tcp:127.0.0.1:1").with_port(5).port == 5
    assert parse_address(path) is path
    assert get_transport(path.scheme) is TRANSPORTS["unix"]


def test_unix_path_length_limit() -> None:
    assert UNIX_PATH_MAX == 107
    ok = "/tmp/" + "a" * (107 - 5)
    assert len(ok) == 107
    assert parse_address("unix:" + ok).path == ok
    assert parse_address("unix-dgram:" + ok).path == ok
    with pytest.raises(AddressError, match="108 bytes.*at most 107"):
        parse_address("unix:" + ok + "a")
    # bytes, not characters: 'é' takes two
    with pytest.raises(AddressError, match="108 bytes"):
        parse_address("unix:" + ok[:-1] + "é")
    assert parse_address("unix:@" + "n" * 107).abstract == "n" * 107
    with pytest.raises(AddressError, match="abstract name is 108 bytes"):
        parse_address("unix:@" + "n" * 108)


# -- errors ----------------------------------------------------------------------------------

ERRORS = [
    # (input, regex the message must match)
    ("http:127.0.0.1:80", r"unknown scheme 'http'.*tcp"),
    ("TCP:127.0.0.1:80", r"unknown scheme 'TCP'"),
    ("127.0.0.1", r"no scheme"),
    ("", r"no scheme"),
    ("tcp:127.0.0.1:80?foo=1", r"unknown option 'foo'"),
    ("tcp:127.0.0.1:80?mode=0600", r"option 'mode' does not apply to tcp"),
    ("udp:127.0.0.1:80?backlog=5", r"option 'backlog' does not apply to udp"),
    ("unix-dgram:/tmp/x?backlog=5", r"option 'backlog' does not apply to unix-dgram"),
    ("unix:/tmp/x?v6only=1", r"option 'v6only' does not apply to unix"),
    ("unix:@name?mode=0600", r"mode.*abstract"),
    ("unix-dgram:@name?mode=0600", r"mode.*abstract"),
    ("tcp:127.0.0.1:80?v6only=1", r"v6only.*IPv6"),
    ("udp4:10.0.0.1:80?v6only=0", r"v6only.*IPv6"),
    ("tcp:127.0.0.1:70000", r"port 70000 is out of range"),
    ("tcp:127.0.0.1:65536", r"port 65536 is out of range"),
    ("tcp:127.0.0.1:http", r"port must be a number.*'http'"),
    ("tcp:127.0.0.1:-1", r"port must be a number"),
    ("tcp:127.0.0.1:", r"missing port"),
    ("tcp:", r"missing port"),
    ("tcp:[::1]", r"missing port after \[::1\]"),
    ("tcp:[::1]:", r"missing port"),
    ("tcp:[::1]x:80", r"missing port after \[::1\]"),
    ("tcp:[::g]:80", r"malformed IPv6 address '::g'"),
    ("tcp:[1.2.3.4]:80", r"malformed IPv6"),
    ("tcp:[::1:80", r"unclosed '\['"),
    ("tcp:[::1%bad zone]:80", r"malformed IPv6 zone"),
    ("tcp:::1:80", r"IPv6 addresses need brackets"),
    ("tcp:fe80::1:80", r"IPv6 addresses need brackets"),
    ("tcp4:[::1]:80", r"tcp4: takes IPv4 hosts only"),
    ("udp4:[::1]:80", r"udp4: takes IPv4 hosts only"),
    ("tcp6:127.0.0.1:80", r"tcp6: takes IPv6 hosts only"),
    ("udp6:10.0.0.1:80", r"udp6: takes IPv6 hosts only"),
    ("tcp:1.2.3.999:80", r"malformed IPv4 address"),
    ("tcp:bad_host!:80", r"not a valid host name"),
    ("tcp:-leading.dash:80", r"not a valid host name"),
    ("unix:/tmp/x?mode=0600&mode=0660", r"option 'mode' given twice"),
    ("tcp:127.0.0.1:1?backlog=1&backlog=1", r"option 'backlog' given twice"),
    ("unix:/tmp/x?", r"empty option"),
    ("unix:/tmp/x?mode=0600&", r"empty option"),
    ("unix:/tmp/x?mode", r"option 'mode' needs a value"),
    ("unix:/tmp/x?mode=", r"option 'mode' needs a value"),
    ("unix:/tmp/x?mode=999", r"octal permissions"),
    ("unix:/tmp/x?mode=rw", r"octal permissions"),
    ("unix:/tmp/x?mode=4755", r"only permission bits"),
    ("tcp:[::]:1?v6only=maybe", r"v6only= takes 0 or 1"),
    ("tcp:127.0.0.1:1?backlog=0", r"backlog=0 is out of range"),
    ("tcp:127.0.0.1:1?backlog=many", r"backlog= takes a whole number"),
    ("unix:", r"missing path"),
    ("unix-dgram:", r"missing path"),
    ("unix:@", r"empty abstract name"),
    ("unix:/tmp/a%00b", r"may not contain NUL"),
    ("unix:@a%00b", r"may not contain NUL"),
    ("unix:/tmp/\ud800.sock", r"cannot be encoded"),
    ("unix:@\udfff", r"cannot be encoded"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS, ids=[t for t, _ in ERRORS])
def test_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(AddressError, match=message):
        parse_address(text)


def test_path_too_long_says_why() -> None:
    with pytest.raises(AddressError) as info:
        parse_address("unix:/" + "p" * 107)
    text = str(info.value)
    assert "108 bytes" in text and "107" in text and "abstract name" in text


def test_not_text() -> None:
    with pytest.raises(AddressError, match="must be text, not bytes"):
        parse_address(b"tcp:127.0.0.1:80")  # type: ignore[arg-type]


def test_address_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_address("nope")


# -- what the kernel gave -------------------------------------------------------------------


def test_format_sockaddr() -> None:
    assert format_sockaddr("tcp", ("127.0.0.1", 7000)) == "tcp:127.0.0.1:7000"
    assert format_sockaddr("tcp6", ("::1", 7000, 0, 0)) == "tcp6:[::1]:7000"
    assert format_sockaddr("udp6", ("fe80::1", 9, 0, 999999)) == "udp6:[fe80::1%999999]:9"
    assert format_sockaddr("unix", "/tmp/a b") == "unix:/tmp/a%20b"
    assert format_sockaddr("unix", b"\0auto1") == "unix:@auto1"
    assert format_sockaddr("unix", "\0auto1") == "unix:@auto1"
    assert format_sockaddr("unix", "@file") == "unix:%40file"
    assert format_sockaddr("unix-dgram", None) == "(unbound)"
    assert format_sockaddr("unix-dgram", "") == "(unbound)"


def test_bound_address() -> None:
    requested = parse_address("tcp:127.0.0.1:0?backlog=4")
    bound = bound_address(requested, ("127.0.0.1", 41234))
    assert bound.port == 41234 and bound.option("backlog") == 4
    autobound = bound_address(Address("unix-dgram", abstract="?"), b"\x0012ab5")
    assert autobound.abstract == "12ab5" and str(autobound) == "unix-dgram:@12ab5"
    path = parse_address("unix:/tmp/x.sock")
    assert bound_address(path, "/tmp/x.sock") is path


# -- any text at all ------------------------------------------------------------------------

_SCHEMES = sorted(TRANSPORTS)
_GRAMMAR_CHARS = "[]%:@?&=/.*0123456789abcdefgx:v6onlymodebacklogrcvbufsnd \t\0é\udcff"
grammar_text = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(exclude_categories=())),  # lone surrogates too
    st.builds(lambda s, rest: f"{s}:{rest}", st.sampled_from(_SCHEMES), st.text(alphabet=_GRAMMAR_CHARS)),
    st.builds(
        lambda s, host, port, opts: f"{s}:{host}:{port}{opts}",
        st.sampled_from(_SCHEMES),
        st.one_of(st.ip_addresses().map(lambda ip: f"[{ip}]" if ip.version == 6 else str(ip)),
                  st.sampled_from(["*", "localhost", "", "[::]", "[fe80::1%eth0]"])),
        st.integers(-1, 70000),
        st.sampled_from(["", "?v6only=1", "?backlog=7", "?rcvbuf=1024&sndbuf=2048", "?mode=0600"]),
    ),
    st.builds(
        lambda s, at, path, opts: f"{s}:{at}{path}{opts}",
        st.sampled_from(["unix", "unix-dgram"]),
        st.sampled_from(["", "@", "/tmp/", "%40"]),
        st.text(max_size=120),
        st.sampled_from(["", "?mode=0660", "?mode=0600&sndbuf=99", "?backlog=2"]),
    ),
)


@settings(max_examples=max(1000, settings.default.max_examples), deadline=None)
@given(grammar_text)
@example("unix:%40foo")
@example("unix:/tmp/\ud800")
def test_any_text_parses_and_round_trips_or_raises_address_error(text: str) -> None:
    try:
        address = parse_address(text)
    except AddressError as exc:
        assert str(exc)  # a message, always
        return
    assert_round_trips(address)


# -- what the kernel reports prints back to an address that names the same socket ----------

_kernel_path = st.binary(min_size=1, max_size=UNIX_PATH_MAX).filter(lambda b: b"\0" not in b and b[:1] != b"\0")


@given(_kernel_path, st.sampled_from(["unix", "unix-dgram", "unix-seq"]), st.booleans())
@example(b"@x", "unix", False)
@example(b"\xff\xfe", "unix-dgram", True)
def test_any_unix_name_the_kernel_gives_prints_to_an_address_naming_it(name: bytes, scheme: str,
                                                                         abstract: bool) -> None:
    """A peer or bound name from getsockname/recvfrom (bytes, any of them but NUL) prints as
    text that parses back to the very same sockaddr; a server logs peers this way."""
    if abstract:
        text = format_sockaddr(scheme, b"\0" + name)
        address = parse_address(text)
        assert address.unix_sockaddr() == b"\0" + name
    else:
        text = format_sockaddr(scheme, name.decode("utf-8", "surrogateescape"))  # how Python returns paths
        address = parse_address(text)
        assert address.path is not None
        assert address.path.encode("utf-8", "surrogateescape") == name
    assert_round_trips(address)


@given(st.ip_addresses(), st.integers(0, 65535), st.sampled_from(["tcp", "udp"]))
def test_any_inet_sockaddr_prints_to_an_address_naming_it(ip, port: int, base: str) -> None:
    scheme = base + ("6" if ip.version == 6 else "")
    sockaddr = (str(ip), port, 0, 0) if ip.version == 6 else (str(ip), port)
    address = parse_address(format_sockaddr(scheme, sockaddr))
    assert address.port == port
    assert ipaddress.ip_address(address.host) == ip  # ::ffff:0:0 prints as ::ffff:0.0.0.0
    assert_round_trips(address)


_HUGE = "1" * 4301  # one digit over int()'s 4300-digit limit for a string


@pytest.mark.parametrize("text", [
    f"tcp:127.0.0.1:{_HUGE}", f"udp6:[::1]:{_HUGE}", f"tcp:{_HUGE}", f"tcp:127.0.0.1:0?backlog={_HUGE}",
    f"udp:127.0.0.1:0?rcvbuf={_HUGE}", f"unix-dgram:@x?sndbuf={_HUGE}", f"tcp:127.0.0.1:{'0' * 5000}99999",
])
def test_huge_integers_are_out_of_range_not_a_python_error(text: str) -> None:
    """int() refuses strings over 4300 digits with its own ValueError; an address must give
    netlab's AddressError, with the number shortened in the message."""
    with pytest.raises(AddressError, match="out of range") as caught:
        parse_address(text)
    assert "Exceeds" not in str(caught.value)
    assert len(str(caught.value)) < 200


def test_leading_zeros_are_the_number() -> None:
    assert parse_address("tcp:127.0.0.1:" + "0" * 5000 + "7000").port == 7000
    assert dict(parse_address("tcp:127.0.0.1:0?backlog=" + "0" * 5000 + "16").options)["backlog"] == 16
