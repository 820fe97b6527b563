"""Which of a check's inputs go together: the one statement of ``netlab check``'s rules.

The command calls `check_usage` with what it was given before anything runs; `check_server`
and `grade` call it with their own arguments, so a program using the library meets the same
rules in the same words (each names the command's options, which is how people meet them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from ..errors import UsageError
from ..transports import Address

#: client: a client program against a reference server; server: one server, at an address or
#: started by --run; folder: each of several submissions, with ``{}`` in --run
Kind = Literal["client", "server", "folder"]


def check_usage(*, targets: Sequence[str] = (), run: str | None = None, at: Address | str | None = None,
                client: str | None = None, listen: Address | str | None = None, stdin: bytes | None = None,
                jobs: int | None = None, kind: Literal["server", "folder"] | None = None, trace: bool = False,
                namespaces: bool = True) -> Kind:
    """The kind of check these inputs ask for (`Kind`), as ``netlab check`` reads them:
    `targets` are the arguments (one address, or the submissions), `run`, `at`, `client`,
    `listen`, `stdin`, `jobs`, `trace` and `namespaces` the options of those names (``--trace``,
    ``--namespaces/--no-namespaces``). `kind` is the check a caller
    makes (`check_server`: server, `grade`: folder); None decides it as the command does: a
    client with --client, the submissions with ``{}`` in --run, else one server. (Only
    where it decides does ``{}`` mark a template: the command a caller runs may hold it.)

    Raises: UsageError naming the first rule broken."""
    decided: Kind
    if client is not None:
        if listen is None or run is not None or targets or at is not None:
            raise UsageError("--client goes with --listen ADDR (and no --run, --at or address)")
        decided = "client"
    elif listen is not None:
        raise UsageError("--listen goes with --client")
    elif stdin is not None and run is None:
        raise UsageError("--stdin goes with --run or --client: netlab feeds it to the program it starts")
    elif run is None:
        if len(targets) != 1:
            raise UsageError("give one address to check (tcp:127.0.0.1:50000), or --run CMD to start the server")
        decided = "server"
    elif kind == "server" or (kind is None and "{}" not in run):
        if targets:
            raise UsageError("with --run, the address goes in --at; to check several files, put {} in --run")
        decided = "server"
    elif "{}" not in run:
        raise UsageError("to check several submissions, put {} in --run where each file goes: --run 'python3 {}'")
    else:
        if not targets or at is not None:
            raise UsageError("--run with {} checks each SUBMISSION file given after the options (and takes no --at)")
        decided = "folder"
    if jobs is not None and decided != "folder":
        raise UsageError("--jobs goes with --run 'CMD {}' and the SUBMISSION files to check at once")
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs must be 1 or more, not {jobs}")
    if trace and not namespaces:
        raise UsageError("--trace captures the packets in the namespaces netlab makes for the program it checks: "
                         "it does not go with --no-namespaces")
    if trace and run is None and client is None:
        raise UsageError("--trace captures the packets in the namespaces netlab makes for the program it checks: "
                         "it goes with --run or --client (a server at an address shares the host's network)")
    return decided


__all__ = ["Kind", "check_usage"]
