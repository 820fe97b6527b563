"""A sum server that first runs into one of netlab's limits, chosen by MODE, then serves:

``stdout``   prints without end, from a thread (netlab's file-size limit stops it: SIGXFSZ)
``fork``     forks children that sleep, until the kernel refuses one (the process limit),
             and says so on stderr
``memory``   asks for 3 GiB at once (the memory limit: MemoryError), and says so
``files``    opens /dev/null until no descriptor is left (the open-files limit), and says so

Arguments: MODE [PORT]."""
import os
import socket
import sys
import threading
import time

mode = sys.argv[1]
port = int(sys.argv[2]) if len(sys.argv) > 2 else 50000

if mode == "stdout":
    def spew():
        line = "x" * 65535 + "\n"
        while True:
            sys.stdout.write(line)

    threading.Thread(target=spew, daemon=True).start()
elif mode == "fork":
    children = 0
    try:
        while children < 100_000:
            if os.fork() == 0:
                time.sleep(3600)
                os._exit(0)
            children += 1
    except OSError as exc:
        print(f"fork failed after {children} children: {exc}", file=sys.stderr)
elif mode == "memory":
    try:
        hog = bytearray(3 << 30)
    except MemoryError:
        print("MemoryError: could not get 3 GiB", file=sys.stderr)
elif mode == "files":
    kept = []
    try:
        while len(kept) < 1_000_000:
            kept.append(open(os.devnull))
    except OSError as exc:
        print(f"after {len(kept)} files: {exc}", file=sys.stderr)
    for f in kept[-10:]:
        f.close()

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
