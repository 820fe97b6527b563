"""Sends "A B" with no newline but then half-closes (shutdown(SHUT_WR)): the end of its
stream ends the request, so a line-reading server sees it complete. Correct.
Arguments: HOST PORT A B.
"""
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
with socket.create_connection((host, port), timeout=3) as conn:
    conn.sendall(f"{sys.argv[3]} {sys.argv[4]}".encode())
    conn.shutdown(socket.SHUT_WR)
    reply = b""
    try:
        while chunk := conn.recv(1024):
            reply += chunk
    except socket.timeout:
        sys.exit("no reply within 3 s")
if not reply:
    sys.exit("the server closed without replying")
print("The sum is", reply.decode().strip())
