"""Bug (the commonest in the course's echo-client skeleton): the receiving loop stops at the
first chunk shorter than 16 bytes, taking it for the last. A reply that arrives all at once
is read whole; one that arrives in small pieces is cut after the first. Logs on stderr as
the skeleton asks. Arguments: HOST PORT MESSAGE.
"""
import socket
import sys


def client(msg, log_buffer=sys.stderr):
    server_address = (sys.argv[1], int(sys.argv[2]))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.settimeout(3)
    print('connecting to {0} port {1}'.format(*server_address), file=log_buffer)
    sock.connect(server_address)
    received_message = ''
    try:
        print('sending "{0}"'.format(msg), file=log_buffer)
        sock.sendall(msg.encode('utf8'))
        while True:
            chunk = sock.recv(16)
            print('received "{0}"'.format(chunk.decode('utf8')), file=log_buffer)
            received_message += chunk.decode('utf8')
            if len(chunk) < 16:
                break
    finally:
        print('closing socket', file=log_buffer)
        sock.close()
    return received_message


if __name__ == '__main__':
    client(sys.argv[3])
