"""The typer machinery every `netlab` command runs in: `NetlabGroup`, and `say`.

`NetlabGroup` is the class of every command group (``netlab`` itself, ``addr``,
``experiment``). Run through it, a command's failure is one line on stderr and an exit code:

* a netlab error (alone, or all of trio's exception group) becomes ``netlab: error: ...``
  and the exit code `netlab.errors.exit_code` gives it (1 runtime, 2 usage);
* a usage error typer found (a missing option, a bad value) gets the same line (not a box),
  then the command's usage on a second line; exit 2;
* an interruption exits 130; anything else is a bug and keeps its traceback.

It uses typer's public API with one exception, kept here: typer's help shows ``<str>`` after
an argument, ``<bool>`` after a flag and ``[x>=1]`` after a ranged option, and has no setting
to leave them out. `NetlabGroup` replaces, on each parameter, the two display methods typer
calls for them (``display_type_rich``, ``_get_number_range_help_str``). Should typer rename
them, netlab still starts and runs, only its help shows the noise again (and
tests/test_cli_conventions.py's ``test_help_has_no_type_noise`` fails). The click types in the
methods' signatures are typer's vendored click, which typer does not export: they are named
for the type checker only, never imported when netlab runs.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption

from ..errors import exit_code, netlab_error
from ..plaintext import printable

if TYPE_CHECKING:
    from typer._click import Command, Context, HelpFormatter


def say(message: str) -> None:
    """One line on stderr, never wrapped or styled: ``netlab: MESSAGE``; control characters
    escaped (a message may quote a program's output)."""
    print(f"netlab: {printable(message)}", file=sys.stderr, flush=True)


def _shown_as(metavar: str | None) -> Callable[[Context], str | None]:
    """A parameter's display method that shows `metavar` (None: nothing) in help."""
    return lambda ctx: metavar


def _no_range() -> None:
    return None


def help_when_bare(ctx: typer.Context) -> None:
    """A group given no command shows its help and exits 2 (a group's callback calls this)."""
    if ctx.invoked_subcommand is None:
        text = ctx.get_help()  # typer's rich help prints itself and returns ""
        if text:
            typer.echo(text)
        raise typer.Exit(2)


def _tidy_help(command: Command, ctx: Context) -> None:
    """Help without type noise: no ``<bool>`` after a flag, no ``<str>`` after an argument, no
    ``<int range> [x>=1]`` after an option: its METAVAR says what it takes, and its help text
    the range where that matters. (Set on each parameter: typer has no setting for it.)"""
    for param in command.get_params(ctx):  # with the help option, which typer makes on demand
        flag = isinstance(param, TyperOption) and param.is_flag
        if param.metavar is None and not flag:
            param.metavar = (param.name or "value").upper()
        if isinstance(param, (TyperOption, TyperArgument)):
            shown = None if flag or isinstance(param, TyperArgument) else param.metavar
            setattr(param, "display_type_rich", _shown_as(shown))
            setattr(param, "_get_number_range_help_str", _no_range)


def _finite_numbers(command: Command) -> None:
    """Every number option refuses ``inf`` and ``nan`` (a bound such as ``min=0.05`` lets both
    through: ``nan < 0.05`` is false): a duration of ``inf`` waits for ever, and NaN compares
    false with everything. A usage error (exit 2), like any other bad value. (Set on each
    parameter's ``process_value``, once: typer has no setting for it.)"""
    for param in command.params:
        if not isinstance(param, (TyperOption, TyperArgument)) or getattr(param, "_finite", False):
            continue
        setattr(param, "process_value", _finite_values(param, param.process_value))
        setattr(param, "_finite", True)


def _finite_values(param: TyperOption | TyperArgument, original: Callable[[Context, Any], Any]) -> Callable[[Context, Any], Any]:
    """`original` (a parameter's ``process_value``), refusing a float that is inf or nan.
    (Any: a parameter's value, of whatever type it declares.)"""

    def process(ctx: Context, value: Any) -> Any:
        value = original(ctx, value)
        values = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise typer.BadParameter("a finite number is needed, not inf or nan", ctx=ctx, param=param)
        return value

    return process


class NetlabGroup(TyperGroup):
    """Every command runs inside this (see the module's docstring)."""

    def __init__(self, **attrs: Any) -> None:  # Any: forwarded as is to typer's own keyword arguments
        super().__init__(**attrs)
        for command in self.commands.values():
            # a command's line in its group's list: the first sentence of its help, on one line
            if command.help and not command.short_help:
                first = " ".join(command.help.split("\n\n")[0].split())
                command.short_help = first.split(". ")[0].rstrip(".") + "."

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _tidy_help(command, ctx)
            _finite_numbers(command)
        return command

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        _tidy_help(self, ctx)
        super().format_help(ctx, formatter)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, windows_expand_args: bool = True,
             **extra: Any) -> Any:  # Any: typer's own signature (extra goes to its context; a command's result)
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except typer.TyperException as exc:  # a usage error typer found
            sys.exit(_usage_error(exc, sys.argv[1:] if args is None else list(args)))
        except typer.Abort:
            say("error: aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: Context) -> Any:  # Any: a command's result, as typer's own signature has it
        try:
            return super().invoke(ctx)
        except BaseException as exc:
            code, error = exit_code(exc), netlab_error(exc)
            if code is None:
                raise
            if error is not None:
                say(f"error: {error}")
            raise typer.Exit(code) from None


def _usage_error(exc: typer.TyperException, args: Sequence[str]) -> int:
    """A usage error typer found (a missing option, a bad value): one ``netlab: error:`` line
    and the command's usage on a second (or, for ``--json FILE``, what --json means now); exit 2."""
    say("error: " + " ".join(exc.format_message().split()))
    ctx: Context | None = getattr(exc, "ctx", None)  # the context the usage error arose in
    after_json = [b for a, b in zip(args, args[1:]) if a == "--json" and not b.startswith("-")]
    if after_json and "unexpected extra argument" in exc.format_message():
        say(f"--json prints JSON on stdout; to write it to a file: --json-file {after_json[0]}")
    elif ctx is not None:
        say(f"usage: {' '.join(ctx.get_usage().split()[1:])}  (see {ctx.command_path} --help)")
    return int(exc.exit_code)
