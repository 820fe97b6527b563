"""discard (RFC 863): every byte is read and thrown away; nothing ever comes back.

The sink for one-way measurements (``netlab bench stream``, ``netlab bench datagrams``):
the server does the receiving half of echo's work and none of the sending, so a bulk
transfer measures one direction only. A stream session returns ``b""`` for every chunk;
a datagram gets no reply (`handle_datagram` returns None); a client expects no replies.
"""

from __future__ import annotations

from .base import ReplyReader, Service, Session


class _DiscardSession(Session):
    def receive_data(self, data: bytes) -> bytes:
        return b""


class _NoReplies(ReplyReader):
    def expect(self, request: bytes) -> int:
        return 0

    def feed(self, data: bytes) -> list[bytes]:
        return []  # a discard server sends nothing; anything that comes is not a reply


class DiscardService(Service):
    name = "discard"
    summary = "every byte read and thrown away, nothing sent back (RFC 863); a sink for one-way benchmarks"
    example = ("hello", "")
    replies = False

    def __init__(self, max_line: int | None = None) -> None:
        self.max_line = max_line  # discard buffers nothing

    def new_session(self) -> Session:
        return _DiscardSession()

    def handle_datagram(self, data: bytes) -> bytes | None:
        return None

    def encode_request(self, message: bytes, *, stream: bool) -> bytes:
        return message

    def new_reply_reader(self) -> ReplyReader:
        return _NoReplies()
