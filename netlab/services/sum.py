"""sum: the lecture's assignment, "a server which accepts two numbers, adds them, and
returns the result".

A request is two numbers separated by white space; the reply is their exact sum.

* Integers stay integers, of any size up to Python's digit limit (`sys.get_int_max_str_digits`,
  4300 by default): ``2 3`` gives ``5``.
* Anything with a point or an exponent is added in decimal arithmetic with as many digits as
  the exact result needs: ``0.1 0.2`` gives ``0.3``, ``1e3 1`` gives ``1001``.
* ``nan``, ``inf``, words, one number or three, and invalid UTF-8 are refused in-band with a
  single line ``ERR <reason>``; the connection stays usable.

On a stream, one request per line (``\\n`` or ``\\r\\n``), one reply line per request, with
the same line ending, in order. On datagrams, one request per datagram; the reply ends with a
line ending only if the request did.

Two options, for testing clients written to other conventions (``netlab serve --framing
... --accept ...``):

* ``framing`` (streams): ``line`` as above; ``quiet[:MS]``, a request also ends after MS ms
  in which nothing arrived (its reply ends with ``\\n``); ``eof``, everything the client
  sends until it half-closes is one request. See `netlab.services.framing`.
* ``accept``: ``strict`` as above; ``lenient``, any text holding exactly two numbers
  (``2,3``, ``2/3``, ``["2", "3"]``, ``2 + 3``; see `netlab.services.lenient`).
"""

from __future__ import annotations

import decimal
import re
import sys

from ..errors import ServiceOptionError
from .base import LineReplyReader, ReplyReader, Service, Session
from .framing import DEFAULT_MAX_LINE, EofSplitter, Framing, Line, LineSplitter, TooLong
from .lenient import NotTwoNumbers, two_numbers

_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_NONFINITE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity",
              "snan", "+snan", "-snan"}

#: most digits an exact decimal result may need (keeps 1e-99999 + 1e99999 from eating memory)
MAX_RESULT_DIGITS = 10_000


def _digit_limit() -> int:
    limit = sys.get_int_max_str_digits()
    return limit if limit > 0 else 4300


class SumError(ValueError):
    """A request the sum service refuses; the message becomes ``ERR <message>``."""


def _show(token: str) -> str:
    shown = token if len(token) <= 24 else token[:21] + "..."
    return repr(shown)


def _parse_number(token: str) -> int | decimal.Decimal:
    if token.lower() in _NONFINITE:
        raise SumError(f"not a finite number: {_show(token)}")
    limit = _digit_limit()
    if _INT.fullmatch(token):
        digits = len(token.lstrip("+-"))
        if digits > limit:
            raise SumError(f"integer too long: {digits} digits (limit {limit})")
        return int(token)
    if _DECIMAL.fullmatch(token):
        mantissa = re.split("[eE]", token)[0]
        digits = sum(c.isdigit() for c in mantissa)
        if digits > limit:
            raise SumError(f"number too long: {digits} digits (limit {limit})")
        try:
            return decimal.Decimal(token)
        except decimal.DecimalException:  # an exponent too large for decimal to represent
            raise SumError(f"number out of range: {_show(token)}") from None
    raise SumError(f"not a number: {_show(token)}")


def _format_decimal(value: decimal.Decimal) -> str:
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    plain_length = max(value.adjusted() + 1, 1) + max(-exponent, 0)
    if plain_length <= _digit_limit():
        return format(value, "f")
    return str(value)


def add(text: str) -> str:
    """The whole service as a function: ``add("2 3") == "5"``. Raises `SumError`."""
    tokens = text.split()
    if not tokens:
        raise SumError("empty request: expected two numbers")
    if len(tokens) != 2:
        raise SumError(f"expected two numbers, got {len(tokens)}")
    a, b = (_parse_number(t) for t in tokens)
    if isinstance(a, int) and isinstance(b, int):
        total = a + b
        try:
            return str(total)
        except ValueError:
            raise SumError(f"result too long: over {_digit_limit()} digits") from None
    da, db = decimal.Decimal(a), decimal.Decimal(b)
    low = min(da.as_tuple().exponent, db.as_tuple().exponent)
    high = max(da.adjusted(), db.adjusted())
    needed = max(high - int(low) + 2, 1)
    if needed > MAX_RESULT_DIGITS:
        raise SumError(f"exact result would need {needed} digits (limit {MAX_RESULT_DIGITS})")
    context = decimal.Context(
        prec=needed, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN,
        traps=[decimal.Inexact, decimal.Overflow, decimal.InvalidOperation],
    )
    try:
        total_decimal = context.add(da, db)
    except decimal.DecimalException:  # beyond decimal's exponent range (Overflow, Underflow)
        raise SumError("result out of range: its exponent is beyond what decimal arithmetic holds") from None
    return _format_decimal(total_decimal)


