"""Message connections (unix-seq): each message is one request, answered in order, like a
datagram on a connection of its own."""

from __future__ import annotations

from ..transports import Message, MessageChannel
from .context import Serving, log
from .deadline import Deadline

#: what a message connection beyond the server's limits is told before it is closed (one
#: message, so no line ending)
BUSY = b"ERR busy"


class MessageHandler:
    """Serves the message connections of one server."""

    def __init__(self, server: Serving) -> None:
        self._server = server

    async def __call__(self, conn: MessageChannel) -> None:
        """Answer each message with one, in order, until the peer ends the stream."""
        server = self._server
        stats, handle = server.stats, server.service.handle_datagram
        deadline = Deadline(server.limits.idle_timeout)
        queued: list[Message | None] = []  # the rest of the last batch, last first
        with deadline.scope:
            while True:
                if not queued:
                    deadline.arm()
                    queued = list(await conn.receive_batch())  # what is queued, one trip through the scheduler
                    queued.reverse()
                message = queued.pop()
                if message is None:  # end of stream
                    return
                stats.datagrams += 1
                if message.truncated:
                    stats.truncated += 1
                    log.warning("dropped a %d+-byte message: larger than the read buffer (truncated)",
                                len(message.data))
                    continue
                reply = handle(message.data)
                # an empty reply cannot be sent: it would read as end of stream
                if reply and not conn.try_send(reply):
                    deadline.arm()
                    deadline.sending = True
                    await conn.send(reply)
                    deadline.sending = False
                if server.draining:
                    return
        deadline.report(server)
