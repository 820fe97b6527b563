"""The shape of the package: no module over `MAX_LINES`, no import cycle among netlab's modules.

Imports are read from the source with `ast`, every one of them: at the top of a module,
inside a function body (an import deferred to break a cycle is still a cycle), and under
``if TYPE_CHECKING:`` (a cycle the type checker walks is a cycle a reader walks). An
import of a package's submodule counts as an import of that submodule alone, not of the
packages above it, which Python runs first whatever the order.

Two lists name what is allowed today and must be emptied as issue 20 lands: modules other
helpers are still splitting, and the imports that close the cycles that exist outside the
server package. Each list is checked in both directions: an entry that no longer applies
fails too, so it is deleted the day it stops being needed.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

import netlab

NETLAB = Path(netlab.__file__).parent
MAX_LINES = 600

#: modules over MAX_LINES that other parts of issue 20 are splitting now (paths under
#: netlab/); the integrator empties this list
STILL_SPLITTING: dict[str, str] = {
}

#: imports that close a cycle today, outside netlab/server and netlab/client.py, each with
#: why (importer, imported); the integrator empties this list
KNOWN_CYCLES: dict[tuple[str, str], str] = {
}


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path) -> dict[str, Path]:
    """Every module of the package at `root`, by dotted name."""
    return {module_name(root, path): path for path in sorted(root.rglob("*.py"))}


def imports(root: Path) -> dict[str, set[str]]:
    """For each module of the package at `root`, the package's modules it imports, anywhere in it."""
    known = modules(root)
    top = root.name

    def resolve(name: str) -> str | None:
        """The module `name` is, or is in (``pkg.mod.attr`` → ``pkg.mod``)."""
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                    base = f"{base}.{node.module}" if node.module else base
                else:
                    base = node.module or ""
                # `from pkg import mod` imports the submodule; `from mod import name` the module
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                           for alias in node.names]
            else:
                continue
            found.update(m for t in targets if (t == top or t.startswith(top + ".")) and (m := resolve(t)))
        found.discard(name)
        graph[name] = found
    return graph


