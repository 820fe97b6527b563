"""The tls transport beyond the conformance suite (which runs on it too): certificates with no
set-up, verification and its errors, and an outside client (openssl s_client)."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
import trustme

from netlab import errors
from netlab.runner import Server, open_client
from netlab.transports import get_transport, parse_address, socket_of
from netlab.transports.tls import TlsStream, throwaway_ca

from conftest import NetlabProcess

TIMEOUT = 10
StartServer = Callable[..., Awaitable[Server]]


def write_pems(ca: trustme.CA, directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """A certificate for `host` signed by `ca`: (cert chain, key, CA certificate) files."""
    leaf = ca.issue_cert(host)
    cert, key, ca_file = directory / "cert.pem", directory / "key.pem", directory / "ca.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    return cert, key, ca_file


async def test_throwaway_ca_is_in_the_bound_address(netlab_server: StartServer) -> None:
    server = await netlab_server("sum", "tls:127.0.0.1:0")
    ca = server.address.str_option("ca")
    assert ca == throwaway_ca().path
    assert Path(ca).read_text().startswith("-----BEGIN CERTIFICATE-----")
    # the bound address, as printed, is all a client needs
    async with open_client(str(server.address), "sum") as client:
        assert await client.request(b"2 3", timeout=TIMEOUT) == b"5\n"
        assert isinstance(client.connection, TlsStream)
        assert client.connection.version() in ("TLSv1.2", "TLSv1.3")
        assert socket_of(client.connection).type == socket.SOCK_STREAM  # the TCP socket under TLS


async def test_throwaway_certificate_names_localhost_and_loopback(netlab_server: StartServer) -> None:
    server = await netlab_server("sum", "tls:127.0.0.1:0")
    ca = server.address.str_option("ca")
    async with open_client(f"tls:localhost:{server.address.port}?ca={ca}", "sum") as client:
        assert await client.request(b"1 1", timeout=TIMEOUT) == b"2\n"


@pytest.mark.process
def test_serve_prints_the_ca(netlab_process: type[NetlabProcess]) -> None:
    process = netlab_process("serve", "--transport", "tls:127.0.0.1:0", "--service", "sum")
    bound = parse_address(process.listening)
    ca = bound.str_option("ca")
    assert ca is not None and Path(ca).is_file()

    async def ask() -> bytes:
        async with open_client(bound, "sum") as client:
            return await client.request(b"2 3", timeout=TIMEOUT)

    assert trio.run(ask) == b"5\n"


async def test_given_cert_and_key(netlab_server: StartServer, tmp_path: Path) -> None:
    cert, key, ca = write_pems(trustme.CA(), tmp_path)
    server = await netlab_server("sum", f"tls:127.0.0.1:0?cert={cert}&key={key}&ca={ca}")
    # a server's ?ca= names the CA of its ?cert= and goes into its bound address; cert and key do not
    assert server.address.str_option("ca") == str(ca)
    assert server.address.str_option("cert") is None and server.address.str_option("key") is None
    async with open_client(server.address, "sum") as client:
        assert await client.request(b"2 3", timeout=TIMEOUT) == b"5\n"


async def test_without_ca_the_error_names_the_fix(netlab_server: StartServer) -> None:
    server = await netlab_server("sum", "tls:127.0.0.1:0")
    with pytest.raises(errors.TransportError, match=r"certificate verify failed.*\?ca=FILE.*\?insecure=1"):
        async with open_client(f"tls:127.0.0.1:{server.address.port}", "sum") as client:
            await client.request(b"2 3", timeout=TIMEOUT)


async def test_wrong_ca_is_a_clear_error(netlab_server: StartServer, tmp_path: Path) -> None:
    server = await netlab_server("sum", "tls:127.0.0.1:0")
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    with pytest.raises(errors.TransportError, match="certificate verify failed") as info:
        async with open_client(f"tls:127.0.0.1:{server.address.port}?ca={other}", "sum") as client:
            await client.request(b"2 3", timeout=TIMEOUT)
    assert str(other) in str(info.value)
    async with open_client(server.address, "sum") as client:  # the server is fine
        assert await client.request(b"2 3", timeout=TIMEOUT) == b"5\n"


async def test_insecure_works_and_warns(netlab_server: StartServer, caplog: pytest.LogCaptureFixture) -> None:
    server = await netlab_server("sum", "tls:127.0.0.1:0")
    with caplog.at_level(logging.WARNING, logger="netlab.tls"):
        async with open_client(f"tls:127.0.0.1:{server.address.port}?insecure=1", "sum") as client:
            assert await client.request(b"2 3", timeout=TIMEOUT) == b"5\n"
    assert any("NOT verifying" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


async def test_plain_tcp_client_fails_cleanly_and_the_server_survives(netlab_server: StartServer) -> None:
    server = await netlab_server("sum", "tls:127.0.0.1:0")
    with pytest.raises(errors.ConnectionResetError):  # at least 5 bytes: a TLS record header's worth
        async with open_client(f"tcp:127.0.0.1:{server.address.port}", "sum") as client:
            await client.request(b"2 3\n2 3", timeout=TIMEOUT)
    async with open_client(server.address, "sum") as client:
        assert await client.request(b"2 3", timeout=TIMEOUT) == b"5\n"
    assert server.stats.connections == 2


async def test_tls_client_to_a_plain_tcp_server_is_a_clear_error(netlab_server: StartServer) -> None:
    server = await netlab_server("echo", "tcp:127.0.0.1:0")  # echoes the ClientHello back
    with pytest.raises(errors.TransportError, match="TLS handshake .* failed.*is it a TLS server"):
        async with open_client(f"tls:127.0.0.1:{server.address.port}?insecure=1", "echo") as client:
            await client.request(b"hello", timeout=TIMEOUT)


@pytest.mark.parametrize("options, message", [
    ("cert=/nonexistent/cert.pem&key=/nonexistent/key.pem", r"\?cert=/nonexistent/cert.pem: no such file"),
    ("cert={cert}", r"both \?cert=FILE and \?key=FILE"),
    ("key={key}", r"both \?cert=FILE and \?key=FILE"),
    ("cert={cert}&key={cert}", "not a certificate .* and its private key"),
    ("cert={cert}&key={key}&ca=/nonexistent/ca.pem", r"\?ca=/nonexistent/ca.pem: no such file"),
    ("insecure=1", "is a client option"),
    ("ca={ca}", "names the CA of its"),
])
async def test_server_usage_errors(tmp_path: Path, options: str, message: str) -> None:
    cert, key, ca = write_pems(trustme.CA(), tmp_path)
    address = parse_address("tls:127.0.0.1:0?" + options.format(cert=cert, key=key, ca=ca))
    with pytest.raises(errors.AddressError, match=message):
        await get_transport(address.scheme).listen(address)


@pytest.mark.parametrize("options, message", [
    ("ca=/nonexistent/ca.pem", r"\?ca=/nonexistent/ca.pem: no such file"),
    ("ca={key}", "not usable"),
    ("ca={ca}&insecure=1", "give one"),
    ("cert={cert}", "is a server option"),
])
async def test_client_usage_errors(netlab_server: StartServer, tmp_path: Path, options: str, message: str) -> None:
    server = await netlab_server("sum", "tls:127.0.0.1:0")
    cert, key, ca = write_pems(trustme.CA(), tmp_path)
    address = parse_address(f"tls:127.0.0.1:{server.address.port}?" + options.format(cert=cert, key=key, ca=ca))
    with pytest.raises(errors.AddressError, match=message):
        await get_transport(address.scheme).connect(address)


def test_file_options_round_trip() -> None:
    address = parse_address("tls:127.0.0.1:7000?ca=/tmp/a%20b%26c%3Fd%25e.pem")
    assert address.str_option("ca") == "/tmp/a b&c?d%e.pem"
    assert parse_address(str(address)) == address


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
@pytest.mark.process
def test_openssl_s_client(netlab_process: type[NetlabProcess]) -> None:
    """The README's example. s_client -quiet implies -ign_eof: it prints the reply, then waits
    for the server to close, which --idle-timeout makes prompt (and -no_ign_eof would close
    before the reply came)."""
    process = netlab_process("serve", "--transport", "tls:127.0.0.1:0", "--service", "sum", "--idle-timeout", "1")
    bound = parse_address(process.listening)
    command = f"printf '2 3\\n' | openssl s_client -quiet -connect 127.0.0.1:{bound.port} -CAfile {bound.str_option('ca')}"
    result = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60)
    assert result.stdout == "5\n", result.stderr
    assert result.returncode == 0, result.stderr
