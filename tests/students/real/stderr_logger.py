"""A sum server built from the course's lab skeleton (echo_server.py), logging as it asks.

The skeleton logs every step to stderr through `log_buffer=sys.stderr` ("making a server
on ...", "waiting for a connection", "connection - ...", 'received "..."', 'sent "..."') and
binds ('127.0.0.1', ...). The student kept both, skipped the skeleton's "set an option to
allow the socket address to be reused" TODO, and used the assignment's port 50000. The real
bug it reproduces: bound to 127.0.0.1, no other machine can reach it (the lab's "run it on
your VM" step); the stderr chatter itself is no bug, and must not confuse a checker.
"""
import socket
import sys


def add(text):
    a, b = text.split()
    try:
        return str(int(a) + int(b))
    except ValueError:
        return str(float(a) + float(b))


def server(log_buffer=sys.stderr):
    address = ('127.0.0.1', 50000)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    print("making a server on {0}:{1}".format(*address), file=log_buffer)
    sock.bind(address)
    sock.listen(1)
    try:
        while True:
            print('waiting for a connection', file=log_buffer)
            conn, addr = sock.accept()
            try:
                print('connection - {0}:{1}'.format(*addr), file=log_buffer)
                data = b''
                while not data.endswith(b'\n'):
                    chunk = conn.recv(16)
                    if not chunk:
                        break
                    data += chunk
                    print('received "{0}"'.format(chunk.decode('utf8', 'replace')), file=log_buffer)
                try:
                    reply = add(data.decode('utf8'))
                except (ValueError, UnicodeDecodeError):
                    reply = 'ERROR: send two numbers'
                conn.sendall(reply.encode('utf8') + b'\n')
                print('sent "{0}"'.format(reply), file=log_buffer)
            finally:
                conn.close()
    except KeyboardInterrupt:
        sock.close()
        print('quitting echo server', file=log_buffer)


if __name__ == '__main__':
    server()
    sys.exit(0)
