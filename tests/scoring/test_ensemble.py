"""Ensemble maths: standardization, weights, breakdown, mean rank, calibration."""

from __future__ import annotations

import math

import pytest
import torch
from scoring_helpers import PROMPTS, images

from comfygen.tools.errors import ScoringError
from comfygen.tools.scoring.base import Scorer
from comfygen.tools.scoring.ensemble import (DEFAULT_STATS, DEFAULT_WEIGHTS, Ensemble, ReferenceStats, ScorerStats,
                                             calibrate_stats, load_reference_stats, mean_rank, stats_from_raw,
                                             user_stats_path)
from comfygen.tools.settings import Settings


class Fixed(Scorer):
    """A scorer returning given numbers (to test the ensemble maths exactly)."""

    def __init__(self, name: str, values: list[float]):
        super().__init__(device="cpu")
        self.name = name
        self.values = values
        self.calls: list[int] = []

    def _build(self) -> None:
        pass

    def _score_batch(self, images, prompts):
        self.calls.append(len(images))
        start = sum(self.calls[:-1])
        return torch.tensor(self.values[start:start + len(images)])


def test_standardize_and_weighted_mean():
    a = Fixed("a", [1.0, 3.0])
    b = Fixed("b", [10.0, 30.0])
    stats = {"a": {"mean": 2.0, "std": 1.0}, "b": {"mean": 20.0, "std": 10.0}}
    ens = Ensemble([a, b], weights={"a": 3.0, "b": 1.0}, stats=stats)
    r = ens.score(images(2), "p")
    assert r[0].raw == {"a": 1.0, "b": 10.0}
    assert r[0].z == pytest.approx({"a": -1.0, "b": -1.0})
    assert r[1].z == pytest.approx({"a": 1.0, "b": 1.0})
    assert r[0].total == pytest.approx(-1.0) and r[1].total == pytest.approx(1.0)
    ens2 = Ensemble([Fixed("a", [3.0]), Fixed("b", [10.0])], weights={"a": 3.0, "b": 1.0}, stats=stats)
    assert ens2.score(images(1), "p")[0].total == pytest.approx((3 * 1.0 + 1 * -1.0) / 4)


def test_default_weights_favour_human_preference_models():
    for hp in ("imagereward", "hpsv21", "pickscore"):
        assert DEFAULT_WEIGHTS[hp] > DEFAULT_WEIGHTS["aesthetic"] > DEFAULT_WEIGHTS["clipscore"]


def test_every_default_stat_has_a_source():
    for name, st in DEFAULT_STATS.scorers.items():
        assert st.std > 0 and len(st.source) > 20, name
    assert DEFAULT_STATS.scorers["imagereward"].mean == 0 and DEFAULT_STATS.scorers["imagereward"].std == 1


def test_combine_restandardizes_stored_raw_scores():
    ens = Ensemble([Fixed("a", [])], stats={"a": {"mean": 0.0, "std": 2.0}})
    out = ens.combine({"a": [2.0, -4.0]})
    assert [r.z["a"] for r in out] == [1.0, -2.0]
    assert [r.mean_rank for r in out] == [1.0, 2.0]


def test_ensemble_scores_in_batches_per_scorer():
    a = Fixed("a", list(range(10)))
    a.batch_size = 4
    ens = Ensemble([a], stats={"a": {"mean": 0, "std": 1}})
    ens.score(images(10), "p")
    assert a.calls == [4, 4, 2]


def test_missing_stats_and_bad_weights_raise():
    with pytest.raises(ScoringError, match="no reference statistics"):
        Ensemble([Fixed("zzz", [1.0])], stats={"a": {"mean": 0, "std": 1}})
    with pytest.raises(ScoringError, match="sum to zero"):
        Ensemble([Fixed("a", [1.0])], weights={"a": 0.0}, stats={"a": {"mean": 0, "std": 1}})
    with pytest.raises(ScoringError, match="at least one scorer"):
        Ensemble([])


def test_mean_rank_matches_the_seed_aggregation():
    raw = {"clip": [0.30, 0.35, 0.20], "ir": [1.2, -0.5, 1.8]}
    # clip ranks: [2, 1, 3]; ir ranks: [2, 3, 1]
    assert mean_rank(raw) == [2.0, 2.0, 2.0]
    assert mean_rank({"a": [5, 5, 1]}) == [1.0, 2.0, 3.0]  # ties: lower index first
    assert mean_rank({"a": [float("nan"), 0.0]}) == [2.0, 1.0]  # NaN ranks last
    assert mean_rank({}) == []
    with pytest.raises(ScoringError):
        mean_rank({"a": [1, 2], "b": [1]})


def test_tiny_ensemble_end_to_end_keeps_breakdown():
    ens = Ensemble.from_settings(Settings(), ["imagereward", "hps", "clipscore"], tiny=True)
    res = ens.score(images(3), PROMPTS[:3])
    assert len(res) == 3
    for r in res:
        assert set(r.raw) == set(r.z) == {"imagereward", "hpsv21", "clipscore"}
        assert math.isfinite(r.total)
    assert sorted(r.mean_rank for r in res) != [None] * 3


def test_stats_from_raw_and_errors():
    st = stats_from_raw({"a": [1.0, 2.0, 3.0]}, source="test")
    assert st.scorers["a"].mean == pytest.approx(2.0) and st.scorers["a"].std == pytest.approx(1.0)
    assert st.scorers["a"].n == 3
    with pytest.raises(ScoringError, match="at least 2"):
        stats_from_raw({"a": [1.0]}, source="t")
    with pytest.raises(ScoringError, match="identical"):
        stats_from_raw({"a": [1.0, 1.0]}, source="t")


def test_calibration_is_saved_under_home_and_used_by_new_ensembles(tmp_path):
    settings = Settings(home=tmp_path)
    scorers = [Fixed("clipscore", [0.1, 0.2, 0.3, 0.4])]
    stats = calibrate_stats(scorers, images(4), "p", settings=settings)
    assert user_stats_path(settings).exists()
    assert stats.scorers["clipscore"].mean == pytest.approx(0.25)
    loaded = load_reference_stats(settings)
    assert loaded.scorers["clipscore"].n == 4
    assert loaded.scorers["hpsv21"] == DEFAULT_STATS.scorers["hpsv21"]  # others keep the shipped defaults
    ens = Ensemble([Fixed("clipscore", [0.25])], settings=settings)
    assert ens.score(images(1), "p")[0].z["clipscore"] == pytest.approx(0.0, abs=1e-6)  # float32 scores
    # a second calibration of another scorer merges, it does not drop the first
    calibrate_stats([], raw={"pickscore": [20.0, 22.0]}, settings=settings)
    merged = ReferenceStats.load(user_stats_path(settings))
    assert set(merged.scorers) == {"clipscore", "pickscore"}


def test_corrupt_calibration_file_falls_back_to_defaults(tmp_path):
    settings = Settings(home=tmp_path)
    user_stats_path(settings).parent.mkdir(parents=True)
    user_stats_path(settings).write_text("{not json")
    assert load_reference_stats(settings) == DEFAULT_STATS


def test_scorer_stats_rejects_zero_spread():
    with pytest.raises(ValueError):
        ScorerStats(mean=0, std=0, source="x")


def test_weights_from_environment(monkeypatch):
    monkeypatch.setenv("COMFYGEN_ENSEMBLE_WEIGHTS", '{"clipscore": 2.0}')
    ens = Ensemble.from_settings(Settings(), ["clipscore", "hps"], tiny=True)
    assert ens.weights == {"clipscore": 2.0, "hpsv21": 1.0}
