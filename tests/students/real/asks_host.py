"""A sum server that asks which host to bind on stdin before it starts.

The real bug (for a checker): `host = input("host: ")` blocks on stdin; run with nothing to
read it dies at once with "EOFError: EOF when reading a line", before it listens. A grader
has to feed it a line (`--stdin`). Otherwise correct, single-threaded, port 50000, no
SO_REUSEADDR.
"""
import socket

host = input('host: ')
port = 50000
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind((host, port))
s.listen(5)
print('listening on', host, port)
while True:
    c, addr = s.accept()
    print('connection from', addr)
    msg = b''
    while not msg.endswith(b'\n'):
        piece = c.recv(1024)
        if not piece:
            break
        msg += piece
    try:
        x, y = msg.split()
        c.sendall(str(int(x) + int(y)).encode() + b'\n')
    except ValueError:
        c.sendall(b'bad request\n')
    c.close()
