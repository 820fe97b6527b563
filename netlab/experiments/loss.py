"""loss: what does a lossy link do to TCP, UDP, unix-dgram and unix-seq?

Each transport sends the same echo workload, open loop at `RATE` messages per second,
through the chosen loss rate in each direction, and every reply is checked byte for byte.

* ``--kernel``: each transport runs in its own private network namespace, where an
  nftables rule drops packets at random at the input hook (`netlab.experiments.kernel`,
  `netlab.impair.kernel`).
  TCP repairs the loss with the kernel's own retransmissions; UDP loses what the rule
  drops, and the namespace's counters say where every lost message went (the rule, or the
  receive buffer). AF_UNIX never passes through netfilter: the rule cannot touch it.
* without: netlab's relay drops datagrams (UDP *and* unix-dgram: a relay does not care
  about the family). A relay cannot make a connection lose anything: each side of it is a
  connection of its own over the host's loopback, which loses nothing. So for TCP and
  unix-seq the loss is reported as not applied.
"""

from __future__ import annotations

from typing import Any

import trio

from ..impair.decisions import Impairments
from ..impair.kernel import KernelImpairments, check_kernel_mode, numgen_fraction
from ..results import ResultTable
from ..transports import get_transport
from .base import Experiment, ExperimentOptions, ExperimentResult
from .compare import compare_one
from .compare_types import CompareSettings, TransportResult
from .kernel import STREAM_TIMEOUT, run_in_namespace

TRANSPORTS = ("tcp", "udp", "unix-dgram", "unix-seq")
RATE = 2000.0  # messages per second, open loop
SIZE = 64


def _kind(name: str) -> str:
    return get_transport(name).kind


def _settings(name: str, options: ExperimentOptions, impaired: bool) -> CompareSettings:
    loss = Impairments(loss=options.loss) if impaired else Impairments()
    connected = get_transport(name).connected
    timeout = max(options.timeout, STREAM_TIMEOUT) if connected else options.timeout
    return CompareSettings(transports=(name,), services=("echo",), messages=options.messages,
                           size=options.size or SIZE, rate=RATE, timeout=timeout, forward=loss, backward=loss,
                           seed=options.seed, parallel=False)


async def _run_all(options: ExperimentOptions) -> list[TransportResult]:
    results: dict[str, TransportResult] = {}
    tools = check_kernel_mode() if options.kernel else None
    kimp = KernelImpairments(loss_forward=options.loss, loss_backward=options.loss)

    async def one(name: str) -> None:
        if tools is not None:
            results[name] = await run_in_namespace(name, "echo", _settings(name, options, False), kimp, tools=tools,
                                                   trace=options.trace)
        else:
            results[name] = await compare_one(name, "echo", _settings(name, options, True))

    async with trio.open_nursery() as nursery:  # kernel: one namespace each; relay: waiting dominates
        for name in TRANSPORTS:
            nursery.start_soon(one, name)
    return [results[name] for name in TRANSPORTS]


def _section(figures: dict[str, object] | None, key: str) -> dict[str, Any]:
    """One part of a result's relay or kernel figures (empty where there are none)."""
    value = (figures or {}).get(key)
    return value if isinstance(value, dict) else {}


def _facts(r: TransportResult, kernel: bool) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "kind": _kind(r.transport), "family": "AF_INET" if get_transport(r.transport).uses_ip else "AF_UNIX",
        "planned": r.planned, "sent": r.sent, "delivered": r.delivered, "verified": r.verified, "lost": r.lost,
        "lost_fraction": r.lost / r.planned if r.planned else 0.0,
        "p50_us": r.p50_us, "p99_us": r.p99_us, "max_us": r.max_us, "not_applied": r.not_applied, "error": r.error,
    }
    if kernel:
        a = _section(r.kernel, "attribution")
        facts.update(dropped_by="nftables rule", dropped_forward=a.get("rule_dropped_forward", 0),
                     dropped_backward=a.get("rule_dropped_backward", 0), packets_seen=a.get("packets_seen", 0),
                     rcvbuf_errors=a.get("rcvbuf_errors", 0), other_in_errors=a.get("other_in_errors", 0),
                     retrans_segs=a.get("retrans_segs", 0), attribution=a.get("sentence"),
                     snmp=_section(r.kernel, "snmp"), netem=(r.kernel or {}).get("netem"))
        dropped = facts["dropped_forward"] + facts["dropped_backward"]
        explained = dropped + facts["rcvbuf_errors"] + facts["other_in_errors"] if facts["kind"] == "datagram" else 0
    else:
        forward, backward = _section(r.relay, "forward"), _section(r.relay, "backward")
        facts.update(dropped_by="relay" if r.relay else None,
                     dropped_forward=forward.get("dropped", 0) + forward.get("queue_dropped", 0),
                     dropped_backward=backward.get("dropped", 0) + backward.get("queue_dropped", 0),
                     rcvbuf_errors=None, retrans_segs=None)
        explained = facts["dropped_forward"] + facts["dropped_backward"]
    facts["unexplained"] = r.lost - explained
    return facts


