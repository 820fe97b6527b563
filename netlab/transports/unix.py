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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from ..errors import AddressInUseError, PermissionDeniedError
from ._sockopts import apply_buffer_options, buffer_calls
from .addresses import Address, bound_address
from .base import Listeners, OptionDefault, Plan, SockInfo, StreamTransport, Transport
from .oserrors import translate_os_errors

log = logging.getLogger("netlab.transports.unix")

DEFAULT_MODE = 0o600


@dataclass(frozen=True)
class PathProbe:
    """What is at a unix socket path, found without changing anything there.

    ``state`` is one of:

    * ``"missing"``: nothing at the path (bind would create the socket file); for an
      abstract name (`probe_abstract`), no socket holds it;
    * ``"not-socket"``: something that is not a socket (``kind`` says what); never removed;
    * ``"stale"``: a socket file that no server answers (connect: ECONNREFUSED);
    * ``"live"``: a socket file a server answers (or one of the other socket type is bound);
    * ``"unknown"``: we could not tell; ``error`` holds the OSError (EACCES, ENOTDIR, ...).
    """

    path: str
    state: str
    kind: str  # "socket", "regular file", "directory", "symbolic link", ..., or "" when missing/unknown
    detail: str
    error: OSError | None = None


_KINDS = [
    (stat.S_ISSOCK, "socket"), (stat.S_ISREG, "regular file"), (stat.S_ISDIR, "directory"),
    (stat.S_ISLNK, "symbolic link"), (stat.S_ISFIFO, "named pipe"), (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
]


def file_kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "special file")


def probe_path(path: str, socktype: int) -> PathProbe:
    """Look at `path` (lstat, then a non-blocking connect if it is a socket). Removes nothing.

    The connect is what tells stale from live; a live server sees one connection that
    closes at once without sending anything.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return PathProbe(path, "missing", "", "nothing at this path")
    except OSError as exc:
        return PathProbe(path, "unknown", "", f"cannot look at it: {exc.strerror}", exc)
    kind = file_kind(st.st_mode)
    if kind != "socket":
        return PathProbe(path, "not-socket", kind, f"a {kind}, not a socket (netlab never removes it)")
    state, detail, error = _connect_probe(path, socktype)
    if state == "missing":
        state, detail = "stale", "a socket file no server answers (connect: ECONNREFUSED)"
    return PathProbe(path, state, kind, detail, error)


def probe_abstract(name: str, socktype: int) -> PathProbe:
    """Whether a socket holds the abstract name `name` (without the "@"): a connect, nothing else."""
    sockaddr = b"\0" + name.encode("utf-8", "surrogateescape")
    state, detail, error = _connect_probe(sockaddr, socktype)
    if state == "missing":
        detail = "no socket holds this abstract name (connect: ECONNREFUSED)"
    return PathProbe("@" + name, state, "abstract name", detail, error)


def _connect_probe(sockaddr: str | bytes, socktype: int) -> tuple[str, str, OSError | None]:
    """A non-blocking connect: ("missing" | "live" | "unknown", detail, error). Refused means nobody."""
    probe = socket.socket(socket.AF_UNIX, socktype)
    probe.setblocking(False)
    try:
        probe.connect(sockaddr)
    except ConnectionRefusedError:
        return "missing", "connect: ECONNREFUSED", None
    except BlockingIOError:
        return "live", "a server is bound there (its backlog is full)", None
    except OSError as exc:
        if exc.errno in (errno.EPROTOTYPE, errno.EAGAIN):
            return "live", "a socket of the other type is bound there", None
        return "unknown", f"cannot tell whether it is live: {exc.strerror}", exc
    finally:
        probe.close()
    return "live", "a server answers there", None


def claim_path(address: Address, socktype: int) -> None:
    """Make way for binding `address`: remove a stale socket file, refuse anything else."""
    path = address.path
    assert path is not None
    found = probe_path(path, socktype)
    if found.state == "missing":
        return
    if found.state == "not-socket":
        raise AddressInUseError(f"cannot bind {address}: {path} exists and is not a socket (netlab never removes it)")
    if found.state == "stale":
        os.unlink(path)
        log.warning("removed stale socket file %s: no server answered it", path)
        return
    if found.state == "unknown":
        assert found.error is not None
        if found.kind == "socket" and isinstance(found.error, PermissionError):
            raise PermissionDeniedError(
                f"cannot bind {address}: the socket file exists and we may not connect to it to check whether it is live"
            ) from None
        with translate_os_errors(address, "bind"):
            raise found.error
    raise AddressInUseError(f"cannot bind {address}: already in use by a running server", errno=errno.EADDRINUSE)


def bind_unix(sock: socket.socket, address: Address) -> Callable[[], None]:
    """Bind a unix socket (claiming the path first); return the function that cleans it up."""
    with translate_os_errors(address, "bind"):
        apply_buffer_options(sock, address)
        if address.abstract is not None:
            sock.bind(address.unix_sockaddr())
            return lambda: None
        claim_path(address, sock.type)
        mode = address.int_option("mode", DEFAULT_MODE)
        old_umask = os.umask(0o777 & ~mode)
        try:
            sock.bind(address.unix_sockaddr())
        finally:
            os.umask(old_umask)
        assert address.path is not None  # not abstract: a path
        path: str = address.path
        st = os.lstat(path)
    identity = (st.st_dev, st.st_ino)

    def cleanup() -> None:
        try:
            now = os.lstat(path)
        except OSError:
            return
        if (now.st_dev, now.st_ino) == identity:
            os.unlink(path)

    return cleanup


def listen_unix(socktype: int, address: Address) -> tuple[socket.socket, Callable[[], None]]:
    """A listening unix socket (stream or seqpacket) at `address`, and its cleanup."""
    sock = socket.socket(socket.AF_UNIX, socktype)
    try:
        cleanup = bind_unix(sock, address)
        try:
            with translate_os_errors(address, "listen on"):
                sock.listen(address.int_option("backlog", socket.SOMAXCONN))
        except BaseException:
            cleanup()
            raise
    except BaseException:
        sock.close()
        raise
    return sock, cleanup


# -- the same, said ----------------------------------------------------------------------


def bind_calls(address: Address) -> list[str]:
    """What `bind_unix` does for `address`, in its order."""
    calls = buffer_calls(address)
    if address.abstract is not None:
        return calls + [f"bind({address.unix_sockaddr()!r})  # abstract: a leading NUL, no file"]
    mode = address.int_option("mode", DEFAULT_MODE)
    return calls + [
        f"lstat({address.path!r}): missing -> go on; not a socket -> refuse (never removed); "
        f"a socket -> connect() to it: refused -> stale, unlink() it; answered -> refuse (in use)",
        f"umask(0o{0o777 & ~mode:03o})  # so the file is created {mode:04o}, never wider",
        f"bind({address.path!r})",
        "umask(<previous>)",
    ]


def listen_calls(address: Address) -> list[str]:
    """What `listen_unix` does after binding, and what a server then does."""
    return [f"listen({address.int_option('backlog', socket.SOMAXCONN)})", "accept() in a loop (trio.serve_listeners)"]


def unix_plan(transport: Transport, address: Address, *, serve: list[str], use: str,
              server_setup: Sequence[str] = (), client_setup: Sequence[str] = ()) -> Plan:
    """A unix transport's plan: a socket, `server_setup`, `bind_calls`, then `serve` (and the
    file removed on close); a client's socket, `client_setup`, buffers, connect, then `use`."""
    kind = transport.socktype.name
    server = [f"socket(AF_UNIX, {kind})", *server_setup, *bind_calls(address), *serve]
    if address.path is not None:
        server.append(f"on close: unlink({address.path!r}), unless another file has replaced it")
    client = [f"socket(AF_UNIX, {kind})", *client_setup, *buffer_calls(address),
              f"connect({address.unix_sockaddr()!r})", use]
    return Plan(server, client)


