"""The conventions every `netlab` command follows (issue 14), held against the commands the
typer app actually has, so that a new command cannot be forgotten:

* tables fit the terminal and lose nothing (80 and 120 columns: compare, bench, an
  experiment), plain fixed-width text when stdout is not a terminal;
* ``--json`` means one thing: JSON on stdout instead of tables (JSON lines for commands
  that run until a signal); files are ``--json-file FILE``;
* output files are checked before a run (``--plot x.txt`` exits 2 at once);
* errors name the real cause (missing directory vs missing socket file; "refused" from a
  non-loopback address hints that the server may listen on loopback only);
* usage errors are one ``netlab: error:`` line (and the usage on a second), exit 2;
* ``--version``, shell completion, help without type noise;
* startup lines show the limits that apply; compare says why a stream kept boundaries.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import typer
from rich.cells import cell_len
from rich.console import Console

import netlab.cli.common
from netlab import render
from netlab.cli import app
from netlab.experiments import EXPERIMENTS, ExperimentOptions
from netlab.experiments.compare import CompareSettings, boundaries_cell, boundaries_note, run_compare
from netlab.output import PLOT_FORMATS, Outputs
from netlab.runner import Limits
from netlab.transports import TRANSPORTS

from helpers import assert_no_traceback, invoke


@pytest.fixture(autouse=True)
def no_logging_left_behind() -> Any:
    """A command run in-process must not leave a log handler on CliRunner's (closed) stderr:
    later tests would log into it (serve and relay set up logging; run them as processes)."""
    import logging

    before = list(logging.getLogger().handlers)
    yield
    assert logging.getLogger().handlers == before


def command_paths() -> list[str]:
    """Every command of the app, as typed after `netlab` ("serve", "experiment run", ...)."""
    paths: list[str] = []

    def walk(group: Any, prefix: list[str]) -> None:
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                walk(command, prefix + [name])
            else:
                paths.append(" ".join(prefix + [name]))

    walk(typer.main.get_command(app), [])
    return sorted(paths)


def visible_lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def words(text: str) -> set[str]:
    """The words of rendered output, table rules and the "(continued: ...)" lines left out."""
    kept = [line for line in text.splitlines() if not line.startswith("(continued:")]
    return set(re.sub(r"[\u2500-\u257f]", " ", "\n".join(kept)).split())


def rendered(draw: Callable[[Console], None], width: int) -> str:
    console = Console(width=width, record=True, file=open(os.devnull, "w"))  # closed with the console
    draw(console)
    console.file.close()
    return console.export_text()


def assert_fits(text: str, width: int) -> None:
    for line in visible_lines(text):
        assert cell_len(line) <= width, f"{cell_len(line)} > {width}: {line!r}"
    assert "…" not in text, text  # nothing cut short


# -- 1. tables that fit ------------------------------------------------------------------------


def test_a_table_too_wide_is_dealt_into_parts_that_repeat_the_keys() -> None:
    columns = [render.Column("transport", key=True), render.Column("service", key=True)] + \
        [render.Column(f"figure {i}", right=True) for i in range(12)]
    rows = [["unix-dgram", "echo", *(f"{1000 * i + j:,}" for i in range(12))] for j in range(3)]
    made = render.table(columns, rows, title="wide")
    wide = rendered(lambda c: c.print(made), 200)
    for width in (40, 80, 120):
        text = rendered(lambda c: c.print(made), width)
        assert_fits(text, width)
        assert words(text) == words(wide)  # every cell, whole
        parts = made.parts(width)
        assert len(parts) > 1 and all(part[:2] == [0, 1] for part in parts)  # the keys in every part
        assert text.count("unix-dgram") == 3 * len(parts)
    assert len(made.parts(200)) == 1 and "continued" not in wide


def test_bench_details_repeat_transport_and_server_in_every_part() -> None:
    """Rows of bench's detail tables are named by transport AND server: both repeat."""
    from netlab.experiments.base import ResultTable

    data = ResultTable("details", ["transport", "server"] + [f"p{i} µs" for i in range(10)],
                       [["tcp", server, *("1,234.5" for _ in range(10))] for server in ("netlab", "trio")])
    made = render.result_table(data, left=("server",), first_left=True, keys=("transport", "conns", "server"))
    parts = made.parts(80)
    assert len(parts) > 1 and all(part[:2] == [0, 1] for part in parts)
    text = rendered(lambda c: c.print(made), 80)
    assert text.count("trio") == len(parts)


