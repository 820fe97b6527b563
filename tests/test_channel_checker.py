"""`netlab.testing.check_message_channel` itself: a channel that keeps the contract passes
it, and channels that break it in one way each fail it (as trio tests its own
``check_half_closeable_stream``). The transports run it in test_conformance.py."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from netlab.errors import MessageTooLargeError
from netlab.testing import ChannelMaker, check_message_channel
from netlab.transports import Message, MessageChannel


class MemoryMessages(MessageChannel):
    """One end of a pair of in-memory message channels (trio memory channels), keeping the
    contract unless told which part of it to break."""

    has_eof = True

    def __init__(self, out: trio.MemorySendChannel[bytes], into: trio.MemoryReceiveChannel[bytes], *,
                 limit: int = 100_000, buffer_size: int = 50_000, breaks: str = "") -> None:
        self._out, self._in = out, into
        self._limit, self.buffer_size, self._breaks = limit, buffer_size, breaks

    @property
    def max_message(self) -> int:
        return self._limit

    def _check(self, data: bytes) -> None:
        if len(data) > self._limit:
            raise MessageTooLargeError(f"a {len(data)}-byte message is over the limit, {self._limit} bytes")
        if not data and self.has_eof:
            raise MessageTooLargeError("cannot send an empty message: it would read as end of stream")

    async def send(self, data: bytes) -> None:
        self._check(data)
        await self._out.send(data)

    def try_send(self, data: bytes) -> bool:
        self._check(data)
        try:
            self._out.send_nowait(data)
        except trio.WouldBlock:
            return False
        return True

    async def receive(self) -> Message | None:
        try:
            if self._breaks == "loses a message when cancelled":
                data = self._in.receive_nowait() if self._in.statistics().current_buffer_used else None
                await trio.lowlevel.checkpoint()
                if data is None:
                    data = await self._in.receive()
            else:
                data = await self._in.receive()
        except trio.EndOfChannel:
            return None
        if self._breaks == "merges messages":
            while self._in.statistics().current_buffer_used:
                data += self._in.receive_nowait()
        return Message(data[: self.buffer_size], None, len(data) > self.buffer_size)

    async def send_eof(self) -> None:
        if self.has_eof and self._breaks != "no end of stream":
            await self._out.aclose()
        else:
            await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await self._out.aclose()
        await self._in.aclose()


class MemoryDatagrams(MemoryMessages):
    """The same without an end of stream: an empty message is a message."""

    has_eof = False


def memory_pairs(*, has_eof: bool, breaks: str = "") -> ChannelMaker:
    kind = MemoryMessages if has_eof else MemoryDatagrams

    async def maker() -> tuple[MessageChannel, MessageChannel]:
        a_out, b_in = trio.open_memory_channel[bytes](10)
        b_out, a_in = trio.open_memory_channel[bytes](10)
        return kind(a_out, a_in, breaks=breaks), kind(b_out, b_in, breaks=breaks)

    return maker


@pytest.mark.parametrize("has_eof", [True, False], ids=["seqpacket-like", "datagram-like"])
async def test_a_channel_that_keeps_the_contract_passes(has_eof: bool) -> None:
    await check_message_channel(memory_pairs(has_eof=has_eof))


@pytest.mark.parametrize(("breaks", "said"), [
    ("merges messages", "merged"),
    ("loses a message when cancelled", "a cancelled receive took a message"),
    ("no end of stream", None),  # the check waits for it, until its deadline
])
async def test_a_channel_that_breaks_the_contract_fails(autojump_clock: trio.testing.MockClock, breaks: str,
                                                         said: str | None) -> None:
    if said is None:
        with pytest.raises(trio.TooSlowError):
            await check_message_channel(memory_pairs(has_eof=True, breaks=breaks))
    else:
        with pytest.raises(AssertionError, match=said):
            await check_message_channel(memory_pairs(has_eof=True, breaks=breaks))
