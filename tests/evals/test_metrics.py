"""Win rates, bootstrap CIs, diversity and cost on hand-made data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from comfygen.evals.metrics import Sample, bootstrap_ci, cost, diversity, mean_scores, win_matrix, win_rate


def _s(strategy: str, prompt: str, score: float | None, seed: int = 0, **kw) -> Sample:
    scores = {} if score is None else {"hps": score}
    return Sample(strategy=strategy, prompt_id=prompt, seed=seed, scores=scores, **kw)


def test_win_rate_counts_wins_ties_and_losses_on_same_prompt_and_seed():
    samples = [
        _s("A", "p1", 0.9), _s("B", "p1", 0.1),   # A wins
        _s("A", "p2", 0.5), _s("B", "p2", 0.5),   # tie -> half
        _s("A", "p3", 0.1), _s("B", "p3", 0.8),   # A loses
        _s("A", "p4", 0.7), _s("B", "p4", 0.2),   # A wins
        _s("A", "p5", 0.3),                       # B has no image for p5: not paired
        _s("B", "p6", 0.3, seed=1), _s("A", "p6", 0.9, seed=2),  # different seeds: not paired
    ]
    w = win_rate(samples, "A", "B", "hps", n_boot=200)
    assert (w.n, w.wins, w.ties, w.losses) == (4, 2, 1, 1)
    assert w.win_rate == pytest.approx(2.5 / 4)
    back = win_rate(samples, "B", "A", "hps", n_boot=200)
    assert back.win_rate == pytest.approx(1 - w.win_rate)
    assert w.ci_low <= w.win_rate <= w.ci_high


def test_win_rate_ignores_other_scorers_and_non_finite_scores():
    samples = [_s("A", "p1", 1.0), _s("B", "p1", 0.0),
               Sample(strategy="A", prompt_id="p2", scores={"other": 1.0}), _s("B", "p2", 0.0),
               _s("A", "p3", math.nan), _s("B", "p3", 0.0)]
    w = win_rate(samples, "A", "B", "hps", n_boot=100)
    assert (w.n, w.wins) == (1, 1)


def test_bootstrap_ci_of_constant_data_is_a_point_and_covers_the_mean():
    assert bootstrap_ci(np.ones(20)) == (1.0, 1.0)
    rng = np.random.default_rng(0)
    x = (rng.random(400) < 0.7).astype(float)
    lo, hi = bootstrap_ci(x, n_boot=2000, seed=1)
    # normal approximation of the binomial CI: 0.7 ± 1.96*sqrt(.21/400) = ±0.045
    assert lo < x.mean() < hi
    assert hi - lo == pytest.approx(2 * 1.96 * math.sqrt(x.mean() * (1 - x.mean()) / 400), rel=0.15)
    assert bootstrap_ci(x, seed=1) == bootstrap_ci(x, seed=1)  # seeded


def test_grouped_bootstrap_resamples_whole_prompts():
    # two seeds per prompt with identical outcomes: grouping must give a wider CI than treating 2n as independent
    rng = np.random.default_rng(3)
    per_prompt = (rng.random(50) < 0.5).astype(float)
    values = np.repeat(per_prompt, 2)
    groups = [f"p{i}" for i in range(50) for _ in range(2)]
    lo_g, hi_g = bootstrap_ci(values, groups, n_boot=3000)
    lo_i, hi_i = bootstrap_ci(values, None, n_boot=3000)
    assert (hi_g - lo_g) > 1.2 * (hi_i - lo_i)


def test_win_matrix_has_every_ordered_pair():
    samples = [_s(st, f"p{i}", float(i * k)) for k, st in enumerate("ABC") for i in range(5)]
    m = win_matrix(samples, ["A", "B", "C"], "hps", n_boot=50)
    assert {(w.a, w.b) for w in m} == {(a, b) for a in "ABC" for b in "ABC" if a != b}
    by = {(w.a, w.b): w for w in m}
    assert by[("C", "A")].win_rate == pytest.approx(0.9)  # p0 ties (0 vs 0), C wins the other four
    assert by[("A", "C")].win_rate == pytest.approx(0.1)


def test_mean_scores_overall_and_per_category():
    samples = [_s("A", "p1", 1.0, category="x"), _s("A", "p2", 3.0, category="y"), _s("A", "p3", 5.0, category="y")]
    overall = mean_scores(samples)
    assert len(overall) == 1 and overall[0].mean == pytest.approx(3.0) and overall[0].n == 3
    assert overall[0].std == pytest.approx(2.0)
    per = {m.category: m.mean for m in mean_scores(samples, by_category=True)}
    assert per == {"x": 1.0, "y": 4.0}


def test_diversity_counts_unique_flows_share_and_entropy():
    samples = [_s("A", f"p{i}", 0.0, flow_id=f) for i, f in enumerate(["f1", "f1", "f2", "f3"])]
    samples += [_s("B", f"p{i}", 0.0, flow_id="only") for i in range(4)]
    samples.append(Sample(strategy="A", prompt_id="px", error="boom"))  # no flow: not counted
    d = {x.strategy: x for x in diversity(samples)}
    assert d["A"].unique_flows == 3 and d["A"].images == 4
    assert d["A"].top_flow == "f1" and d["A"].top_flow_share == pytest.approx(0.5)
    assert d["A"].entropy_bits == pytest.approx(1.5)  # -(.5 log .5 + 2 * .25 log .25)
    assert d["B"].unique_flows == 1 and d["B"].entropy_bits == pytest.approx(0.0)


def test_cost_averages_timed_images_and_counts_reuse_and_failures():
    samples = [_s("A", "p1", 0, gpu_seconds=2.0), _s("A", "p2", 0, gpu_seconds=4.0, reused=True),
               _s("A", "p3", 0, gpu_seconds=None), Sample(strategy="A", prompt_id="p4", error="x", gpu_seconds=9.0)]
    (c,) = cost(samples)
    assert c.images == 3 and c.timed_images == 2 and c.failed == 1 and c.reused == 1
    assert c.gpu_seconds_per_image == pytest.approx(3.0) and c.gpu_seconds_total == pytest.approx(6.0)
