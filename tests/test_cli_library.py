"""What left the CLI for the library: the signal drain (`netlab.lifecycle`), the output
writer (`netlab.output`), the table renderer (`netlab.render`) and compare's conclusions."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import trio
from rich.console import Console

from netlab import render
from netlab.errors import Interrupted, OutputError
from netlab.experiments.compare import CompareSettings, conclusions
from netlab.experiments.impair import Impairments
from netlab.lifecycle import run_until_signalled
from netlab.output import Outputs

# -- lifecycle: signals are sent only while run_until_signalled's receiver is open ----------


async def _sleeper(task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    task_status.started("server")
    await trio.sleep_forever()


async def test_first_signal_drains_then_the_run_ends() -> None:
    drained: list[str] = []

    async def drain(value: str) -> None:
        drained.append(value)

    await run_until_signalled(_sleeper, started=lambda value: os.kill(os.getpid(), signal.SIGTERM), drain=drain,
                              grace=1.0)
    assert drained == ["server"]


async def test_second_signal_during_the_drain_stops_at_once() -> None:
    draining = trio.Event()

    async def drain(value: str) -> None:
        draining.set()
        await trio.sleep_forever()  # a drain that would never end

    async def signal_twice() -> None:
        await draining.wait()
        os.kill(os.getpid(), signal.SIGINT)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(signal_twice)
        with pytest.raises(Interrupted):
            await run_until_signalled(_sleeper, started=lambda value: os.kill(os.getpid(), signal.SIGTERM),
                                      drain=drain)


async def test_without_a_drain_the_first_signal_stops() -> None:
    seen: list[str] = []

    def started(value: str) -> None:
        seen.append(value)
        os.kill(os.getpid(), signal.SIGINT)

    await run_until_signalled(_sleeper, started=started)
    assert seen == ["server"]


async def test_a_task_that_ends_ends_the_run() -> None:
    done: list[bool] = []

    async def job(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        done.append(True)

    await run_until_signalled(job)
    assert done == [True]


async def test_an_error_before_started_comes_out() -> None:
    async def broken(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        raise OutputError("cannot start")

    with pytest.RaisesGroup(OutputError, flatten_subgroups=True):
        await run_until_signalled(broken)


# -- output ---------------------------------------------------------------------------------


def test_outputs_checks_directories_before_anything_runs(tmp_path: Path) -> None:
    Outputs(json=tmp_path / "a.json").check()
    with pytest.raises(OutputError, match=f"directory {tmp_path / 'missing'} does not exist$"):
        Outputs(plot=tmp_path / "missing" / "a.png").check()


def test_outputs_writes_json_then_plot(tmp_path: Path) -> None:
    wrote: list[Path] = []
    drawn: list[str] = []
    outputs = Outputs(json=tmp_path / "a.json", plot=tmp_path / "a.png")
    outputs.write(lambda: {"x": 1}, drawn.append, indent=1, wrote=wrote.append)
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    # the plot is drawn beside its file, with its extension, and renamed into place (never
    # written through a link planted where it goes)
    assert len(drawn) == 1 and Path(drawn[0]).parent == tmp_path and drawn[0].endswith(".png")
    assert (tmp_path / "a.png").exists() and not Path(drawn[0]).exists()
    assert wrote == [tmp_path / "a.json", tmp_path / "a.png"]
    with pytest.raises(OutputError, match="cannot write"):
        Outputs(json=tmp_path).write(lambda: {})  # a directory is not a file


# -- render ---------------------------------------------------------------------------------


def test_one_table_renderer() -> None:
    table = render.table(["name", render.Column("count", right=True)], [["a", 1], ["b", 22]], title="t")
    console = Console(width=80, record=True)
    console.print(table)
    text = console.export_text()
    assert "name" in text and "22" in text and "t" in text
    assert [c.justify for c in table.columns] == ["left", "right"]


# -- compare's conclusions ------------------------------------------------------------------


def test_compare_conclusions() -> None:
    assert conclusions(CompareSettings()) == []
    lossy = CompareSettings(forward=Impairments(loss=0.5), backward=Impairments())
    said = conclusions(lossy)
    assert len(said) == 1 and said[0].startswith("Expected on datagram transports: 50.0% of round trips lost")
    held = CompareSettings(forward=Impairments(reorder=0.1), backward=Impairments(reorder=0.1))
    assert conclusions(held)[-1].startswith("Closed loop keeps one message in flight")
    assert len(conclusions(CompareSettings(forward=Impairments(reorder=0.1), backward=Impairments(), rate=100))) == 1
