"""Bug: greets every client before reading its request."""
from common import answer, listener, read_line, serve_threads


def handle(conn):
    with conn:
        conn.sendall(b"Welcome to the sum server!\n")
        conn.sendall(answer(read_line(conn)))


serve_threads(listener(), handle)
