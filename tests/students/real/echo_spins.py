"""An echo server whose loop never notices that the client has gone, and prints as it spins.

The real bug: `data = conn.recv(16)` and `conn.sendall(data)` in a `while True` loop with no
`if not data: break`. Once the client closes, recv() returns b'' at once, every time;
sendall(b'') succeeds; the loop spins at 100 % CPU printing "received b''" for ever, and the
server never returns to accept(): stuck after its first connection (the checker's very first
probe, which sends nothing). Port 50000, no SO_REUSEADDR.
"""
import socket

sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.bind(('', 50000))
sock.listen(1)

while True:
    print('waiting for a connection')
    conn, addr = sock.accept()
    print('connection from', addr)
    while True:
        data = conn.recv(16)
        print('received', data)
        conn.sendall(data)
