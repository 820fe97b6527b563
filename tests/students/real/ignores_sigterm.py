"""A sum server that catches SIGTERM to say goodbye, and then forgets to stop.

The real bug: `signal.signal(signal.SIGTERM, goodbye)` where goodbye() only prints, so
`kill PID` (and a checker stopping it politely) does nothing; it runs on, holding port
50000. It writes a heartbeat file (server.alive, in its working directory) every 0.1 s, so
that a test sees whether any copy still runs.
"""
import signal
import socket
import threading
import time


def goodbye(signum, frame):
    print('got signal', signum, '- use Ctrl-C to stop the server')


def heartbeat():
    while True:
        with open('server.alive', 'w') as f:
            f.write(str(time.time()))
        time.sleep(0.1)


signal.signal(signal.SIGTERM, goodbye)
threading.Thread(target=heartbeat, daemon=True).start()
s = socket.socket()
s.bind(('', 50000))
s.listen(5)
print('server ready')
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