def test_a_cell_wider_than_the_console_folds_instead_of_being_cut() -> None:
    long = "unix:/tmp/" + "d" * 100 + "/s.sock"
    text = rendered(lambda c: c.print(render.table(["transport", "server"], [["unix", long]])), 60)
    assert_fits(text, 60)
    assert long in "".join(line.strip().removeprefix("unix").strip() for line in text.splitlines())


def test_sentences_wrap_and_figures_do_not() -> None:
    sentence = "a reliable, ordered byte stream between processes on one host, with no message boundaries"
    made = render.table(["name", render.Column("value", right=True), "summary"], [["unix", "12,345,678", sentence]])
    text = rendered(lambda c: c.print(made), 60)
    assert_fits(text, 60)
    assert "12,345,678" in text and len(made.parts(60)) == 1  # the sentence column made room
    assert words(text) == words(rendered(lambda c: c.print(made), 200))


def test_render_exports_every_view_it_defines() -> None:
    """`render.__all__` names every public function, class and constant the module defines
    (and nothing it merely imports)."""
    import ast

    tree = ast.parse(Path(render.__file__).read_text())
    defined = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    defined |= {target.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
                for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
                if isinstance(target, ast.Name)}
    public = {name for name in defined if not name.startswith("_")}
    assert set(render.__all__) == public


