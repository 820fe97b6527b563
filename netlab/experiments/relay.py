"""The names `netlab.experiments.relay` held, for code written against it: the relay is
`netlab.impair.relay` now. New code imports from there.

The constants are the same objects as the relay's, to read; a test that changes one
patches it where it is used (``netlab.impair.relay.MAX_PEERS``), since a name rebound
here is not seen there.
"""

from __future__ import annotations

from ..impair.relay import (
    MAX_CONNECTIONS, MAX_PEERS, PASS_BUFFER, PEER_QUEUE, SEND_TIMEOUT, STREAM_BUFFER, STREAM_QUEUE, Relay, RelayStats,
    check_applicable, log, run_relay,
)

__all__ = ["MAX_CONNECTIONS", "MAX_PEERS", "PASS_BUFFER", "PEER_QUEUE", "SEND_TIMEOUT", "STREAM_BUFFER",
           "STREAM_QUEUE", "Relay", "RelayStats", "check_applicable", "log", "run_relay"]
