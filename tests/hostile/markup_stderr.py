"""A sum server that dies on its first request, with rich markup (``[/]``, ``[/b]``,
``[bold red]``) and terminal control sequences (a window title ``ESC]0;...BEL``, clear screen
``ESC[2J``, colour) in its last stderr lines. The report once crashed on the markup
(MarkupError: no output, no JUnit) and sent the escape sequences to the terminal raw."""
import socket
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("", port))
server.listen(16)
conn, _ = server.accept()
conn.recv(1024)
sys.stderr.write("[bold red]pwned[/] [/b] \x1b]0;owned title\x07\x1b[2J\x1b[31mred error\x1b[0m \u202egnp.exe\n")
sys.exit(1)
