"""Numbers of an evaluation: pairwise win rates with bootstrap CIs, mean scores, flow diversity, cost.

Everything here works on :class:`Sample` rows (one image of one strategy for one prompt and seed),
so the maths is testable without ComfyUI or scorers.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import numpy as np
from pydantic import BaseModel, Field


class Sample(BaseModel):
    """One generated (or reused) image in an evaluation."""

    strategy: str
    prompt_id: str
    prompt: str = ""
    category: str = ""
    seed: int = 0
    flow_id: str | None = Field(None, description="The flow that made the image (None when the strategy failed).")
    run_id: str | None = None
    image: str | None = Field(None, description="Image path (first output of the run).")
    scores: dict[str, float] = Field(default_factory=dict)
    gpu_seconds: float | None = Field(None, description="Run time on ComfyUI per image, from the run store timings.")
    reused: bool = Field(False, description="True when the image came from the run store instead of a new run.")
    geneval_correct: bool | None = None
    note: str = Field("", description="How the strategy chose, e.g. the planner's top allowed flow and its prediction.")
    error: str | None = None


class WinRate(BaseModel):
    a: str
    b: str
    scorer: str
    n: int = Field(description="Paired (prompt, seed) comparisons.")
    wins: int
    ties: int
    losses: int
    win_rate: float = Field(description="(wins + ties/2) / n: how often A beats B.")
    ci_low: float
    ci_high: float


def _key(s: Sample) -> tuple[str, int]:
    return (s.prompt_id, s.seed)


def paired_outcomes(samples: Iterable[Sample], a: str, b: str, scorer: str, *, tol: float = 0.0
                    ) -> tuple[list[str], np.ndarray]:
    """Per (prompt, seed) present for both strategies with a score: 1 win, 0.5 tie, 0 loss (A vs B).
    Returns the prompt id of each pair (the bootstrap resamples prompts) and the outcomes."""
    by: dict[str, dict[tuple[str, int], float]] = {a: {}, b: {}}
    for s in samples:
        if s.strategy in by and scorer in s.scores and s.scores[scorer] is not None and math.isfinite(s.scores[scorer]):
            by[s.strategy][_key(s)] = float(s.scores[scorer])
    keys = sorted(set(by[a]) & set(by[b]))
    out = np.empty(len(keys), dtype=np.float64)
    for i, k in enumerate(keys):
        d = by[a][k] - by[b][k]
        out[i] = 0.5 if abs(d) <= tol else (1.0 if d > 0 else 0.0)
    return [k[0] for k in keys], out


def bootstrap_ci(values: np.ndarray, groups: Sequence[str] | None = None, *, n_boot: int = 2000,
                 level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean. With ``groups`` (prompt ids), whole groups are resampled, so
    several seeds of one prompt do not count as independent evidence."""
    if len(values) == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    if groups is None:
        idx = rng.integers(0, len(values), size=(n_boot, len(values)))
        means = values[idx].mean(axis=1)
    else:
        names = sorted(set(groups))
        pos = {g: i for i, g in enumerate(names)}
        gi = np.array([pos[g] for g in groups])
        sums = np.bincount(gi, weights=values, minlength=len(names))
        counts = np.bincount(gi, minlength=len(names)).astype(np.float64)
        pick = rng.integers(0, len(names), size=(n_boot, len(names)))
        means = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
    alpha = (1.0 - level) / 2.0
    return (float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha)))


def win_rate(samples: Sequence[Sample], a: str, b: str, scorer: str, *, n_boot: int = 2000, seed: int = 0,
             tol: float = 0.0) -> WinRate:
    groups, out = paired_outcomes(samples, a, b, scorer, tol=tol)
    wins = int((out == 1.0).sum())
    ties = int((out == 0.5).sum())
    n = len(out)
    lo, hi = bootstrap_ci(out, groups, n_boot=n_boot, seed=seed)
    return WinRate(a=a, b=b, scorer=scorer, n=n, wins=wins, ties=ties, losses=n - wins - ties,
                   win_rate=float(out.mean()) if n else math.nan, ci_low=lo, ci_high=hi)


def win_matrix(samples: Sequence[Sample], strategies: Sequence[str], scorer: str, *, n_boot: int = 2000,
               seed: int = 0) -> list[WinRate]:
    """Every ordered pair (A, B), A != B."""
    return [win_rate(samples, a, b, scorer, n_boot=n_boot, seed=seed) for a in strategies for b in strategies if a != b]


class ScoreStat(BaseModel):
    strategy: str
    scorer: str
    category: str = Field("", description="'' for all prompts.")
    n: int
    mean: float
    std: float


def mean_scores(samples: Iterable[Sample], *, by_category: bool = False) -> list[ScoreStat]:
    groups: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for s in samples:
        for name, v in s.scores.items():
            if v is None or not math.isfinite(v):
                continue
            groups[(s.strategy, name, "")].append(v)
            if by_category:
                groups[(s.strategy, name, s.category)].append(v)
    out = []
    for (strat, name, cat), vals in sorted(groups.items()):
        if by_category and cat == "":
            continue
        arr = np.asarray(vals, dtype=np.float64)
        out.append(ScoreStat(strategy=strat, scorer=name, category=cat, n=len(arr), mean=float(arr.mean()),
                             std=float(arr.std(ddof=1)) if len(arr) > 1 else 0.0))
    return out


class Diversity(BaseModel):
    strategy: str
    images: int
    unique_flows: int
    top_flow: str | None
    top_flow_share: float = Field(description="Fraction of images made by the most used flow.")
    entropy_bits: float = Field(description="Shannon entropy of the flow distribution.")


def diversity(samples: Iterable[Sample]) -> list[Diversity]:
    used: dict[str, Counter[str]] = defaultdict(Counter)
    for s in samples:
        if s.flow_id is not None:
            used[s.strategy][s.flow_id] += 1
    out = []
    for strat, counts in sorted(used.items()):
        total = sum(counts.values())
        p = np.array(list(counts.values()), dtype=np.float64) / total
        top, top_n = counts.most_common(1)[0]
        out.append(Diversity(strategy=strat, images=total, unique_flows=len(counts), top_flow=top,
                             top_flow_share=top_n / total, entropy_bits=float(-(p * np.log2(p)).sum() + 0.0)))
    return out


class Cost(BaseModel):
    strategy: str
    images: int
    timed_images: int = Field(description="Images with a recorded run time.")
    gpu_seconds_per_image: float
    gpu_seconds_total: float
    reused: int = Field(description="Images taken from the run store instead of generated again.")
    failed: int


def cost(samples: Iterable[Sample]) -> list[Cost]:
    rows: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        rows[s.strategy].append(s)
    out = []
    for strat, ss in sorted(rows.items()):
        timed = [s.gpu_seconds for s in ss if s.gpu_seconds is not None and s.error is None]
        total = float(sum(timed))
        out.append(Cost(strategy=strat, images=sum(1 for s in ss if s.error is None), timed_images=len(timed),
                        gpu_seconds_per_image=total / len(timed) if timed else math.nan, gpu_seconds_total=total,
                        reused=sum(1 for s in ss if s.reused), failed=sum(1 for s in ss if s.error is not None)))
    return out
