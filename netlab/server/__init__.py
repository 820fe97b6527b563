"""Serve a service on a transport: the glue between the two. Clients are in `netlab.client`.

::

    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve, "sum", "tcp:127.0.0.1:0")
        print(server.bound[0])          # tcp:127.0.0.1:41234, the port the kernel gave

The stream handler feeds a service session every chunk it reads (``b""`` at end of stream)
and writes back what it returns; the datagram loop answers each datagram with one
datagram. Neither lets a bad request or a vanished peer stop the server: a datagram that
was truncated, or came from a sender with no address, is counted and logged, never served.

One idea per module, imports pointing down the list:

- `core`: `serve`, and the `Server` it hands to ``nursery.start`` (drain, and the choice of
  how to serve by what the transport listens with)
- `datagrams`: the datagram loop, and the per-peer queues of replies that cannot go at once
- `messages`: message connections (unix-seq)
- `streams`: the byte-stream hot path
- `unfinished`: the clock a service does not have (quiet framing, the hint for a request
  left unfinished)
- `admission`: who gets in (peer credentials, max-connections, per peer)
- `deadline`: a connection's idle, stalled-writer and request timeouts
- `context`: what these parts see of the server (`Serving`), and the log they share
- `limits`: `Limits`, `ServerStats`, the token bucket
"""

from __future__ import annotations

from .core import Server, serve
from .limits import Limits, ServerStats

__all__ = ["Limits", "Server", "ServerStats", "serve"]
