"""`netlab compare` measured through the impairment relay: are its figures honest?

Each impaired result is checked against the relay's own account of what it did (the
``relay`` figures in the result), and rates against their settings within binomial
bounds. Open loop (``rate``) runs keep every case to a second or two. Latency is only
checked from below, by the configured delay: nothing here is about speed.

The library runs inside trio tests; the CLI runs in sync tests (through CliRunner, since
``trio.run`` cannot nest).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import netlab.cli.common
from netlab.experiments.compare import CompareSettings, TransportResult, plot, report, run_compare
from netlab.experiments.impair import Impairments
from rich.console import Console

from helpers import INT_COLUMNS, assert_no_traceback, invoke, table_rows, within_binomial

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def by_transport(results: list[TransportResult]) -> dict[str, TransportResult]:
    assert len({r.transport for r in results}) == len(results)
    return {r.transport: r for r in results}


def relay_figures(result: TransportResult) -> tuple[dict, dict]:
    assert result.relay is not None, f"{result.transport} did not go through a relay"
    return result.relay["forward"], result.relay["backward"]  # type: ignore[return-value]


async def test_udp_loses_what_the_relay_drops_streams_lose_nothing_and_wait_instead() -> None:
    n, p, delay = 5000, 0.1, 0.002
    settings = CompareSettings(transports=("udp", "tcp", "unix"), services=("echo",), messages=n, rate=5000,
                               forward=Impairments(loss=p, delay=delay), backward=Impairments(delay=delay), seed=5)
    results = by_transport(await run_compare(settings))

    udp = results["udp"]
    forward, backward = relay_figures(udp)
    assert udp.error is None and udp.planned == udp.sent == n
    assert within_binomial(udp.lost, n, p)
    assert udp.lost == forward["dropped"] and backward["dropped"] == 0
    assert udp.delivered == udp.verified == n - udp.lost
    assert udp.duplicated == udp.corrupted == udp.truncated == 0
    assert udp.not_applied == []
    assert udp.boundaries_kept

    for name in ("tcp", "unix"):
        stream = results[name]
        forward, backward = relay_figures(stream)  # the delay still puts a relay in front
        assert stream.error is None
        assert stream.lost == 0
        assert stream.sent == stream.delivered == stream.verified == n
        assert stream.not_applied == ["loss"]
        assert forward["dropped"] == backward["dropped"] == 0
        assert forward["bytes"] == backward["bytes"] == n * settings.size

    for r in results.values():
        assert r.p50_us is not None and r.p50_us >= 2 * delay * 1e6  # a lower bound: the delay, each way


async def test_slice_breaks_tcp_boundaries_and_nothing_else() -> None:
    n = 300
    settings = CompareSettings(transports=("tcp",), services=("echo", "sum"), messages=n,
                               forward=Impairments(slice=(1, 20)), backward=Impairments(slice=(1, 20)), seed=2)
    for r in await run_compare(settings):
        assert r.error is None
        assert r.boundaries_kept is False
        assert r.reads > r.replies == n  # every reply arrived in several reads
        assert r.sent == r.delivered == r.verified == n
        assert r.lost == r.corrupted == r.duplicated == 0
        forward, backward = relay_figures(r)
        assert forward["passed"] > n and backward["passed"] > n  # re-chunked both ways


async def test_duplicates_counted_are_the_relays() -> None:
    n = 1000
    settings = CompareSettings(transports=("udp", "unix-dgram"), services=("echo", "sum"), messages=n, rate=4000,
                               forward=Impairments(duplicate=0.05), backward=Impairments(duplicate=0.03), seed=8)
    for r in await run_compare(settings):
        forward, backward = relay_figures(r)
        assert within_binomial(forward["duplicated"], n, 0.05)
        assert within_binomial(backward["duplicated"], backward["received"], 0.03)
        # a duplicated request is answered twice; a duplicated reply arrives twice
        assert r.duplicated == forward["duplicated"] + backward["duplicated"] > 0
        assert r.lost == r.corrupted == 0
        assert r.delivered == r.verified == n
        assert r.boundaries_kept  # each copy is a whole datagram


async def test_corruption_is_counted_once_and_blamed_on_no_other_message() -> None:
    """A flipped bit may land in the sequence number: such a reply must not count as a
    reply to another message (a phantom duplicate) and leave its own message lost."""
    n = 1000
    settings = CompareSettings(transports=("udp", "unix-dgram"), services=("echo",), messages=n, rate=4000,
                               forward=Impairments(corrupt=0.1), backward=Impairments(), seed=1)
    for r in await run_compare(settings):
        forward, _ = relay_figures(r)
        assert within_binomial(forward["corrupted"], n, 0.1)
        assert r.corrupted == forward["corrupted"]
        assert r.delivered == r.verified == n - r.corrupted
        assert r.lost == r.duplicated == 0
        assert r.replies == r.reads == n and r.boundaries_kept  # datagrams keep their boundaries


async def test_same_seed_same_figures() -> None:
    settings = CompareSettings(transports=("unix-dgram",), services=("sum",), messages=500, rate=4000,
                               forward=Impairments(loss=0.1, duplicate=0.05), backward=Impairments(loss=0.05),
                               seed=21)
    counts = ("sent", "delivered", "verified", "lost", "duplicated", "corrupted", "replies")
    first, second = [(await run_compare(settings))[0] for _ in range(2)]
    assert first.relay == second.relay
    assert [getattr(first, c) for c in counts] == [getattr(second, c) for c in counts]


async def test_report_has_iperf3_shape_and_adds_up(tmp_path: Path) -> None:
    settings = CompareSettings(transports=("udp", "tcp"), services=("echo",), messages=200, rate=2000,
                               forward=Impairments(loss=0.1, delay=0.001), backward=Impairments(), seed=4)
    results = await run_compare(settings)
    document = json.loads(json.dumps(report(settings, results)))  # JSON all the way down
    assert set(document) == {"start", "intervals", "end"}  # iperf3 -J; "error" only on failure
    assert document["start"]["settings"]["forward"]["loss"] == 0.1
    assert document["start"]["settings"]["forward"]["text"] == "loss 0.1, delay 1 ms"
    assert {"netlab", "python", "kernel", "cores"} <= set(document["start"]["environment"])
    summaries = {r["transport"]: r for r in document["end"]["results"]}
    for r in results:
        summary = summaries[r.transport]
        assert summary["sent"] == r.sent == 200
        assert summary["lost"] == r.lost and summary["boundaries_kept"] == r.boundaries_kept
        assert "latencies_us" not in summary
        intervals = [s for i in document["intervals"] for s in i["streams"] if s["netlab"]["transport"] == r.transport]
        assert sum(i["netlab"]["sent"] for i in intervals) == r.sent
        assert sum(i["netlab"]["delivered"] for i in intervals) == sum(i["packets"] for i in intervals) == r.verified
    assert summaries["tcp"]["not_applied"] == ["loss"]

    picture = tmp_path / "compare.png"
    plot(results, str(picture))
    assert picture.read_bytes().startswith(PNG_MAGIC)


# -- the CLI ---------------------------------------------------------------------------------


@pytest.fixture
def piped_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables rendered as for a pipe, whatever the terminal pytest runs in (see test_cli.py)."""
    monkeypatch.setattr(netlab.cli.common, "out", Console(width=160))


