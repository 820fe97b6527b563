"""Bug: bad input raises ValueError, which nothing catches: the server dies. (It serves many
clients at once, with select, so that this is its only bug.)"""
import selectors

from common import add, listener

server = listener()
selector = selectors.DefaultSelector()
selector.register(server, selectors.EVENT_READ)
requests = {}
while True:
    for key, _ in selector.select():
        if key.fileobj is server:
            conn, _ = server.accept()
            selector.register(conn, selectors.EVENT_READ)
            requests[conn] = b""
            continue
        conn = key.fileobj
        data = conn.recv(1024)
        requests[conn] += data
        if data and not requests[conn].endswith(b"\n"):
            continue
        if requests[conn]:
            conn.sendall(add(requests[conn]).encode() + b"\n")
        selector.unregister(conn)
        del requests[conn]
        conn.close()
