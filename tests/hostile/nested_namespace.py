"""A sum server that first starts a helper in namespaces of its own making (``unshare --user
--pid --fork``, which any user may run where user namespaces are allowed), and the helper
appends to MARKER every 50 ms for ever: a process in a PID namespace of its own, which no
process group or session reaches. Arguments: PORT MARKER."""
import shutil
import socket
import subprocess
import sys

port, marker = int(sys.argv[1]), sys.argv[2]
unshare = shutil.which("unshare") or "/usr/bin/unshare"
subprocess.Popen([unshare, "--user", "--map-root-user", "--pid", "--fork", "--", "/bin/sh", "-c",
                  f"while true; do echo x >> '{marker}'; sleep 0.05; done"], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
