"""Impairments: what a bad network does to traffic, and the two things that do it.

::

    decisions.py  the settings (`Impairments`) and, per packet or chunk, what happens to it
                  (`DatagramImpairer`, `StreamImpairer`): seeded, no I/O
    relay.py      a relay between two transports of one kind that asks the decisions and
                  carries them out (`run_relay`): netlab's own lossy, slow, re-chunking link
    kernel.py     the same asked of the kernel, in a private network namespace: loss by an
                  nftables rule, a link rate by tbf, delay by netem (`KernelImpairments`),
                  and the counters that say what the kernel did

`netlab compare` (`netlab.experiments.compare`) puts the relay in front of each server, or
runs each workload in a namespace with the kernel impairing it (`netlab.experiments.kernel`);
`netlab relay` runs one relay by itself.

This package imports nothing when imported: each module is imported where it is used.
"""
