"""Impairment decisions without sockets: rates within binomial bounds, seeds reproducible."""

from __future__ import annotations

import math
import random

import pytest

from netlab.experiments.impair import DatagramImpairer, ImpairmentError, Impairments, StreamImpairer

N = 20_000


def within_binomial(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    mean = n * p
    spread = sigmas * math.sqrt(n * p * (1 - p)) + 1
    return abs(count - mean) <= spread


def run(settings: Impairments, seed: int = 1, n: int = N, size: int = 32):
    imp = DatagramImpairer(settings, random.Random(seed))
    decisions = [imp.decide(bytes([i % 256]) * size, now=i * 0.001) for i in range(n)]
    return imp, decisions


@pytest.mark.parametrize("p", [0.01, 0.1, 0.5])
def test_loss_rate_is_binomial(p):
    imp, decisions = run(Impairments(loss=p))
    dropped = sum(1 for d in decisions if not d)
    assert dropped == imp.stats.dropped
    assert within_binomial(dropped, N, p)


def test_duplicate_rate_and_copies_identical():
    imp, decisions = run(Impairments(duplicate=0.05))
    doubles = [d for d in decisions if len(d) == 2]
    assert len(doubles) == imp.stats.duplicated
    assert within_binomial(len(doubles), N, 0.05)
    assert all(a[1] == b[1] for a, b in doubles)


def test_corrupt_flips_exactly_one_bit():
    imp, decisions = run(Impairments(corrupt=0.1))
    flipped = 0
    for i, d in enumerate(decisions):
        (when, payload), = d
        original = bytes([i % 256]) * 32
        diff = [a ^ b for a, b in zip(payload, original)]
        bits = sum(bin(x).count("1") for x in diff)
        assert bits in (0, 1)
        flipped += bits
    assert flipped == imp.stats.corrupted
    assert within_binomial(flipped, N, 0.1)


def test_reorder_holds_packets_behind_later_ones():
    imp, decisions = run(Impairments(reorder=0.1), n=5000)
    times = [d[0][0] for d in decisions]
    overtaken = sum(1 for i in range(len(times) - 1) if times[i] > times[i + 1])
    assert within_binomial(imp.stats.reordered, 5000, 0.1)
    # a held packet (held 5 ms, packets 1 ms apart) is passed by the next one
    assert overtaken >= imp.stats.reordered * 0.8


def test_delay_and_jitter_bounds():
    imp, decisions = run(Impairments(delay=0.010, jitter=0.002), n=2000)
    for i, d in enumerate(decisions):
        lag = d[0][0] - i * 0.001
        assert 0.008 - 1e-9 <= lag <= 0.012 + 1e-9


def test_gilbert_elliott_long_run_loss_and_bursts():
    p, r = 0.02, 0.25
    imp, decisions = run(Impairments(loss_burst=(p, r)), n=50_000)
    lost = [not d for d in decisions]
    rate = sum(lost) / len(lost)
    assert abs(rate - p / (p + r)) < 0.02
    bursts, current = [], 0
    for flag in lost:
        if flag:
            current += 1
        elif current:
            bursts.append(current)
            current = 0
    mean_burst = sum(bursts) / len(bursts)
    assert abs(mean_burst - 1 / r) < 0.6  # geometric with mean 1/r = 4


def test_same_seed_same_decisions_other_seed_differs():
    settings = Impairments(loss=0.1, duplicate=0.05, reorder=0.05, corrupt=0.05, delay=0.01, jitter=0.005)
    _, a = run(settings, seed=7, n=2000)
    _, b = run(settings, seed=7, n=2000)
    _, c = run(settings, seed=8, n=2000)
    assert a == b
    assert a != c


def test_rate_queue_drops_when_full():
    # 1000 B/s link, 2000-byte queue, 100-byte packets arriving 1 ms apart: 20 fit, then tail drop
    imp = DatagramImpairer(Impairments(rate=1000, queue=2000), random.Random(1))
    outs = [imp.decide(b"x" * 100, now=i * 0.001) for i in range(100)]
    passed = [o for o in outs if o]
    assert imp.stats.queue_dropped == 100 - len(passed)
    assert 15 <= len(passed) <= 25
    leave = [o[0][0] for o in passed]
    assert all(b - a >= 0.1 - 1e-9 for a, b in zip(leave, leave[1:]))  # 100 B at 1000 B/s


def test_stream_slice_keeps_bytes_and_order():
    imp = StreamImpairer(Impairments(slice=(1, 5), delay=0.002, jitter=0.002), random.Random(3))
    data = bytes(range(256)) * 40
    out = []
    for start in range(0, len(data), 1000):
        writes, cut = imp.decide(data[start:start + 1000], now=start / 1e6)
        assert cut is None
        out.extend(writes)
    assert b"".join(chunk for _, chunk in out) == data
    assert all(1 <= len(chunk) <= 5 for _, chunk in out)
    times = [when for when, _ in out]
    assert times == sorted(times)  # jitter never lets a chunk overtake the one before


@pytest.mark.parametrize("how", ["reset", "close"])
def test_stream_cut_after_bytes(how):
    settings = Impairments(reset_after=150) if how == "reset" else Impairments(close_after=150)
    imp = StreamImpairer(settings, random.Random(1))
    writes, cut = imp.decide(b"a" * 100, 0.0)
    assert cut is None and sum(len(c) for _, c in writes) == 100
    writes, cut = imp.decide(b"b" * 100, 0.0)
    assert cut == how and sum(len(c) for _, c in writes) == 50


@pytest.mark.parametrize("kwargs, words", [
    ({"loss": 1.5}, "probability"),
    ({"duplicate": -0.1}, "probability"),
    ({"delay": 0.001, "jitter": 0.002}, "jitter"),
    ({"slice": (5, 2)}, "slice"),
    ({"rate": 0}, "rate"),
    ({"loss_burst": (0.1, 0.0)}, "never leave"),
])
def test_bad_settings_are_refused_with_a_reason(kwargs, words):
    with pytest.raises(ImpairmentError, match=words):
        Impairments(**kwargs)
