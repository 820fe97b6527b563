"""What any local user can do to every check on the machine: bind an abstract unix socket
whose name holds a newline and text that is no row (and bytes that are not UTF-8). netlab's
``/proc/net/unix`` parser once raised ValueError on it, in every check, with --run or with
an address. Run with no argument: binds and sleeps. (The tests bind the same name
themselves: `NAME`.)"""
import socket
import time

NAME = b"\0x\nnot: a row\n0000: 00000002 00000000 zz 0001 01 x y\n\xff\xfe"

if __name__ == "__main__":
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(NAME)
    sock.listen(1)
    while True:
        time.sleep(1)
