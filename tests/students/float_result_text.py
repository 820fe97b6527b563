"""Replies "The result: 2 + 3 = 5.0" (fine in the assignment profile, not netlab's protocol),
and adds floats (bug: 20-digit integers come back inexact)."""
from common import listener, read_line, serve_threads


def handle(conn):
    with conn:
        try:
            a, b = read_line(conn).split()
            reply = f"The result: {a.decode()} + {b.decode()} = {float(a) + float(b)}\n"
        except ValueError:
            reply = "ERR expected two numbers\n"
        conn.sendall(reply.encode())


serve_threads(listener(), handle)
