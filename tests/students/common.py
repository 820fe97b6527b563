"""What the broken students share, so each file shows only its one bug."""

import decimal
import socket
import sys
import threading


def listener(host=""):
    """A listening TCP socket on the port given as the first argument (default 50000)."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, int(sys.argv[1]) if len(sys.argv) > 1 else 50000))
    server.listen(16)
    return server


def add(data):
    """The exact sum of the two numbers in `data`, as text. Raises ValueError on bad input."""
    a, b = data.decode().split()
    if a.lstrip("+-").isdigit() and b.lstrip("+-").isdigit():
        return str(int(a) + int(b))
    try:
        return str(decimal.Decimal(a) + decimal.Decimal(b))
    except decimal.InvalidOperation:
        raise ValueError(f"not numbers: {a!r} {b!r}") from None


def answer(data):
    """The reply line for one request: the sum, or an error."""
    try:
        return add(data).encode() + b"\n"
    except (ValueError, UnicodeError):
        return b"ERR expected two numbers\n"


def read_line(conn):
    """Bytes up to and including a newline, or to the end of the stream."""
    data = b""
    while not data.endswith(b"\n") and (chunk := conn.recv(1024)):
        data += chunk
    return data


def serve_threads(server, handle):
    """Accept forever; each client in a thread of its own."""
    while True:
        conn, _ = server.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()
