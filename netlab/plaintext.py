"""Text from outside (what a program printed, a submission's path, a kernel table's name) made
safe to show: `printable` is the one function every output of netlab check passes such text
through (the terminal, JSON, JUnit XML, Gradescope's file, the CSV), and the CLI its error
lines. Standard library only, so anything may import it.
"""

from __future__ import annotations


def _shown(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


#: characters that are printable but change what a reader sees of the text around them:
#: bidirectional overrides and isolates (which can show a line in another order than it is
#: written, "Trojan Source"), zero-width characters and the byte order mark
_INVISIBLE = frozenset("\u061c\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                       "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff")


def printable(text: str) -> str:
    """`text` as plain text that XML 1.0, JSON readers in any language, a spreadsheet and a
    terminal all take as it is: tabs and newlines kept; other control characters (ESC, so no
    terminal escape sequence), lone surrogates, non-characters and the invisible characters
    that reorder or hide text written as ``\\xNN`` (``\\uNNNN``) text. Applying it twice
    changes nothing more."""
    return "".join(ch if (ch in "\t\n" or ("\x20" <= ch < "\x7f") or
                          ("\xa0" <= ch <= "\ud7ff") or ("\ue000" <= ch <= "\ufffd") or ch >= "\U00010000")
                   and ch not in _INVISIBLE
                   else _shown(ch) for ch in text)


__all__ = ["printable"]
