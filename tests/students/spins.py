"""Bug: never stops when the client leaves: recv() returns b'' forever, and is spun on."""
from common import answer, listener, serve_threads


def handle(conn):
    data = b""
    while True:
        data += conn.recv(1024)
        if data.endswith(b"\n"):
            conn.sendall(answer(data))
            data = b""


serve_threads(listener(), handle)
