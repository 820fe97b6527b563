"""Bug (the first-client bug): sends "A B" with no newline and no shutdown, then waits for
the reply. A lenient server that takes a pause as the end answers it; a server that reads a
line (netlab serve's default) waits for the rest, and so does the client, until its
timeout. Arguments: HOST PORT A B.
"""
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
with socket.create_connection((host, port), timeout=3) as conn:
    conn.sendall(f"{sys.argv[3]} {sys.argv[4]}".encode())
    reply = b""
    try:
        while not reply.endswith(b"\n") and (chunk := conn.recv(1024)):
            reply += chunk
    except socket.timeout:
        sys.exit("no reply within 3 s")
if not reply:
    sys.exit("the server closed without replying")
print(reply.decode().strip())
