"""A program's command line (``--run CMD``, ``--client CMD``): split into words and run
without a shell, unless it asks for one; ``{}`` (a submission's path) substituted safely.

A submission's file name is hostile input: ``$(touch X).py`` is a legal name. So the path is
never pasted into text that a shell, or any other interpreter, reads as code::

    template                            what runs
    python3 {}                          ["python3", PATH]                 no shell: PATH is one word,
    python3 "{}"                        ["python3", PATH]                 whatever it holds
    python3 -m x --file={}              ["python3", "-m", "x", "--file=" + PATH]
    cd src && python3 {} | tee log      ["/bin/sh", "-c", 'cd src && python3 "$1" | tee log', "sh", PATH]
    sh -c 'python3 {}'                  refused: {} inside a word, where it may be read as code

``{}`` must be a word of its own (bare or quoted: ``{}``, ``"{}"``, ``'{}'``), or the value of an
option or variable (``--file={}``, ``FILE={}``). Inside a longer word (``sh -c 'python3 {}'``,
``python3 -c "exec(open('{}').read())"``) it is refused, with the fix: that word is likely a
script for some interpreter, which would read the file's name as code.

A template asks for a shell when it holds, outside quotes, one of ``| & ; < > ( ) $ ` * ? [ ]``
or a newline, a word starting with ``#`` or ``~``, a first word ``NAME=value`` or a shell
builtin (``exec``, ``cd``, ``source``, ...); or ``$`` or a backquote inside double quotes. Then
it runs under ``/bin/sh -c``, with the path as the shell's ``$1`` and each ``{}`` written
``"$1"``. Without a shell it is split as ``sh`` would split it (`shlex`).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from ..errors import UsageError

#: outside quotes, each of these makes a template shell syntax (and ends a word)
_SHELL_CHARS = frozenset("|&;<>()$`*?[]\n")
#: a first word that only a shell runs
_BUILTINS = frozenset({"exec", "cd", "source", ".", "eval", "export", "set", "ulimit", "umask", "if", "for",
                       "while", "until", "case", "{", "!", "trap", "wait", "read"})
#: a word that is an option's or a variable's value: --file={}, FILE={}
_VALUE = re.compile(r"(-{0,2}[A-Za-z0-9_.-]+=)(\{\}|\"\{\}\"|'\{\}')")
_WHOLE = ("{}", '"{}"', "'{}'")
_SHELL = "/bin/sh"


@dataclass(frozen=True)
class Command:
    """What to execute: `argv`, and the text it came from (for the report)."""

    text: str
    argv: tuple[str, ...]
    shell: bool = False

    @classmethod
    def parse(cls, template: str, path: str | None = None) -> Command:
        """The command `template` stands for, with `path` for each ``{}`` (None: ``{}`` is
        taken as written, for a command that is not a template).

        Raises: UsageError for a template that does not parse (an unclosed quote), is
        empty, or puts ``{}`` inside a longer word."""
        if not template.strip():
            raise UsageError("the command is empty: give the program to run, as in --run 'python3 server.py'")
        words, shell = _words(template)
        if path is not None:
            for start, end in words:
                raw = template[start:end]
                if "{}" in raw and raw not in _WHOLE and not _VALUE.fullmatch(raw):
                    raise UsageError(f"{{}} inside the word {raw!r} of {template!r}: a word that holds more than the "
                                     f"file's name may be a script, which would read the name as code; put {{}} in "
                                     f"a word of its own (python3 {{}}, or \"{{}}\"), or as an option's value "
                                     f"(--file={{}}), and netlab passes the name as one word")
        if not shell:
            try:
                split = shlex.split(template)
            except ValueError as exc:
                raise UsageError(f"cannot split the command {template!r} into words: {exc}") from None
            if path is not None:
                split = [path if word == "{}" else word.replace("{}", path) for word in split]
            return cls(template, tuple(split))
        if path is None or "{}" not in template:
            return cls(template, (_SHELL, "-c", template), shell=True)
        script, at = [], 0
        for start, end in words:
            raw = template[start:end]
            value = _VALUE.fullmatch(raw)
            if raw in _WHOLE or value:
                script.append(template[at:start])
                script.append((value.group(1) if value else "") + '"$1"')
                at = end
        script.append(template[at:])
        return cls(template, (_SHELL, "-c", "".join(script), "sh", path), shell=True)


def _words(template: str) -> tuple[list[tuple[int, int]], bool]:
    """Where each word of `template` starts and ends (quotes included, as written), and
    whether the template is shell syntax (see the module's docstring)."""
    words: list[tuple[int, int]] = []
    shell = False
    quote = ""
    start: int | None = None
    i = 0

    def end_word(at: int) -> None:
        nonlocal start
        if start is not None:
            words.append((start, at))
            start = None

    while i < len(template):
        ch = template[i]
        if quote == "'":
            quote = "" if ch == "'" else quote
        elif quote == '"':
            if ch == "\\":
                i += 1
            elif ch == '"':
                quote = ""
            elif ch in "$`":
                shell = True
        elif ch in " \t":
            end_word(i)
        elif ch in _SHELL_CHARS:
            shell = True
            end_word(i)
        else:
            if start is None:
                start = i
                if ch in "#~":
                    shell = True
            if ch == "\\":
                i += 1
            elif ch in "'\"":
                quote = ch
        i += 1
    end_word(len(template))
    if words:
        first = template[words[0][0]:words[0][1]]
        if first in _BUILTINS or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", first):
            shell = True
    return words, shell


__all__ = ["Command"]
