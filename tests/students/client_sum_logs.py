"""A correct sum client that logs its request and the reply on stderr as Python reprs:
``sending b'12 30\\n'`` then ``received b'42\\n'``, and prints nothing on stdout. The
request's own numbers are in its log: only the ``received`` line holds the answer.
Arguments: HOST PORT A B.
"""
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])
request = f"{sys.argv[3]} {sys.argv[4]}\n".encode()
with socket.create_connection((host, port), timeout=3) as conn:
    print(f"sending {request!r}", file=sys.stderr)
    conn.sendall(request)
    reply = b""
    try:
        while not reply.endswith(b"\n") and (chunk := conn.recv(1024)):
            reply += chunk
    except socket.timeout:
        sys.exit("no reply within 3 s")
    print(f"received {reply!r}", file=sys.stderr)
if not reply:
    sys.exit("the server closed without replying")
