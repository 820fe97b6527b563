"""A sum server with no accept loop: it serves one client, then the script ends.

The real bug: `accept()` is called once, so the second client is refused ("Connection
refused") and the server has to be started again by hand for every test. It does check its
input. No SO_REUSEADDR, port 50000 hard-coded: each restart the checker makes must not be
refused the port because of the TIME_WAIT the previous run left behind.
"""
import socket

HOST = ''
PORT = 50000

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind((HOST, PORT))
s.listen(1)
print('Server started on port', PORT)

conn, addr = s.accept()
print('Connected by', addr)
data = b''
while not data.endswith(b'\n'):
    chunk = conn.recv(1024)
    if not chunk:
        break
    data += chunk
print('Received', repr(data))
numbers = data.split()
try:
    a, b = numbers
    result = str(float(a) + float(b)) if b'.' in data else str(int(a) + int(b))
except ValueError:
    result = 'error: send two numbers'
conn.sendall(result.encode() + b'\n')
print('Sent', result)
conn.close()
s.close()
print('Done')
