"""The search's verifiers are a view of the scoring ensemble: same scorers, weights, statistics and totals."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from comfygen.tools.errors import ScoringError
from comfygen.tools.scoring.ensemble import Ensemble
from comfygen.tools.search.verifiers import VerifierSet


class Red:
    """Raw score: the mean red level times a scale, so scorers on different scales can be combined."""

    def __init__(self, name: str, scale: float):
        self.name, self.scale, self.calls = name, scale, []

    def score(self, images, prompts):
        self.calls.append(len(images))
        return torch.tensor([self.scale * im.getpixel((0, 0))[0] / 255 for im in images])


def images(*reds: int) -> list[Image.Image]:
    return [Image.new("RGB", (4, 4), (r, 10, 10)) for r in reds]


def ensemble() -> Ensemble:
    return Ensemble([Red("big", 300.0), Red("small", 0.3)], weights={"big": 3.0, "small": 1.0},
                    stats={"big": {"mean": 150.0, "std": 50.0}, "small": {"mean": 0.2, "std": 0.1}})


def test_a_candidates_total_is_what_the_ensemble_scores_that_image():
    ens, imgs = ensemble(), images(0, 60, 128, 200, 255)
    vs = VerifierSet(ens, batch_size=2)
    raws = vs.score(imgs, "p")
    want = ens.score(imgs, "p")
    assert raws == [pytest.approx(r.raw) for r in want]
    assert vs.totals(raws) == pytest.approx([r.total for r in want])
    # reference statistics, not the candidate set: a candidate's total does not depend on the others
    assert vs.totals(raws[3:4]) == pytest.approx([want[3].total])
    assert vs.names == ["big", "small"] and vs.weights == {"big": 3.0, "small": 1.0}


def test_mean_rank_is_the_ensembles_mean_rank_negated():
    ens = Ensemble([Red("a", 1.0), Red("b", 1.0)], stats={"a": {"mean": 0, "std": 1}, "b": {"mean": 0, "std": 1}})
    raws = [{"a": 0.1, "b": 3.0}, {"a": 0.9, "b": 1.0}, {"a": 0.5, "b": 2.0}]
    # ranks a: [3,1,2], b: [1,3,2] -> mean [2,2,2]; negated so that higher is better
    assert VerifierSet(ens, method="mean_rank").totals(raws) == [-2.0, -2.0, -2.0]
    assert VerifierSet(ens, method="mean_rank").totals(raws) == [-r.mean_rank for r in ens.combine(
        {"a": [0.1, 0.9, 0.5], "b": [3.0, 1.0, 2.0]})]
    with pytest.raises(ScoringError, match="aggregation"):
        VerifierSet(ens, method="median")  # type: ignore[arg-type]


def test_scores_in_batches_with_the_ensembles_defaults():
    a, b = Red("imagereward", 1.0), Red("aesthetic", 1.0)
    ens = Ensemble([a, b])  # shipped weights and reference statistics
    vs = VerifierSet(ens, batch_size=3)
    raws = vs.score(images(*range(0, 250, 50)), "p")
    assert a.calls == [3, 2] and b.calls == [3, 2] and len(raws) == 5
    assert vs.weights == {"imagereward": 1.0, "aesthetic": 0.5}
    assert vs.totals(raws) == pytest.approx([r.total for r in ens.combine(
        {n: [r[n] for r in raws] for n in ("imagereward", "aesthetic")})])


def test_a_candidate_without_a_finite_score_ranks_last():
    ens = ensemble()
    totals = VerifierSet(ens).totals([{"big": 10.0, "small": 0.0}, {"big": math.nan, "small": 0.3},
                                      {"big": math.inf, "small": 0.3}])
    assert math.isfinite(totals[0]) and totals[1] == totals[2] == -math.inf
