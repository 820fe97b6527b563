"""The course's echo-client skeleton handed in with the receiving TODO left undone: it
connects, logs ``sending "MSG"`` and sends it, then logs ``received ""`` without ever
calling recv(). Its stderr holds the message only because it logged what it sent: a checker
that looks for the echo anywhere in the output passes it. Arguments: HOST PORT MESSAGE.
"""
import socket
import sys


def client(msg, log_buffer=sys.stderr):
    server_address = (sys.argv[1], int(sys.argv[2]))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    print('connecting to {0} port {1}'.format(*server_address), file=log_buffer)
    sock.connect(server_address)
    received_message = ''
    try:
        print('sending "{0}"'.format(msg), file=log_buffer)
        sock.sendall(msg.encode('utf8'))
        # TODO: the server should be sending you back your message as a series of 16-byte
        #       chunks. Accumulate the chunks you get to build the entire reply.
        chunk = b''
        print('received "{0}"'.format(chunk.decode('utf8')), file=log_buffer)
    finally:
        print('closing socket', file=log_buffer)
        sock.close()
    return received_message


if __name__ == '__main__':
    client(sys.argv[3])
