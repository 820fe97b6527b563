"""`netlab bench`: how fast netlab's server is, measured against baselines in the same run.

Process layout. Nothing measured shares an interpreter with anything else:

* every **server** is its own process: netlab's (``python -m netlab serve``, the command a
  user runs, with ``--max-connections`` raised), and the baselines in
  ``benchmarks/baselines/`` — a blocking-socket server with a thread per connection
  (standard library), a minimal hand-written trio server (the cost floor for trio) and an
  asyncio server (protocol callbacks). For ``stream`` on TCP, iperf3 too, when installed;
* the **load generator** (`netlab.bench.loadgen`) is a process of its own, started afresh
  for every measurement, with plain blocking or epoll sockets; it reads its own CPU time
  and the server's at the edges of the measured window;
* this process only starts, pins and stops the others, and adds up what they report.

Encrypted transports (``tls``): the run makes one throwaway CA and one server certificate
(`certificate_options`), which every server presents, netlab's and the baselines' alike,
so their handshakes cost the same; the load generator verifies it against that CA. Every
connection it opens makes a full handshake (no session resumption), so ``connect`` on
``tls`` beside ``tcp`` shows what the handshake costs.

Pinning (``pin``): ``same`` puts the server and the load generator on one core, ``split``
on two different cores, ``none`` leaves them to the scheduler. Children are pinned with
``os.sched_setaffinity`` as they start (before ``exec``), so every thread they ever make
inherits it; the affinity actually in force is read back and recorded. On loopback,
sharing a core or not changes ping-pong figures about tenfold, which is why only ratios
measured in one run are compared, never absolute figures from different runs.

Method. For each transport all servers are started, then each repeat runs every server
once, in an order rotated from repeat to repeat (so slow drifts in the machine's load do
not favour whoever goes first). Each run has its own warm-up, which is discarded. A figure
is the median of the repeats, with their minimum and maximum. A **ratio** is computed per
repeat between runs made moments apart (netlab ÷ baseline for rates, baseline ÷ netlab for
latencies: above 1 means netlab did better), and reported as the median of those ratios
with their spread.

Where it lives: the modes and settings in `netlab.bench.modes` (one `Mode` object per mode),
the plan of a run in `plan`, the processes in `processes`, `servers` and `socat`, the
machine in `machine`, the summing up in `summary` and `details`, the output in `tables`
and `plot`; the load generator and its contract in `loadgen` and `contract`. This module
runs a plan, and gives every name it gave before.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import BenchError
from ..transports import COMPARE_SCHEMES
from .contract import LoadSpec
from .figures import Row, decode
from .machine import environment, iperf3_path, pin_sets
from .modes import (
    BASELINE_TEXT, BASELINES, DEFAULT_RATE, MEASURES, MODES, PINS, REGISTRY, RELAY_BASELINES, RELAY_PEER,
    RELAY_RATE, BenchSettings, Measure, Mode,
)
from .plan import Plan, plan
from .plot import plot
from .processes import ServerProcess, certificate_options, loadgen_target, run_iperf3, run_loadgen
from .procfs import raise_nofile, read_text
from .servers import Tools, baselines_dir, relay_peer, running, servers, spawn_server
from .socat import socat_path
from .summary import TARGETS, BenchResult, Run, evaluate_targets, summarize
from .tables import report, tables, target_text

#: why a mode does not run on a transport of another kind, per mode that has such a reason
_NOT_APPLICABLE = {name: mode.not_applicable for name, mode in REGISTRY.items() if mode.not_applicable}

Progress = Callable[[str], None]


def planned_runs(settings: BenchSettings) -> int:
    """How many times `run_bench` will call its progress callback."""
    return plan(settings, iperf3_installed=iperf3_path() is not None).runs


def run_bench(settings: BenchSettings, progress: Progress = lambda label: None) -> BenchResult:
    """Run one mode over the chosen transports, netlab and every baseline; sum it all up.

    `progress(label)` is called after each load generator run. Failures of single runs
    are recorded in their rows; BenchError only when nothing can run at all.
    """
    raise_nofile()
    tools = Tools(baselines_dir(settings), socat_path(), iperf3_path())
    steps: Plan = plan(settings, iperf3_installed=tools.iperf3 is not None)
    env = environment(settings)
    runs: list[Run] = []
    workdir = Path(tempfile.mkdtemp(prefix="nlb-", dir="/tmp"))
    max_connections = max(1024, 2 * settings.hold, 2 * max(settings.levels), 2 * settings.connections)
    try:
        for leg in steps.legs:
            name, measure = leg.transport, leg.measure
            template = COMPARE_SCHEMES[name]
            if leg.encrypted:
                template += certificate_options(workdir / "certificate")
            with relay_peer(settings, template, measure.service, workdir / name, tools) as to, \
                    servers(settings, template, measure.service, workdir / name, tools, max_connections,
                            to=to) as started:
                for level in leg.levels:
                    for repeat in range(leg.repeats):
                        shift = repeat % len(leg.contenders)
                        for who in leg.contenders[shift:] + leg.contenders[:shift]:
                            run = Run(measure.name, name, who, repeat, level)
                            try:
                                if who == "iperf3":
                                    assert tools.iperf3 is not None and leg.iperf3_host is not None
                                    run.result = run_iperf3(settings, tools.iperf3, leg.iperf3_host)
                                else:
                                    spec = _spec(settings, measure, running(started[who]), level)
                                    run.result = run_loadgen(spec, settings, timeout=_timeout(settings, level))
                            except BenchError as exc:
                                run.error = str(exc)
                            runs.append(run)
                            progress(f"{settings.mode} {name} {who}" + (f" x{level}" if level else ""))
            if leg.hold is not None:
                for who in leg.holders:  # each alone, on a fresh server: its memory is what we read
                    with servers(settings, template, leg.hold.service, workdir / f"{name}-hold-{who}", tools,
                                 max_connections, only=who) as started:
                        run = Run(leg.hold.name, name, who, 0, settings.hold)
                        try:
                            run.result = run_loadgen(_spec(settings, leg.hold, running(started[who]), None),
                                                     settings, timeout=120 + settings.hold / 100)
                        except BenchError as exc:
                            run.error = str(exc)
                        runs.append(run)
                        progress(f"{leg.hold.name} {name} {who}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    env["loadavg_end"] = read_text("/proc/loadavg")
    rows = summarize(settings, runs)
    return BenchResult(settings, env, runs, rows, list(steps.skipped), evaluate_targets(rows, settings.pin))


def _spec(settings: BenchSettings, measure: Measure, server: ServerProcess, level: int | None) -> LoadSpec:
    """What the load generator is told for one run of `measure` against `server`. A server
    that forks a process per client (socat) has no CPU time of its own to read: its
    process's is not the relay's."""
    return measure.spec(settings, server.target, None if server.group else server.pid, level)


def _timeout(settings: BenchSettings, level: int | None) -> float:
    return settings.warmup + settings.duration + 30 + (level or 0) / 50


__all__ = ["BASELINES", "BASELINE_TEXT", "DEFAULT_RATE", "MEASURES", "MODES", "PINS", "REGISTRY", "RELAY_BASELINES",
           "RELAY_PEER", "RELAY_RATE", "TARGETS", "BenchError", "BenchResult", "BenchSettings", "Measure", "Mode",
           "Row", "Run", "ServerProcess", "baselines_dir", "certificate_options", "decode", "environment",
           "evaluate_targets", "iperf3_path", "loadgen_target", "pin_sets", "planned_runs", "plot", "raise_nofile",
           "report", "run_bench", "run_iperf3", "run_loadgen", "socat_path", "spawn_server", "summarize", "tables",
           "target_text"]
