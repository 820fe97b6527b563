"""The stream hot path: how a server reads a byte stream into its service and writes back
what the service returns (tcp, tcp6, unix; tls through the stream's own calls).

Every stream server spends its time here, so it is kept lean (benchmarks/RESULTS.md has
the before and after); `StreamHandler` holds what the connections of one server share.
"""

from __future__ import annotations

import errno
import os

import trio

from ..services import Session
from ..services.base import REPLY_BUDGET
from ..transports import ByteStream, plain_socket
from ..transports.batch import SPIN, readable_soon
from .context import Serving
from .deadline import Deadline
from .unfinished import Hints, Unfinished

#: a stream server's reads: one buffer this size serves all its connections (asyncio reads
#: 256 KiB at a time too; fewer, larger reads carry a bulk transfer with less overhead)
SERVER_RECEIVE_SIZE = 256 * 1024
#: what a stream connection beyond the server's limits is told before it is closed
BUSY = b"ERR busy\n"


def _broken(exc: OSError) -> trio.BrokenResourceError | trio.ClosedResourceError:
    """The error trio's SocketStream would raise for `exc` (what `Admission.admit` expects)."""
    if exc.errno in (errno.EBADF, errno.ENOTSOCK):
        closed = trio.ClosedResourceError("this socket was already closed")
        closed.__suppress_context__ = True
        return closed
    broken = trio.BrokenResourceError(f"socket connection broken: {exc}")
    broken.__cause__ = exc
    return broken


async def _readable_by(fd: int, when: float) -> bool:
    """Wait until `fd` is readable or it is `when`; False if the time came first."""
    with trio.move_on_at(when):
        await trio.lowlevel.wait_readable(fd)
        return True
    return False


class StreamHandler:
    """Serves the byte-stream connections of one server; they share its read buffer and hints."""

    def __init__(self, server: Serving) -> None:
        self._server = server
        #: where connections read into: one buffer for all of them (each read is copied out
        #: before the next await, and the server's tasks all run in one thread)
        self._read_buffer = memoryview(bytearray(SERVER_RECEIVE_SIZE))
        self._hints = Hints(server)

    async def __call__(self, stream: ByteStream) -> None:
        """Feed a session every chunk the peer sends; write back what it returns.

        The hot path of every stream server, kept lean (benchmarks/RESULTS.md has the before
        and after). It reads with one system call into the server's one reused buffer (no
        64 KiB allocation per read) and copies out just what came; it writes the reply at once
        when the kernel takes it all, which is nearly always, and only a reply that does not
        fit goes through ``send_all`` and waits. It reads before waiting, as trio's own socket
        calls do, and yields to the other tasks once per message: by waiting for the next one,
        or, when it was already there, at a checkpoint. OS errors become the
        ``BrokenResourceError`` / ``ClosedResourceError`` that ``SocketStream`` would raise.
        While a request is unfinished, the wait has a deadline (`Unfinished`); if it passes
        and a read still finds nothing, the session is told (n = -1 below).
        """
        server = self._server
        session = server.service.new_session()
        feed = session.receive_data
        framing = server.service.framing
        unfinished = None if framing is None else Unfinished(self._hints, stream, session, framing)
        sock = plain_socket(stream)
        if sock is None:  # bytes that pass through a layer (TLS): the stream's own calls
            await self._layered(stream, session, unfinished)
            return
        fd = sock.fileno()
        buffer = self._read_buffer
        wait_readable, checkpoint, readv, write = (trio.lowlevel.wait_readable, trio.lowlevel.checkpoint,
                                                   os.readv, os.write)
        deadline = Deadline(server.limits.idle_timeout, server.limits.request_timeout)
        silent = False  # the unfinished request's deadline passed while waiting
        with deadline.scope:
            while True:
                deadline.arm()
                waited = False
                spin = SPIN
                try:
                    while True:
                        try:
                            n = readv(fd, (buffer,))
                            break
                        except BlockingIOError:
                            if silent:
                                n = -1
                                break
                            if spin and readable_soon(fd, spin):
                                spin = 0.0
                                continue
                            wake = None if unfinished is None else unfinished.wake_at()
                            if wake is None:
                                await wait_readable(fd)
                            else:
                                silent = not await _readable_by(fd, wake)
                            waited = True
                except OSError as exc:
                    raise _broken(exc)  # _broken sets the cause
                if n < 0:
                    silent = False
                    assert unfinished is not None
                    reply = unfinished.expired()
                else:
                    reply = feed(bytes(buffer[:n]))  # a copy: the buffer is reused at the next read
                ended = bool(reply)  # a request ended: one still pending began in this read
                if ended and unfinished is not None:
                    unfinished.since = None
                while reply:
                    try:
                        sent = write(fd, reply)
                    except BlockingIOError:
                        sent = 0
                    except OSError as exc:
                        raise _broken(exc)  # _broken sets the cause
                    if sent < len(reply):
                        deadline.arm()
                        deadline.sending = True
                        await stream.send_all(memoryview(reply)[sent:])
                        deadline.sending = False
                        waited = True
                    if len(reply) < REPLY_BUDGET:
                        break
                    # the session stopped at its budget: the rest, once this has gone (it did,
                    # or send_all waited for the client to read it); no reading meanwhile
                    reply = session.resume()
                    server.stats.budget_waits += bool(reply)
                pending = session.pending()
                if pending or deadline.request_due is not None:
                    deadline.request(bool(pending), ended)
                if not n or server.draining:
                    return
                if not waited:
                    await checkpoint()
        deadline.report(server)

    async def _layered(self, stream: ByteStream, session: Session, unfinished: Unfinished | None) -> None:
        """`__call__` for a stream whose bytes pass through a layer (TLS): the same
        protocol, with the stream's own receive_some and send_all. A receive cancelled for an
        unfinished request's deadline loses nothing (trio's SSLStream keeps what it decrypted;
        only a cancelled handshake breaks it, and a request has begun only after one)."""
        server = self._server
        feed = session.receive_data
        deadline = Deadline(server.limits.idle_timeout, server.limits.request_timeout)
        with deadline.scope:
            while True:
                deadline.arm()
                wake = None if unfinished is None else unfinished.wake_at()
                if wake is None:
                    data = await stream.receive_some(SERVER_RECEIVE_SIZE)
                    reply = feed(bytes(data))
                else:
                    received: bytes | bytearray | None = None
                    with trio.move_on_at(wake):
                        received = await stream.receive_some(SERVER_RECEIVE_SIZE)
                    if received is None:  # nothing came in time
                        assert unfinished is not None
                        data = b"-"  # (not the end of stream)
                        reply = unfinished.expired()
                    else:
                        data = received
                        reply = feed(bytes(data))
                ended = bool(reply)  # a request ended: one still pending began in this read
                if ended and unfinished is not None:
                    unfinished.since = None
                while reply:
                    deadline.arm()
                    deadline.sending = True
                    await stream.send_all(reply)
                    deadline.sending = False
                    if len(reply) < REPLY_BUDGET:
                        break
                    reply = session.resume()
                    server.stats.budget_waits += bool(reply)
                deadline.request(bool(session.pending()), ended)
                if not data or server.draining:
                    return
        deadline.report(server)
