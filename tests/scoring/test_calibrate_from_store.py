"""`comfygen scorers calibrate --from-store` reads every scored run, whichever path scored it.

Before the run store kept one typed score record, calibration read only the shape that
``tools/scoring/stored_runs.py`` wrote: runs scored by MCP ``generate``, by a noise search or by an evaluation
were silently left out. Here each of the four paths scores its own runs with known raw values, and the
calibrated statistics must count all of them.
"""

from __future__ import annotations

import asyncio
import json
import statistics
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest
from comfygen.evals.metrics import Sample
from comfygen.evals.scoring import score_samples
from comfygen.server.cli import app
from comfygen.server.commands import register_all
from comfygen.tools.app.jobs import Job
from comfygen.tools.app.progress import ProgressTracker
from comfygen.tools.images import save_png_atomic
from comfygen.tools.scoring.ensemble import ReferenceStats, ScoreResult, ScorerStats
from comfygen.tools.scoring.stored_runs import score_run, stored_raw_scores
from comfygen.tools.search.engine import Candidate, SearchConfig, SearchResult
from comfygen.tools.search.initial_noise import NoiseSpec
from comfygen.tools.search.flow_search import _record_scores
from comfygen.tools.app.service import ComfyGen
from comfygen.tools.settings import Settings, get_settings
from comfygen.tools.store import RunStore
from PIL import Image
from typer.testing import CliRunner

GRAPH = {"1": {"class_type": "X", "inputs": {}}}


def _result(v: float) -> ScoreResult:
    return ScoreResult(total=v - 21.0, raw={"pickscore": v}, z={"pickscore": v - 21.0})


def _finished(store: RunStore, tmp_path, n: int, tag: str):
    rec = store.create(prompt=f"a {tag}", flow_id="sd15-base", graph=GRAPH, seed=len(tag))
    rng = np.random.default_rng(len(tag))
    outs = [save_png_atomic(Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)),
                            tmp_path / f"{rec.id}_{i}.png").model_copy(update={"index": i}) for i in range(n)]
    return store.finish(rec.id, outputs=outs)


class FixedEnsemble:
    """What score_runs needs of an Ensemble, with fixed raw scores."""

    weights: ClassVar[dict[str, float]] = {"pickscore": 1.0}
    stats = ReferenceStats(scorers={"pickscore": ScorerStats(mean=21.0, std=1.0, source="test")})

    def __init__(self, values: list[float]):
        self.values = values

    def score(self, images, prompts):
        assert len(images) == len(self.values)
        return [_result(v) for v in self.values]


def _by_generate_job(store, tmp_path, values):
    rec = _finished(store, tmp_path, len(values), "job")

    async def score_images(paths, prompt):
        return [_result(v) for v in values], None

    cg = ComfyGen(Settings(home=tmp_path, online_table_updates=False), store=store)
    cg.score_images = score_images  # type: ignore[method-assign]
    job = Job(flow_id=rec.flow_id, why=None, prompt=rec.prompt, tracker=ProgressTracker())
    out = asyncio.run(cg._finish(job, rec))
    assert out.scores.total == pytest.approx(max(values) - 21.0)
    return rec.id


def _by_score_run(store, tmp_path, values):
    rec = _finished(store, tmp_path, len(values), "scored")
    score_run(store, rec.id, FixedEnsemble(values))  # type: ignore[arg-type]
    return rec.id


def _by_noise_search(store, tmp_path, values):
    rec = _finished(store, tmp_path, len(values), "search")
    cands = [Candidate(id=i, round=0, role="random", noise=NoiseSpec.seeded(7, i), run_id=rec.id, image=o.path,
                       raw={"pickscore": v}, total=v - 21.0, rank=len(values) - i)
             for i, (o, v) in enumerate(zip(rec.outputs, values))]
    result = SearchResult(algorithm="random", prompt=rec.prompt, config=SearchConfig(), candidates=cands,
                          best=cands[-1])
    _record_scores(store, result, "s1")
    return rec.id


def _by_evaluation(store, tmp_path, value):
    rec = _finished(store, tmp_path, 1, "evaluated")

    class Const:
        def score(self, images, prompts):
            import torch

            return torch.full((len(images),), value)

    sample = Sample(strategy="a", prompt_id="p0", prompt=rec.prompt, run_id=rec.id, image=rec.outputs[0].path)
    cfg = SimpleNamespace(scorers=["pickscore"], tiny_scorers=False, geneval=None)
    assert score_samples([sample], cfg, {}, settings=None, store=store, write=lambda s: None,
                         scorer_factory=lambda n: Const()) == 1
    return rec.id


def test_calibrate_from_store_reads_runs_of_every_scoring_path(tmp_path):
    settings = get_settings()
    values = {"job": [20.0, 21.0], "score": [22.0, 23.0], "search": [24.0, 25.0, 26.0], "eval": [27.0]}
    with RunStore(settings.store_path) as store:
        ids = {"job": _by_generate_job(store, tmp_path, values["job"]),
               "score": _by_score_run(store, tmp_path, values["score"]),
               "search": _by_noise_search(store, tmp_path, values["search"]),
               "eval": _by_evaluation(store, tmp_path, values["eval"][0])}
        _finished(store, tmp_path, 1, "unscored")  # no scores: nothing to read
        scored_by = {k: store.get(i).scoring.scored_by for k, i in ids.items()}
        assert scored_by == {"job": "generate", "score": "score", "search": "noise_search", "eval": "eval"}
        assert sorted(stored_raw_scores(store)["pickscore"]) == sorted(v for vs in values.values() for v in vs)

    runner = CliRunner()
    register_all(app)
    res = runner.invoke(app, ["scorers", "calibrate", "--from-store"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["scorers", "stats", "--json"])
    rows = {r["scorer"]: r for r in json.loads(res.output)}
    every = [v for vs in values.values() for v in vs]
    assert rows["pickscore"]["n"] == len(every) == 8
    assert rows["pickscore"]["mean"] == pytest.approx(statistics.mean(every))
    assert rows["pickscore"]["std"] == pytest.approx(statistics.stdev(every))
