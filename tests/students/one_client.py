"""Bug: serves one client, then exits."""
from common import answer, listener, read_line

server = listener()
conn, _ = server.accept()
with conn:
    conn.sendall(answer(read_line(conn)))
