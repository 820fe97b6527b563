"""A program's command line (``--run CMD``, ``--client CMD``): split into words and run
without a shell, unless it asks for one; ``{}`` (a submission's path) substituted safely.

A submission's file name is hostile input: ``$(touch X).py`` is a legal name. So the path is
never pasted into text a shell reads::

    template                            what runs
    python3 {}                          ["python3", PATH]                 no shell: PATH is one word,
    python3 "{}"                        ["python3", PATH]                 whatever it holds
    python3 -m x --file={}              ["python3", "-m", "x", "--file=" + PATH]
    cd src && python3 {} | tee log      ["/bin/sh", "-c", 'cd src && python3 "$1" | tee log', "sh", PATH]
    sh -c 'python3 {}'                  refused: {} inside single quotes, in a shell

A template asks for a shell when it holds, outside quotes, one of ``| & ; < > ( ) $ ` * ? [ ]``,
a newline, a word starting with ``#`` or ``~``, a first word ``NAME=value``; or ``$`` or a
backquote inside double quotes. Then it runs under ``/bin/sh -c`` with the path as the
shell's ``$1``: a bare ``{}`` becomes ``"$1"``, a ``{}`` inside double quotes ``$1`` (still one
word there); a ``{}`` inside single quotes, where no expansion happens, is refused with the
fix. Without a shell the template is split as ``sh`` would split it (`shlex`), and ``{}`` is
replaced inside each word.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from ..errors import UsageError

#: outside quotes, each of these makes a template shell syntax
_SHELL_CHARS = frozenset("|&;<>()$`*?[]\n")
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
        empty, or puts ``{}`` where a shell would read the path as code."""
        if not template.strip():
            raise UsageError("the command is empty: give the program to run, as in --run 'python3 server.py'")
        places, shell = _scan(template)
        if not shell:
            try:
                words = shlex.split(template)
            except ValueError as exc:
                raise UsageError(f"cannot split the command {template!r} into words: {exc}") from None
            if path is not None:
                words = [word.replace("{}", path) for word in words]
            return cls(template, tuple(words))
        if path is None or not places:
            return cls(template, (_SHELL, "-c", template), shell=True)
        script, at = [], 0
        for start, quote in places:
            if quote == "'":
                raise UsageError(f"{{}} inside single quotes in the shell command {template!r}: the shell would "
                                 f"read the file's name as code there; write {{}} bare or inside double quotes "
                                 f"(\"{{}}\"), and netlab passes the name as one word")
            script.append(template[at:start])
            script.append("$1" if quote == '"' else '"$1"')
            at = start + 2
        script.append(template[at:])
        return cls(template, (_SHELL, "-c", "".join(script), "sh", path), shell=True)


def _scan(template: str) -> tuple[list[tuple[int, str]], bool]:
    """Where ``{}`` stands in `template` and inside which quote ('' for none), and whether
    the template is shell syntax (see the module's docstring)."""
    places: list[tuple[int, str]] = []
    shell = False
    quote = ""
    word_start = True
    first_word = True
    i = 0
    while i < len(template):
        ch = template[i]
        if quote == "'":
            if ch == "'":
                quote = ""
        elif ch == "\\" and quote != "'":
            i += 2
            word_start = False
            continue
        elif quote == '"':
            if ch == '"':
                quote = ""
            elif ch in "$`":
                shell = True
        elif ch in "'\"":
            quote = ch
        elif ch in " \t":
            if not word_start:
                first_word = False
            word_start = True
            i += 1
            continue
        elif ch in _SHELL_CHARS or (word_start and ch in "#~") or (first_word and ch == "="):
            shell = True
        if template.startswith("{}", i):
            places.append((i, quote))
            i += 2
            word_start = False
            continue
        word_start = False
        i += 1
    return places, shell


__all__ = ["Command"]
