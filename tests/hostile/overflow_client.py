"""A sum client that sends its request, reads the reply, and prints a number no decimal
context holds (``1e1000000``) before the reply: the client judge once raised
decimal.Overflow comparing it with the answer. Arguments: HOST PORT A B."""
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
with socket.create_connection((host, port), timeout=3) as conn:
    conn.sendall(f"{sys.argv[3]} {sys.argv[4]}\n".encode())
    reply = conn.recv(1024)
print("1e1000000 -1e999999999999999999")
