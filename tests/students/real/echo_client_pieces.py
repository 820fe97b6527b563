"""An echo client that prints the echo as it arrives, eight bytes at a time.

The real bug is the checker's: `print(data.decode())` after each `recv(8)` puts every
piece on a line of its own, so the whole message is on stdout but never on one line, and
a checker looking for the message whole called this correct client "reads once". It waits
at most 3 s for each piece.
Usage: python3 echo_client_pieces.py "message"
"""
import socket
import sys

message = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(3)
s.connect(('127.0.0.1', 50000))
s.sendall(message.encode())
got = 0
try:
    while got < len(message.encode()):
        data = s.recv(8)
        if not data:
            break
        got += len(data)
        print(data.decode())
except socket.timeout:
    print('timed out')
s.close()
