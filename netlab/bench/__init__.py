"""netlab bench: netlab's server measured against baseline servers, in one run.

* `netlab.bench.core`: the modes, the server processes, pinning, medians and ratios,
  tables, JSON (iperf3 ``-J`` shape) and plots; `run_bench(BenchSettings(...))`.
* `netlab.bench.loadgen`: the load generator, run as a process of its own
  (``python -m netlab.bench.loadgen SPEC``). It imports nothing heavy, so this package
  file imports nothing either.

The baseline servers live in the source tree's ``benchmarks/baselines/``.
"""
