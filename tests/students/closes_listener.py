"""Bug: closes its listening socket after the first client, and lives on."""
import time

from common import answer, listener, read_line

server = listener()
conn, _ = server.accept()
server.close()
with conn:
    conn.sendall(answer(read_line(conn)))
while True:
    time.sleep(1)
