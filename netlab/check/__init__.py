"""netlab check: test anyone's echo or sum server (and client), one report per case.

Models: Autobahn|Testsuite (every case against any WebSocket server, stable case ids, a
report per case) and h2spec. The checker is a client of code it does not trust: every
case has a hard deadline, a program that died is restarted for the next case, and the
whole process group is stopped at the end.

    check_server(address, run=..., settings=CheckSettings(...))  -> CheckReport
    grade("python3 {}", ["a/sum_server.py", ...], settings)       -> [(submission, CheckReport)]
    check_client("python3 sum_client.py 2 3", "tcp:127.0.0.1:50000", settings) -> CheckReport
    junit([report, ...])                                           -> JUnit XML text

The framework: `settings` (what to check; outcomes), `context` (what a case works with, and
what the kernel shows meanwhile), `conversation` (one exchange with the server: `converse`),
`wording` (the sentences of what went wrong), `exchange` (a sum or an echo, sent and judged),
`registry` (``@case(...)``: where a case applies, decided before it runs), `judge` (pure
judging). The cases: `cases` (a server's, in `answers`, `serving`, `system`, using `reach`
and `restart`) and `client` (a client's, against the `reference` server); `listing` lists
them all (``netlab check --list``). Running them: `run` (the runner), `program` (the program
under test), `command` (its command line: no shell unless it asks for one), `sandbox` (who
it runs as, its environment, its private folder), `guard` (netlab stopped: the programs
first), `procnet` (where it listens, from /proc and sock_diag), `isolate` and `inside`
(namespaces of its own), `packets` (``--trace``: a failed case's packets), `report`,
`grading`, `view` (the tables the command prints), `usage` (which inputs of a check go
together: `check_usage`, for the command and the library).

Everything a program sends or prints is hostile input: parsed defensively, bounded, and
shown as plain text (`netlab.plaintext.printable`); see the README's "A hostile submission".
"""

from __future__ import annotations

from .cases import CASES, select_cases
from .client import CLIENT_CASES, check_client
from .judge import AUTO_FORMATS, DEFAULT_FORMAT, PROFILES
from .listing import case_list
from .registry import Case
from .report import CaseResult, CheckReport, junit
from .run import check_server, grade
from .settings import CheckSettings
from .usage import check_usage

__all__ = ["AUTO_FORMATS", "CASES", "CLIENT_CASES", "DEFAULT_FORMAT", "PROFILES", "Case", "CaseResult", "CheckReport",
           "CheckSettings", "case_list", "check_client", "check_server", "check_usage", "grade", "junit",
           "select_cases"]
