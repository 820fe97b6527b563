"""A sum server whose read loop never notices that the client has gone.

The real bug: `data += conn.recv(1024)` in a `while True` loop that only looks for the
newline. Once the client closes, recv() returns b'' at once, every time, and the loop spins
on it at 100 % CPU, for ever: the server never returns to accept(), so it is stuck after its
first connection (the checker's very first probe, which sends nothing), and every later
client waits in the accept queue unanswered.
"""
import socket

s = socket.socket()
s.bind(('', 50000))
s.listen(5)
print('listening')

while True:
    conn, addr = s.accept()
    print('got connection from', addr)
    data = b''
    while True:
        data += conn.recv(1024)
        if data.endswith(b'\n'):
            a, b = data.split()
            conn.send(str(int(a) + int(b)).encode() + b'\n')
            data = b''
