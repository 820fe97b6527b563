"""Framings and sum's lenient parsing, with no sockets and no trio: bytes in, bytes out.

The runner's side (the clock that calls `flush`, the hint) is tested with real clients in
test_student_clients.py and on every stream transport in test_conformance.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netlab.errors import ServiceOptionError, UsageError
from netlab.services import get_service
from netlab.services.framing import EofSplitter, Framing, Line, LineSplitter, TooLong
from netlab.services.lenient import NotTwoNumbers, find_numbers, two_numbers
from netlab.services.sum import SumService, answer

# -- Framing --------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "kind", "quiet"), [
    ("line", "line", 0.2), ("eof", "eof", 0.2), ("quiet", "quiet", 0.2), ("quiet:50", "quiet", 0.05),
    ("quiet:1500ms", "quiet", 1.5), ("quiet:0.5", "quiet", 0.0005),
])
def test_framing_parses(text: str, kind: str, quiet: float) -> None:
    framing = Framing.parse(text)
    assert (framing.kind, framing.quiet) == (kind, pytest.approx(quiet))
    assert Framing.parse(str(framing)) == framing


@pytest.mark.parametrize("text", ["lines", "", "quiet:", "quiet:x", "quiet:0", "quiet:-5", "quiet:nan", "quiet:inf",
                                  "line:200", "eof:1"])
def test_framing_refuses(text: str) -> None:
    with pytest.raises(ServiceOptionError) as caught:
        Framing.parse(text)
    assert isinstance(caught.value, UsageError)  # the CLI exits 2


def test_framing_says_what_ends_a_request_and_what_to_do() -> None:
    assert Framing("line").silence is None and Framing("eof").silence is None
    assert Framing.parse("quiet:300").silence == pytest.approx(0.3)
    assert "\\n" in (Framing("line").advice or "") and "--framing quiet" in (Framing("line").advice or "")
    assert "half-close" in (Framing("eof").advice or "")
    assert Framing.parse("quiet").advice is None  # it ends requests itself: no hint


# -- splitters ------------------------------------------------------------------------------


def test_line_splitter_pending_head_and_flush() -> None:
    splitter = LineSplitter(100)
    assert splitter.pending == 0
    assert splitter.feed(b"1 2\n3 4") == [Line(b"1 2", b"\n")]
    assert (splitter.pending, splitter.head(2)) == (3, b"3 ")
    assert splitter.flush() == [Line(b"3 4", b"")]
    assert splitter.pending == 0 and splitter.flush() == []
    assert splitter.feed(b"5 6\r") == [] and splitter.flush() == [Line(b"5 6", b"")]


def test_line_splitter_flush_ends_an_over_long_line() -> None:
    splitter = LineSplitter(4)
    assert splitter.feed(b"123456") == [TooLong(4)]
    assert splitter.feed(b"789") == []
    assert splitter.pending == 9  # thrown away, but still the line in progress
    assert splitter.flush() == []  # its ERR went already
    assert splitter.feed(b"1 2\n") == [Line(b"1 2", b"\n")]  # a fresh request, not more of the old one


def test_eof_splitter_one_request_per_stream() -> None:
    splitter = EofSplitter(100)
    assert splitter.feed(b"1 2\n") == [] and splitter.feed(b"3 4\r\n") == []
    assert splitter.pending == 9 and splitter.flush() == []
    assert splitter.feed(b"") == [Line(b"1 2\n3 4", b"\r\n")]
    assert splitter.feed(b"more") == [] and splitter.feed(b"") == []
    assert EofSplitter(100).feed(b"") == []  # nothing sent, nothing to answer


def test_eof_splitter_limit() -> None:
    splitter = EofSplitter(4)
    assert splitter.feed(b"1 23\r\n") == []  # the ending does not count
    assert splitter.feed(b"") == [Line(b"1 23", b"\r\n")]
    splitter = EofSplitter(4)
    assert splitter.feed(b"12345") == []
    assert splitter.feed(b"6789") == [TooLong(4)]  # as soon as it cannot be the body and its \r\n
    assert splitter.feed(b"x" * 1000) == [] and splitter.head(10) == b""  # not buffered
    assert splitter.feed(b"") == []


# -- sum with framings -----------------------------------------------------------------------


def test_sum_quiet_flush_answers_the_unfinished_request() -> None:
    session = SumService(framing="quiet").new_session()
    assert session.receive_data(b"2 3") == b"" and session.pending() == 3
    assert session.flush() == b"5\n" and session.pending() == 0
    assert session.receive_data(b"4 5\n6") == b"9\n"  # a newline still ends a request
    assert session.flush() == b"ERR expected two numbers, got 1\n"
    assert session.flush() == b""  # nothing pending: nothing to say


def test_sum_line_framing_never_flushes() -> None:
    session = SumService().new_session()
    assert session.receive_data(b"2 3") == b"" and session.pending() == 3
    assert session.flush() == b""  # line framing: only \n (or end of stream) ends it
    assert session.receive_data(b"\n") == b"5\n"


def test_sum_eof_framing() -> None:
    session = SumService(framing="eof").new_session()
    assert session.receive_data(b"2 3") == b"" and session.flush() == b""
    assert session.receive_data(b"") == b"5\n"
    session = SumService(framing="eof").new_session()
    assert session.receive_data(b"1 2\n3 4\n") == b""
    assert session.receive_data(b"") == b"ERR expected two numbers, got 4\n"


@given(st.lists(st.sampled_from([b"1 2\n", b"3 4\r\n", b"x\n", b"\n", b"5 6"]), max_size=8),
       st.lists(st.integers(min_value=0, max_value=60), max_size=6))
def test_quiet_framing_without_silence_is_line_framing(lines: list[bytes], cuts: list[int]) -> None:
    """Until the runner says a silence happened, quiet framing answers exactly what line framing does."""
    data = b"".join(lines)
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in zip(points, points[1:]) if b > a]
    quiet, line = SumService(framing="quiet").new_session(), SumService().new_session()
    assert b"".join(quiet.receive_data(c) for c in chunks) == b"".join(line.receive_data(c) for c in chunks)


def test_sum_describe_states_its_settings() -> None:
    assert SumService().describe(stream=True) == "framing=line accept=strict"
    assert SumService(framing="quiet", accept="lenient").describe(stream=True) == "framing=quiet:200 accept=lenient"
    assert SumService(framing="eof").describe(stream=False) == "accept=strict"  # messages need no framing


def test_get_service_options() -> None:
    service = get_service("sum", max_line=10, framing="eof", accept="lenient")
    assert isinstance(service, SumService)
    assert (service.max_line, str(service.framing), service.accept) == (10, "eof", "lenient")
    assert get_service("sum", framing=None, accept=None).describe(stream=True) == "framing=line accept=strict"
    for name in ("echo", "discard"):
        with pytest.raises(ServiceOptionError, match=f"{name} takes no --framing, only sum does"):
            get_service(name, framing="quiet")
        get_service(name, framing=None)  # not given: fine
    with pytest.raises(ServiceOptionError, match="accept 'loose'"):
        get_service("sum", accept="loose")
    with pytest.raises(ServiceOptionError, match="unknown framing"):
        get_service("sum", framing="lines")


# -- accept=lenient ---------------------------------------------------------------------------


@pytest.mark.parametrize(("request_text", "reply"), [
    (b"2 3", b"5"), (b"2,3", b"5"), (b"2/3", b"5"), (b'["2", "3"]', b"5"), (b"2 + 3", b"5"), (b"2+3", b"5"),
    (b"[2, 3]", b"5"), (b'{"a": 2, "b": 3}', b"5"), (b"a=2 b=3", b"5"), (b"Add 2 and 3.", b"5"),
    (b"2 -3", b"-1"), (b"-2,-3", b"-5"), (b"(-1)(+2)", b"1"), (b"x-1 y-1", b"2"),
    (b"0.1, 0.2", b"0.3"), (b"1e3/1", b"1001"), (b"2.5E-1;.25", b"0.50"), (b"-.5 .5", b"0.0"),
    (b"99999999999999999999 1", b"100000000000000000000"), (b"\xd9\xa2 2 3", b"5"),  # Arabic-Indic 2: text
])
def test_lenient_finds_two_numbers_in_any_text(request_text: bytes, reply: bytes) -> None:
    assert answer(request_text, lenient=True) == reply


@pytest.mark.parametrize(("request_text", "reply"), [
    (b"23", b"ERR expected two numbers, found one: '23'"),
    (b"hello", b"ERR expected two numbers, found none in 'hello'"),
    (b"", b"ERR expected two numbers, found nothing"),
    (b"   ", b"ERR expected two numbers, found nothing"),
    (b"nan inf", b"ERR expected two numbers, found none in 'nan inf'"),
    (b"1 2 3 4", b"ERR expected two numbers, found more: '1', '2', '3', ..."),
    (b"1,000 2", b"ERR expected two numbers, found more: '1', '000', '2', ..."),
    (b"1.2.3 4", b"ERR not a number: '1.2.3'"),
    (b"2..5 1", b"ERR not a number: '2..5'"),
    (b"2-3", b"ERR '2-3' reads as a subtraction; sum adds: for a negative number write the sign against it (2 -3)"),
    (b"2 - 3", b"ERR '2 - 3' reads as a subtraction; sum adds: for a negative number write the sign against it "
               b"(2 -3)"),
    (b"\xff 2 3", b"ERR request is not valid UTF-8"),
    (b"1" * 5000 + b" 1", b"ERR integer too long: 5000 digits (limit 4300)"),
])
def test_lenient_refuses_naming_what_it_found(request_text: bytes, reply: bytes) -> None:
    assert answer(request_text, lenient=True) == reply


def test_strict_stays_the_default() -> None:
    assert answer(b"2,3") == b"ERR expected two numbers, got 1"
    assert SumService().new_session().receive_data(b"2,3\n") == b"ERR expected two numbers, got 1\n"
    assert SumService().handle_datagram(b'["2", "3"]') == b"ERR not a number: '[\"2\",'"


def test_lenient_on_datagrams() -> None:
    assert SumService(accept="lenient").handle_datagram(b"2,3\n") == b"5\n"
    assert SumService(accept="lenient").handle_datagram(b"[1, 2]") == b"3"


@pytest.mark.parametrize("text", [
    "+" * 65536, "-" * 65536, "." * 65536, "1." * 32768, "e" * 65536, "1e" * 32768, "-1" * 32768,
    "1" * 65536, ".1" * 32768, "1.1." * 16384, "a" * 65535 + "1",
])
def test_lenient_on_hostile_input_reads_at_most_three_numbers(text: str) -> None:
    """Long runs of what might start a number: answered, each character looked at a bounded
    number of times (find and lstrip in C; no regular expression, so no backtracking)."""
    try:
        numbers = find_numbers(text)
    except NotTwoNumbers as exc:
        assert str(exc).startswith("not a number:")
        return
    assert len(numbers) <= 3
    assert all(number in text for number in numbers)


def test_two_numbers_returns_them_as_written() -> None:
    assert two_numbers('["2", "3"]') == ("2", "3")
    assert two_numbers("2 -3e2") == ("2", "-3e2")
    with pytest.raises(NotTwoNumbers):
        two_numbers("2")
