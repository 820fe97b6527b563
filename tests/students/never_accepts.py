"""Hang: listens, but never calls accept()."""
import time

from common import listener

server = listener()
while True:
    time.sleep(1)
