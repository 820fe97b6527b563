"""Takes requests only as "A + B" (split at the '+'), read with one recv; anything else
gets an error line. (`--request auto` must find the format.)
"""
from common import listener, serve_threads


def handle(conn):
    with conn:
        data = conn.recv(1024).decode()
        try:
            a, b = data.split("+")
            conn.sendall(f"{int(a) + int(b)}\n".encode())
        except ValueError:
            conn.sendall(b"error: send 'a + b'\n")


serve_threads(listener(), handle)
