"""Hang: accepts every client, reads, never replies."""
from common import listener, serve_threads


def handle(conn):
    while conn.recv(1024):
        pass


serve_threads(listener(), handle)