def cycles(graph: Mapping[str, Iterable[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module: each holds a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def reaches(graph: Mapping[str, Iterable[str]], start: str, goal: str) -> bool:
    seen, todo = {start}, [start]
    while todo:
        for other in graph.get(todo.pop(), ()):
            if other == goal:
                return True
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return False


def test_no_import_cycle_beyond_the_known_ones() -> None:
    graph = imports(NETLAB)
    without = {name: targets - {b for a, b in KNOWN_CYCLES if a == name} for name, targets in graph.items()}
    found = [sorted(c) for c in cycles(without)]
    assert not found, f"import cycles among netlab modules: {found}"
    gone = [edge for edge in KNOWN_CYCLES if edge[1] not in graph.get(edge[0], ()) or not reaches(graph, *edge[::-1])]
    assert not gone, f"these imports no longer close a cycle: delete them from KNOWN_CYCLES: {gone}"


LINES = {str(path.relative_to(NETLAB)): len(path.read_text().splitlines())
         for path in sorted(NETLAB.rglob("*.py"))}


@pytest.mark.parametrize("path", [
    pytest.param(path, marks=pytest.mark.skip(reason=f"still being split: {STILL_SPLITTING[path]}"))
    if path in STILL_SPLITTING else path
    for path in LINES
])
def test_no_module_over_the_line_limit(path: str) -> None:
    assert LINES[path] <= MAX_LINES, f"netlab/{path} has {LINES[path]} lines (at most {MAX_LINES}): split it"


def test_the_still_splitting_list_names_only_modules_over_the_limit() -> None:
    done = [path for path in STILL_SPLITTING if LINES.get(path, 0) <= MAX_LINES]
    assert not done, f"within {MAX_LINES} lines now (or gone): delete them from STILL_SPLITTING: {done}"


def test_the_reader_sees_imports_in_functions_and_under_type_checking(tmp_path: Path) -> None:
    """The cycle check itself: a cycle made only of a deferred import and a type-checking
    import is found, and so are relative and ``from package import module`` imports."""
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("")
    (root / "a.py").write_text("def f():\n    from .sub import b\n    return b\n")
    (root / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.c import C\n")
    (root / "c.py").write_text("import os\nfrom . import a\nfrom .sub.b import thing\nC = 1\n")
    (root / "d.py").write_text("from pkg.c import C\n")
    graph = imports(root)
    assert graph["pkg.a"] == {"pkg.sub.b"}
    assert graph["pkg.sub.b"] == {"pkg.c"}
    assert graph["pkg.c"] == {"pkg.a", "pkg.sub.b"}
    assert cycles(graph) == [frozenset({"pkg.a", "pkg.sub.b", "pkg.c"})]
    (root / "c.py").write_text("C = 1\n")
    assert cycles(imports(root)) == []


#: the public names netlab.runner held before it was split into netlab.server and netlab.client
RUNNER_NAMES = [
    "HINTS_PER_S", "HINT_AFTER", "HINT_SHOWS", "PEER_REPLY_QUEUE", "RECEIVE_SIZE", "REPLY_QUEUE_BYTES",
    "REPLY_TIMEOUT", "SERVER_RECEIVE_SIZE", "Client", "Limits", "MessageClient", "NetlabError", "Server",
    "ServerStats", "StreamClient", "log", "open_client", "run_chat", "serve",
]


def test_runner_still_offers_every_name_it_had() -> None:
    import netlab.client
    import netlab.runner
    import netlab.server

    missing = [name for name in RUNNER_NAMES if not hasattr(netlab.runner, name)]
    assert not missing, missing
    assert netlab.runner.Server is netlab.server.Server and netlab.runner.serve is netlab.server.serve
    assert netlab.runner.open_client is netlab.client.open_client and netlab.runner.Client is netlab.client.Client


@pytest.mark.process
def test_netlab_offers_the_library_api_and_imports_it_only_when_asked() -> None:
    """``from netlab import serve`` works, and ``import netlab`` alone (which every process
    under the package runs first, the load generator too) does not import trio."""
    code = (
        "import sys, netlab\n"
        "assert 'trio' not in sys.modules, 'import netlab imported trio'\n"
        "from netlab import Client, Limits, NetlabError, Server, ServerStats, open_client, run_chat, serve\n"
        "import netlab.client, netlab.errors, netlab.server\n"
        "assert serve is netlab.server.serve and open_client is netlab.client.open_client\n"
        "assert NetlabError is netlab.errors.NetlabError\n"
        "assert set(netlab.__all__) <= set(dir(netlab))\n"
        "try:\n    netlab.no_such_name\nexcept AttributeError:\n    pass\nelse:\n    raise SystemExit('no error')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


#: the old module names of what moved to netlab.impair, and the names each held
MOVED_TO_IMPAIR = {
    "netlab.experiments.impair": ("netlab.impair.decisions", [
        "CONVERTERS", "REORDER_HOLD", "DatagramImpairer", "ImpairStats", "ImpairmentError", "Impairments",
        "StreamImpairer", "impairments_from_text"]),
    "netlab.experiments.relay": ("netlab.impair.relay", [
        "MAX_CONNECTIONS", "MAX_PEERS", "PASS_BUFFER", "PEER_QUEUE", "SEND_TIMEOUT", "STREAM_BUFFER", "STREAM_QUEUE",
        "Relay", "RelayStats", "check_applicable", "log", "run_relay"]),
    "netlab.experiments.kernel": ("netlab.impair.kernel", [
        "KERNEL_IMPAIRMENTS", "SKIP_REASON", "SNMP_KEYS", "TABLE", "TOOLS", "KernelImpairments", "check_kernel_mode",
        "find_tools", "kernel_mode_available", "numgen_fraction", "parse_nft_counters", "parse_qdisc_drops",
        "parse_snmp", "privilege_problem", "read_snmp", "ruleset"]),
}
#: what netlab.experiments.compare offered before its types and report had modules of their own
COMPARE_NAMES = ["CompareSettings", "TransportResult", "boundaries_cell", "boundaries_note", "compare_one",
                 "conclusions", "expectations", "for_each_pair", "plot", "report", "run_compare"]


def test_the_old_experiment_modules_still_offer_every_name_they_had() -> None:
    import importlib

    for old, (new, names) in MOVED_TO_IMPAIR.items():
        before, now = importlib.import_module(old), importlib.import_module(new)
        assert not [name for name in names if getattr(before, name, None) is not getattr(now, name)], old
    compare = importlib.import_module("netlab.experiments.compare")
    missing = [name for name in COMPARE_NAMES if not hasattr(compare, name)]
    assert not missing, missing


@pytest.mark.process
def test_the_experiments_and_impair_packages_import_nothing_until_asked() -> None:
    """``import netlab.experiments`` (which every ``netlab.experiments.X`` runs first) imports
    no experiment, and the registry is there when asked for."""
    code = (
        "import sys, netlab.experiments, netlab.impair\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('netlab.experiments.', 'netlab.impair.')))\n"
        "assert not loaded, loaded\n"
        "from netlab.experiments import EXPERIMENTS, ExperimentOptions, ResultTable\n"
        "import netlab.results, netlab.experiments.base\n"
        "assert ResultTable is netlab.results.ResultTable\n"
        "assert ExperimentOptions is netlab.experiments.base.ExperimentOptions\n"
        "assert EXPERIMENTS['loss'].name == 'loss' and 'netlab.experiments.loss' in sys.modules\n"
        "assert set(netlab.experiments.__all__) <= set(dir(netlab.experiments))\n"
        "try:\n    netlab.experiments.no_such_name\nexcept AttributeError:\n    pass\nelse:\n"
        "    raise SystemExit('no error')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
