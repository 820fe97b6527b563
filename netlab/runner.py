"""The names `netlab.runner` held, for code written against it: serving is `netlab.server`
now, and the clients are `netlab.client`. New code imports from those (or from `netlab`).

The constants are the same objects as theirs, to read; a test that changes one patches it
where it is used (``netlab.server.datagrams.REPLY_TIMEOUT``), since a name rebound here
is not seen there.
"""

from __future__ import annotations

from .client import RECEIVE_SIZE, REQUEST_TIMEOUT, Client, MessageClient, StreamClient, open_client, run_chat
from .errors import NetlabError
from .server import Limits, Server, ServerStats, serve
from .server.context import log
from .server.datagrams import PEER_REPLY_QUEUE, REPLY_QUEUE_BYTES, REPLY_TIMEOUT
from .server.streams import SERVER_RECEIVE_SIZE
from .server.unfinished import HINT_AFTER, HINT_SHOWS, HINTS_PER_S

__all__ = [
    "HINTS_PER_S", "HINT_AFTER", "HINT_SHOWS", "PEER_REPLY_QUEUE", "RECEIVE_SIZE", "REPLY_QUEUE_BYTES", "REQUEST_TIMEOUT",
    "REPLY_TIMEOUT", "SERVER_RECEIVE_SIZE", "Client", "Limits", "MessageClient", "NetlabError", "Server",
    "ServerStats", "StreamClient", "log", "open_client", "run_chat", "serve",
]