def unix_option_default(transport: Transport, name: str, address: Address) -> OptionDefault | None:
    """`Transport.option_default` for unix: the file's mode as `bind_unix` sets it."""
    if name == "mode":
        if address.abstract is not None:
            return None  # abstract names have no file
        return f"{DEFAULT_MODE:04o}", "default: owner only"
    return Transport.option_default(transport, name, address)


# -- the transport ------------------------------------------------------------------------


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
    protocol = 0
    options = frozenset({"backlog", "mode", "rcvbuf", "sndbuf"})
    summary = "AF_UNIX stream: a reliable, ordered byte stream between processes on one host"
    compare_address = "unix:{dir}/s.sock"
    socat = ("UNIX-LISTEN", "UNIX-CONNECT", "")

    async def listen(self, address: Address) -> Listeners[trio.SocketStream]:
        sock, cleanup = listen_unix(socket.SOCK_STREAM, address)
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
        await trio.lowlevel.checkpoint()
        return Listeners(self, address, [UnixListener(listener, cleanup)], [bound_address(address, sock.getsockname())])

    async def connect(self, address: Address) -> trio.SocketStream:
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with translate_os_errors(address, "connect to", self):
                apply_buffer_options(sock, address)
                await sock.connect(address.unix_sockaddr())
        except BaseException:
            sock.close()
            raise
        return trio.SocketStream(sock)

    def option_default(self, name: str, address: Address) -> OptionDefault | None:
        return unix_option_default(self, name, address)

    def plan(self, address: Address, resolved: Sequence[SockInfo] | None) -> Plan:
        return unix_plan(self, address, serve=listen_calls(address),
                         use="send_all() / receive_some(); shutdown(SHUT_WR) to half-close")
