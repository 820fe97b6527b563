"""AF_UNIX specifics, on both unix schemes: socket files (stale, live, not a socket,
permissions, cleanup), the path length limit, abstract names, and datagram senders the
server cannot answer. Transports come from conftest.py, narrowed to the unix ones."""

from __future__ import annotations

import logging
import os
import socket
import stat
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from netlab import errors
from netlab.runner import open_client, serve
from netlab.transports import Address, Transport, parse_address
import netlab.transports.unix_dgram

from conftest import StartServer
from helpers import message_channel

pytestmark = pytest.mark.transports(target="unix")

TIMEOUT = 10


async def assert_serves(address: Address | str) -> None:
    async with open_client(address, "echo") as client:
        assert await client.request(b"ping", timeout=TIMEOUT) == b"ping"


def with_option(address: Address, option: str) -> Address:
    return parse_address(f"{address}?{option}")


# -- socket files ----------------------------------------------------------------------------


async def test_stale_socket_file_is_replaced(
    transport: Transport, make_address: Callable[[], Address], start_server: StartServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    address = make_address()
    assert address.path is not None
    leftover = socket.socket(socket.AF_UNIX, transport.socktype)
    leftover.bind(address.path)
    leftover.close()  # a crashed server: the file stays, nobody answers it
    assert stat.S_ISSOCK(os.lstat(address.path).st_mode)

    with caplog.at_level(logging.WARNING, logger="netlab.transports.unix"):
        server = await start_server("echo", address)
    assert "removed stale socket file" in caplog.text
    await assert_serves(server.address)


async def test_stale_socket_file_of_the_other_type_is_replaced(
    transport: Transport, make_address: Callable[[], Address], start_server: StartServer
) -> None:
    address = make_address()
    assert address.path is not None
    other = socket.SOCK_DGRAM if transport.socktype == socket.SOCK_STREAM else socket.SOCK_STREAM
    leftover = socket.socket(socket.AF_UNIX, other)
    leftover.bind(address.path)
    leftover.close()
    server = await start_server("echo", address)
    await assert_serves(server.address)


async def test_live_socket_is_refused(make_address: Callable[[], Address], start_server: StartServer) -> None:
    first = await start_server("echo", make_address())
    path = first.address.path
    assert path is not None
    before = os.lstat(path)
    with pytest.raises(errors.AddressInUseError, match="running server") as info:
        await start_server("echo", first.address)
    assert path in str(info.value)
    after = os.lstat(path)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)  # not replaced
    await assert_serves(first.address)  # and the first server is undisturbed


async def test_live_socket_of_the_other_type_is_refused(
    transport: Transport, make_address: Callable[[], Address], start_server: StartServer
) -> None:
    address = make_address()
    assert address.path is not None
    other = socket.SOCK_DGRAM if transport.socktype == socket.SOCK_STREAM else socket.SOCK_STREAM
    with socket.socket(socket.AF_UNIX, other) as live:
        live.bind(address.path)
        if other == socket.SOCK_STREAM:
            live.listen()
        with pytest.raises(errors.AddressInUseError, match="running server"):
            await start_server("echo", address)
        assert stat.S_ISSOCK(os.lstat(address.path).st_mode)


async def test_a_file_that_is_not_a_socket_is_never_removed(
    make_address: Callable[[], Address], start_server: StartServer
) -> None:
    address = make_address()
    path = Path(address.path or "")
    path.write_bytes(b"precious data\n")
    with pytest.raises(errors.AddressInUseError, match="not a socket") as info:
        await start_server("echo", address)
    assert "never removes" in str(info.value)
    assert path.read_bytes() == b"precious data\n"
    assert stat.S_ISREG(os.lstat(path).st_mode)


async def test_a_directory_at_the_path_is_never_removed(
    make_address: Callable[[], Address], start_server: StartServer
) -> None:
    address = make_address()
    Path(address.path or "").mkdir()
    with pytest.raises(errors.AddressInUseError, match="not a socket"):
        await start_server("echo", address)
    assert Path(address.path or "").is_dir()


async def test_path_too_long_is_an_address_error(
    transport: Transport, netlab_dir: Path, start_server: StartServer
) -> None:
    prefix = str(netlab_dir) + "/"
    path = prefix + "x" * (108 - len(prefix))
    with pytest.raises(errors.AddressError, match="108 bytes.*at most 107"):
        await start_server("echo", f"{transport.scheme}:{path}")
    assert not os.path.lexists(path)  # refused up front, not truncated


async def test_path_of_exactly_107_bytes_binds(
    transport: Transport, netlab_dir: Path, start_server: StartServer
) -> None:
    prefix = str(netlab_dir) + "/"
    path = prefix + "p" * (107 - len(prefix))
    assert len(path.encode()) == 107
    server = await start_server("echo", f"{transport.scheme}:{path}")
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    await assert_serves(server.address)


async def test_socket_file_removed_when_the_server_stops(make_address: Callable[[], Address]) -> None:
    address = make_address()
    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve, "echo", address)
        await assert_serves(server.address)
        assert os.path.exists(address.path or "")
        nursery.cancel_scope.cancel()
    assert not os.path.lexists(address.path or "")


