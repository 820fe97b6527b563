"""Bug: binds a hard-coded address of another machine (192.0.2.10, a documentation address
no machine has): bind fails with "Cannot assign requested address"."""
from common import answer, listener, read_line, serve_threads


def handle(conn):
    with conn:
        conn.sendall(answer(read_line(conn)))


serve_threads(listener("192.0.2.10"), handle)
