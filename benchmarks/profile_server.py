#!/usr/bin/env python3
"""Where a netlab echo server's time goes under ping-pong: py-spy samples, grouped.

    python benchmarks/profile_server.py [--tree DIR] [--transport tcp] [--seconds 3]

Starts ``netlab serve`` (from `--tree`, another source tree such as an older commit, or from
this one), drives it with the bench load generator (64-byte ping-pong, one connection,
both pinned to one core), samples the server with py-spy (``pip install py-spy``) and
sorts every sample into one of a few groups by the frames on its stack:

* system calls: the sample is on a line that calls into the kernel (recv, send, readv,
  write, epoll...): the Python side of the call (argument parsing, the GIL hand-off);
* cancel scopes: anywhere under trio's CancelScope (enter, exit, deadline bookkeeping);
* trio scheduler: trio's run loop, checkpoints and I/O waits, outside the above;
* SocketStream: trio's high-level stream wrappers (error translation, conflict detection);
* netlab: netlab's own Python (handler, session, limits);
* other.

Two runs: a clean one gives the server's user and system CPU time per round trip (from
``/proc/PID/stat``); a second one is sampled with ``py-spy --gil``, which sees only the time
Python holds the GIL (a system call releases it), and splits the user time among the
groups. Prints a JSON object: µs per round trip for the kernel and for each group.
"""

from __future__ import annotations

import argparse
import collections
import json
import linecache
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: a source line that calls into the kernel
SYSCALL = re.compile(r"\b(readv|write|os\.read|recv|recv_into|recvmsg_into|recvfrom|recvfrom_into|sendto|"
                     r"sendall|accept|_accept|poll)\(|\b(raw|sock|_sock|socket)\.send\(|fn\(self\._sock")
GROUPS = ("system calls", "cancel scopes", "trio scheduler", "SocketStream", "netlab", "other")


def classify(frames: list[str]) -> str:
    """frames: root first, as py-spy's raw output gives them: 'function (file:line)'."""
    if any("CancelScope" in f or "_might_change_registered_deadline" in f or "Deadlines." in f
           or "move_on_" in f for f in frames):
        return "cancel scopes"
    leaf = frames[-1]
    name, _, where = leaf.rpartition(" (")
    path, _, line = where.rstrip(")").rpartition(":")
    text = linecache.getline(_resolve(path), int(line)) if line.isdigit() else ""
    if SYSCALL.search(text):
        return "system calls"
    path = "/" + path
    if "/trio/_highlevel_socket" in path or "/contextlib" in path and any("SocketStream" in f for f in frames):
        return "SocketStream"
    if "/trio/" in path or "/outcome/" in path or "outcome." in path or "/collections/" in path:
        return "trio scheduler"
    if "/netlab/" in path:
        return "netlab"
    return "other"


_roots: list[str] = []


def _cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _resolve(path: str) -> str:
    if os.path.isabs(path):
        return path
    for root in _roots:
        candidate = os.path.join(root, path)
        if os.path.exists(candidate):
            return candidate
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", help="netlab source tree to profile (default: this one)")
    parser.add_argument("--transport", default="tcp", help="tcp, unix, udp, unix-dgram, unix-seq ...")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not os.path.exists(py_spy):
        print(json.dumps({"error": "py-spy is not installed (pip install py-spy)"}))
        return 1
    sys.path.insert(0, str(HERE.parent))
    from netlab.bench.core import loadgen_target
    from netlab.transports import COMPARE_SCHEMES

    tree = Path(args.tree).resolve() if args.tree else HERE.parent
    import trio
    _roots.extend([str(tree), str(Path(trio.__file__).parent.parent), os.path.dirname(os.__file__)])
    workdir = Path(tempfile.mkdtemp(prefix="nlp-", dir="/tmp"))
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONSAFEPATH": "1"}
    pin = [sorted(os.sched_getaffinity(0))[0]]
    server = subprocess.Popen([sys.executable, "-m", "netlab", "serve", "-t",
                               COMPARE_SCHEMES[args.transport].format(dir=workdir), "-s", "echo", "--grace", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=str(workdir),
                              preexec_fn=lambda: os.sched_setaffinity(0, pin))
    try:
        assert server.stdout is not None
        bound = server.stdout.readline().decode().split()[1]
        spec = {**loadgen_target(bound), "mode": "pingpong", "size": 64, "warmup": 0.5,
                "duration": args.seconds, "server_pid": server.pid}

        def drive(extra: float = 0.0) -> subprocess.Popen:
            return subprocess.Popen([sys.executable, "-m", "netlab.bench.loadgen",
                                     json.dumps({**spec, "duration": args.seconds + extra})],
                                    stdout=subprocess.PIPE, text=True, preexec_fn=lambda: os.sched_setaffinity(0, pin))

        # 1. a clean run: round trips, and the server's user and system CPU time per round trip
        before = _cpu(server.pid)
        out, _ = drive().communicate(timeout=60)
        after = _cpu(server.pid)
        result = json.loads(out)
        count = result["count"]
        user_us = (after[0] - before[0]) / count * 1e6  # includes the warm-up: a slight overestimate
        system_us = (after[1] - before[1]) / count * 1e6
        # 2. a sampled run: where the Python time goes (py-spy --gil: only while holding the GIL,
        # so time in the kernel, which releases it, is not sampled; the system time above is that)
        load = drive(1.0)
        time.sleep(0.8)
        folded = workdir / "folded.txt"
        subprocess.run([py_spy, "record", "-p", str(server.pid), "-d", str(int(args.seconds)), "-r", "997",
                        "--gil", "-f", "raw", "-o", str(folded)], capture_output=True, check=False)
        load.communicate(timeout=60)
        counts: collections.Counter[str] = collections.Counter()
        for line in folded.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            counts[classify(stack.split(";"))] += int(n)
        total = sum(counts.values()) or 1
        python_groups = [g for g in GROUPS if g != "system calls"]
        print(json.dumps({
            "tree": str(tree), "transport": args.transport, "samples": total,
            "round_trips_per_s": count / result["elapsed"],
            "server_cpu_us_per_round_trip": user_us + system_us,
            "kernel_us_per_round_trip": system_us,
            "user_us_per_round_trip": user_us,
            "python_share": {g: counts[g] / total for g in GROUPS},
            "us_per_round_trip": {"kernel (system time)": system_us,
                                  **{g: counts[g] / total * user_us for g in python_groups},
                                  "syscall wrappers (user side)": counts["system calls"] / total * user_us},
        }, indent=1))
    finally:
        server.terminate()
        server.wait(5)
        if not os.environ.get("KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