def _ms(us: float | None) -> str:
    return "-" if us is None else f"{us / 1e3:.2f}"


def _names(names: list[str]) -> str:
    return " and ".join(names) if len(names) <= 2 else ", ".join(names[:-1]) + " and " + names[-1]


def _findings(result: ExperimentResult, options: ExperimentOptions) -> None:
    t = result.facts["transports"]
    kernel = options.kernel
    p = 100 * options.loss
    expected = 100 * result.facts["expected_round_trip_loss"]
    add = result.findings.append
    for name in ("tcp",):
        f = t[name]
        exact = f["verified"] == f["planned"] and not f["lost"]
        if kernel:
            head = (f"TCP delivered all {f['planned']} messages byte-exact" if exact else
                    f"TCP delivered {f['verified']} of {f['planned']} messages byte-exact, {f['lost']} not within "
                    f"the timeout")
            add(f"{head} through {p:g}% loss each way: the rule dropped {f['dropped_forward'] + f['dropped_backward']}"
                f" of its segments (data and ACKs) and the kernel retransmitted {f['retrans_segs']}.")
            udp = t["udp"]
            if f["p50_us"] and udp["p50_us"] and f["p50_us"] > 10 * udp["p50_us"]:
                add(f"TCP paid in time instead: its median round trip was {_ms(f['p50_us'])} ms and p99 "
                    f"{_ms(f['p99_us'])} ms, against {_ms(udp['p50_us'])} ms and {_ms(udp['p99_us'])} ms for UDP; a "
                    "byte stream delivers in order, so every message behind a lost segment waits for its "
                    "retransmission (head-of-line blocking: a fast retransmission waits for duplicate ACKs, a "
                    "retransmission timeout is at least 200 ms).")
            elif f["p99_us"] and udp["p99_us"]:
                add(f"TCP's round trips: median {_ms(f['p50_us'])} ms, p99 {_ms(f['p99_us'])} ms; UDP's: "
                    f"{_ms(udp['p50_us'])} ms and {_ms(udp['p99_us'])} ms.")
    for name in ("udp",) + (() if kernel else ("unix-dgram",)):
        f = t[name]
        dropped = f["dropped_forward"] + f["dropped_backward"]
        pct = 100 * f["lost_fraction"]
        sentence = (f"{name} lost {f['lost']} of {f['planned']} ({pct:.1f}%; {p:g}% each way predicts about "
                    f"{expected:.1f}% of round trips): {dropped} dropped by the "
                    f"{'loss rule' if kernel else 'relay'} ({f['dropped_forward']} requests, "
                    f"{f['dropped_backward']} replies)")
        if kernel:
            sentence += f", {f['rcvbuf_errors']} by the receive buffer"
            if f["other_in_errors"]:
                sentence += f", {f['other_in_errors']} by other UDP input errors"
        sentence += "; that accounts for every one." if f["unexplained"] == 0 else \
            f"; {f['unexplained']:+d} do not add up (lost minus what was counted)."
        add(sentence)
    unix = [n for n in TRANSPORTS if not get_transport(n).uses_ip]  # AF_UNIX: never on lo, so no rule there
    if kernel:
        untouched = [n for n in unix if t[n]["lost"] == 0 and t[n]["packets_seen"] == 0]
        if untouched:
            add(f"{_names(untouched)} lost 0: AF_UNIX never passes through netfilter, so the kernel loss rule "
                f"cannot touch it (the namespace's input hook saw {sum(t[n]['packets_seen'] for n in untouched)} "
                "packets during their runs).")
        for n in unix:
            if n not in untouched:
                add(f"{n}: {t[n]['lost']} lost, the input hook saw {t[n]['packets_seen']} packets: "
                    f"{t[n]['attribution']}.")
        netem = {t[n].get("netem") for n in TRANSPORTS}
        if netem == {False}:
            add("This kernel has no netem qdisc, so kernel mode makes loss (nftables) and rate (tbf) only; "
                "no delay.")
    else:
        streams = [n for n in TRANSPORTS if t[n]["kind"] != "datagram"]
        exact = [n for n in streams if t[n]["verified"] == t[n]["planned"]]
        if exact:
            add(f"{_names(exact)} delivered all {options.messages} messages byte-exact, but only because a relay "
                "cannot make a connection lose anything (loss: not applied): each side of the relay is its own "
                "connection over the host's loopback, which loses nothing. Run with --kernel to make TCP lose "
                "segments and repair them.")
        if t["unix-dgram"]["lost"]:
            add("A relay drops datagrams of any family, so unix-dgram lost like UDP here; in the kernel "
                "(--kernel) AF_UNIX never passes through netfilter and loses nothing.")


