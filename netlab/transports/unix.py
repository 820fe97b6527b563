"""AF_UNIX stream sockets: ``unix:/path`` and ``unix:@abstract`` (Linux).

Socket files, decided visibly (anyio unlinks even a live server's file; socat refuses; we
check):

* a path that exists and is **not a socket** is never touched: bind fails and says so;
* a socket file that **no server answers** (connect gives ECONNREFUSED) is stale: it is
  removed, with a log line, and bound anew;
* a socket file that **a server answers** is refused: "already in use by a running server";
* the file is created with ``?mode=`` (default 0600, owner only) already in place: the
  process umask is narrowed around the one ``bind()`` call, so there is no moment when it
  is wider. (The umask is process-wide; for that instant, files other threads create can
  only come out narrower, never wider.) Directory permissions are the real access control;
* on close, the server removes its file, unless another file has replaced it since.

Abstract names have no file: nothing to clean up, and "in use" always means a live socket.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
from collections.abc import Callable

import trio

from ..errors import AddressInUseError, PermissionDeniedError, translate_os_errors
from .addresses import Address, bound_address
from .base import StreamTransport, apply_buffer_options

log = logging.getLogger("netlab.transports.unix")

DEFAULT_MODE = 0o600


def claim_path(address: Address, socktype: int) -> None:
    """Make way for binding `address`: remove a stale socket file, refuse anything else."""
    path = address.path
    assert path is not None
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        with translate_os_errors(address, "bind"):
            raise exc
    if not stat.S_ISSOCK(st.st_mode):
        raise AddressInUseError(f"cannot bind {address}: {path} exists and is not a socket (netlab never removes it)")
    probe = socket.socket(socket.AF_UNIX, socktype)
    probe.setblocking(False)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)
        log.warning("removed stale socket file %s: no server answered it", path)
        return
    except BlockingIOError:
        pass  # a live listener with a full backlog
    except PermissionError:
        raise PermissionDeniedError(
            f"cannot bind {address}: the socket file exists and we may not connect to it to check whether it is live"
        ) from None
    except OSError as exc:
        if exc.errno not in (errno.EPROTOTYPE, errno.EAGAIN):
            with translate_os_errors(address, "bind"):
                raise
    finally:
        probe.close()
    raise AddressInUseError(f"cannot bind {address}: already in use by a running server", errno=errno.EADDRINUSE)


def bind_unix(sock: socket.socket, address: Address) -> Callable[[], None]:
    """Bind a unix socket (claiming the path first); return the function that cleans it up."""
    with translate_os_errors(address, "bind"):
        apply_buffer_options(sock, address)
        if address.abstract is not None:
            sock.bind(address.unix_sockaddr())
            return lambda: None
        claim_path(address, sock.type)
        mode = int(address.option("mode", DEFAULT_MODE))  # type: ignore[call-overload]
        old_umask = os.umask(0o777 & ~mode)
        try:
            sock.bind(address.unix_sockaddr())
        finally:
            os.umask(old_umask)
        st = os.lstat(address.path)  # type: ignore[arg-type]
    path, identity = address.path, (st.st_dev, st.st_ino)

    def cleanup() -> None:
        try:
            now = os.lstat(path)  # type: ignore[arg-type]
        except OSError:
            return
        if (now.st_dev, now.st_ino) == identity:
            os.unlink(path)  # type: ignore[arg-type]

    return cleanup


class UnixListener(trio.abc.Listener[trio.SocketStream]):
    """A `trio.SocketListener` that removes its socket file when closed."""

    def __init__(self, inner: trio.SocketListener, cleanup: Callable[[], None]) -> None:
        self._inner = inner
        self._cleanup: Callable[[], None] | None = cleanup
        self.socket = inner.socket

    async def accept(self) -> trio.SocketStream:
        return await self._inner.accept()

    async def aclose(self) -> None:
        if self._cleanup is not None:
            cleanup, self._cleanup = self._cleanup, None
            cleanup()
        await self._inner.aclose()


class UnixStreamTransport(StreamTransport):
    scheme = "unix"
    target = "unix"
    family = socket.AF_UNIX
    socktype = socket.SOCK_STREAM
    options = frozenset({"backlog", "mode", "rcvbuf", "sndbuf"})
    summary = "AF_UNIX stream: a reliable, ordered byte stream between processes on one host"

    async def open_listeners(self, address: Address) -> list[trio.abc.Listener[trio.SocketStream]]:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            cleanup = bind_unix(sock, address)
            try:
                with translate_os_errors(address, "listen on"):
                    sock.listen(int(address.option("backlog", socket.SOMAXCONN)))  # type: ignore[call-overload]
            except BaseException:
                cleanup()
                raise
        except BaseException:
            sock.close()
            raise
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
        await trio.lowlevel.checkpoint()
        return [UnixListener(listener, cleanup)]

    def listener_address(self, listener: trio.abc.Listener[trio.SocketStream], requested: Address) -> Address:
        return bound_address(requested, listener.socket.getsockname())  # type: ignore[attr-defined]

    async def connect(self, address: Address) -> trio.SocketStream:
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with translate_os_errors(address, "connect to"):
                apply_buffer_options(sock, address)
                await sock.connect(address.unix_sockaddr())
        except BaseException:
            sock.close()
            raise
        return trio.SocketStream(sock)
