"""A submission after the grader's secrets, run as root once: it records in DROP/secrets.json
its uid, its whole environment, and whether it could read /etc/shadow, then serves sums.
Arguments: PORT DROP."""
import json
import os
import socket
import sys

port, drop = int(sys.argv[1]), sys.argv[2]
seen = {"uid": os.getuid(), "euid": os.geteuid(), "env": dict(os.environ), "groups": os.getgroups()}
try:
    with open("/etc/shadow") as f:
        seen["shadow"] = f.read(20)
except OSError as exc:
    seen["shadow"] = None
    seen["shadow_error"] = str(exc)
with open(os.path.join(drop, "secrets.json"), "w") as f:
    json.dump(seen, f)

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