async def run(options: ExperimentOptions) -> ExperimentResult:
    mode = "kernel" if options.kernel else "relay"
    threshold, modulus = numgen_fraction(options.loss)
    result = ExperimentResult(
        name="loss", question=EXPERIMENT.question, mode=mode,
        options={"messages": options.messages, "loss": options.loss, "kernel": options.kernel, "seed": options.seed,
                 "timeout": options.timeout, "stream_timeout": max(options.timeout, STREAM_TIMEOUT),
                 "rate_msgs_per_s": RATE, "size": options.size or SIZE, "service": "echo",
                 **({"rule": f"numgen random mod {modulus} < {threshold} drop, at the input hook, each way"}
                    if options.kernel else {})},
    )
    results = await _run_all(options)
    for r in results:
        frames = (r.kernel or {}).pop("frames", None)
        if isinstance(frames, list):
            result.frames[r.transport] = frames
    transports = {r.transport: _facts(r, options.kernel) for r in results}
    result.facts = {"mode": mode, "loss": options.loss, "expected_round_trip_loss": 1 - (1 - options.loss) ** 2,
                    "transports": transports}
    where = "nftables rule at the input hook, in a private network namespace per transport" if options.kernel \
        else "netlab's relay"
    table = ResultTable(
        f"{options.messages} echo messages each, open loop at {RATE:g}/s, {100 * options.loss:g}% loss each way "
        f"({where})",
        ["transport", "sent", "verified", "lost", "dropped →/←", "RcvbufErrors", "RetransSegs", "unexplained",
         "p50 ms", "p99 ms", "not applied"], [])
    for name, f in transports.items():
        lost = f"{f['lost']} ({100 * f['lost_fraction']:.1f}%)" if f["lost"] else "0"
        table.rows.append([name, f["sent"], f["verified"], lost, f"{f['dropped_forward']}/{f['dropped_backward']}",
                           "-" if f["rcvbuf_errors"] is None else f["rcvbuf_errors"],
                           "-" if f["retrans_segs"] is None else f["retrans_segs"], f["unexplained"],
                           _ms(f["p50_us"]), _ms(f["p99_us"]), ", ".join(f["not_applied"]) or "-"])
    result.tables.append(table)
    _findings(result, options)
    for name, f in transports.items():
        if f["error"]:
            result.findings.append(f"{name}: the run failed: {f['error']}")
    return result


def plot(result: ExperimentResult, path: str) -> None:
    """Where each message went (bars), and what the loss cost in time (p50/p99)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = result.facts["transports"]
    names = list(t)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    dropped_by = "loss rule" if result.mode == "kernel" else "relay"
    stacks = [
        ("delivered byte-exact", [t[n]["verified"] for n in names], "tab:green"),
        (f"dropped by the {dropped_by}", [t[n]["dropped_forward"] + t[n]["dropped_backward"]
                                          if t[n]["kind"] == "datagram" else 0 for n in names], "tab:red"),
        ("receive buffer overflow", [t[n]["rcvbuf_errors"] or 0 for n in names], "tab:orange"),
        ("unexplained", [max(t[n]["unexplained"], 0) if t[n]["kind"] == "datagram" else t[n]["lost"]
                         for n in names], "tab:gray"),
    ]
    bottom = [0] * len(names)
    for label, values, colour in stacks:
        left.bar(names, values, bottom=bottom, label=label, color=colour)
        bottom = [b + v for b, v in zip(bottom, values)]
    for i, n in enumerate(names):
        if t[n]["retrans_segs"]:
            left.annotate(f"{t[n]['retrans_segs']} segments\nretransmitted", (i, bottom[i] / 2), ha="center",
                          va="center", fontsize="small", color="white")
    left.set_ylabel("messages")
    left.set_title(f"where each message went ({100 * result.facts['loss']:g}% loss each way, {result.mode})")
    left.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)
    width = 0.38
    xs = range(len(names))
    for offset, key, label in ((-width / 2, "p50_us", "p50"), (width / 2, "p99_us", "p99")):
        right.bar([x + offset for x in xs], [(t[n][key] or 0) / 1e3 for n in names], width, label=label)
    right.set_xticks(list(xs), names)
    right.set_yscale("log")
    right.set_ylabel("round trip (ms, log scale)")
    right.set_title("what it cost in time")
    right.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


EXPERIMENT = Experiment(
    name="loss",
    question="What does a lossy link do to TCP, UDP, unix-dgram and unix-seq? (TCP repairs it with time; "
             "UDP loses; AF_UNIX never sees it)",
    run=run,
    uses=("messages", "loss", "kernel", "seed", "timeout"),
    plot=plot,
)
