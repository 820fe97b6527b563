"""Who gets in: the limits a connection meets before its handler sees it.

A unix peer whose credentials (SO_PEERCRED) are not in allow-uid/allow-gid is closed at
once. A connection beyond max-connections, or beyond max-connections-per-peer from one
peer, is told ``ERR busy`` (in its handler's framing) and closed, so that it learns at once
rather than hanging in the listen backlog. Whatever a connection's handler raises costs
that connection, never the server.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from ..errors import NetlabError, TransportError
from ..transports import Connection, peer_identity, send_data, socket_of
from .context import Serving, log

#: a connection of one contract (a byte stream, or a message channel)
C = TypeVar("C", bound=Connection)


def peer_credentials(sock: trio.socket.SocketType) -> tuple[int, int, int] | None:
    """The (pid, uid, gid) of a unix socket's peer; None where the kernel does not say."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    return struct.unpack("3i", raw)


class Admission:
    """One server's per-connection limits, applied as each connection arrives."""

    def __init__(self, server: Serving) -> None:
        self._server = server
        #: open connections per peer (`peer_identity`), kept only with max_connections_per_peer
        self._per_peer: dict[str, int] = {}

    async def admit(self, conn: C, handle: Callable[[C], Awaitable[None]], busy: bytes) -> None:
        """Apply the per-connection limits, then hand `conn` to `handle`; a connection one too
        many is sent `busy` instead. Either way `conn` is closed on return."""
        stats, limits = self._server.stats, self._server.limits
        stats.connections += 1
        stats.active += 1
        peer = None
        try:
            async with conn:
                if (limits.allow_uids is not None or limits.allow_gids is not None) and not self._allowed(conn):
                    return
                full = stats.active > limits.max_connections
                if full:
                    stats.busy += 1
                    log.warning("refused a connection: %d open already (max-connections)", limits.max_connections)
                elif limits.max_connections_per_peer is not None:
                    peer = peer_identity(conn)
                    if peer is not None:
                        self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
                        if self._per_peer[peer] > limits.max_connections_per_peer:
                            full = True
                            stats.peer_busy += 1
                            log.warning("refused a connection from %s: %d open from there already "
                                        "(max-connections-per-peer)", peer, limits.max_connections_per_peer)
                if full:
                    with trio.move_on_after(1.0), contextlib.suppress(NetlabError, trio.BrokenResourceError,
                                                                       trio.ClosedResourceError):
                        await send_data(conn, busy)
                    return
                await handle(conn)
        except (trio.BrokenResourceError, trio.ClosedResourceError, TransportError) as exc:
            log.debug("connection ended abruptly: %s", exc.__cause__ or exc)
        except Exception:  # a bug in a service must cost one connection, not the server
            log.exception("connection failed")
        finally:
            stats.active -= 1
            if peer is not None:
                left = self._per_peer.pop(peer) - 1
                if left:
                    self._per_peer[peer] = left

    def _allowed(self, conn: Connection) -> bool:
        """Whether the peer's uid or gid is allowed; if not, count and log the refusal."""
        limits = self._server.limits
        creds = peer_credentials(socket_of(conn))
        uid_ok = creds is not None and limits.allow_uids is not None and creds[1] in limits.allow_uids
        gid_ok = creds is not None and limits.allow_gids is not None and creds[2] in limits.allow_gids
        if uid_ok or gid_ok:
            return True
        self._server.stats.credentials_refused += 1
        who = "unknown" if creds is None else f"pid {creds[0]}, uid {creds[1]}, gid {creds[2]}"
        log.warning("refused a connection from %s: not in allow-uid/allow-gid", who)
        return False
