"""netlab bench: netlab's server measured against baseline servers, in one run.

* `netlab.bench.core`: `run_bench(BenchSettings(...))`, which runs a plan; it gives every
  public name of the package (the CLI and ``benchmarks/run.py`` import from it).
* `netlab.bench.modes`: one `Mode` object per mode (the kinds it runs on and why not the
  others, what it measures there) and one `Measure` per thing a run measures (metric,
  load generator mode and knobs, facets, details table); `BenchSettings`.
* `netlab.bench.plan`: which transports run, against whom, how often: the one plan that
  both counts the progress bar and is run.
* `netlab.bench.processes`, `servers`, `socat`, `machine`: the server processes, the load
  generator's and iperf3's runs, pinning and the environment.
* `netlab.bench.summary`, `details`, `figures`, `tables`, `plot`: medians, ratios,
  targets, tables, JSON (iperf3 ``-J`` shape) and plots.
* `netlab.bench.loadgen`: the load generator, run as a process of its own
  (``python -m netlab.bench.loadgen SPEC``); `netlab.bench.contract` types what it is told
  and what it answers, for both sides; `netlab.bench.procfs` reads /proc for both. These
  import nothing heavy, so this package file imports nothing either.

The baseline servers live in the source tree's ``benchmarks/baselines/``.
"""
