"""The `netlab` command: parse options, call the library, render. No socket logic here.

Exit codes come from the exception tree in `netlab.errors` (`exit_code`): 0 success; 1 a
runtime failure (refused, timed out, address in use), printed as one line
``netlab: error: ...``; 2 a usage error (bad address, unknown service, an option typer
rejects), the same one line and at most one more with the usage; 130 interrupted.
Tables and the other views are drawn by `netlab.render`; output files are written by
`netlab.output`; serve, relay and raw --listen run until a signal through
`netlab.lifecycle`.

Every command takes ``--json`` (`JsonOpt`): JSON on stdout instead of tables, nothing else
there. A command that runs until a signal prints one JSON object per line (an event);
every other command prints one document at the end. Commands that measure take
``--json-file FILE`` (`JsonFileOpt`: the same document written to FILE, tables still
shown) and ``--plot FILE`` (`PlotOpt`), both checked before the run (`Outputs.check`). A
new command follows the same pattern: take ``as_json: JsonOpt = False`` and end with
``emit(as_json, document, view)``; tests/test_cli_conventions.py holds every command to it.

Modules, by command group (each registers its commands on `app` when imported, in the
order ``netlab --help`` lists them):

    group        the typer machinery: NetlabGroup (one error line, exit codes, help without type noise)
    common       the app, the consoles, shared option types and validators, emit()
    impairments  the impairment options, declared once for relay and compare
    serve        serve, send, chat, transports
    experiments  relay, compare, experiment list|run
    bench        bench
    trace        trace (the capturing and the ladder are `netlab.trace`)
    explore      host, resolve, constants, raw, addr explain
    check        check (its argument rules are `netlab.check.check_usage`)
"""

from __future__ import annotations

# each module registers its commands on app as it is imported: in this order, the order of --help
from .common import app
from . import serve as serve  # isort: skip
from . import experiments as experiments  # isort: skip
from . import bench as bench  # isort: skip
from . import trace as trace  # isort: skip
from . import explore as explore  # isort: skip
from . import check as check  # isort: skip

__all__ = ["app", "main"]


def main() -> None:
    app()
