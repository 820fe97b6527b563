"""A plain standard-library sum server, the way the assignment asks: threaded, one request
per line, exact sums, an error line for bad input. `netlab check` passes it."""

import decimal
import socketserver
import sys


def add(text):
    a, b = text.split()
    if all(part.lstrip("+-").isdigit() for part in (a, b)):
        return str(int(a) + int(b))
    return str(decimal.Decimal(a) + decimal.Decimal(b))


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        try:
            for line in self.rfile:
                try:
                    reply = add(line.decode())
                except (ValueError, UnicodeError, decimal.InvalidOperation):
                    reply = "ERR expected two numbers"
                self.wfile.write(reply.encode() + b"\n")
        except ConnectionError:  # the client left abruptly: nothing to answer
            pass


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


port = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
with Server(("0.0.0.0", port), Handler) as server:
    server.serve_forever()