def test_cli_compare_table_equals_json_and_states_the_expectation(tmp_path: Path, piped_console: None) -> None:
    json_file, png_file = tmp_path / "c.json", tmp_path / "c.png"
    result = invoke(["compare", "--transports", "udp,tcp", "--loss", "0.1/0", "--rate", "4000", "-n", "2000",
                     "--seed", "3", "--json-file", str(json_file), "--plot", str(png_file)])
    assert result.exit_code == 0, result.output
    assert_no_traceback(result)
    document = json.loads(json_file.read_text())
    results = document["end"]["results"]
    table = table_rows(result.stdout)
    assert table == {(r["transport"], r["service"]): {c: r[c] for c in INT_COLUMNS} for r in results}
    assert set(table) == {("udp", "echo"), ("udp", "sum"), ("tcp", "echo"), ("tcp", "sum")}
    for r in results:
        assert r["sent"] == 2000
        if r["transport"] == "udp":
            assert within_binomial(r["lost"], 2000, 0.1)
            assert r["lost"] == r["relay"]["forward"]["dropped"]
            assert r["relay"]["backward"]["dropped"] == 0
        else:
            assert r["lost"] == 0 and r["not_applied"] == ["loss"]
            assert r["relay"] is None and r["via"] is None  # nothing a stream relay could do
    assert ("Expected on datagram transports: 10.0% of round trips lost (10.0% of requests, 0.0% of the replies "
            "left)") in " ".join(result.stdout.split())
    assert png_file.read_bytes().startswith(PNG_MAGIC)
    assert f"wrote {json_file}" in result.output and f"wrote {png_file}" in result.output


def test_cli_compare_boundaries_column_counts_replies(piped_console: None) -> None:
    result = invoke(["compare", "--transports", "udp", "--services", "echo", "--corrupt", "0.2/0", "--rate", "4000",
                     "-n", "300", "--seed", "2"])
    assert result.exit_code == 0, result.output
    delivery = result.stdout.split("round trip in µs")[0]
    row = [line for line in delivery.splitlines() if line.split()[:2] == ["udp", "echo"]]
    assert len(row) == 1 and "300→300 kept" in row[0], row
    counts = table_rows(result.stdout)[("udp", "echo")]
    assert counts["lost"] == counts["duplicated"] == 0
    assert counts["delivered"] + counts["corrupted"] == counts["sent"] == 300