def answer(body: bytes, max_line: int = DEFAULT_MAX_LINE, *, lenient: bool = False) -> bytes:
    """Reply text (without line ending) for one request body. Never raises.

    `lenient`: the two numbers may come in any text (`netlab.services.lenient`)."""
    if len(body) > max_line:
        return b"ERR request too long (limit %d bytes)" % max_line
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return b"ERR request is not valid UTF-8"
    try:
        if lenient:
            text = " ".join(two_numbers(text))
        return add(text).encode("ascii")
    except (SumError, NotTwoNumbers) as exc:
        return b"ERR " + str(exc).encode("ascii", "backslashreplace")


ACCEPT = ("strict", "lenient")


class _SumSession(Session):
    def __init__(self, max_line: int, framing: Framing, lenient: bool) -> None:
        self._splitter = EofSplitter(max_line) if framing.kind == "eof" else LineSplitter(max_line)
        self._quiet = framing.silence is not None  # only a silence may end a request early
        self._max_line = max_line
        self._lenient = lenient

    def receive_data(self, data: bytes) -> bytes:
        return self._answer(self._splitter.feed(data))

    def pending(self) -> int:
        return self._splitter.pending

    def head(self, limit: int) -> bytes:
        return self._splitter.head(limit)

    def flush(self) -> bytes:
        return self._answer(self._splitter.flush()) if self._quiet else b""

    def _answer(self, items: list[Line | TooLong]) -> bytes:
        out = []
        for item in items:
            if isinstance(item, TooLong):
                out.append(b"ERR request too long (limit %d bytes)\n" % item.limit)
            else:
                assert isinstance(item, Line)
                ending = b"\r\n" if item.ending == b"\r\n" else b"\n"
                out.append(answer(item.body, self._max_line, lenient=self._lenient) + ending)
        return b"".join(out)


class SumService(Service):
    name = "sum"
    summary = "adds two numbers exactly: '2 3' -> '5', '0.1 0.2' -> '0.3'; one request per line"
    example = ("2 3", "5")
    options = ("framing", "accept")

    framing: Framing

    def __init__(self, max_line: int = DEFAULT_MAX_LINE, *, framing: Framing | str = "line",
                 accept: str = "strict") -> None:
        """Raises ServiceOptionError: a framing that does not parse, an unknown `accept`."""
        self.max_line = max_line
        self.framing = framing if isinstance(framing, Framing) else Framing.parse(framing)
        if accept not in ACCEPT:
            raise ServiceOptionError(f"accept {accept!r}: use strict (two numbers separated by white space) "
                                     f"or lenient (any text holding two numbers)")
        self.accept = accept

    def describe(self, *, stream: bool) -> str:
        return (f"framing={self.framing} " if stream else "") + f"accept={self.accept}"

    def new_session(self) -> Session:
        return _SumSession(self.max_line, self.framing, self.accept == "lenient")

    def handle_datagram(self, data: bytes) -> bytes | None:
        ending = b""
        if data.endswith(b"\r\n"):
            data, ending = data[:-2], b"\r\n"
        elif data.endswith(b"\n"):
            data, ending = data[:-1], b"\n"
        return answer(data, self.max_line, lenient=self.accept == "lenient") + ending

    def encode_request(self, message: bytes, *, stream: bool) -> bytes:
        if stream and not message.endswith(b"\n"):
            return message + b"\n"
        return message

    def new_reply_reader(self) -> ReplyReader:
        return LineReplyReader()

    def is_error(self, reply: bytes) -> bool:
        """``ERR <reason>``: bad input, a request over the limit, or a server at its limit (ERR busy)."""
        return reply == b"ERR" or reply.startswith((b"ERR ", b"ERR\n", b"ERR\r"))
