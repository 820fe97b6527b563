"""An honest sum client that probes first: it connects and closes at once (is the server
up?), then sends its request on a second connection and prints the reply; at the end it
opens a third connection and leaves without a word. netlab once judged it on the empty probe
(3 of 5 cases failed), and a connection left behind counted in the next case. Arguments:
HOST PORT A B."""
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
socket.create_connection((host, port), timeout=3).close()
with socket.create_connection((host, port), timeout=5) as conn:
    conn.sendall(f"{sys.argv[3]} {sys.argv[4]}\n".encode())
    reply = b""
    try:
        while not reply.endswith(b"\n") and (chunk := conn.recv(1024)):
            reply += chunk
    except socket.timeout:
        sys.exit("no reply within 5 s")
if not reply:
    sys.exit("the server closed without replying")
print(reply.decode().strip())
stray = socket.create_connection((host, port), timeout=3)
