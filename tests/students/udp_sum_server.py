"""A plain UDP sum server: one request per datagram, the reply to its sender."""
import socket
import sys

from common import answer

server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
server.bind(("", int(sys.argv[1]) if len(sys.argv) > 1 else 50000))
while True:
    data, peer = server.recvfrom(65535)
    server.sendto(answer(data), peer)
