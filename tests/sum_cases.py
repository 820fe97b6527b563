"""Requests for the sum service, shared by the sans-IO tests and the conformance suite."""

from __future__ import annotations

BIG_A = int("7" * 4000)
BIG_B = int("3" * 3999 + "9")

#: (request body, exact reply body)
GOOD: list[tuple[bytes, bytes]] = [
    (b"2 3", b"5"),
    (b"0 0", b"0"),
    (b"-5 3", b"-2"),
    (b"-5 -7", b"-12"),
    (b"+1 -1", b"0"),
    (b"  7 \t 8  ", b"15"),
    (b"0.1 0.2", b"0.3"),
    (b"-1.5 -2.25", b"-3.75"),
    (b"1.50 1.50", b"3.00"),
    (b".5 .5", b"1.0"),
    (b"1e3 1", b"1001"),
    (b"1E3 1e-3", b"1000.001"),
    (b"2.5e-1 -0.25", b"0.00"),
    (b"123456789012345678901234567890 1", b"123456789012345678901234567891"),
    (b"%d %d" % (BIG_A, BIG_B), b"%d" % (BIG_A + BIG_B)),
    (b"-%d %d" % (BIG_A, BIG_A), b"0"),
]

#: (case id, request body) for requests that must get exactly one ``ERR ...`` line
BAD: list[tuple[str, bytes]] = [
    ("one-number", b"5"),
    ("three-numbers", b"1 2 3"),
    ("words", b"two three"),
    ("word-and-number", b"2 three"),
    ("hex", b"0x10 1"),
    ("nan", b"nan 1"),
    ("NaN-second", b"1 NaN"),
    ("inf", b"inf 1"),
    ("minus-infinity", b"1 -Infinity"),
    ("5000-digit-integer", b"1" * 5000 + b" 1"),
    ("invalid-utf8", b"\xff\xfe 1"),
    ("empty", b""),
    ("blank", b"   "),
    ("exponent-out-of-range", b"1e99999999999999999999 1"),
    ("result-exponent-out-of-range", b"9e999999999999999999 9e999999999999999999"),
]
BAD_IDS = [name for name, _ in BAD]
