"""echo (RFC 862): every byte goes back unchanged, as soon as it arrives."""

from __future__ import annotations

from .base import LengthReplyReader, ReplyReader, Service, Session


class _EchoSession(Session):
    def receive_data(self, data: bytes) -> bytes:
        return data


class EchoService(Service):
    name = "echo"
    summary = "every byte back unchanged, as it arrives (RFC 862); each datagram answered by its twin"
    example = ("hello", "hello")

    def __init__(self, max_line: int | None = None) -> None:
        self.max_line = max_line  # echo buffers nothing: every byte goes straight back

    def new_session(self) -> Session:
        return _EchoSession()

    def handle_datagram(self, data: bytes) -> bytes | None:
        return data

    def encode_request(self, message: bytes, *, stream: bool) -> bytes:
        return message

    def new_reply_reader(self) -> ReplyReader:
        return LengthReplyReader()
