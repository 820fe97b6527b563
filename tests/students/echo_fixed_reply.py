"""Bug (a real echo submission): answers every message with the fixed text b'YES, received'
instead of echoing it. Nothing is decoded: the reply is simply not the data.
"""
from common import listener, serve_threads


def handle(conn):
    with conn:
        while conn.recv(1024):
            conn.sendall(b"YES, received")


serve_threads(listener(), handle)
