"""``netlab check``: anyone's server or client, a report per case (the checking is `netlab.check`)."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import Progress

from ..check import view
from ..errors import UsageError
from ..output import Outputs
from ..render import markup_free
from ..transports import Address
from . import common
from .common import address_value, app, completes, emit, escaped_bytes, print_json, wrote

_CHECK = "Checking"
_GRADING = "Grading"


@app.command(epilog="Examples: netlab check tcp:127.0.0.1:50000 --service sum;  "
                    "netlab check --run 'python3 sum_server.py';  "
                    "netlab check --run 'python3 {}' submissions/*/sum_server.py --rubric rubric.toml "
                    "--gradescope 'results/{}/results.json' --csv grades.csv;  "
                    "netlab check --client 'python3 sum_client.py 2 3' --listen tcp:127.0.0.1:50000")
def check(
    targets: Annotated[Optional[list[str]], typer.Argument(
        metavar="[ADDR | SUBMISSION...]",
        help="the server's address; or, with --run 'CMD {}', the files to check one after another")] = None,
    service: Annotated[str, typer.Option("--service", "-s", help="sum or echo")] = "sum",
    profile: Annotated[str, typer.Option(autocompletion=completes(lambda: ["assignment", "netlab"]),
                                         help="assignment: what the course asks, judged leniently; "
                                              "netlab: netlab's line protocol exactly")] = "assignment",
    request: Annotated[Optional[str], typer.Option(
        metavar="FORMAT", help="sum: how a request is written, {a} and {b} for the numbers (default '{a} {b}\\n'; "
                               "escapes \\n \\r \\t); auto tries common formats")] = None,
    run: Annotated[Optional[str], typer.Option(
        "--run", metavar="CMD", help="start the server with this command (split into words; /bin/sh runs it only if "
                                     "it uses shell syntax), find where it listens, restart it if it dies, stop it at "
                                     "the end; {} stands for each SUBMISSION, as a word of its own")]
    = None,
    at: Annotated[Optional[Address], typer.Option(
        "--at", parser=address_value, metavar="ADDR", help="with --run: the address to test (default: found from the "
                                                      "kernel's socket tables)")] = None,
    client: Annotated[Optional[str], typer.Option(
        "--client", metavar="CMD", help="check a client instead: run CMD once per case against a reference server "
                                        "at --listen")] = None,
    listen: Annotated[Optional[Address], typer.Option(
        "--listen", parser=address_value, metavar="ADDR", help="with --client: where the reference server listens")]
    = None,
    stdin: Annotated[Optional[bytes], typer.Option(
        "--stdin", parser=escaped_bytes, metavar="TEXT", help="what the program (--run or --client) reads on stdin "
                                                       "(escapes \\n \\t; e.g. a host it asks for: '127.0.0.1\\n')")]
    = None,
    jobs: Annotated[Optional[int], typer.Option(
        "--jobs", "-j", min=1, metavar="N", help="with --run 'CMD {}': check N submissions at once, each in "
                                                  "namespaces of its own (default: one per core)")] = None,
    case: Annotated[Optional[list[str]], typer.Option(
        "--case", metavar="ID", help="run only this case or group (repeatable): sum.small, framing, ...")] = None,
    timeout: Annotated[float, typer.Option(min=0.05, rich_help_panel=_CHECK,
                                           help="each case's hard deadline in seconds")] = 5.0,
    startup: Annotated[float, typer.Option(min=0.05, rich_help_panel=_CHECK,
                                           help="with --run: seconds the program may take to start listening")]
    = 10.0,
    idle_window: Annotated[float, typer.Option(min=0.05, rich_help_panel=_CHECK,
                                               help="resources.idle_cpu: seconds of CPU time measured")] = 1.0,
    namespaces: Annotated[bool, typer.Option("--namespaces/--no-namespaces", rich_help_panel=_CHECK,
                                             help="run each program in network and PID namespaces of its own "
                                                  "(as root, or in a user namespace) and test reach.interfaces "
                                                  "from a second one; off: on the host")] = True,
    trace: Annotated[bool, typer.Option("--trace", rich_help_panel=_CHECK,
                                        help="keep the packets of each case that fails (captured in the program's "
                                             "namespaces): shown under the case, in --json, and as pcap files "
                                             "beside --junit/--gradescope reports")] = False,
    user: Annotated[Optional[str], typer.Option(
        "--user", metavar="NAME|UID", rich_help_panel=_CHECK,
        help="as root: run the programs as this user (default: who ran sudo, else an unused uid; for a folder, an "
             "unused uid per submission); root runs them as root")] = None,
    env: Annotated[Optional[list[str]], typer.Option(
        "--env", metavar="NAME", rich_help_panel=_CHECK,
        help="also pass this variable of your environment to the programs (repeatable); they get only PATH, "
             "HOME (a directory of their own), LANG and TERM otherwise")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON instead of a table")] = False,
    list_cases: Annotated[bool, typer.Option("--list", help="list every case (id, what it checks, where it "
                                                           "applies) and exit")] = False,
    junit_file: Annotated[Optional[Path], typer.Option("--junit", metavar="FILE", rich_help_panel=_GRADING,
                                                       help="also write the report as JUnit XML")] = None,
    rubric_file: Annotated[Optional[Path], typer.Option(
        "--rubric", metavar="FILE", rich_help_panel=_GRADING,
        help="points per case, and which cases only warn (TOML; see the README); default: 1 point a case")] = None,
    gradescope_file: Annotated[Optional[Path], typer.Option(
        "--gradescope", metavar="FILE", rich_help_panel=_GRADING,
        help="also write Gradescope's results.json; for several submissions, {} in FILE stands for each one's "
             "name: 'results/{}/results.json'")] = None,
    csv_file: Annotated[Optional[Path], typer.Option(
        "--csv", metavar="FILE", rich_help_panel=_GRADING,
        help="also write a CSV: a row per submission, a column per case (pass, fail, warn, skip), score, "
             "max_score")] = None,
) -> None:
    """Check anyone's echo or sum server (or client): a report per case, with the likely cause
    and fix of each failure. Exit 0 if no case failed, 1 if one did."""
    from ..check import CheckSettings, case_list, check_client, check_server, check_usage, grade, guard, junit
    if list_cases:
        if targets or run is not None or client is not None:
            raise UsageError("--list goes alone (or with --json): it lists every case")
        listing = case_list()
        emit(as_json, lambda: {"cases": [entry.as_json() for entry in listing]},
             partial(view.check_cases, common.out, listing))
        return
    from ..check.grading import (Rubric, grade_rows, gradescope, gradescope_targets, grades_csv, grades_json,
                                known_cases, scored_json, submission_names)
    from ..check.packets import ONE_CHECK, pcap_files
    from ..check.run import request_format
    from ..output import write_bytes, write_text

    names = targets or []
    template = None if request is None or request == "auto" else escaped_bytes(request)
    settings = CheckSettings(service=service, profile=profile,
                             request=request if template is None else template.decode("utf-8", "surrogateescape"),
                             timeout=timeout, only=tuple(case or ()),
                             idle_window=idle_window, startup=startup, namespaces=namespaces, trace=trace,
                             user=user, env=tuple(env or ()))
    kind = check_usage(targets=names, run=run, at=at, client=client, listen=listen, stdin=stdin, jobs=jobs,
                       trace=trace, namespaces=namespaces)
    folder = kind == "folder"
    if kind != "client":
        request_format(settings)  # a bad profile or request, before the rubric is read against its cases
    rubric = (Rubric() if rubric_file is None else
              Rubric.load(rubric_file, known_cases(kind == "client", service, profile)))
    gradescope_files = (None if gradescope_file is None else
                        gradescope_targets(gradescope_file, names if folder else None))
    for output in (junit_file, csv_file):
        if output is not None:
            Outputs(json=output).check()

    with Progress(console=common.err_console, transient=True) as progress:
        task = progress.add_task("check", total=None)

        def step(what: str, done: int, total: int) -> None:
            progress.update(task, description=f"check: {markup_free(what)}", completed=done, total=total)

        if kind == "client":
            assert client is not None and listen is not None
            checked = [(client, guard.run(partial(check_client, client, listen, settings, stdin=stdin,
                                                  progress=step)))]
        elif folder:
            assert run is not None
            checked = guard.run(partial(grade, run, names, settings, progress=step, jobs=jobs, stdin=stdin))
        else:
            address = at if run is not None else address_value(names[0])
            report = guard.run(partial(check_server, address, run=run, settings=settings, progress=step,
                                       stdin=stdin))
            checked = [(report.target, report)]
    graded = [(name, rubric.apply(report)) for name, report in checked]
    reports = [report for _, report in graded]
    if as_json:
        print_json(grades_json(graded, rubric) if folder else scored_json(reports[0], rubric))
    elif folder:
        view.check_grades(common.out, grade_rows(graded, rubric))
        view.check_notes(common.out, reports)
    else:
        view.check_report(common.out, reports[0], rubric.score(reports[0]))
    if junit_file is not None:
        write_text(junit_file, junit(reports), wrote=wrote)
    if csv_file is not None:
        write_text(csv_file, grades_csv(graded, rubric), wrote=wrote)
    if gradescope_files is not None:
        for path, report in zip(gradescope_files, reports):
            write_text(path, json.dumps(gradescope(report, rubric), indent=2) + "\n", wrote=wrote, parents=True)
    if trace:
        pcaps = submission_names(names) if folder else [ONE_CHECK]
        for n, (name, report) in enumerate(zip(pcaps, reports)):
            beside = ([junit_file.parent] if junit_file is not None else []) + \
                ([gradescope_files[n].parent] if gradescope_files is not None else [])
            for path, data in pcap_files(report, name, beside):
                write_bytes(path, data, wrote=wrote)
    if any(report.failed for report in reports):
        raise typer.Exit(1)


# typer names commands after functions; `serve` is taken by the library import
serve_cmd_info = app.registered_commands[0]
