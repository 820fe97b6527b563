"""Address handling shared by the baseline servers: the standard library only, no netlab.

A baseline takes the same address text as `netlab serve` (a subset of its grammar) so the
benchmark can start every server the same way, and prints the address it bound, with the
real port, as its first line:

    tcp:HOST:PORT  tcp6:[HOST]:PORT  udp:HOST:PORT  udp6:[HOST]:PORT
    unix:PATH  unix-dgram:PATH  unix-seq:PATH  (PATH may be @NAME: a Linux abstract name)
    tls:HOST:PORT?cert=FILE&key=FILE[&ca=FILE]

Shorthands: ``HOST:PORT`` means tcp, ``/PATH`` means unix.

``tls:`` is TCP with TLS on top, the server presenting ``?cert=`` (PEM, its chain) with
``?key=``; a baseline makes no certificate of its own (`netlab bench` gives every server
the same one). Its server context is netlab's: the defaults of
``ssl.create_default_context`` and ``OP_IGNORE_UNEXPECTED_EOF``, so a client's FIN without
close_notify reads as the end of the stream. The bound address it prints carries
``?ca=FILE`` when given, what a client verifies the server with, as netlab's does.

Every listening socket uses the same backlog (SOMAXCONN); accepted TCP sockets get
TCP_NODELAY, as trio and asyncio set it on theirs.
"""

from __future__ import annotations

import os
import socket
import ssl
import stat
import urllib.parse

_KINDS = {
    "tcp": (socket.AF_INET, socket.SOCK_STREAM), "tcp4": (socket.AF_INET, socket.SOCK_STREAM),
    "tcp6": (socket.AF_INET6, socket.SOCK_STREAM),
    "udp": (socket.AF_INET, socket.SOCK_DGRAM), "udp4": (socket.AF_INET, socket.SOCK_DGRAM),
    "udp6": (socket.AF_INET6, socket.SOCK_DGRAM),
    "unix": (socket.AF_UNIX, socket.SOCK_STREAM), "unix-dgram": (socket.AF_UNIX, socket.SOCK_DGRAM),
    "unix-seq": (socket.AF_UNIX, socket.SOCK_SEQPACKET),
    "tls": (socket.AF_INET, socket.SOCK_STREAM),
}


def parse(text: str) -> tuple[str, int, int, object]:
    """(scheme, family, type, sockaddr) for an address text."""
    scheme, colon, target = text.partition(":")
    if scheme not in _KINDS or not colon:
        if text.startswith(("/", "@")):
            scheme, target = "unix", text
        else:
            scheme, target = "tcp", text
    family, kind = _KINDS[scheme]
    if family == socket.AF_UNIX:
        return scheme, family, kind, ("\0" + target[1:]) if target.startswith("@") else target
    host, _, port = target.rpartition(":")
    host = host.strip("[]") or ("::1" if family == socket.AF_INET6 else "127.0.0.1")
    if ":" in host:
        family = socket.AF_INET6
    return scheme, family, kind, (host, int(port))


def show(scheme: str, sockname: object) -> str:
    if isinstance(sockname, (str, bytes)):
        name = sockname.decode() if isinstance(sockname, bytes) else sockname
        return f"{scheme}:@{name[1:]}" if name.startswith("\0") else f"{scheme}:{name}"
    host, port = sockname[0], sockname[1]
    return f"{scheme}:[{host}]:{port}" if ":" in host else f"{scheme}:{host}:{port}"


def tls_context(scheme: str, options: dict[str, str]) -> ssl.SSLContext | None:
    """The server context of a ``tls:`` address (None for the others)."""
    if scheme != "tls":
        if options:
            raise SystemExit(f"{scheme}: takes no ?options (only tls: does)")
        return None
    if "cert" not in options or "key" not in options:
        raise SystemExit("tls: needs ?cert=FILE&key=FILE (a baseline makes no certificate of its own)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    try:
        context.load_cert_chain(options["cert"], options["key"])
    except (OSError, ssl.SSLError) as exc:
        raise SystemExit(f"tls: ?cert={options['cert']}&key={options['key']}: {exc}") from None
    return context


def server_socket(text: str) -> tuple[socket.socket, str, str, ssl.SSLContext | None]:
    """Bind (and listen, for connections): (socket, kind, bound address text, TLS context).

    kind is "stream", "datagram" or "seqpacket"; the TLS context is None but for ``tls:``.
    A stale unix socket file is replaced; a path that is not a socket is refused.
    """
    text, _, query = text.partition("?")
    options = {urllib.parse.unquote(name): urllib.parse.unquote(value)
               for name, _, value in (item.partition("=") for item in query.split("&") if item)}
    scheme, family, kind, sockaddr = parse(text)
    context = tls_context(scheme, options)
    sock = socket.socket(family, kind)
    if family != socket.AF_UNIX:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    elif isinstance(sockaddr, str) and not sockaddr.startswith("\0") and os.path.lexists(sockaddr):
        if not stat.S_ISSOCK(os.lstat(sockaddr).st_mode):
            raise SystemExit(f"{sockaddr} exists and is not a socket")
        os.unlink(sockaddr)
    sock.bind(sockaddr)
    if kind != socket.SOCK_DGRAM:
        sock.listen(socket.SOMAXCONN)
    name = {socket.SOCK_STREAM: "stream", socket.SOCK_DGRAM: "datagram", socket.SOCK_SEQPACKET: "seqpacket"}[kind]
    bound = show(scheme, sock.getsockname())
    if "ca" in options:
        bound += "?ca=" + urllib.parse.quote(options["ca"])
    return sock, name, bound, context


def tune_accepted(conn: socket.socket) -> None:
    if conn.family in (socket.AF_INET, socket.AF_INET6) and conn.type == socket.SOCK_STREAM:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def arguments(argv: list[str], what: str) -> tuple[str, bool]:
    """(address, discard) from ``SCRIPT ADDRESS [--discard]``."""
    args = [a for a in argv[1:] if a != "--discard"]
    if len(args) != 1 or args[0] in ("-h", "--help"):
        raise SystemExit(f"usage: {os.path.basename(argv[0])} ADDRESS [--discard]\n\n{what}\n"
                         "ADDRESS: tcp:127.0.0.1:0, tcp6:[::1]:0, udp:127.0.0.1:0, unix:/tmp/s.sock, "
                         "unix-dgram:/tmp/d.sock, unix-seq:@name, tls:127.0.0.1:0?cert=FILE&key=FILE[&ca=FILE], "
                         "or HOST:PORT, /PATH.\n"
                         "--discard: read and throw away (RFC 863) instead of echoing (RFC 862).")
    return args[0], "--discard" in argv[1:]