@pytest.mark.process
def test_piped_output_is_plain_and_fixed_width(tmp_path: Path) -> None:
    """Not a terminal: no colour codes, PLAIN_WIDTH wide whatever $COLUMNS says."""
    env = dict(os.environ, COLUMNS="50")
    result = subprocess.run([sys.executable, "-m", "netlab", "transports"], capture_output=True, text=True, env=env,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout
    assert max(cell_len(line) for line in result.stdout.splitlines()) > 50  # not cut to $COLUMNS
    if not sys.stdout.isatty():  # pytest captures stdout (not under -s in a terminal)
        assert render.console().width == render.PLAIN_WIDTH


def capture_views(monkeypatch: pytest.MonkeyPatch, name: str, width: int) -> list[str]:
    """Run the CLI at `width`; also render the same result at 200 columns to compare with."""
    wide: list[str] = []
    view = getattr(render, name)

    def both(console: Console, *args: Any) -> None:
        wide.append(rendered(lambda c: view(c, *args), 200))
        view(console, *args)

    monkeypatch.setattr(render, name, both)
    monkeypatch.setattr(netlab.cli.common, "out", render.console(width=width))
    return wide


@pytest.mark.parametrize("width", [80, 120])
def test_compare_fits_and_loses_nothing(width: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    wide = capture_views(monkeypatch, "compare", width)
    result = invoke(["compare", "-n", "20", "--transports", "tcp,udp6,unix-dgram,unix-seq", "--json-file",
                     str(tmp_path / "c.json")])
    assert result.exit_code == 0, result.output
    assert_fits(result.stdout, width)
    assert words(result.stdout) == words(wide[0])
    for r in json.loads((tmp_path / "c.json").read_text())["end"]["results"]:
        assert r["address"] in result.stdout  # the addresses are in the table, whole


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.process
def test_bench_fits_and_loses_nothing(width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    wide = capture_views(monkeypatch, "bench", width)
    result = invoke(["bench", "pingpong", "--transports", "tcp,unix", "--baselines", "trio,asyncio", "--duration",
                     "0.1", "--warmup", "0", "--repeats", "1"])
    assert result.exit_code == 0, result.output
    assert_fits(result.stdout, width)
    assert words(result.stdout) == words(wide[0])
    assert "netlab/asyncio" in result.stdout


@pytest.mark.parametrize("width", [80, 120])
def test_experiment_tables_fit_and_lose_nothing(width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netlab.cli.common, "out", render.console(width=width))
    result = invoke(["experiment", "run", "size-limits"])
    assert result.exit_code == 0, result.output
    assert_fits(result.stdout, width)
    outcome = trio.run(EXPERIMENTS["size-limits"].run, ExperimentOptions())
    for data in outcome.tables:
        made = render.result_table(data)
        assert words(rendered(lambda c: c.print(made), width)) == words(rendered(lambda c: c.print(made), 200))
        assert_fits(rendered(lambda c: c.print(made), width), width)


# -- 2. one meaning of --json ----------------------------------------------------------------------


def _until_signalled(netlab_process: Any, *args: str) -> list[Any]:
    """A command that runs until a signal: its first line, then the rest after SIGTERM."""
    process = netlab_process(*args)
    first = json.loads(process.first_line)
    process.signal(signal.SIGTERM)
    code, out, err = process.finish()
    assert code == 0, err
    return [first] + [json.loads(line) for line in out.splitlines() if line.strip()]


def _server(netlab_process: Any) -> str:
    return json.loads(netlab_process("serve", "-t", "tcp:127.0.0.1:0", "-s", "sum", "--json").first_line)["address"]


def _once(args: list[str], input: str | None = None, lines: bool = False) -> list[Any]:
    result = invoke(args, input=input)
    assert result.exit_code == 0, result.output
    if lines:
        return [json.loads(line) for line in result.stdout.splitlines()]
    return [json.loads(result.stdout)]


#: how to run each command with --json; a command missing here fails test_every_command_prints_json
JSON_CASES: dict[str, Callable[[Any], list[Any]]] = {
    "serve": lambda p: _until_signalled(p, "serve", "-t", "udp:127.0.0.1:0", "--json"),
    "relay": lambda p: _until_signalled(p, "relay", "--listen", "tcp:127.0.0.1:0", "--to", _server(p), "--json"),
    "send": lambda p: _once(["send", "-t", _server(p), "2 3", "--json"]),
    "chat": lambda p: _once(["chat", "-t", _server(p), "--json", "--timeout", "1"], input="2 3\n", lines=True),
    "raw": lambda p: _once(["raw", _server(p), "--send", r"2 3\n", "--json", "--timeout", "1"]),
    "transports": lambda p: _once(["transports", "--json"]),
    "compare": lambda p: _once(["compare", "-n", "5", "--transports", "tcp,udp", "--json"]),
    "bench": lambda p: _once(["bench", "pingpong", "--transports", "unix", "--baselines", "none", "--duration", "0.1",
                              "--warmup", "0", "--repeats", "1", "--json"]),
    "experiment list": lambda p: _once(["experiment", "list", "--json"]),
    "experiment run": lambda p: _once(["experiment", "run", "addressing", "--json"]),
    "host": lambda p: _once(["host", "--json"]),
    "resolve": lambda p: _once(["resolve", "127.0.0.1", "7000", "--json"]),
    "constants": lambda p: _once(["constants", "SOCK_", "--json"]),
    "addr explain": lambda p: _once(["addr", "explain", "unix-dgram:@netlab-json-conventions", "--json"]),
    "check": lambda p: _once(["check", _server(p), "--case", "sum.small", "--json"]),
    "trace": lambda p: _traced(["trace", "--json", "--serve", "udp:127.0.0.1:7000", "--", "send", "-t",
                                "udp:127.0.0.1:7000", "2 3"]),
}


def _traced(args: list[str]) -> list[Any]:
    from netlab.netns import isolation

    if isolation().mode is None:
        pytest.skip(f"netlab trace needs a private network namespace ({isolation().detail}): run as root, or allow "
                    f"unprivileged user namespaces")
    return _once(args)


@pytest.mark.parametrize("path", command_paths())
@pytest.mark.process
def test_every_command_prints_json(path: str, netlab_process: Any) -> None:
    assert path in JSON_CASES, f"netlab {path} is new: give it --json (see netlab/cli/__init__.py) and a case in JSON_CASES"
    documents = JSON_CASES[path](netlab_process)
    assert documents and all(isinstance(d, (dict, list)) for d in documents)


def test_json_options_mean_the_same_everywhere() -> None:
    """--json is a flag on every command; a file is --json-file FILE, never --json FILE."""
    group = typer.main.get_command(app)
    for path in command_paths():
        command = group
        for name in path.split():
            command = command.commands[name]  # type: ignore[attr-defined]
        options = {opt: param for param in command.params for opt in param.opts}
        assert "--json" in options and options["--json"].is_flag, path
        if "--json-file" in options:
            assert not options["--json-file"].is_flag, path


def test_json_with_a_file_name_says_what_json_means_now() -> None:
    result = invoke(["compare", "--json", "compare.json"])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[1] == ("netlab: --json prints JSON on stdout; to write it to a file: "
                                             "--json-file compare.json")


def test_compare_json_is_the_iperf3_shape_on_stdout(tmp_path: Path) -> None:
    result = invoke(["compare", "-n", "5", "--transports", "unix", "--json", "--json-file", str(tmp_path / "c.json")])
    assert result.exit_code == 0, result.output
    printed, written = json.loads(result.stdout), json.loads((tmp_path / "c.json").read_text())
    assert set(printed) == {"start", "intervals", "end"}
    assert printed["end"] == written["end"]
    assert "wrote" in result.stderr and "wrote" not in result.stdout


# -- 3. outputs checked before the run -------------------------------------------------------------


@pytest.mark.process
def test_plot_with_an_unknown_extension_exits_2_before_the_run(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import netlab.bench.core
    import netlab.experiments.compare

    def must_not_run(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the run started before its output was checked")

    monkeypatch.setattr(netlab.experiments.compare, "run_compare", must_not_run)
    monkeypatch.setattr(netlab.bench.core, "run_bench", must_not_run)
    for args in (["compare"], ["bench", "pingpong"], ["experiment", "run", "overload"]):
        result = invoke([*args, "--plot", str(tmp_path / "x.txt")])
        assert result.exit_code == 2, result.output
        assert_no_traceback(result)
        assert result.stderr.startswith("netlab: error: --plot") and "cannot draw a .txt file" in result.stderr
    # and in a real process, whose output is what a user sees
    done = subprocess.run([sys.executable, "-m", "netlab", "compare", "--plot", str(tmp_path / "x.txt")],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and done.stdout == "" and done.stderr.count("\n") == 1, done
    assert "Traceback" not in done.stderr


def test_plot_without_an_extension_says_where_it_went(tmp_path: Path) -> None:
    result = invoke(["experiment", "run", "overload", "--messages", "100", "--rcvbuf", "4096", "--plot",
                     str(tmp_path / "noext")])
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 'noext.png'}" in result.stderr
    assert (tmp_path / "noext.png").stat().st_size > 0 and not (tmp_path / "noext").exists()


def test_plot_formats_are_what_matplotlib_writes() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    assert set(PLOT_FORMATS) <= set(Figure().canvas.get_supported_filetypes())


def test_json_file_names_the_missing_directory(tmp_path: Path) -> None:
    result = invoke(["compare", "--json-file", "/nonexistent-netlab/x.json"])
    assert result.exit_code == 1
    assert result.stderr.strip() == ("netlab: error: cannot write /nonexistent-netlab/x.json: directory "
                                     "/nonexistent-netlab does not exist")
    deep = tmp_path / "a" / "b" / "x.json"
    message = invoke(["bench", "stream", "--json-file", str(deep)]).stderr
    assert f"directory {tmp_path / 'a'} does not exist" in message
    (tmp_path / "file").write_text("")
    with pytest.raises(Exception, match="is not a directory"):
        Outputs(json=tmp_path / "file" / "x.json").check()


# -- 4. errors that name the real cause ------------------------------------------------------------


@pytest.mark.process
def test_serving_in_a_missing_directory_says_so(tmp_path: Path) -> None:
    # a real process: serve sets up logging on its stderr, which must not outlive a CliRunner call
    result = subprocess.run([sys.executable, "-m", "netlab", "serve", "-t", f"unix:{tmp_path}/nodir/sub/sum.sock"],
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"netlab: error: cannot bind unix:{tmp_path}/nodir/sub/sum.sock: directory "
                                     f"{tmp_path}/nodir does not exist (nor {tmp_path}/nodir/sub in it)")


@pytest.mark.parametrize("scheme", ["unix", "unix-dgram", "unix-seq"])
def test_connecting_tells_a_missing_directory_from_a_missing_socket_file(scheme: str, tmp_path: Path) -> None:
    no_dir = invoke(["send", "-t", f"{scheme}:{tmp_path}/nodir/s.sock", "2 3"])
    no_file = invoke(["send", "-t", f"{scheme}:{tmp_path}/s.sock", "2 3"])
    assert no_dir.exit_code == no_file.exit_code == 1
    assert f"directory {tmp_path}/nodir does not exist" in no_dir.stderr and "socket file" not in no_dir.stderr
    assert "no such socket file (is the server running?)" in no_file.stderr


def _namespace_skip() -> str | None:
    if os.geteuid() != 0:
        return "needs root to make a network namespace"
    if not (shutil.which("unshare") and shutil.which("ip")):
        return "needs unshare and ip (util-linux, iproute2)"
    return None


NAMESPACE_CLIENT = r"""
import json, subprocess, sys
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
subprocess.run(["ip", "addr", "add", "10.99.0.1/32", "dev", "lo"], check=True)  # this "machine's" outside address
netlab = [sys.executable, "-m", "netlab"]
results = {}
for scheme in ("tcp", "udp"):
    server = subprocess.Popen(netlab + ["serve", "-t", f"{scheme}:127.0.0.1:7000", "-s", "sum"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    server.stdout.readline()  # listening: the server is bound
    for host in ("127.0.0.1", "10.99.0.1"):
        done = subprocess.run(netlab + ["send", "-t", f"{scheme}:{host}:7000", "2 3", "--timeout", "5"],
                              capture_output=True, text=True)
        results[f"{scheme}:{host}"] = [done.returncode, done.stdout, done.stderr]
    server.terminate()
    server.wait()
print(json.dumps(results))
"""


@pytest.mark.skipif(_namespace_skip() is not None, reason=_namespace_skip() or "")
@pytest.mark.process
def test_refused_from_a_non_loopback_address_hints_at_a_loopback_only_server() -> None:
    """In a network namespace of its own: a server bound to 127.0.0.1 answers on 127.0.0.1,
    and is refused at the namespace's other address, with the hint."""
    done = subprocess.run(["unshare", "-n", sys.executable, "-c", NAMESPACE_CLIENT], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    for scheme in ("tcp", "udp"):
        assert results[f"{scheme}:127.0.0.1"][:2] == [0, "5\n"], results
        code, _, err = results[f"{scheme}:10.99.0.1"]
        assert code == 1 and err.count("\n") == 1 and err.startswith("netlab: error: connection refused"), err
        assert "listens on loopback only" in err and f"{scheme}:0.0.0.0:7000" in err and "anyone" in err, err


def test_refused_on_loopback_has_no_hint(netlab_dir: Path) -> None:
    import socket

    with socket.socket() as holder:  # a port nobody listens on: bound, never listening
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        result = invoke(["send", "-t", f"tcp:127.0.0.1:{port}", "2 3"])
    assert result.exit_code == 1 and "nothing is listening there" in result.stderr
    assert "loopback only" not in result.stderr


# -- 6. usage errors, help ---------------------------------------------------------------------------

USAGE = [
    ["serve"],  # a missing option
    ["serve", "-t", "tcp:127.0.0.1:99999"],  # a value typer's parser rejects
    ["compare", "--bogus"],
    ["compare", "-n", "0"],  # out of range
    ["no-such-command"],
    ["experiment", "run"],  # a missing argument
    ["send", "-t", "tcp:127.0.0.1:9"],
]


@pytest.mark.parametrize("args", USAGE, ids=" ".join)
def test_usage_errors_are_one_line_and_exit_2(args: list[str]) -> None:
    result = invoke(args)
    assert result.exit_code == 2, result.output
    assert_no_traceback(result)
    lines = result.stderr.splitlines()
    assert 1 <= len(lines) <= 2 and lines[0].startswith("netlab: error: "), result.stderr
    assert all(line.startswith("netlab: ") for line in lines), result.stderr
    assert not re.search(r"[\u2500-\u257f]", result.output)  # no box


@pytest.mark.parametrize("path", [""] + command_paths())
def test_help_has_no_type_noise(path: str) -> None:
    result = invoke([*path.split(), "--help"])
    assert result.exit_code == 0
    for noise in ("<bool>", "<str>", "<int", "<float", "<list", "<path", "[x>=", "[x<="):
        assert noise not in result.stdout, (noise, result.stdout)


def test_top_level_help_lists_each_command_in_one_sentence() -> None:
    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        short = command.short_help or ""
        assert "\n" not in short and short.endswith(".") and ". " not in short.rstrip("."), (name, short)
    text = invoke(["--help"]).stdout
    assert "iperf3 for stream" in " ".join(text.split())  # bench's sentence is not broken where its source was


# -- 7. --version, completion -----------------------------------------------------------------------


def test_version() -> None:
    result = invoke(["--version"])
    assert result.exit_code == 0
    assert re.fullmatch(rf"netlab {re.escape(netlab.__version__)} \(Python \S+, trio \S+\)\n", result.stdout)


@pytest.mark.process
def test_shell_completion_is_installable_and_completes() -> None:
    shown = invoke(["--show-completion", "bash"])
    assert shown.exit_code == 0 and "_NETLAB_COMPLETE" in shown.stdout, shown.output
    assert "--install-completion" in invoke(["--help"]).stdout
    assert complete("netlab se") == {"serve", "send"}


def complete(words: str) -> set[str]:
    """What bash completion offers after `words` (the installed `netlab` script: its name is the
    completion variable's; under ``python -m netlab`` it would print the help instead)."""
    script = Path(sys.executable).with_name("netlab")
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    env = dict(os.environ, _NETLAB_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=str(cword))
    done = subprocess.run([str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0 and "Usage" not in done.stdout, done
    return set(done.stdout.split())


@pytest.mark.process
@pytest.mark.parametrize(("words", "offered"), [
    ("netlab experiment run ", {"boundaries", "overload", "addressing", "refused", "size-limits", "loss", "framing",
                                "close"}),
    ("netlab experiment run f", {"framing"}),
    ("netlab bench ", {"pingpong", "rate", "stream", "datagrams", "connect", "concurrency", "relay"}),
    ("netlab bench pingpong --pin s", {"same", "split"}),
    ("netlab serve --service ", {"echo", "sum", "discard"}),
    ("netlab compare --service e", {"echo"}),
    ("netlab compare --transports tcp,unix-", {"tcp,unix-dgram", "tcp,unix-seq"}),
    ("netlab send -t tc", {"tcp:", "tcp4:", "tcp6:"}),
])
def test_completion_offers_values(words: str, offered: set[str]) -> None:
    assert complete(words) == offered


# -- 8. the limits that apply; why a stream kept boundaries -----------------------------------------


@pytest.mark.parametrize("scheme", list(TRANSPORTS))
def test_startup_limits_are_those_of_the_transport(scheme: str) -> None:
    transport = TRANSPORTS[scheme]
    shown = Limits().describe(transport)
    assert ("max-connections=" in shown) == ("idle-timeout=" in shown) == transport.connected
    assert ("rate-limit=" in shown) == (not transport.connected)
    assert "max-line=" in shown and "grace=" in shown


def test_compare_says_why_a_stream_kept_its_boundaries() -> None:
    closed = CompareSettings(("tcp", "udp", "unix-seq"), ("sum",), messages=10)
    results = trio.run(run_compare, closed)
    cells = {r.transport: boundaries_cell(r, closed) for r in results}
    assert cells == {"tcp": "10→10 kept (1 in flight)", "udp": "10→10 kept", "unix-seq": "10→10 kept"}
    note = boundaries_note(closed, results)
    assert note is not None and note.startswith("(1 in flight): tcp kept") and "closed loop" in note
    opened = CompareSettings(("tcp",), ("sum",), messages=10, rate=1000)
    assert "in flight" not in boundaries_cell(results[0], opened) and boundaries_note(opened, results[:1]) is None
