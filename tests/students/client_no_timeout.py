"""Bug: no timeout: waits forever when no reply comes."""
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
with socket.create_connection((host, port)) as conn:
    conn.sendall(f"{sys.argv[3]} {sys.argv[4]}\n".encode())
    reply = b""
    while not reply.endswith(b"\n") and (chunk := conn.recv(1024)):
        reply += chunk
print(reply.decode().strip())
