"""Clients as students write them for the sum assignment, against netlab as the reference server.

Each is a few lines of blocking ``socket`` code, run in a thread, exactly as it would run
in a student's terminal: one ``sendall`` without a newline and one ``recv``; the same with
``2,3`` or a JSON array; or two ``sendall`` calls taken for two messages. Under line
framing they wait, and the server's hint says why within its HINT_AFTER second (waited
for as a log record, with a generous deadline); under ``--framing quiet --accept lenient``
they get their sum; the two-sends client gets what the framing implies.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable

import pytest
import trio

from netlab.runner import HINT_AFTER, Server
from netlab.services.sum import SumService

from helpers import LogWatch

StartServer = Callable[..., Awaitable[Server]]

#: how long a student's recv may block: only here so that a failing test ends
RECV_TIMEOUT = 30


def one_send(sock: socket.socket) -> bytes:
    sock.sendall(b"2 3")
    return sock.recv(1024)


def comma(sock: socket.socket) -> bytes:
    sock.sendall(b"2,3")
    return sock.recv(1024)


def json_array(sock: socket.socket) -> bytes:
    sock.sendall(json.dumps(["2", "3"]).encode())
    return sock.recv(1024)


def two_sends(sock: socket.socket) -> bytes:
    sock.sendall(b"2")
    sock.sendall(b"3")
    return sock.recv(1024)


#: student -> what it sent, as the hint shows it
STUDENTS = {one_send: "'2 3'", comma: "'2,3'", json_array: """'["2", "3"]'""", two_sends: "'23'"}


def connect(server: Server) -> socket.socket:
    sock = socket.create_connection((server.address.host, server.address.port))
    sock.settimeout(RECV_TIMEOUT)
    return sock


async def run_student(student: Callable[[socket.socket], bytes], sock: socket.socket, result: dict[str, bytes]) -> None:
    result["reply"] = await trio.to_thread.run_sync(student, sock, abandon_on_cancel=True)


@pytest.mark.parametrize("student", list(STUDENTS), ids=lambda f: f.__name__)
async def test_line_framing_students_wait_and_the_hint_says_why(
    netlab_server: StartServer, server_log: LogWatch, student: Callable[[socket.socket], bytes],
) -> None:
    server = await netlab_server(SumService(accept="lenient"), "tcp:127.0.0.1:0")
    sock = connect(server)
    result: dict[str, bytes] = {}
    with sock:
        started = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_student, student, sock, result)
            [hint] = await server_log.wait_for("began a request")
            assert "reply" not in result  # the student is still in recv: no reply came
            assert trio.current_time() - started >= HINT_AFTER
            message = hint.getMessage()
            assert f"tcp:127.0.0.1:{sock.getsockname()[1]} began a request" in message  # names the peer
            assert f"so far, {STUDENTS[student]}." in message  # the bytes so far
            assert "end the request with \\n, or serve with --framing quiet" in message  # what to do
            sock.sendall(b"\n")  # what the hint says: end the request, and the reply comes
    expected = b"ERR expected two numbers, found one: '23'\n" if student is two_sends else b"5\n"
    assert result["reply"] == expected
    assert server.stats.hints == 1


@pytest.mark.parametrize("student", [one_send, comma, json_array], ids=lambda f: f.__name__)
async def test_quiet_lenient_students_get_their_sum(netlab_server: StartServer,
                                                    student: Callable[[socket.socket], bytes]) -> None:
    server = await netlab_server(SumService(framing="quiet", accept="lenient"), "tcp:127.0.0.1:0")
    with connect(server) as sock:
        with trio.fail_after(RECV_TIMEOUT):
            assert await trio.to_thread.run_sync(student, sock, abandon_on_cancel=True) == b"5\n"
    assert server.stats.hints == 0


async def test_quiet_two_sends_are_one_request(netlab_server: StartServer) -> None:
    """TCP merges the two sends: the server sees '23', one number. (A long quiet time, so a
    student thread descheduled between its two sends on a loaded machine still counts as one
    burst; the result is the same with the default.)"""
    server = await netlab_server(SumService(framing="quiet:1500", accept="lenient"), "tcp:127.0.0.1:0")
    with connect(server) as sock:
        with trio.fail_after(RECV_TIMEOUT):
            reply = await trio.to_thread.run_sync(two_sends, sock, abandon_on_cancel=True)
    assert reply == b"ERR expected two numbers, found one: '23'\n"


async def test_quiet_a_pause_between_sends_makes_two_requests(netlab_server: StartServer) -> None:
    """A student who waits for an answer after each number: each pause ends a request."""

    def send_wait_send(sock: socket.socket) -> list[bytes]:
        replies = []
        for number in (b"2", b"3"):
            sock.sendall(number)
            replies.append(sock.recv(1024))
        return replies

    server = await netlab_server(SumService(framing="quiet", accept="lenient"), "tcp:127.0.0.1:0")
    with connect(server) as sock:
        with trio.fail_after(RECV_TIMEOUT):
            replies = await trio.to_thread.run_sync(send_wait_send, sock, abandon_on_cancel=True)
    assert replies == [b"ERR expected two numbers, found one: '2'\n", b"ERR expected two numbers, found one: '3'\n"]


async def test_eof_framing_waits_for_the_half_close(netlab_server: StartServer, server_log: LogWatch) -> None:
    server = await netlab_server(SumService(framing="eof"), "tcp:127.0.0.1:0")
    result: dict[str, bytes] = {}
    with connect(server) as sock:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_student, one_send, sock, result)
            [hint] = await server_log.wait_for("began a request")
            assert "reply" not in result
            assert "framing=eof" in hint.getMessage() and "half-close" in hint.getMessage()
            sock.shutdown(socket.SHUT_WR)
    assert result["reply"] == b"5\n"


async def test_one_hint_per_connection(netlab_server: StartServer, server_log: LogWatch) -> None:
    """A connection whose request stays unfinished is hinted once, however long it waits:
    the second connection's hint comes a second later, and the first has had no other."""
    server = await netlab_server("sum", "tcp:127.0.0.1:0")
    with connect(server) as first, connect(server) as second:
        first.sendall(b"2")
        await server_log.wait_for("began a request")
        first.sendall(b" 3")  # more of the same request: no new hint
        second.sendall(b"4")
        hints = await server_log.wait_for("began a request", count=2)
        port = first.getsockname()[1]
        assert [f":{port} began" in h.getMessage() for h in hints] == [True, False]
        first.sendall(b"\n")
        assert await trio.to_thread.run_sync(first.recv, 1024, abandon_on_cancel=True) == b"5\n"
    assert server.stats.hints == 2
    assert len(server_log.matching(f":{port} began")) == 1


async def test_hints_are_rate_limited(netlab_server: StartServer, server_log: LogWatch) -> None:
    """Many stuck clients at once: every one is counted, only a few are logged as warnings
    (the rest at debug level), so they cannot flood the server's log."""
    server = await netlab_server("sum", "tcp:127.0.0.1:0")
    clients = [connect(server) for _ in range(20)]
    try:
        for sock in clients:
            sock.sendall(b"1")
        hints = await server_log.wait_for("began a request", count=20)
        warnings = [h for h in hints if h.levelname == "WARNING"]
        assert 1 <= len(warnings) < 20
        assert server.stats.hints == 20
    finally:
        for sock in clients:
            sock.close()
