"""Replies "Sum: 5" with no newline, then closes (fine in the assignment profile)."""
from common import add, listener, read_line, serve_threads


def handle(conn):
    with conn:
        try:
            conn.sendall(b"Sum: " + add(read_line(conn)).encode())
        except ValueError:
            conn.sendall(b"ERR expected two numbers")


serve_threads(listener(), handle)
