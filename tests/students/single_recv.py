"""Bug: one recv(1024) taken as the whole request (a request in pieces breaks it)."""
from common import answer, listener, serve_threads


def handle(conn):
    with conn:
        conn.sendall(answer(conn.recv(1024)))


serve_threads(listener(), handle)
