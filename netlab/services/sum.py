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
import sys

from ..errors import ServiceOptionError
from .base import REPLY_BUDGET, LineReplyReader, ReplyReader, Service, Session
from .framing import DEFAULT_MAX_LINE, EofSplitter, Framing, Line, LineSplitter, TooLong
from .lenient import NotTwoNumbers, two_numbers

_DIGITS = "0123456789"
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


def _digits_from(token: str, start: int) -> int:
    """The index just past the ASCII digits of `token` that begin at `start` (lstrip: one
    pass in C, where a loop over the characters in Python costs ~80 ns each)."""
    rest = token[start:]
    return len(token) - len(rest.lstrip(_DIGITS))


def _scan(token: str) -> tuple[str, int] | None:
    """Which number `token` spells: ``("int", digits)``, ``("decimal", mantissa digits)``, or
    None when it is not one. One pass, each character looked at once: no regular expression
    (a backtracking one took quadratic time on a long run of digits followed by a bad
    character, and the server does nothing else meanwhile).

    The grammar: ``[+-]? ( D+ ( "." D* )? | "." D+ ) ( [eE] [+-]? D+ )?`` with D an ASCII digit.
    """
    i = 1 if token[:1] in ("+", "-") else 0
    end = _digits_from(token, i)
    digits = end - i
    point = end < len(token) and token[end] == "."
    if point:
        after = _digits_from(token, end + 1)
        digits += after - end - 1
        end = after
    if digits == 0:
        return None
    exponent = end < len(token) and token[end] in "eE"
    if exponent:
        start = end + 1 + (token[end + 1:end + 2] in ("+", "-"))
        end = _digits_from(token, start)
        if end == start:
            return None
    if end != len(token):
        return None
    return ("decimal" if point or exponent else "int"), digits


def _parse_number(token: str) -> int | decimal.Decimal:
    if token.lower() in _NONFINITE:
        raise SumError(f"not a finite number: {_show(token)}")
    limit = _digit_limit()
    scanned = _scan(token)
    if scanned is None:
        raise SumError(f"not a number: {_show(token)}")
    kind, digits = scanned
    if digits > limit:
        what = "integer" if kind == "int" else "number"
        raise SumError(f"{what} too long: {digits} digits (limit {limit})")
    if kind == "int":
        return int(token)
    try:
        return decimal.Decimal(token)
    except decimal.DecimalException:  # an exponent too large for decimal to represent
        raise SumError(f"number out of range: {_show(token)}") from None


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

#: bytes of input split into lines at a time: what a session holds besides the input
#: itself while replies wait (a 256 KiB read of 4-byte requests is 65,000 lines at once)
SLICE = 4096


class _SumSession(Session):
    """Lines are answered in order, slice by slice of the input, until the replies built in
    one call reach REPLY_BUDGET; the rest waits, as bytes, for `resume`."""

    def __init__(self, max_line: int, framing: Framing, lenient: bool) -> None:
        self._splitter = EofSplitter(max_line) if framing.kind == "eof" else LineSplitter(max_line)
        self._quiet = framing.silence is not None  # only a silence may end a request early
        self._max_line = max_line
        self._lenient = lenient
        self._input = memoryview(b"")  # received, not yet split into lines
        self._lines: list[Line | TooLong] = []  # split, not yet answered from `_next` on
        self._next = 0
        self._eof = False  # end of stream received; given to the splitter once `_input` is done

    def receive_data(self, data: bytes) -> bytes:
        if not data:
            self._eof = True
        elif self._input:  # only if the adapter read before resume() answered everything
            self._input = memoryview(bytes(self._input) + data)
        else:
            self._input = memoryview(data)
        return self.resume()

    def resume(self) -> bytes:
        out = []
        size = 0
        lines, index = self._lines, self._next
        while True:
            if index < len(lines):
                if size >= REPLY_BUDGET:
                    break
                reply = self._reply(lines[index])
                index += 1
                out.append(reply)
                size += len(reply)
            elif self._input:
                piece, self._input = self._input[:SLICE], self._input[SLICE:]
                lines, index = self._splitter.feed(bytes(piece)), 0
            elif self._eof:
                lines, index = self._splitter.feed(b""), 0
                self._eof = False  # the splitter says nothing after end of stream
                if not lines:
                    break
            else:
                break
        self._lines, self._next = lines, index
        return b"".join(out)

    def pending(self) -> int:
        return self._splitter.pending

    def head(self, limit: int) -> bytes:
        return self._splitter.head(limit)

    def flush(self) -> bytes:
        return b"".join(self._reply(item) for item in self._splitter.flush()) if self._quiet else b""

    def _reply(self, item: Line | TooLong) -> bytes:
        if isinstance(item, TooLong):
            return b"ERR request too long (limit %d bytes)\n" % item.limit
        ending = b"\r\n" if item.ending == b"\r\n" else b"\n"
        return answer(item.body, self._max_line, lenient=self._lenient) + ending


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
