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
"""

from __future__ import annotations

import decimal
import re
from dataclasses import dataclass

from ..errors import UsageError
from ..services.sum import SumError, add

PROFILES = ("assignment", "netlab")
DEFAULT_FORMAT = "{a} {b}\n"
#: what `--request auto` tries, in this order (first the default, then what students write)
AUTO_FORMATS = ("{a} {b}\n", "{a} {b}", "{a},{b}\n", "{a},{b}", '["{a}", "{b}"]', "[{a}, {b}]", "{a}/{b}")
#: relative tolerance for decimal sums in the assignment profile
TOLERANCE = decimal.Decimal("1e-9")

_NUMBER = re.compile(rb"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


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


def sum_matches(reply: bytes, a: str, b: str, *, exact: bool = False) -> bool:
    """Whether the last number in `reply` is ``a + b`` (within `TOLERANCE` unless `exact`)."""
    found = numbers_in(reply)
    if not found:
        return False
    got, want = found[-1], expected_sum(a, b)
    if got == want:
        return True
    if exact:
        return False
    return abs(got - want) <= TOLERANCE * max(abs(want), decimal.Decimal(1))


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
            if decimal.Decimal(add(f"{parts[0]} {parts[1]}")) == found[-1]:
                return size
        except SumError:
            continue
    return None


def shown(data: bytes, limit: int = 60) -> str:
    """Bytes as a short Python literal for a sentence: ``b'5\\n'``."""
    text = repr(data[:limit])
    return text + (f" (+{len(data) - limit} bytes)" if len(data) > limit else "")


def as_float_text(a: str, b: str) -> str:
    """What ``float(a) + float(b)`` prints, to recognise a float answer."""
    return repr(float(a) + float(b))


__all__ = ["AUTO_FORMATS", "DEFAULT_FORMAT", "PROFILES", "RequestFormat", "as_float_text", "expected_sum",
           "numbers_in", "shown", "sum_matches", "truncation"]
