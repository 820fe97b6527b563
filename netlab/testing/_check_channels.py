"""`check_message_channel`: the `MessageChannel` contract, checked on any pair of channels.

The message-channel counterpart of trio's ``trio.testing.check_half_closeable_stream``
(``trio/testing/_check_streams.py``): a new transport whose connections carry messages
passes this, or says where it does not. It asks only for a maker of connected pairs and
reads everything else from the channels (`max_message`, `buffer_size`, `has_eof`, the
transport's `reliable`), so it knows no transport by name. No pytest: it raises
AssertionError, like trio's checks.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import trio
import trio.testing

from ..errors import MessageTooLargeError, TransportError
from ..transports import Message, MessageChannel

#: a connected pair of message channels, as `transports.open_pair` makes (client, server)
ChannelMaker = Callable[[], Awaitable[tuple[MessageChannel, MessageChannel]]]

#: generous: a message over loopback arrives in microseconds; this only stops a hang
_TIMEOUT = 10.0


@contextlib.contextmanager
def _raises(*errors: type[BaseException]) -> Iterator[list[BaseException]]:
    caught: list[BaseException] = []
    try:
        yield caught
    except errors as exc:
        caught.append(exc)
    else:
        raise AssertionError(f"expected {' or '.join(e.__name__ for e in errors)}")


def _payload(size: int) -> bytes:
    return random.Random(size).randbytes(size)


async def _receive(channel: MessageChannel) -> Message:
    with trio.fail_after(_TIMEOUT):
        message = await channel.receive()
    assert message is not None, "end of stream where a message was due"
    return message


async def _exchange(sender: MessageChannel, receiver: MessageChannel, messages: list[bytes], *,
                    batches: bool = False) -> None:
    """Each of `messages` sent arrives as one receive, whole, in order (loopback loses
    nothing). The receiver reads while the sender sends, as a peer would: a receive queue
    holds only so many (ten unix datagrams, by default), and a sender waits, or on UDP
    loses, beyond that. `batches`: read with `receive_batch`."""
    received = 0

    def check(message: Message) -> None:
        nonlocal received
        assert received < len(messages), "more messages received than were sent"
        data = messages[received]
        # the bytes first: a channel that merges messages may also overflow the buffer (and say so)
        assert message.data == data, (f"sent {len(data)} bytes as one message, received {len(message.data)}: "
                                      f"messages were merged, split or reordered")
        assert not message.truncated, f"a {len(data)}-byte message arrived truncated"
        received += 1

    async def send() -> None:
        for data in messages:
            await sender.send(data)

    failed: AssertionError | None = None
    with trio.fail_after(_TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            try:
                while received < len(messages):
                    if batches:
                        batch = await receiver.receive_batch(limit=64)
                        assert 1 <= len(batch) <= 64, f"a batch of {len(batch)}"
                        for message in batch:
                            assert message is not None, "end of stream where a message was due"
                            check(message)
                    else:
                        check(await _receive(receiver))
            except AssertionError as exc:  # raised as it is, not in the nursery's exception group
                failed = exc
                nursery.cancel_scope.cancel()
    if failed is not None:
        raise failed


async def check_message_channel(maker: ChannelMaker) -> None:
    """Check the `MessageChannel` contract on pairs from `maker` (each pair is closed here).

    * whole messages both ways, in order, never merged or split, from one byte up to the
      sender's `max_message` (or the receiver's `buffer_size`, if smaller); an empty message
      where the kind has no end of stream, refused with MessageTooLargeError where it has one;
    * one byte over `max_message` refused with MessageTooLargeError naming the limit, and
      the channel still good; a message over the receiver's `buffer_size` arrives truncated;
    * `try_send`: True and the message arrives, or False and nothing was sent;
    * `receive_batch`: at least one message, in order, nothing lost between batches;
    * a receive cancelled before or while it waits loses no message;
    * `send_eof`: end of stream for the peer where `has_eof` (the other way still open),
      nothing at all otherwise; `aclose`: then sending and receiving on this end are
      refused (ClosedResourceError, or a TransportError), the peer sees end of stream
      where `has_eof`; closing twice is fine.
    """

    @contextlib.asynccontextmanager
    async def pair() -> AsyncIterator[tuple[MessageChannel, MessageChannel]]:
        a, b = await maker()
        try:
            yield a, b
        finally:
            with trio.CancelScope(shield=True):
                await a.aclose()
                await b.aclose()

    # whole messages, both ways, every size up to the limit
    async with pair() as (a, b):
        assert a.has_eof == b.has_eof, "the two ends of one kind disagree on end of stream"
        for sender, receiver in ((a, b), (b, a)):
            largest = min(sender.max_message, receiver.buffer_size)
            sizes = [1, 2, 100, 1024, 65_000, largest - 1, largest]
            await _exchange(sender, receiver, [_payload(n) for n in sorted(set(sizes)) if 0 < n <= largest])
            await _exchange(sender, receiver, [b"a", b"bb", b"a", b"ccc"])  # short ones back to back
            if sender.has_eof:
                with _raises(MessageTooLargeError):  # it would read as end of stream
                    await sender.send(b"")
            else:
                await _exchange(sender, receiver, [b"", b"x", b""])

    # over the limit: refused, saying the limit; the channel is still good
    async with pair() as (a, b):
        limit = a.max_message
        with _raises(MessageTooLargeError) as caught:
            await a.send(b"x" * (limit + 1))
        assert str(limit) in str(caught[0]), f"{caught[0]} does not say the limit, {limit}"
        await _exchange(a, b, [b"fits"])
        if a.max_message > b.buffer_size:  # the receiver's buffer is the smaller: cut, and said so
            await a.send(_payload(b.buffer_size + 1))
            message = await _receive(b)
            assert message.truncated and len(message.data) <= b.buffer_size
            await _exchange(a, b, [b"next"])

    # try_send, receive_batch
    async with pair() as (a, b):
        tried = [b"try %d" % i for i in range(20)]
        taken = [data for data in tried if a.try_send(data)]
        assert taken == tried[: len(taken)], "try_send took a message after refusing one"
        for data in taken:
            assert (await _receive(b)).data == data, "try_send said True, and another message came"
        await _exchange(a, b, [b"%d" % i for i in range(500)], batches=True)

    # cancellation: a receive cancelled before it starts, or while it waits, takes nothing
    async with pair() as (a, b):
        with trio.CancelScope() as scope:
            scope.cancel()
            await b.receive()
        assert scope.cancelled_caught, "receive is not a checkpoint"
        await a.send(b"queued")
        await trio.testing.wait_all_tasks_blocked()  # (delivered: loopback, or a peer task)
        with trio.CancelScope() as scope:
            scope.cancel()
            await b.receive()
        assert scope.cancelled_caught, "receive is not a checkpoint"
        queued: Message | None = None
        with trio.move_on_after(_TIMEOUT):
            queued = await b.receive()
        assert queued is not None and queued.data == b"queued", "a cancelled receive took a message"
        async with trio.open_nursery() as nursery:
            nursery.start_soon(b.receive)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        await _exchange(a, b, [b"after the cancelled receives"])

    # end of stream and closing
    async with pair() as (a, b):
        await _exchange(a, b, [b"before"])
        await a.send(b"last")
        await a.send_eof()
        if a.has_eof:
            assert (await _receive(b)).data == b"last"
            with trio.fail_after(_TIMEOUT):
                assert await b.receive() is None, "no end of stream after send_eof"
            await _exchange(b, a, [b"the other way is still open"])
        else:
            assert (await _receive(b)).data == b"last"
            await _exchange(a, b, [b"send_eof sent nothing: still open"])
    async with pair() as (a, b):
        await a.aclose()
        await a.aclose()  # twice is fine
        # (the contract says trio.ClosedResourceError; netlab's sockets say TransportError,
        # "Bad file descriptor", today: either is a refusal, which is what is checked)
        with _raises(trio.ClosedResourceError, TransportError):
            await a.send(b"closed")
        with _raises(trio.ClosedResourceError, TransportError):
            await a.receive()
        if b.has_eof:
            with trio.fail_after(_TIMEOUT):
                assert await b.receive() is None, "no end of stream after the peer closed"


__all__ = ["ChannelMaker", "check_message_channel"]
