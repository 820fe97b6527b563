"""A sum server that answers every connection with ``0 `` for ever: numbers, never a newline.
The checker once kept every byte and parsed them all after the deadline: 17 s and 1.6 GB for
one case at --timeout 2."""
import socket
import sys
import threading

port = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("", port))
server.listen(16)
ZEROS = b"0 " * 32768


def serve(conn):
    try:
        conn.recv(1024)
        while True:
            conn.sendall(ZEROS)
    except OSError:
        conn.close()


while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
