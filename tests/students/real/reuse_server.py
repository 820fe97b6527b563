"""A correct sum server that does set SO_REUSEADDR (and serves each client in a thread).

The real bug it reproduces is someone else's: Linux refuses to bind port 50000 while
TIME_WAIT connections of an earlier listener that did NOT set SO_REUSEADDR remain, even for
a socket that sets it. Graded right after a submission like sum_server.py, this correct
server got "0/1 connect". It must get the same verdicts whatever ran before it.
"""
import socket
import threading


def add(a, b):
    try:
        return str(int(a) + int(b))
    except ValueError:
        return str(float(a) + float(b))


def handle(conn, addr):
    print('client', addr)
    data = b''
    while not data.endswith(b'\n'):
        chunk = conn.recv(1024)
        if not chunk:
            break
        data += chunk
    try:
        a, b = data.split()
        reply = add(a.decode(), b.decode())
    except (ValueError, UnicodeDecodeError):
        reply = 'ERROR expected two numbers'
    conn.sendall(reply.encode() + b'\n')
    print('answered', reply)
    conn.close()


server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(('', 50000))
server.listen(5)
print('listening on 50000')
while True:
    conn, addr = server.accept()
    threading.Thread(target=handle, args=(conn, addr), daemon=True).start()
