"""Aggregation of verifier scores: standardized weighted ensemble and mean rank."""

from __future__ import annotations

import pytest

from comfygen.tools.search.verify import VerifierSet, aggregate


def test_mean_rank_matches_the_seed_extension_and_ties_go_to_the_earlier_candidate():
    raw = {"a": [0.1, 0.9, 0.5], "b": [3.0, 1.0, 2.0]}
    # ranks a: [3,1,2], b: [1,3,2] -> mean [2,2,2]; negated so higher is better
    assert aggregate(raw, "mean_rank") == [-2.0, -2.0, -2.0]
    assert aggregate({"a": [1.0, 1.0]}, "mean_rank") == [-1.0, -2.0]


def test_ensemble_standardizes_scales_and_applies_weights():
    raw = {"big": [100.0, 200.0, 300.0], "small": [0.3, 0.2, 0.1]}
    tot = aggregate(raw, "ensemble")
    assert tot[0] == pytest.approx(tot[2]) and tot[1] == pytest.approx(0.0)  # equal weight: scales cancel
    tot_w = aggregate(raw, "ensemble", {"big": 3.0, "small": 1.0})
    assert tot_w[2] > tot_w[1] > tot_w[0]
    # reference statistics make a total independent of the other candidates
    ref = {"big": (200.0, 100.0), "small": (0.2, 0.1)}
    alone = aggregate({"big": [300.0], "small": [0.1]}, "ensemble", stats=ref)
    assert alone[0] == pytest.approx(aggregate(raw, "ensemble", stats=ref)[2]) == pytest.approx(0.0)


def test_verifier_set_scores_in_batches_and_uses_the_ensemble_defaults():
    class V:
        def __init__(self, name):
            self.name, self.calls = name, []

        def score(self, images, prompts):
            self.calls.append(len(images))
            return [float(i) for i in range(len(images))]

    a, b = V("imagereward"), V("aesthetic")
    vs = VerifierSet.for_scorers([a, b], method="ensemble", batch_size=3)
    raws = vs.score([object()] * 5, "p")  # type: ignore[list-item]
    assert a.calls == [3, 2] and raws[4] == {"imagereward": 1.0, "aesthetic": 1.0}
    assert vs.weights["aesthetic"] == 0.5 and vs.stats["imagereward"] == (0.0, 1.0)
    assert len(vs.totals(raws)) == 5
