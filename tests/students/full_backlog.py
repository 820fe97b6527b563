"""Hang: listens with a backlog of 1 and never calls accept(). Two connections fill its accept
queue; after that the kernel drops new connections' SYNs, so connecting hangs (netlab used to
say only that connecting took longer than the deadline).
"""
import socket
import sys
import time

server = socket.socket()
server.bind(("", int(sys.argv[1]) if len(sys.argv) > 1 else 50000))
server.listen(1)
while True:
    time.sleep(1)
