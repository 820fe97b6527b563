"""The exception tree in `netlab.errors` and the exit codes the CLI takes from it."""

from __future__ import annotations

import inspect

import pytest

import netlab.errors as errors
from netlab.errors import (
    AddressError,
    BenchError,
    ImpairmentError,
    Interrupted,
    NetlabError,
    OutputError,
    UsageError,
    exit_code,
    netlab_error,
)

#: every netlab exception class, found in the module rather than listed by hand
CLASSES = [value for _, value in inspect.getmembers(errors, inspect.isclass)
           if value.__module__ == "netlab.errors" and issubclass(value, BaseException)]


def test_every_exception_is_drawn_in_the_tree() -> None:
    assert errors.__doc__ is not None
    for cls in CLASSES:
        assert f" {cls.__name__} " in errors.__doc__ or f" {cls.__name__}\n" in errors.__doc__, cls


def test_moved_classes_keep_their_old_homes() -> None:
    from netlab.bench.core import BenchError as bench_error
    from netlab.experiments.impair import ImpairmentError as impairment_error

    assert bench_error is BenchError and impairment_error is ImpairmentError


@pytest.mark.parametrize("cls", [c for c in CLASSES if issubclass(c, NetlabError)], ids=lambda c: c.__name__)
def test_exit_code_comes_from_the_tree(cls: type[NetlabError]) -> None:
    exc = cls("x")
    assert exit_code(exc) == (2 if issubclass(cls, UsageError) else 1)


def test_usage_and_runtime_errors() -> None:
    assert exit_code(AddressError("bad")) == 2
    assert exit_code(ImpairmentError("loss on a stream")) == 2
    assert exit_code(BenchError("no server")) == 1
    assert exit_code(OutputError("cannot write")) == 1
    assert isinstance(AddressError("x"), ValueError) and isinstance(ImpairmentError("x"), ValueError)


def test_interrupted_and_groups() -> None:
    assert exit_code(KeyboardInterrupt()) == 130
    assert exit_code(Interrupted("SIGTERM again")) == 130
    assert netlab_error(Interrupted("x")) is None
    group = BaseExceptionGroup("g", [AddressError("first"), ExceptionGroup("inner", [OutputError("second")])])
    assert exit_code(group) == 2
    assert str(netlab_error(group)) == "first"
    assert exit_code(BaseExceptionGroup("g", [KeyboardInterrupt(), KeyboardInterrupt()])) == 130
    # a bug anywhere in the group keeps its traceback
    assert exit_code(ExceptionGroup("g", [AddressError("x"), RuntimeError("bug")])) is None
    assert exit_code(BaseExceptionGroup("g", [AddressError("x"), KeyboardInterrupt()])) is None
    assert exit_code(RuntimeError("bug")) is None
