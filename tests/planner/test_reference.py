"""The per-label reference of the selection benchmark, and `planner cv` reporting it beside the planner."""

from __future__ import annotations

import json

import pytest
from comfygen.tools.errors import PlannerError
from comfygen.tools.planner import table_from_rows
from comfygen.tools.planner.reference import (
    choose_min_prompts,
    fit_reference,
    per_label_reference,
    read_labels,
    reference_mean,
)
from planner_helpers import ANIMALS, synthetic_rows, write_csv


def _labelled(n_per_word: int, seed: int) -> list[dict]:
    rows = synthetic_rows(n_per_word=n_per_word, seed=seed)
    for r in rows:
        r["kind"] = "animal" if any(f" {w} " in r["prompt"] for w in ANIMALS) else "thing"
    return rows


def test_reference_takes_each_labels_best_flow_from_the_training_prompts():
    train, test = table_from_rows(_labelled(8, 0)), table_from_rows(_labelled(2, 1))
    kinds = {r["prompt_id"]: r["kind"] for r in _labelled(8, 0)}
    best, order = fit_reference(train, [kinds[p] for p in train.prompt_ids], min_prompts=5)
    assert train.flows[order[0]] == "photo"
    assert {k: train.flows[j] for k, j in best.items()} == {"animal": "creature", "thing": "photo"}
    test_kinds = {r["prompt_id"]: r["kind"] for r in _labelled(2, 1)}
    ref = reference_mean(best, order, test, [test_kinds[p] for p in test.prompt_ids])
    assert ref == pytest.approx(test.scores.max(1).mean())  # here the label says everything: the oracle
    assert ref > test.scores[:, order[0]].mean() + 0.3


def test_small_label_groups_fall_back_to_the_best_single_flow():
    rows = _labelled(8, 0)
    labels = {r["prompt_id"]: (r["prompt_id"] if r["kind"] == "thing" else "animal") for r in rows}
    table = table_from_rows(rows)
    best, order = fit_reference(table, [labels[p] for p in table.prompt_ids], min_prompts=2)
    assert set(best) == {"animal"}  # every 'thing' prompt is a group of one: below the minimum
    # with only noise to separate flows inside one-prompt groups, cross-validation keeps a minimum above 1
    assert choose_min_prompts(table, [labels[p] for p in table.prompt_ids]) > 1


def test_unlabelled_prompts_form_one_group_and_bad_columns_are_refused(tmp_path):
    path = write_csv(_labelled(4, 0), tmp_path / "t.csv")
    labels = read_labels(path, "kind")
    assert set(labels.values()) == {"animal", "thing"}
    table = table_from_rows(_labelled(4, 0))
    ref, m = per_label_reference(table, table, {})
    assert ref == pytest.approx(table.scores[:, table.flows.index("photo")].mean()) and m >= 1
    with pytest.raises(PlannerError, match="no column 'task'"):
        read_labels(path, "task")


def test_cli_cv_reports_the_share_of_the_gap_and_the_per_label_reference(tmp_path):
    from comfygen.server.cli import app
    from comfygen.server.commands import register_all
    from typer.testing import CliRunner

    register_all(app)
    path = write_csv(_labelled(4, 0), tmp_path / "all.csv")
    out = tmp_path / "cv.json"
    res = CliRunner().invoke(app, ["planner", "cv", "--triplets", str(path), "--folds", "2", "--members", "1",
                                   "--epochs", "1", "--reference-column", "kind", "--eval-flows", "photo,weak",
                                   "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "share of the best-single->oracle gap" in res.output
    assert "per-'kind' reference" in res.output
    report = json.loads(out.read_text())
    assert len(report["reference"]) == 2 and report["label_column"] == "kind"
    s = report["summary"]
    # trained on all three flows, choosing between photo and weak only: photo always wins, nothing to gain
    assert all(set(r["picks"]) <= {"photo", "weak"} for r in report["per_fold"])
    assert s["reference_share_mean"] == pytest.approx(0.0) and s["gain_mean"] <= 1e-9
    res = CliRunner().invoke(app, ["planner", "cv", "--triplets", str(path), "--folds", "2", "--reference-column",
                                   "kind", "--json", str(out)])
    assert res.exit_code == 0, res.output
    s = json.loads(out.read_text())["summary"]
    assert s["reference_share_mean"] > 0.5  # with 'creature' available the label alone tells which flow wins
    res = CliRunner().invoke(app, ["planner", "cv", "--triplets", str(path), "--eval-flows", "photo,nope"])
    assert res.exit_code != 0 and "nope" in str(res.exception)  # main() prints it as an error, exit 1
