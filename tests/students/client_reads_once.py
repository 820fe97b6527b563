"""Bug: one recv() taken as the whole reply."""
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
with socket.create_connection((host, port), timeout=3) as conn:
    conn.sendall(f"{sys.argv[3]} {sys.argv[4]}\n".encode())
    print(conn.recv(1024).decode().strip())
