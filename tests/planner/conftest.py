"""A tiny planner trained once per session on synthetic triplets (see planner_helpers)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from planner_helpers import synthetic_rows  # noqa: E402


@pytest.fixture(scope="session")
def tiny_planner_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from comfygen.tools.planner import PlannerTrainConfig, table_from_rows, train_planner
    from comfygen.tools.planner.net import TrainParams

    out = tmp_path_factory.mktemp("planner") / "tiny"
    params = TrainParams(epochs=1, batch_size=16, lr=3e-3, head_lr=3e-2, min_steps=18)
    train_planner(table_from_rows(synthetic_rows()), out, PlannerTrainConfig(members=2, params=params), source="synthetic")
    return out
