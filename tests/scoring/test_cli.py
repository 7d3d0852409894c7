"""`comfygen score` and `comfygen scorers ...` through the real CLI entry point."""

from __future__ import annotations

import json

import pytest
from scoring_helpers import images
from typer.testing import CliRunner

from comfygen.server.cli import app
from comfygen.server.commands import register_all


@pytest.fixture(scope="module")
def runner():
    register_all(app)
    return CliRunner()


@pytest.fixture
def pngs(tmp_path):
    paths = []
    for i, im in enumerate(images(2)):
        p = tmp_path / f"img{i}.png"
        im.save(p)
        paths.append(str(p))
    return paths


def test_score_json_tiny(runner, pngs):
    res = runner.invoke(app, ["score", *pngs, "--prompt", "a cat", "--tiny", "--json", "--scorers", "hps,clipscore",
                              "--weight", "clipscore=2"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert [d["image"] for d in data] == pngs
    assert set(data[0]["raw"]) == {"hpsv21", "clipscore"} and "total" in data[0] and "mean_rank" in data[0]


def test_score_table_tiny(runner, pngs):
    res = runner.invoke(app, ["score", pngs[0], "--prompt", "a cat", "--tiny", "--scorers", "aesthetic"])
    assert res.exit_code == 0, res.output
    assert "aesthetic" in res.output and "img0.png" in res.output


def test_score_without_prompt_is_a_clear_error(pngs):
    from comfygen.server.cli import main

    with pytest.raises(SystemExit) as e:
        main(["score", pngs[0], "--tiny"])
    assert e.value.code == 1


def test_scorers_list_and_check(runner):
    res = runner.invoke(app, ["scorers", "list", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert rows["imagereward"]["configured"] and not rows["vlm"]["configured"]
    res = runner.invoke(app, ["scorers", "check", "--tiny", "--json"])
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert rows["pickscore"]["loadable"] and rows["pickscore"]["device"] == "cpu"
    assert rows["vlm"]["loadable"] is False


def test_scorers_stats_and_calibrate(runner, pngs):
    res = runner.invoke(app, ["scorers", "calibrate", *pngs, "-p", "a cat", "--tiny", "--scorers", "clipscore"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["scorers", "stats", "--json"])
    rows = {r["scorer"]: r for r in json.loads(res.output)}
    assert rows["clipscore"]["n"] == 2 and "calibrated" in rows["clipscore"]["source"]
    assert rows["hpsv21"]["n"] is None
