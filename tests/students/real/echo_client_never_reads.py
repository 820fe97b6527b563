"""The course's echo client skeleton with only the connect and send filled in.

The real bug: the receiving TODO was left as it was (`chunk = ''`), so the client logs
'sending "..."' and 'received ""' on stderr and never reads the echo. Its own "sending"
line contains the message: a checker that reads stderr must not take it for the reply.
Usage: python3 echo_client_never_reads.py "message"
"""
import socket
import sys


def client(msg, log_buffer=sys.stderr):
    server_address = ('localhost', 50000)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    print('connecting to {0} port {1}'.format(*server_address), file=log_buffer)
    sock.connect(server_address)
    try:
        print('sending "{0}"'.format(msg), file=log_buffer)
        sock.sendall(msg.encode('utf8'))
        # TODO: receive the echo in 16-byte chunks and log each one
        chunk = ''
        print('received "{0}"'.format(chunk), file=log_buffer)
    finally:
        print('closing socket', file=log_buffer)
        sock.close()


if __name__ == '__main__':
    client(sys.argv[1])
