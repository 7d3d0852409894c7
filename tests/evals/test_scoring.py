"""Scoring an evaluation's images: each image opened once, stored scores reused, new ones stored per image."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from comfygen.evals import scoring
from comfygen.evals.metrics import Sample
from comfygen.tools.images import save_png_atomic
from comfygen.tools.store import RunStore
from PIL import Image


class Const:
    def __init__(self, value: float):
        self.value, self.calls = value, 0

    def score(self, images, prompts):
        self.calls += 1
        return torch.full((len(images),), self.value)


def _samples(store, tmp_path, n):
    out = []
    for i in range(n):
        rec = store.create(prompt=f"prompt {i}", flow_id="sd15-base", graph={"1": {"class_type": "X", "inputs": {}}})
        o = save_png_atomic(Image.new("RGB", (8, 8), (i, 0, 0)), tmp_path / f"{rec.id}_00.png")
        store.finish(rec.id, outputs=[o])
        out.append(Sample(strategy="a", prompt_id=f"p{i}", prompt=rec.prompt, run_id=rec.id, image=o.path))
    return out


def test_each_image_is_opened_once_for_every_scorer_and_scores_are_reused(tmp_path, monkeypatch):
    opened: list[str] = []
    real_open = scoring._open
    monkeypatch.setattr(scoring, "_open", lambda p: (opened.append(p), real_open(p))[1])
    cfg = SimpleNamespace(scorers=["pickscore", "clipscore", "aesthetic"], tiny_scorers=False, geneval=None)
    scorers = {"pickscore": Const(21.0), "clipscore": Const(0.25), "aesthetic": Const(5.0)}
    with RunStore(tmp_path / "runs.sqlite") as store:
        samples = _samples(store, tmp_path, 3)
        n = scoring.score_samples(samples, cfg, {}, settings=None, store=store, write=lambda s: None,
                                  scorer_factory=scorers.__getitem__)
        assert n == 3 and sorted(opened) == sorted(s.image for s in samples)
        assert all(s.scores == {"pickscore": 21.0, "clipscore": 0.25, "aesthetic": 5.0} for s in samples)
        stored = store.get(samples[0].run_id)
        assert stored.scoring.scored_by == "eval" and stored.scoring.images[0].path == samples[0].image
        assert stored.scores == {"pickscore": 21.0, "clipscore": 0.25, "aesthetic": 5.0}

        # a second evaluation over the same images scores nothing and opens nothing
        opened.clear()
        again = [s.model_copy(update={"scores": {}}) for s in samples]
        assert scoring.score_samples(again, cfg, {}, settings=None, store=store, write=lambda s: None,
                                     scorer_factory=lambda name: (_ for _ in ()).throw(AssertionError(name))) == 3
        assert opened == [] and again[2].scores["aesthetic"] == 5.0

