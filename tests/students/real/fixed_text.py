"""An "echo" server that answers every message with the same fixed text.

The real bug: the student copied the lecture's `connection.sendall("message received")`
idea and replies b"YES, received" instead of sending the data back. A checker must show
the bytes that came back (b'YES, received'), not guess that the server "decodes the data as
text". Port 50000, no SO_REUSEADDR, one recv() per client.
"""
import socket

sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.bind(('', 50000))
sock.listen(1)

while True:
    print('waiting...')
    connection, client_address = sock.accept()
    msg = connection.recv(1024)
    print('received:', msg)
    connection.sendall(b'YES, received')
    connection.close()
