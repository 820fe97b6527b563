"""A sum server that adds with int(): right for whole numbers, and dead at the first decimal.

The real bug: `int('0.1')` raises "ValueError: invalid literal for int() with base 10:
'0.1'", nothing catches it, and the server dies mid-check with the traceback on stderr
(as does an empty request: `a, b = ''.split()`). A checker must report a death as a death,
restart it for the next case, and a restart must not fail because of the TIME_WAIT its own
earlier connections left on port 50000 (no SO_REUSEADDR here, as in real submissions).
"""
import socket

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(('', 50000))
s.listen(1)
print('waiting for clients on port 50000')

while True:
    conn, addr = s.accept()
    print('Connected by', addr)
    data = b''
    while b'\n' not in data:
        part = conn.recv(1024)
        if not part:
            break
        data += part
    print('data:', data)
    a, b = data.decode().split()
    total = int(a) + int(b)
    print(a, '+', b, '=', total)
    conn.sendall((str(total) + '\n').encode())
    conn.close()
