"""The load generator: one process, plain blocking or epoll sockets, no trio.

`netlab bench` runs it as a separate process (``python -m netlab.bench.loadgen SPEC``) so
that it shares no interpreter with the server it drives, and so that it can be pinned to
a core of its own (or the server's). It takes a JSON spec as its one argument and prints
one JSON object, the result, on stdout; on failure ``{"error": "..."}`` and exit status 1.

It is written to cost as little per message as CPython allows, so that the server, not
the client, sets the pace: a preallocated request and a reused receive buffer
(``recv_into``), a blocking socket when one connection suffices, one level-triggered epoll
loop otherwise, latencies appended to an ``array`` of nanoseconds during the run and put
into an HdrHistogram only after it. Its own CPU time (getrusage) and the server's
(``/proc/PID/stat``) are read at the edges of the measured window, so a result says which
side was busy.

Modes (``spec["mode"]``):

* ``pingpong``  closed loop: each connection sends one `size`-byte message and waits for
  its reply. A request carries its sequence number in its first 8 bytes, and a reply must
  be the request's exact twin. On datagrams a reply that does not come within `timeout`
  is counted lost and the next request goes out.
* ``rate``      open loop (wrk2): messages are due at ``t0 + i / rate`` across the
  connections in turn, woken by a timerfd; latency runs from when a message was *due*,
  not from when it was sent, so a stalled server is charged for every message it delayed
  (coordinated omission corrected). Datagrams not answered within `timeout` of the last
  send are lost.
* ``stream``    one connection writes `chunk`-byte blocks for `duration` s to a discard
  server, then half-closes and waits for the server to close: the clock stops when the
  server has read every byte. (A warm-up runs on a connection of its own before.)
* ``datagrams`` one socket sends `size`-byte datagrams flat out to a discard server. What
  the server took is what was sent less what its socket dropped: the kernel's per-socket
  drop counter (``/proc/net/udp`` ``drops``, the figure SO_RXQ_OVFL reports) read before
  and after; the clock stops when the server's receive queue is empty again.
* ``connect``   connect, a 1-byte echo, close, one connection after another. TCP closes
  with SO_LINGER 0 (a reset), so no TIME_WAIT piles up on the client's ephemeral ports.
* ``hold``      open `hold` connections in batches, each answering one echo; read the
  server's resident memory before and after; then every connection answers once more.

TLS (``spec["tls"]``: the CA file and the host name to verify the server against): every
connection is wrapped in an `ssl.SSLSocket` right after its TCP connect, and handshakes
there, blocking, before it counts as open, so ``connect`` times the handshake with the
rest. Every handshake is a full one (no session is resumed). Non-blocking reads may find
a record incomplete, or only a session ticket (`ssl.SSLWantReadError`: read again when
epoll says so), and a write may have to wait for room (`ssl.SSLWantWriteError`).

The spec and the result are typed once, in `netlab.bench.contract` (`LoadSpec`,
`LoadResult`), for both sides. Where each mode lives: `closed` (pingpong), `open_loop`
(rate), `oneway` (stream, datagrams), `connections` (connect, hold); `sockets` holds the
target, the measured window and the histogram encoding they share.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from ..contract import LoadFailure, LoadMode, LoadResult, LoadSpec
from ..procfs import raise_nofile, udp_socket_state
from .closed import pingpong
from .connections import connect, hold
from .oneway import datagrams, stream
from .open_loop import rate
from .sockets import LoadError

#: what runs each mode of the load generator
RUNNERS: dict[LoadMode, Callable[[LoadSpec], LoadResult]] = {
    "pingpong": pingpong, "rate": rate, "stream": stream, "datagrams": datagrams, "connect": connect, "hold": hold,
}


def main(argv: list[str]) -> int:
    """Run the spec in ``argv[1]``; print its result (or a `LoadFailure`) as one JSON line."""
    try:
        spec: LoadSpec = json.loads(argv[1])
        raise_nofile()
        result = RUNNERS[spec["mode"]](spec)
    except (LoadError, OSError, KeyError, ValueError, IndexError) as exc:
        what = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        failure: LoadFailure = {"error": what}
        print(json.dumps(failure), flush=True)
        return 1
    print(json.dumps(result), flush=True)
    return 0


__all__ = ["RUNNERS", "LoadError", "main", "udp_socket_state"]
