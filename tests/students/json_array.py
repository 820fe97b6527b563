"""Takes requests as a JSON array, ["2", "3"], one per line."""
import json

from common import answer, listener, read_line, serve_threads


def handle(conn):
    with conn:
        try:
            a, b = json.loads(read_line(conn))
            conn.sendall(answer(f"{a} {b}".encode()))
        except ValueError:
            conn.sendall(b"ERR send a JSON array of two numbers\n")


serve_threads(listener(), handle)
