"""The course's echo-client skeleton, filled in correctly: it logs everything on stderr, as
the skeleton asks ("the tests expect this log format"): ``connecting to HOST port PORT``,
``sending "MSG"``, ``received "CHUNK"`` for each 16-byte chunk, ``closing socket``; nothing
on stdout. Real bug it reproduces: none in the client. netlab read only stdout and failed
every such client (50 false verdicts on correct real clients, the instructor's own answer
among them). Arguments: HOST PORT MESSAGE.
"""
import socket
import sys
import traceback


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
        while len(received_message) < len(msg):
            chunk = sock.recv(16)
            if not chunk:
                break
            print('received "{0}"'.format(chunk.decode('utf8')), file=log_buffer)
            received_message += chunk.decode('utf8')
    except Exception:
        traceback.print_exc()
        sys.exit(1)
    finally:
        print('closing socket', file=log_buffer)
        sock.close()
    return received_message


if __name__ == '__main__':
    client(sys.argv[3])
