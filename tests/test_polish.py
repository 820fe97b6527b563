"""The outputs people look at, as a new user meets them (issue 19, item 5): bench without the
developers' targets and raw /proc/loadavg unless asked, compare's plot with one colour per
transport and a line style per service, and tls addresses whole at 80 columns.
(Completion of values is tested with the other conventions, in test_cli_conventions.py.)"""

from __future__ import annotations

import json
import re
from itertools import product
from pathlib import Path

import pytest
from helpers import invoke

import netlab.cli.common
from netlab import render
from netlab.experiments.compare import SERVICE_STYLES, TransportResult, plot, series_style
from netlab.transports import COMPARE_SCHEMES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_compare_plot_colour_is_the_transport_and_style_the_service(tmp_path: Path) -> None:
    pairs = list(product(COMPARE_SCHEMES, ("echo", "sum")))
    styles = {pair: series_style(*pair) for pair in pairs}
    assert len(set(styles.values())) == len(pairs) == 16  # 16 distinct lines
    for transport in COMPARE_SCHEMES:  # one colour per transport...
        assert styles[transport, "echo"][0] == styles[transport, "sum"][0]
    assert len({colour for colour, _ in styles.values()}) == len(COMPARE_SCHEMES)  # ...each its own
    assert {style for _, style in styles.values()} == set(SERVICE_STYLES.values())
    results = [TransportResult(t, s, "x", latencies_us=[float(10 + i) for i in range(20)], lost=i % 3)
               for i, (t, s) in enumerate(pairs)]
    picture = tmp_path / "c.png"
    plot(results, str(picture))
    assert picture.read_bytes().startswith(PNG_MAGIC)


def test_compare_tls_addresses_are_whole_at_80_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netlab.cli.common, "out", render.console(width=80))
    json_file = tmp_path / "c.json"
    result = invoke(["compare", "-n", "3", "--service", "sum", "--transports", "tls,unix-dgram,udp", "--delay", "1",
                     "--json-file", str(json_file)])
    assert result.exit_code == 0, result.output
    assert all(len(line) <= 80 for line in result.stdout.splitlines())
    for r in json.loads(json_file.read_text())["end"]["results"]:
        assert r["address"] in result.stdout and r["via"] in result.stdout  # "?ca=..." and all


BENCH = ["bench", "pingpong", "--transports", "unix", "--baselines", "trio", "--duration", "0.1", "--warmup", "0",
         "--repeats", "1"]
RAW_LOADAVG = re.compile(r"\d+/\d+ \d+")  # /proc/loadavg's running/total processes and last pid


@pytest.mark.process
def test_bench_keeps_targets_and_raw_loadavg_behind_details(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netlab.cli.common, "out", render.console(width=200))
    plain = invoke(BENCH)
    assert plain.exit_code == 0, plain.output
    assert "targets" not in plain.stdout and "within 5 %" not in plain.stdout
    assert not RAW_LOADAVG.search(plain.stdout)
    assert re.search(r"load [\d.]+ before, [\d.]+ after \(1-minute\)", plain.stdout)
    detailed = invoke([*BENCH, "--details"])
    assert detailed.exit_code == 0, detailed.output
    assert "targets" in detailed.stdout and "within 5 %" in detailed.stdout
    assert RAW_LOADAVG.search(detailed.stdout)
