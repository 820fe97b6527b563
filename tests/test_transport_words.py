"""What a transport says about itself: OS errors are worded from the address's transport, never
from its text (`transports.oserrors`); a message limit in words is the transport's own."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from netlab import errors
from netlab.transports import describe_os_error, get_transport, parse_address, translate_os_errors
from netlab.transports.oserrors import describe_os_error as describe_without_lookup
from netlab.transports.udp import UDP4_MAX, UDP6_MAX

PORTS = "ports below 1024 need root"


def denied() -> OSError:
    return OSError(errno.EACCES, os.strerror(errno.EACCES))


def refused() -> OSError:
    return OSError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))


@pytest.mark.parametrize("text", ["tcp:127.0.0.1:80", "udp6:[::1]:53", "tls:127.0.0.1:443"])
def test_a_transport_with_ports_is_told_about_privileged_ones(text: str) -> None:
    error = describe_os_error(denied(), parse_address(text), "bind")
    assert isinstance(error, errors.PermissionDeniedError) and PORTS in str(error)


@pytest.mark.parametrize("scheme", ["unix", "unix-dgram", "unix-seq"])
def test_a_unix_path_that_mentions_tcp_is_not(scheme: str) -> None:
    address = parse_address(f"{scheme}:/srv/tcp-lab/udp.sock")
    error = describe_os_error(denied(), address, "bind")
    assert str(error) == f"cannot bind {address}: permission denied"


def test_udp_hears_refused_as_icmp_and_others_do_not() -> None:
    assert "port unreachable (ICMP)" in str(describe_os_error(refused(), parse_address("udp:127.0.0.1:9"),
                                                                "connect to"))
    for text in ("tcp:127.0.0.1:9", "unix-dgram:/tmp/udp.sock"):
        assert str(describe_os_error(refused(), parse_address(text), "connect to")).endswith(
            ": nothing is listening there")


def test_the_transport_given_wins_over_the_text() -> None:
    # the words come from the transport passed (inside transports/), whatever the text says
    error = describe_without_lookup(refused(), "udp-named-host:7", "connect to", get_transport("tcp"))
    assert "ICMP" not in str(error)
    error = describe_without_lookup(denied(), "tcp:127.0.0.1:80", "bind", get_transport("unix"))
    assert PORTS not in str(error)


def test_a_missing_directory_is_named_for_a_socket_file(tmp_path: Path) -> None:
    address = parse_address(f"unix:{tmp_path}/gone/s.sock")
    with pytest.raises(errors.ConnectionRefusedError, match=f"directory {tmp_path}/gone does not exist"), \
            translate_os_errors(address, "connect to"):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory")


@pytest.mark.parametrize(("text", "limit"), [("udp:127.0.0.1:7", f"{UDP4_MAX:,} bytes over UDP"),
                                             ("udp4:127.0.0.1:7", f"{UDP4_MAX:,} bytes over UDP"),
                                             ("udp:[::1]:7", f"{UDP6_MAX:,} bytes over UDP/IPv6"),
                                             ("udp6:[::1]:7", f"{UDP6_MAX:,} bytes over UDP/IPv6"),
                                             ("tcp:127.0.0.1:7", None)])
def test_the_limit_in_words_is_the_families(text: str, limit: str | None) -> None:
    address = parse_address(text)
    assert get_transport(address.scheme).limit_summary(address) == limit
