"""A correct sum server, written the way the lecture shows it: port 50000 hard-coded, no
SO_REUSEADDR, and each connection closed by the server as soon as the answer is sent.

The real bug it reproduces is not in the protocol: the server closes first, so every
connection it served sits in TIME_WAIT on port 50000 for a minute after it stops, and while
it does, a new server (this one restarted, or the next student's) cannot bind 50000:
"OSError: [Errno 98] Address already in use". 24 of 25 real submissions look like this.
"""
import socket

HOST = ''
PORT = 50000


def add(a, b):
    try:
        return str(int(a) + int(b))
    except ValueError:
        return str(float(a) + float(b))


server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.bind((HOST, PORT))
server.listen(5)
print("server listening on port", PORT)

while True:
    conn, addr = server.accept()
    print("connection from", addr)
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(1024)
        if not chunk:
            break
        data += chunk
    print("received", data)
    numbers = data.split()
    if len(numbers) != 2:
        conn.sendall(b"please send two numbers\n")
    else:
        try:
            answer = add(numbers[0].decode(), numbers[1].decode())
            conn.sendall(answer.encode() + b"\n")
            print("sent", answer)
        except ValueError:
            conn.sendall(b"those are not numbers\n")
    conn.close()
