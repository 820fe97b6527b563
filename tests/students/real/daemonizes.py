"""A sum server that puts itself in the background, to keep running on the VM after logout.

The real bug (for a checker): the classic recipe `if os.fork(): sys.exit(0)` then
`os.setsid()` leaves a child in a session and process group of its own, holding port 50000
for ever; stopping "the program" (its process group) does not reach it, and every server
checked after it finds the port taken. It writes a heartbeat file (server.alive, in its
working directory) every 0.1 s, so that a test sees whether any copy still runs, even one in
a PID namespace of its own.
"""
import os
import socket
import sys
import threading
import time

if os.fork() > 0:
    print('server started in the background')
    sys.exit(0)
os.setsid()


def heartbeat():
    while True:
        with open('server.alive', 'w') as f:
            f.write(str(time.time()))
        time.sleep(0.1)


threading.Thread(target=heartbeat, daemon=True).start()
s = socket.socket()
s.bind(('', 50000))
s.listen(5)
while True:
    conn, addr = s.accept()
    data = b''
    while not data.endswith(b'\n'):
        chunk = conn.recv(1024)
        if not chunk:
            break
        data += chunk
    try:
        a, b = data.split()
        conn.sendall(str(int(a) + int(b)).encode() + b'\n')
    except ValueError:
        conn.sendall(b'error\n')
    conn.close()
