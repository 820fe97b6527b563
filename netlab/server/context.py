"""What the parts of a server are given of it (`Serving`), and the log they all write to.

Admission, the connection handlers and the datagram loop each work for one server; they
read its service, transport and limits, count in its stats, and stop when it drains. They
see it through `Serving`, so that they need not import the `Server` that runs them.
"""

from __future__ import annotations

import logging
from typing import Protocol

from ..logs import summarised
from ..services import Service
from ..transports import Transport
from .limits import Limits, ServerStats

#: every part of the server logs here, under one name: its repeats are summarised, and
#: tests and the framing experiment listen to it by that name
log = summarised(logging.getLogger("netlab.server"))


class Serving(Protocol):
    """The server a handler works for, as the handler sees it (a `Server` is one)."""

    @property
    def service(self) -> Service: ...

    @property
    def transport(self) -> Transport: ...

    @property
    def limits(self) -> Limits: ...

    @property
    def stats(self) -> ServerStats: ...

    @property
    def draining(self) -> bool:
        """True once the server stopped accepting: a handler ends after the request in hand."""
        ...
