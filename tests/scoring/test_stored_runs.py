"""Scores of runs written into the run store."""

from __future__ import annotations

import pytest
from scoring_helpers import images

from comfygen.tools.errors import ScoringError
from comfygen.tools.images import save_png_atomic
from comfygen.tools.scoring.ensemble import Ensemble
from comfygen.tools.scoring.stored_runs import score_run, score_runs
from comfygen.tools.store import RunStore


def _finished_run(store, tmp_path, prompt, n, seed):
    rec = store.create(prompt=prompt, flow_id="sdxl-base", graph={"1": {"class_type": "X", "inputs": {}}}, seed=seed)
    outs = []
    for i, im in enumerate(images(n, seed=seed)):
        o = save_png_atomic(im, tmp_path / f"{rec.id}_{i}.png", {"comfygen": {"run": rec.id}})
        outs.append(o.model_copy(update={"index": i}))
    return store.finish(rec.id, outputs=outs)


@pytest.fixture(scope="module")
def ensemble():
    return Ensemble.from_settings(None, ["hpsv21", "clipscore", "aesthetic"], tiny=True)


def test_score_run_writes_scores_total_and_breakdown(tmp_path, ensemble):
    with RunStore(tmp_path / "runs.sqlite") as store:
        rec = _finished_run(store, tmp_path, "a cat on a sofa", 3, seed=1)
        results = score_run(store, rec.id, ensemble)
        got = store.get(rec.id)
    assert len(results) == 3
    assert set(got.scores) == {"hpsv21", "clipscore", "aesthetic"}
    assert got.scores["hpsv21"] == pytest.approx(sum(r.raw["hpsv21"] for r in results) / 3)
    assert got.score_total == pytest.approx(sum(r.total for r in results) / 3)
    scoring = got.scoring
    assert scoring.scored_by == "score" and scoring.aggregate == "mean" and scoring.method == "ensemble"
    assert [im.index for im in scoring.images] == [0, 1, 2]
    assert [im.path for im in scoring.images] == [o.path for o in rec.outputs]
    assert scoring.images[1].raw == pytest.approx(results[1].raw)
    assert scoring.images[1].z == pytest.approx(results[1].z)
    assert scoring.best == max(range(3), key=lambda i: results[i].total)
    assert scoring.weights["hpsv21"] == 1.0 and scoring.stats["hpsv21"].source
    # the stored raw scores re-standardize to the same totals
    again = ensemble.combine({n: [im.raw[n] for im in scoring.images] for n in got.scores})
    assert [r.total for r in again] == pytest.approx([r.total for r in results])


def test_score_runs_batches_several_runs_and_matches_single(tmp_path, ensemble):
    with RunStore(tmp_path / "runs.sqlite") as store:
        a = _finished_run(store, tmp_path, "a red car", 2, seed=2)
        b = _finished_run(store, tmp_path, "a dog in the park", 3, seed=3)
        both = score_runs(store, [a.id, b.id], ensemble)
        alone = score_run(store, b.id, ensemble)
        for x, y in zip(both[b.id], alone, strict=True):
            assert x.raw == pytest.approx(y.raw, abs=1e-5)
        assert store.get(a.id).score_total is not None
        assert score_runs(store, [a.id], ensemble, skip_scored=True) == {}


def test_unfinished_run_cannot_be_scored(tmp_path, ensemble):
    with RunStore(tmp_path / "runs.sqlite") as store:
        rec = store.create(prompt="p", flow_id="f", graph={"1": {"class_type": "X", "inputs": {}}})
        with pytest.raises(ScoringError, match="no output images"):
            score_run(store, rec.id, ensemble)


def test_stamp_png_writes_scores_into_the_file(tmp_path, ensemble):
    import json

    from comfygen.tools.images import read_png_text

    with RunStore(tmp_path / "runs.sqlite") as store:
        rec = _finished_run(store, tmp_path, "a cat", 1, seed=4)
        score_run(store, rec.id, ensemble, stamp_png=True)
    meta = json.loads(read_png_text(rec.outputs[0].path)["comfygen"])
    assert meta["run"] == rec.id and "total" in meta["scores"]
