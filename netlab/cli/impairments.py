"""The impairment options, declared once: ``netlab relay`` and ``netlab compare`` take the
same ones (compare calls the link rate ``--link-rate``: its ``--rate`` is the send rate).

A command asks for them with `@impairment_options()` and a parameter ``impairments``: the
decorator puts the options in that parameter's place (typer reads the signature it shows) and
hands the command their texts, which `parse_impairments` reads. (``netlab experiment run --loss``
is another option: one probability for the experiments that add loss.)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from ..experiments.impair import Impairments
    from ..experiments.kernel import KernelImpairments

PANEL = "Impairments (VALUE for both directions, or FORWARD/BACKWARD; forward = client to server)"

#: the texts of the impairment options given, by the name `impairments_from_text` reads
ImpairmentTexts = dict[str, Optional[str]]


@dataclass(frozen=True)
class Impairment:
    """One impairment option: `key` is the name `impairments_from_text` reads, `name` the
    command's parameter (default: the key)."""

    key: str
    flag: str
    metavar: str
    help: str
    name: str = ""

    def parameter(self) -> inspect.Parameter:
        return inspect.Parameter(
            self.name or self.key, inspect.Parameter.KEYWORD_ONLY, default=None,
            annotation=Annotated[Optional[str], typer.Option(self.flag, metavar=self.metavar, rich_help_panel=PANEL,
                                                             help=self.help)])


RATE = Impairment("rate", "--rate", "BYTES_PER_S", "link rate in bytes/s (k, M, G suffixes)")
LINK_RATE = Impairment("rate", "--link-rate", "BYTES_PER_S", "the relay's --rate: link rate in bytes/s",
                       name="link_rate")
#: the options in the order help lists them, the link rate where None stands
OPTIONS: tuple[Impairment | None, ...] = (
    Impairment("loss", "--loss", "P", "drop datagrams with probability P (0-1)"),
    Impairment("loss_burst", "--loss-burst", "P:R", "Gilbert-Elliott bursts: enter with P, leave with R"),
    Impairment("duplicate", "--duplicate", "P", "send a datagram twice with probability P"),
    Impairment("reorder", "--reorder", "P", "hold a datagram back behind the next ones, probability P"),
    Impairment("corrupt", "--corrupt", "P", "flip one bit of a datagram with probability P"),
    Impairment("delay", "--delay", "MS", "delay every packet or chunk by MS milliseconds"),
    Impairment("jitter", "--jitter", "MS", "vary the delay by up to ±MS (at most the delay)"),
    None,
    Impairment("queue", "--queue", "BYTES", "queue behind the rate limit; datagrams over it drop"),
    Impairment("slice", "--slice", "MIN:MAX", "streams: re-chunk bytes into writes of MIN..MAX bytes"),
    Impairment("reset_after", "--reset-after", "BYTES",
               "streams: abort after BYTES bytes (RST on TCP; AF_UNIX has none)"),
    Impairment("close_after", "--close-after", "BYTES", "streams: close cleanly after BYTES bytes"),
)
SeedOpt = Annotated[Optional[int], typer.Option("--seed", rich_help_panel=PANEL,
                                                help="seed for the impairment decisions (same seed, same decisions)")]

Command = Callable[..., None]


def impairment_options(rate: Impairment = RATE) -> Callable[[Command], Command]:
    """Give a command the impairment options in place of its keyword-only parameter
    ``impairments``, which then receives their texts (`ImpairmentTexts`)."""
    options = [option or rate for option in OPTIONS]

    def decorate(command: Command) -> Command:
        signature = inspect.signature(command, eval_str=True)
        params = list(signature.parameters.values())
        at = [param.name for param in params].index("impairments")
        shown = signature.replace(parameters=[*params[:at], *(o.parameter() for o in options), *params[at + 1:]])

        @functools.wraps(command)
        def with_options(**values: object) -> None:
            texts: ImpairmentTexts = {}
            for option in options:
                text = values.pop(option.name or option.key)
                assert text is None or isinstance(text, str)
                texts[option.key] = text
            command(**values, impairments=texts)

        setattr(with_options, "__signature__", shown)  # what typer reads, in place of the wrapped command's
        with_options.__annotations__ = {p.name: p.annotation for p in shown.parameters.values()} | {"return": None}
        return with_options

    return decorate


def parse_impairments(texts: ImpairmentTexts) -> tuple[Impairments, Impairments]:
    """(forward, backward) from the options' texts; a bad one is a usage error."""
    from ..experiments.impair import ImpairmentError, impairments_from_text

    try:
        return impairments_from_text(texts)
    except ImpairmentError as exc:
        raise typer.BadParameter(str(exc)) from None


def kernel_impairments(forward: Impairments, backward: Impairments) -> KernelImpairments:
    """The impairments made in the kernel (``compare --kernel``); one it cannot make is a usage error."""
    from ..experiments.impair import ImpairmentError
    from ..experiments.kernel import KernelImpairments

    try:
        return KernelImpairments.from_impairments(forward, backward)
    except ImpairmentError as exc:
        raise typer.BadParameter(str(exc), param_hint="--kernel") from None
