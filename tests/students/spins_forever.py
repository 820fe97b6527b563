"""Hang: listens, then spins at 100% CPU without ever accepting."""
from common import listener

server = listener()
while True:
    pass
