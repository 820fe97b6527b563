"""Takes requests only as "2,3", and reads until the client's end of stream (no newline needed)."""
from common import answer, listener, serve_threads


def handle(conn):
    with conn:
        data = b""
        while chunk := conn.recv(1024):
            data += chunk
        try:
            a, b = data.split(b",")
            conn.sendall(answer(a + b" " + b))
        except ValueError:
            conn.sendall(b"ERR send two numbers as a,b\n")


serve_threads(listener(), handle)
