"""A correct sum client that reads with recv(8) until the newline and prints every piece it
gets as it comes, each on a line of its own as a Python repr (``b'4'``, ``b'2'``,
``b'\\n'`` when the reply arrives a byte at a time). It reads all of the reply: netlab
called it "reads once" because no single line held the sum. Arguments: HOST PORT A B.
"""
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
with socket.create_connection((host, port), timeout=3) as conn:
    conn.sendall(f"{sys.argv[3]} {sys.argv[4]}\n".encode())
    reply = b""
    try:
        while not reply.endswith(b"\n"):
            chunk = conn.recv(8)
            if not chunk:
                break
            print(chunk)
            reply += chunk
    except socket.timeout:
        sys.exit("no reply within 3 s")
if not reply:
    sys.exit("the server closed without replying")
