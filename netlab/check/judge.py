"""How a reply is judged, and how a request is written: pure functions, no I/O.

Two profiles judge replies differently:

``assignment``
    what the course's assignment asks, judged leniently. A sum reply is right if the *last
    number* in it equals the sum: ``5``, ``5.0``, ``Sum: 5`` and ``The result: 2 + 3 = 5.0``
    all are. Decimals may be off by a relative 1e-9 (a float is fine for 0.1 + 0.2); integers
    must be exact where the case is about exactness (`sum.large`). A server may close the
    connection after each reply.
``netlab``
    netlab's own line protocol exactly: the reply is byte for byte what netlab's sum or echo
    service answers (`netlab.services`), which is the oracle here, so the checker and the
    conformance suite check each other.

A request is written from a template with ``{a}`` and ``{b}`` (``'{a} {b}\\n'``, ``'{a},{b}'``,
``'["{a}", "{b}"]'``); ``auto`` tries `AUTO_FORMATS` in turn.

A *client's* output is judged by `printed_answer`: whether what it printed, on stdout or
stderr, holds the reply it was given, not counting its own log of the request it sent.
"""

from __future__ import annotations

import ast
import decimal
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import UsageError
from ..services.sum import SumError, add

PROFILES = ("assignment", "netlab")
DEFAULT_FORMAT = "{a} {b}\n"
#: what `--request auto` tries, in this order (first the default, then what students write)
AUTO_FORMATS = ("{a} {b}\n", "{a} {b}", "{a},{b}\n", "{a},{b}", "{a} + {b}\n", "{a} + {b}", '["{a}", "{b}"]',
                "[{a}, {b}]", "{a}/{b}")
#: relative tolerance for decimal sums in the assignment profile
TOLERANCE = decimal.Decimal("1e-9")

