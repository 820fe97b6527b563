#!/usr/bin/env python3
"""How much faster `netlab check --run 'CMD {}' --jobs N` grades a class than one submission
after another: both runs in one process, on the same folder, so only their ratio counts.

    .venv/bin/python benchmarks/grade_parallel.py             # 9 servers, --jobs 1 vs default
    .venv/bin/python benchmarks/grade_parallel.py --jobs 4 --servers 12

The folder is made fresh: first-week servers as students write them (port 50000 hard-coded,
no SO_REUSEADDR in most, a crash on bad input, one client then exit, a busy loop). It also
checks that both runs gave every submission the same verdicts (a speed-up that changed a
grade would be worth nothing). Needs namespaces (root or user namespaces): without them
netlab grades one at a time whatever --jobs says.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import trio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from netlab.check import CheckSettings, grade  # noqa: E402  (after the path is set)
from netlab.check.isolate import isolation  # noqa: E402
from netlab.check.run import default_jobs  # noqa: E402

HEAD = "import socket\ns = socket.socket()\n{reuse}s.bind(('', 50000))\ns.listen(1)\n"
BODIES = {
    "crashes": "while True:\n    c, _ = s.accept()\n    a, b = c.recv(1024).split()\n"
               "    c.sendall(str(int(a) + int(b)).encode() + b'\\n')\n    c.close()\n",
    "one_client": "c, _ = s.accept()\na, b = c.recv(1024).split()\nc.sendall(str(int(a) + int(b)).encode())\n"
                  "c.close()\n",
    "careful": "while True:\n    c, _ = s.accept()\n    d = b''\n    while not d.endswith(b'\\n'):\n"
               "        x = c.recv(1024)\n        if not x: break\n        d += x\n    try:\n"
               "        a, b = d.split()\n        c.sendall(str(float(a) + float(b)).encode() + b'\\n')\n"
               "    except ValueError:\n        c.sendall(b'error\\n')\n    c.close()\n",
}


def make_folder(root: Path, count: int) -> list[str]:
    paths = []
    names = list(BODIES)
    for i in range(count):
        body = names[i % len(names)]
        reuse = "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n" if i % 3 == 2 else ""
        path = root / f"student{i:02d}" / "sum_server.py"
        path.parent.mkdir(parents=True)
        path.write_text(HEAD.format(reuse=reuse) + BODIES[body])
        paths.append(str(path))
    return paths


async def timed(paths: list[str], settings: CheckSettings, jobs: int) -> tuple[float, dict[str, dict[str, str]]]:
    start = time.monotonic()
    graded = await grade(f"{sys.executable} {{}}", paths, settings, jobs=jobs)
    return time.monotonic() - start, {name: {c.id: c.outcome for c in r.cases} for name, r in graded}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=9)
    parser.add_argument("--jobs", type=int, default=default_jobs())
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args()
    if not isolation().available:
        print(f"needs namespaces: {isolation().detail}", file=sys.stderr)
        return 2
    settings = CheckSettings(timeout=args.timeout)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_folder(Path(tmp), args.servers)
        one, first = trio.run(timed, paths, settings, 1)
        many, second = trio.run(timed, paths, settings, args.jobs)
    same = first == second
    print(f"{args.servers} servers, --timeout {args.timeout:g}: one at a time {one:.1f} s; "
          f"--jobs {args.jobs} {many:.1f} s; speed-up {one / many:.2f}x; verdicts {'identical' if same else 'DIFFER'}")
    if not same:
        for name in first:
            if first[name] != second[name]:
                diff = {k: (first[name][k], second[name].get(k)) for k in first[name] if first[name][k] != second[name].get(k)}
                print(f"  {name}: {diff}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
