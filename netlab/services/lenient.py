"""sum's ``accept=lenient``: the two numbers in any text, as first clients send them.

Real first clients send ``2 3``, ``2,3``, ``2/3``, ``["2", "3"]``, ``2 + 3`` or ``a=2 b=3``.
`find_numbers` picks the numbers out of such text; whatever is between them is ignored. A
number is ``[sign] (D+ [. D*] | . D+) [(e|E) [sign] D+]`` with D an ASCII digit, where:

* a sign belongs to the number only when it touches the digits and does not follow a
  letter, a digit or a point: ``2 -3`` is 2 and -3, ``2 + 3`` and ``2+3`` are 2 and 3 (the
  ``+`` reads as the operator sum applies), and ``2-3`` or ``2 - 3``, a subtraction, is
  refused rather than answered with 5;
* digits glued to a number by a second point (``1.2.3``, a version or a date) are not a
  number: the request is refused naming them, rather than read as 1.2 and .3;
* words are text, also ``nan`` and ``inf``; digits of other scripts are text too.

It runs in linear time with no regular expression: a ``find`` for the next digit (over a
copy of the text in which every digit is ``0``) and ``lstrip`` for the length of a run of
digits, both loops in C, and at most three numbers are looked at before it answers.
"""

from __future__ import annotations

_DIGITS = "0123456789"
_ONE_DIGIT = str.maketrans("123456789", "000000000")
#: numbers collected before giving up: a third one already makes the request wrong
MOST = 3


class NotTwoNumbers(ValueError):
    """The text does not hold exactly two numbers; the message says what it holds."""


def _digits_end(flat: str, start: int) -> int:
    """The index just past the run of digits at `start` (`flat`: every digit is ``0``)."""
    rest = flat[start:]
    return len(flat) - len(rest.lstrip("0"))


def _show(text: str, limit: int = 24) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def find_numbers(text: str, most: int = MOST) -> list[str]:
    """The numbers in `text`, as written (``"-3"``, ``"2.5e3"``), at most `most` of them.

    Raises:
        NotTwoNumbers: digits that are not a number (``1.2.3``).
    """
    return [text[start:end] for start, end in _spans(text, most)]


def _spans(text: str, most: int) -> list[tuple[int, int]]:
    """Where the numbers in `text` are: (start, end) of each, at most `most` of them."""
    flat = text.translate(_ONE_DIGIT)
    found: list[tuple[int, int]] = []
    position = 0  # everything before it has been read
    while len(found) < most:
        digit = flat.find("0", position)
        if digit < 0:
            break
        start = digit
        if start > position and text[start - 1] == ".":  # .5
            start -= 1
        if start > position and text[start - 1] in "+-":
            before = text[start - 2] if start >= 2 else " "
            if not (before.isalnum() or before == "."):
                start -= 1
        end = _digits_end(flat, digit)
        if end < len(text) and text[end] == "." and text[digit - 1 : digit] != ".":
            end = _digits_end(flat, end + 1)  # 2. or 2.5
        if end + 1 < len(text) and text[end] == "." and flat[end + 1] == "0":
            stop = end + 1
            while stop < len(text) and stop - start <= 24 and (flat[stop] == "0" or text[stop] == "."):
                stop += 1
            raise NotTwoNumbers(f"not a number: {_show(text[start:stop])}")
        if end < len(text) and text[end] in "eE":
            exponent = end + 1 + (text[end + 1 : end + 2] in ("+", "-"))
            if exponent < len(text) and flat[exponent] == "0":
                end = _digits_end(flat, exponent)
        found.append((start, end))
        position = end
    return found


def two_numbers(text: str) -> tuple[str, str]:
    """The two numbers in `text`.

    Raises:
        NotTwoNumbers: none, one, or more than two (the message names what was found).
    """
    spans = _spans(text, MOST)
    numbers = [text[start:end] for start, end in spans]
    if len(numbers) == 2:
        between = "".join(text[spans[0][1] : spans[1][0]].split())
        if between == "-":  # 2-3, 2 - 3: a subtraction, which sum must not answer with 5
            raise NotTwoNumbers(f"{_show(text.strip())} reads as a subtraction; sum adds: for a negative "
                                f"number write the sign against it ({numbers[0]} -{numbers[1]})")
        return numbers[0], numbers[1]
    if not numbers:
        what = "nothing" if not text.strip() else f"none in {_show(text.strip())}"
        raise NotTwoNumbers(f"expected two numbers, found {what}")
    shown = ", ".join(_show(n) for n in numbers)
    if len(numbers) == 1:
        raise NotTwoNumbers(f"expected two numbers, found one: {shown}")
    raise NotTwoNumbers(f"expected two numbers, found more: {shown}, ...")
