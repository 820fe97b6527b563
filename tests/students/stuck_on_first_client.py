"""Bug: serves its first client in the main thread and never goes back to accept(). When
that client leaves, recv() returns b'' for ever and the loop spins on it at 100 % of a core;
every later client is completed by the kernel and waits in the accept queue, unanswered.
(netlab told this one, six times, that its request had no newline.)
"""
from common import answer, listener

server = listener()
conn, _ = server.accept()
data = b""
while True:
    data += conn.recv(1024)
    if data.endswith(b"\n"):
        conn.sendall(answer(data))
        data = b""
