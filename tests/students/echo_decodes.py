"""Bug: echoes the data after decoding it as UTF-8 and encoding it again (errors='replace'),
so every byte that is not valid UTF-8 comes back as U+FFFD.
"""
from common import listener, serve_threads


def handle(conn):
    with conn:
        while data := conn.recv(4096):
            conn.sendall(data.decode("utf-8", "replace").encode())


serve_threads(listener(), handle)