async def test_a_file_put_in_its_place_is_not_removed_on_stop(make_address: Callable[[], Address]) -> None:
    address = make_address()
    path = Path(address.path or "")
    async with trio.open_nursery() as nursery:
        await nursery.start(serve, "echo", address)
        path.unlink()
        path.write_bytes(b"someone else's")
        nursery.cancel_scope.cancel()
    assert path.read_bytes() == b"someone else's"


@pytest.mark.parametrize(("option", "mode"), [(None, 0o600), ("mode=0660", 0o660), ("mode=644", 0o644)])
async def test_socket_file_mode(
    make_address: Callable[[], Address], start_server: StartServer, option: str | None, mode: int
) -> None:
    address = make_address()
    if option is not None:
        address = with_option(address, option)
    umask = os.umask(0o022)
    os.umask(umask)
    server = await start_server("echo", address)
    assert stat.S_IMODE(os.lstat(address.path or "").st_mode) == mode
    current = os.umask(umask)
    assert current == umask  # the umask was narrowed only around bind()
    await assert_serves(server.address)


async def test_connect_to_a_missing_socket_file_is_refused(transport: Transport, netlab_dir: Path) -> None:
    address = f"{transport.scheme}:{netlab_dir}/nobody.sock"
    with pytest.raises(errors.ConnectionRefusedError, match="no such socket file"):
        async with open_client(address, "echo") as client:
            await client.request(b"hello", timeout=TIMEOUT)


async def test_connect_to_a_stale_socket_file_is_refused(
    transport: Transport, make_address: Callable[[], Address]
) -> None:
    address = make_address()
    leftover = socket.socket(socket.AF_UNIX, transport.socktype)
    leftover.bind(address.path or "")
    leftover.close()
    with pytest.raises(errors.ConnectionRefusedError, match="refused"):
        async with open_client(address, "echo") as client:
            await client.request(b"hello", timeout=TIMEOUT)


# -- abstract names --------------------------------------------------------------------------


async def test_abstract_names(transport: Transport, start_server: StartServer) -> None:
    name = f"netlab-test-{uuid.uuid4().hex}"
    server = await start_server("echo", f"{transport.scheme}:@{name}")
    assert server.address.abstract == name
    assert str(server.address) == f"{transport.scheme}:@{name}"
    await assert_serves(server.address)
    with pytest.raises(errors.AddressInUseError, match="already in use"):
        await start_server("echo", f"{transport.scheme}:@{name}")
    await assert_serves(server.address)


async def test_abstract_name_is_free_again_after_stop(transport: Transport) -> None:
    address = f"{transport.scheme}:@netlab-test-{uuid.uuid4().hex}"
    for _ in range(2):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(serve, "echo", address)
            await assert_serves(server.address)
            nursery.cancel_scope.cancel()


# -- datagram senders the server cannot serve --------------------------------------------------


@pytest.mark.transports(target="unix", kind="datagram")
async def test_unbound_sender_is_counted_not_answered(start_server: StartServer) -> None:
    server = await start_server("sum")
    path = server.address.path
    assert path is not None
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as unbound:  # never binds
        unbound.sendto(b"2 3", path)
    # unix datagrams are ordered and the server handles them one by one: once this reply
    # is here, the unbound sender's datagram has been dealt with
    async with open_client(server.address, "sum") as client:
        assert await client.request(b"40 2", timeout=TIMEOUT) == b"42"
    assert server.stats.unanswerable == 1
    assert server.stats.datagrams == 2
    assert server.stats.reply_failures == 0


@pytest.mark.transports(target="unix", kind="datagram")
async def test_datagram_a_client_may_send_with_a_raised_sndbuf_is_served(start_server: StartServer) -> None:
    """A client may raise SO_SNDBUF to 2 * wmem_max: the server reads and answers all of it."""
    server = await start_server("echo")
    async with open_client(str(server.address) + "?sndbuf=400000", "echo") as client:
        payload = b"z" * (300 * 1024)
        assert await client.request(payload, timeout=TIMEOUT) == payload
    assert server.stats.truncated == 0 and server.stats.reply_failures == 0


@pytest.mark.transports(target="unix", kind="datagram")
async def test_datagram_over_the_read_buffer_is_counted_not_answered(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real server buffer (2 * wmem_max) is larger than any datagram this kernel will
    # build (about 4 MiB); shrink it to exercise the MSG_TRUNC path.
    monkeypatch.setattr(netlab.transports.unix_dgram, "server_receive_buffer", lambda: 64 * 1024)
    server = await start_server("echo")
    async with open_client(str(server.address) + "?sndbuf=200000", "echo") as client:
        await message_channel(client).send(b"z" * (100 * 1024))
        # ordered: the next reply we get is the one to this request, not a cut-off echo
        assert await client.request(b"small", timeout=TIMEOUT) == b"small"
    assert server.stats.truncated == 1
    assert server.stats.datagrams == 2
