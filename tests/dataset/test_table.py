"""The one writer of the user's score table keeps what other writers saved meanwhile."""

from __future__ import annotations

import pytest
from comfygen.flow_library.score_table import ScoreTable
from comfygen.tools.dataset.builder import Triplet
from comfygen.tools.dataset.table import add_calibration, add_to_score_table, observation


def test_writes_pool_into_the_file_as_it_is_now(tmp_path):
    path = tmp_path / "score_table.json"
    first = add_to_score_table(path, observation("sd15-base", ["animals"], 0.4, "own runs", metric="m"))
    assert first.metric == "m" and path.is_file()
    # another process (a calibration) writes meanwhile; the next online update keeps its cells
    add_calibration([Triplet(prompt_id="p0", prompt="a car", flow="sdxl-base", score=1.0, seed=0,
                             categories=["vehicles"], run_id="r0")], path)
    add_to_score_table(path, observation("sd15-base", ["animals"], 0.8, "own runs"))
    table = ScoreTable.load(path)
    assert table.metric == "m"
    assert table.cell("sd15-base", "animals").n == 2 and table.cell("sd15-base", "animals").mean == pytest.approx(0.6)
    assert table.cell("sdxl-base", "vehicles").sources == ["calibration"]


WRITER = """
import sys
from pathlib import Path
from comfygen.tools.dataset.table import add_to_score_table, observation
for i in range(int(sys.argv[3])):
    add_to_score_table(Path(sys.argv[1]), observation(sys.argv[2], ["animals"], float(i), "own runs"))
"""


def test_concurrent_writers_lose_no_cell(tmp_path):
    """Four processes each add 25 observations at the same time: every one is in the file afterwards."""
    import subprocess
    import sys

    path = tmp_path / "score_table.json"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"flow-{k}", "25"]) for k in range(4)]
    assert [p.wait(120) for p in procs] == [0] * 4
    table = ScoreTable.load(path)
    assert [table.cell(f"flow-{k}", "animals").n for k in range(4)] == [25] * 4


def test_a_file_system_without_locks_still_gets_the_write(tmp_path, monkeypatch):
    import fcntl

    def no_locks(fd, op):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    path = tmp_path / "score_table.json"
    add_to_score_table(path, observation("sd15-base", ["animals"], 0.4, "own runs"))
    assert ScoreTable.load(path).cell("sd15-base", "animals").n == 1
