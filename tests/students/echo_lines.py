"""An echo server that reads a line at a time (up to a newline) and echoes each line: data
with no newline is never echoed, however long the client waits. (echo has no request format:
``--request`` is no fix for it.)
"""
from common import listener, serve_threads


def handle(conn):
    with conn:
        data = b""
        while chunk := conn.recv(1024):
            data += chunk
            while b"\n" in data:
                line, _, data = data.partition(b"\n")
                conn.sendall(line + b"\n")


serve_threads(listener(), handle)
