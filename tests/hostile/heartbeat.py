"""A good sum server that also appends a byte to MARKER every 50 ms, from a thread, for as
long as it runs: the tests see from the file whether it outlived netlab. With ``stubborn``
it ignores SIGTERM and SIGINT (netlab must SIGKILL it). Arguments: PORT MARKER [stubborn]."""
import signal
import socket
import sys
import threading
import time

port, marker = int(sys.argv[1]), sys.argv[2]
if sys.argv[3:] == ["stubborn"]:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def beat():
    while True:
        with open(marker, "a") as f:
            f.write("x")
        time.sleep(0.05)


threading.Thread(target=beat, daemon=True).start()
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("", port))
server.listen(16)
while True:
    conn, _ = server.accept()
    with conn:
        data = conn.recv(1024)
        a, b = data.split()
        conn.sendall(str(int(a) + int(b)).encode() + b"\n")
