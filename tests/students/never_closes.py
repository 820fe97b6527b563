"""Bug: answers, but never closes a connection (keeps every one in a list)."""
from common import answer, listener, read_line, serve_threads

connections = []


def handle(conn):
    connections.append(conn)
    conn.sendall(answer(read_line(conn)))


serve_threads(listener(), handle)
