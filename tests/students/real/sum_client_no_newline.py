"""A sum client that sends "2 3" with no newline, then reads until the server closes.

The real bug: nothing marks the end of the request. A server that reads a line (netlab's
own, and most correct student servers) waits for the newline for ever, and this client
waits for it; the first client of the README hangs exactly so. A lenient server that takes
whatever came after a pause answers it, so it seems to work. It waits at most 3 s.
Usage: python3 sum_client_no_newline.py 2 3
"""
import socket
import sys

a, b = sys.argv[1], sys.argv[2]
s = socket.socket()
s.settimeout(3)
s.connect(('127.0.0.1', 50000))
s.send((a + ' ' + b).encode())
print('sent', a, b, file=sys.stderr)
reply = b''
try:
    while True:
        data = s.recv(1024)
        if not data:
            break
        reply += data
except socket.timeout:
    print('no answer', file=sys.stderr)
s.close()
print('sum:', reply.decode().strip())