_NUMBER = re.compile(rb"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
#: the arithmetic the judges compare numbers in: no signal raises (a reply of ``1e1000000``,
#: beyond the default context's exponent limit, would raise decimal.Overflow there), so a number
#: out of range is an infinity, unequal to every sum, and an undefined result (inf - inf) NaN
_JUDGING = decimal.Context(prec=60, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, traps=[])


@dataclass(frozen=True)
class RequestFormat:
    """A request template: ``{a}`` and ``{b}`` stand for the numbers."""

    template: str

    def __post_init__(self) -> None:
        if "{a}" not in self.template or "{b}" not in self.template:
            raise UsageError(f"a request format needs {{a}} and {{b}} (as in '{{a}} {{b}}\\n'), "
                             f"not {self.template!r}")

    def render(self, a: str, b: str) -> bytes:
        return self.template.replace("{a}", a).replace("{b}", b).encode("utf-8", "surrogateescape")

    @property
    def terminated(self) -> bool:
        """The request ends with a newline, so a server can tell where it ends without EOF."""
        return self.template.endswith("\n")

    def __str__(self) -> str:
        return repr(self.template)


def numbers_in(data: bytes) -> list[decimal.Decimal]:
    """Every number written in `data`, in order."""
    found = []
    for match in _NUMBER.finditer(data):
        try:
            found.append(decimal.Decimal(match.group().decode()))
        except decimal.InvalidOperation:
            continue
    return found


def expected_sum(a: str, b: str) -> decimal.Decimal:
    return decimal.Decimal(add(f"{a} {b}"))


#: how much of a reply's end `sum_matches` reads: its last number is there (a right sum is a
#: few dozen digits), and a reply of megabytes is judged as fast as one line
TAIL = 4096


def tail(reply: bytes, size: int = TAIL) -> bytes:
    """The last `size` bytes of `reply`, less a number cut in two at their start (its end
    alone would read as a number it is not)."""
    if len(reply) <= size:
        return reply
    end = reply[-size:]
    cut = len(end) - len(end.lstrip(b"0123456789.eE+-"))
    return end[cut:]


def sum_matches(reply: bytes, a: str, b: str, *, exact: bool = False) -> bool:
    """Whether the last number in `reply` is ``a + b`` (within `TOLERANCE` unless `exact`).
    Only the reply's `tail` is read."""
    found = numbers_in(tail(reply))
    if not found:
        return False
    got, want = found[-1], expected_sum(a, b)
    with decimal.localcontext(_JUDGING):
        if got == want:
            return True
        if exact:
            return False
        return close(got, want)


def close(got: decimal.Decimal, want: decimal.Decimal) -> bool:
    """`got` is `want` within a relative `TOLERANCE`; never raises, whatever `got` is (a
    number of a million digits, or beyond any exponent: then it is simply not close)."""
    with decimal.localcontext(_JUDGING):
        return bool(abs(got - want) <= TOLERANCE * max(abs(want), decimal.Decimal(1)))


def truncation(request: bytes, reply: bytes) -> int | None:
    """If the reply is the sum of only the first N bytes of the request (a server reading a
    fixed N bytes), that N; else None."""
    found = numbers_in(reply)
    if not found:
        return None
    for size in range(1, len(request)):
        parts = numbers_in(request[:size])
        if len(parts) != 2 or parts == numbers_in(request):
            continue
        try:
            with decimal.localcontext(_JUDGING):
                if decimal.Decimal(add(f"{parts[0]} {parts[1]}")) == found[-1]:
                    return size
        except SumError:
            continue
    return None


# -- a client's output ------------------------------------------------------------------------

#: words with which a client logs the request it sends: "sending ...", "sent ...", "wrote ..."
_SENDING = re.compile(rb"\b(?:send|sends|sending|sendall|sendto|sent|write|writes|writing|wrote)\b", re.I)
#: words with which it logs what came back: "received ...", "got ...", "reply: ..."
_RECEIVING = re.compile(rb"recv|receiv|\bgot\b|\brepl(?:y|ies|ied)\b|\brespon|\banswer|\bresult|\becho(?:ed|es)?\b"
                        rb"|\bfrom (?:the )?server\b|\bserver\s+(?:sent|says|said|wrote)\b|\bsent\s+back\b", re.I)
_BYTES_LITERAL = re.compile(rb"""b'(?:[^'\\]|\\.)*'|b"(?:[^"\\]|\\.)*\"""")
_DOUBLE_QUOTED = re.compile(rb'"([^"]*)"')
_SINGLE_QUOTED = re.compile(rb"'([^']*)'")
_LABEL_REST = re.compile(rb"\w*\s*:?\s?")


def _request_forms(requests: Sequence[bytes]) -> list[bytes]:
    """How a request shows in a client's log: as text (``12 30``) or inside a repr
    (``b'12 30\\n'`` holds ``12 30``; a request with other control bytes shows escaped)."""
    forms: set[bytes] = set()
    for request in requests:
        core = request.strip()
        if core:
            forms.add(core)
            forms.add(repr(core)[2:-1].encode())
    return sorted(forms, key=len, reverse=True)


def _drop_first(line: bytes, forms: Sequence[bytes]) -> bytes:
    """`line` without the leftmost occurrence of any of `forms`."""
    found = [(line.find(form), form) for form in forms if form in line]
    if not found:
        return line
    at, form = min(found, key=lambda pair: (pair[0], -len(pair[1])))
    return line[:at] + line[at + len(form):]


def reply_lines(output: bytes, requests: Sequence[bytes]) -> list[bytes]:
    """The lines of a client's output that can hold the reply: all but its log of the request.

    A line is the client's log of its own request when, the request's text left aside, it has
    a word of sending (send, sending, sent, wrote, ...) and none of receiving (received, recv,
    got, reply, response, answer, result, echoed, from server, server sent, sent back): such a
    line is dropped (``sending "hello"``, ``sending b'12 30\\n'``, ``Sent 42 bytes``). A line
    with both (``sent 'hello', received 'hello'``) stays, less one occurrence of the request
    per word of sending (those inside a phrase of receiving, as in ``Server sent: 42``, do not
    count): so an echo client's ``received "" after sending "hello"`` does not hold the echo,
    and ``sent 'hello', received 'hello'`` does. Words inside the request itself do not count
    (an echo of ``I sent it`` is still an echo). A line with neither kind of word stays whole:
    a client that prints only its reply (``42``, ``hello``) is judged on it. What cannot be
    told apart: a client that prints its request bare, with no word, and never reads a reply;
    that line is taken for the reply."""
    forms = _request_forms(requests)
    kept = []
    for line in output.splitlines():
        outside = line
        for form in forms:
            outside = outside.replace(form, b" ")
        sends = len(_SENDING.findall(_RECEIVING.sub(b" ", outside)))  # "server sent: 5" is a receipt
        if sends and not _RECEIVING.search(outside):
            continue
        for _ in range(sends):
            line = _drop_first(line, forms)
        kept.append(line)
    return kept


def _literal(text: bytes) -> bytes:
    try:
        value = ast.literal_eval(text.decode("latin-1"))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text[2:-1]
    return value if isinstance(value, bytes) else text[2:-1]


def _payload(line: bytes) -> bytes:
    """What a line of a client's log says came: the bytes literals in it (``b'4'``), else what
    it quotes (``received "this is my "``), else what follows a word of receiving
    (``received: 4``), else the whole line (a piece printed as it came)."""
    literals = _BYTES_LITERAL.findall(line)
    if literals:
        return b"".join(_literal(text) for text in literals)
    quoted = _DOUBLE_QUOTED.findall(line) or _SINGLE_QUOTED.findall(line)
    if quoted:
        return b"".join(quoted)
    label = _RECEIVING.search(line)
    if label is not None:
        rest = line[label.end():]
        skip = _LABEL_REST.match(rest)
        return rest[skip.end():] if skip is not None else rest
    return line


def printed_answer(output: bytes, answer: bytes, requests: Sequence[bytes], *, echo: bool) -> bool:
    """Whether a client's `output` (its stdout or its stderr) holds `answer`, the reply it was
    given to `requests`.

    Only `reply_lines` count (never the client's log of what it sent). The answer may be in
    one line; or printed in pieces as they came, one line each (``b'4'`` ``b'2'``, or
    ``received "this is my test "`` ``received "message"``, or bare text): the lines are also
    read joined together, and the payloads of the lines (`_payload`) joined together. Echo:
    the answer's bytes, less white space at its ends, appear in one of these. Sum: one of
    them has a number equal to the sum (within a relative 1e-9)."""
    lines = reply_lines(output, requests)
    texts = [*lines, b"".join(lines), b"".join(_payload(line) for line in lines)]
    if echo:
        want = answer.strip()
        return bool(want) and any(want in text for text in texts)
    numbers = numbers_in(answer)
    if not numbers or answer.startswith(b"ERR"):
        return False
    return any(close(n, numbers[0]) for text in texts for n in numbers_in(text))


def shown(data: bytes, limit: int = 60) -> str:
    """Bytes as a short Python literal for a sentence: ``b'5\\n'``."""
    text = repr(data[:limit])
    return text + (f" (+{len(data) - limit} bytes)" if len(data) > limit else "")


def as_float_text(a: str, b: str) -> str:
    """What ``float(a) + float(b)`` prints, to recognise a float answer."""
    return repr(float(a) + float(b))


__all__ = ["AUTO_FORMATS", "DEFAULT_FORMAT", "PROFILES", "RequestFormat", "as_float_text", "close", "expected_sum",
           "numbers_in", "printed_answer", "reply_lines", "shown", "sum_matches", "tail", "truncation"]
