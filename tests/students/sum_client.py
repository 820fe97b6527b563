"""A good sum client: sends two numbers, reads the reply line, with a timeout."""
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
with socket.create_connection((host, port), timeout=3) as conn:
    conn.sendall(f"{sys.argv[3]} {sys.argv[4]}\n".encode())
    reply = b""
    try:
        while not reply.endswith(b"\n") and (chunk := conn.recv(1024)):
            reply += chunk
    except socket.timeout:
        sys.exit("no reply within 3 s")
if not reply:
    sys.exit("the server closed without replying")
print(reply.decode().strip())
