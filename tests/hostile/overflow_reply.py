"""A sum server whose every reply is a number beyond any exponent the default decimal context
allows: ``1e1000000``. The judge once raised decimal.Overflow on it, and the whole check ended
in a traceback (in grade mode, no student got a result)."""
import socket
import sys
import threading

port = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("", port))
server.listen(16)


def serve(conn):
    with conn:
        while conn.recv(1024):
            conn.sendall(b"1e1000000\n")


while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
