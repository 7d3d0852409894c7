from __future__ import annotations

import re

import numpy as np
import pytest

from comfygen.tools.errors import PlannerError
from comfygen.tools.planner import Planner, choose, evaluate_planner, load_triplets, table_from_rows
from comfygen.tools.planner.net import pairwise_loss

from planner_helpers import synthetic_rows, write_csv


def test_planner_learns_which_flow_wins_from_words_in_the_prompt(tiny_planner_dir):
    planner = Planner.load(tiny_planner_dir)
    assert planner.best_single == "photo"
    assert planner.predict("a tiny dog in the picture", k=1)[0].flow_id == "creature"
    assert planner.predict("a blue horse in the picture", k=1)[0].flow_id == "creature"
    assert planner.predict("a tiny lamp in the picture", k=1)[0].flow_id == "photo"
    ranked = planner.predict("a tiny chair in the picture", k=3)
    assert [p.flow_id for p in ranked][-1] == "weak"
    test = table_from_rows(synthetic_rows(n_per_word=2, seed=7))
    report = evaluate_planner(planner, test)
    assert report.planner > report.best_single + 0.3
    assert report.planner == pytest.approx(report.oracle, abs=0.1)


def test_artifact_round_trip_gives_identical_predictions(tiny_planner_dir):
    a, b = Planner.load(tiny_planner_dir), Planner.load(tiny_planner_dir)
    prompts = ["a cat", "an old bottle on a table"]
    np.testing.assert_allclose(a.score_matrix(prompts), b.score_matrix(prompts), atol=1e-5)
    cfg = a.config
    assert cfg.flows == ["creature", "photo", "weak"] and cfg.members == 2
    assert cfg.trained_on["prompts"] == 32 and cfg.tau is not None
    sizes = sum(p.stat().st_size for p in tiny_planner_dir.iterdir())
    assert sizes < 2_000_000


def test_target_score_conditions_the_ranking(tiny_planner_dir):
    planner = Planner.load(tiny_planner_dir)
    low = planner.predict("a small car in the picture", k=1, target_score=0.0)[0]
    assert low.flow_id == "weak"
    with pytest.raises(PlannerError):
        planner.predict("a car", target_score=3.0)
    with pytest.raises(PlannerError):
        planner.predict("   ")


def test_missing_planner_dir_says_how_to_train(tmp_path):
    with pytest.raises(PlannerError) as e:
        Planner.load(tmp_path / "nope")
    assert "planner train" in e.value.hint


def test_choose_shrinks_toward_the_best_single_flow():
    order = [1, 0, 2]
    pred = np.array([3.2, 3.0, 1.0])
    avail = np.ones(3, bool)
    assert choose(pred, avail, order, tau=0.1) == 0  # advantage 0.2 > 0.1
    assert choose(pred, avail, order, tau=0.3) == 1  # not confident enough: keep the best single flow
    assert choose(pred, avail, order, tau=None) == 1
    assert choose(pred, np.array([True, False, True]), order, tau=0.3) == 0  # best single missing: next in order
    assert choose(pred, np.array([False, False, True]), order, tau=0.3) == 2


def test_pairwise_loss_ignores_per_prompt_offsets_and_missing_cells():
    import torch

    target = torch.tensor([[1.0, 2.0, float("nan")], [0.0, 1.0, 3.0]])
    mask = torch.isfinite(target)
    pred = torch.tensor([[5.0, 6.0, 100.0], [-2.0, -1.0, 1.0]])
    assert float(pairwise_loss(pred, target, mask, abs_weight=0.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(pairwise_loss(pred, target, mask, abs_weight=0.1)) > 0


def test_triplet_loader_averages_repeats_and_rejects_bad_files(tmp_path):
    rows = [{"prompt_id": "a", "prompt": "x", "flow": "f", "score": 1.0},
            {"prompt_id": "a", "prompt": "x", "flow": "f", "score": 3.0},
            {"prompt_id": "b", "prompt": "y", "flow": "g", "score": 2.0}]
    table = load_triplets(write_csv(rows, tmp_path / "t.csv"))
    assert table.flows == ["f", "g"] and table.scores[0, 0] == 2.0 and np.isnan(table.scores[0, 1])
    (tmp_path / "bad.csv").write_text("prompt,flow,score\nx,f,1\n")
    with pytest.raises(PlannerError) as e:
        load_triplets(tmp_path / "bad.csv")
    assert "prompt_id" in str(e.value)


def test_cli_eval_last_line_is_exact_and_predict_plan_work(tiny_planner_dir, tmp_path):
    from typer.testing import CliRunner

    from comfygen.server.cli import app
    from comfygen.server.commands import register_all

    register_all(app)
    test_csv = write_csv(synthetic_rows(n_per_word=1, seed=3), tmp_path / "test.csv")
    runner = CliRunner()
    res = runner.invoke(app, ["planner", "eval", "--planner", str(tiny_planner_dir), "--triplets", str(test_csv)])
    assert res.exit_code == 0, res.output
    last = res.output.strip().splitlines()[-1]
    assert re.fullmatch(r"planner=\d+\.\d+ best_single=\d+\.\d+ oracle=\d+\.\d+", last), last
    res = runner.invoke(app, ["plan", "a cat on a sofa", "--planner", str(tiny_planner_dir), "--json"])
    assert res.exit_code == 0, res.output
    assert '"flow_id": "creature"' in res.output
    res = runner.invoke(app, ["planner", "predict", "a lamp", "--planner", str(tiny_planner_dir), "-k", "2"])
    assert res.exit_code == 0 and "photo" in res.output


def test_time_budget_shortens_training_on_a_slow_machine():
    from comfygen.tools.planner.net import TrainParams, train_member

    seen = []
    targets = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.0, 0.2]])
    params = TrainParams(batch_size=4, min_steps=40, time_budget_s=1e-3)
    train_member(["a", "b", "c", "d"], targets, params, seed=0, on_step=lambda s, total, loss: seen.append((s, total)))
    assert seen[-1] == (10, 10)
