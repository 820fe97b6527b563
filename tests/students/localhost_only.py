"""Bug: binds 'localhost': no other machine can reach it (the lab's VM question)."""
from common import answer, listener, read_line, serve_threads


def handle(conn):
    with conn:
        while data := read_line(conn):
            conn.sendall(answer(data))


serve_threads(listener("localhost"), handle)
