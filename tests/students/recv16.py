"""Bug: reads a fixed 16 bytes (recv(16)), so long numbers are cut short."""
from common import answer, listener, serve_threads


def handle(conn):
    with conn:
        conn.sendall(answer(conn.recv(16)))


serve_threads(listener(), handle)
