"""An echo client completed from the course's lab skeleton (echo_client.py), logging as it asks.

The skeleton says: log each chunk you receive on `log_buffer=sys.stderr` with
'received "{0}"' ("the tests expect this log format"), and the student did, chunk by chunk,
16 bytes at a time, until the whole message is back. Nothing goes to stdout. The real bug
it reproduces is the checker's: reading only stdout, it failed correct clients like this
one (the instructor's own answer included). Like the skeleton, it sets no timeout.
Usage: python3 echo_client_stderr.py "message"
"""
import socket
import sys


def client(msg, log_buffer=sys.stderr):
    server_address = ('localhost', 50000)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    print('connecting to {0} port {1}'.format(*server_address), file=log_buffer)
    sock.connect(server_address)
    received = b''
    try:
        print('sending "{0}"'.format(msg), file=log_buffer)
        sock.sendall(msg.encode('utf8'))
        while len(received) < len(msg.encode('utf8')):
            chunk = sock.recv(16)
            if not chunk:
                break
            received += chunk
            print('received "{0}"'.format(chunk.decode('utf8')), file=log_buffer)
    finally:
        print('closing socket', file=log_buffer)
        sock.close()
    return received


if __name__ == '__main__':
    if len(sys.argv) != 2:
        usage = '\nusage: python echo_client.py "this is my test message"\n'
        print(usage, file=sys.stderr)
        sys.exit(1)
    client(sys.argv[1])
