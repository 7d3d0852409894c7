"""Verifiers for noise search: score candidate images in batches, aggregate several scorers.

A verifier is any object with ``name`` and ``score(images, prompts) -> tensor/sequence [N]`` (the
``Scorer`` interface of ``comfygen.tools.scoring``). Aggregation over a set of candidates:

* ``ensemble``: standardized weighted sum, as ``comfygen.tools.scoring.Ensemble`` combines: each scorer's
  raw score is z-scored with its reference statistics (shipped priors or the user's calibration) when
  given, else over the candidate set, then combined with the weights (the ensemble's defaults for known
  scorers, 1 otherwise), so scorers on different scales weigh what they are given.
* ``mean_rank``: the seed extension's method: rank candidates per scorer (1 = best, ties by order),
  average the ranks; returned negated so that higher is better everywhere.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from PIL import Image

from ..errors import ScoringError

Aggregation = Literal["ensemble", "mean_rank"]


class Verifier(Protocol):
    name: str

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> Any: ...


def aggregate(raw: Mapping[str, Sequence[float]], method: Aggregation = "ensemble",
              weights: Mapping[str, float] | None = None,
              stats: Mapping[str, tuple[float, float]] | None = None) -> list[float]:
    """One total per candidate (higher is better) from per-scorer raw scores over the same candidates.

    ``stats``: scorer -> (mean, std) reference statistics; scorers without them are standardized over
    the candidates."""
    names = list(raw)
    if not names:
        raise ScoringError("no verifier scores to aggregate", hint="pass at least one verifier")
    n = len(raw[names[0]])
    if any(len(raw[k]) != n for k in names):
        raise ScoringError("verifiers scored different numbers of candidates")
    if n == 0:
        return []
    if method == "mean_rank":
        ranks = [0.0] * n
        for k in names:
            order = sorted(range(n), key=lambda i: (-_finite(raw[k][i]), i))
            for r, i in enumerate(order, start=1):
                ranks[i] += r / len(names)
        return [-r for r in ranks]
    if method != "ensemble":
        raise ScoringError(f"unknown aggregation {method!r}", hint="use 'ensemble' or 'mean_rank'")
    w = {k: float((weights or {}).get(k, 1.0)) for k in names}
    wsum = sum(abs(v) for v in w.values()) or 1.0
    totals = [0.0] * n
    for k in names:
        vals = [_finite(v) for v in raw[k]]
        if stats and k in stats:
            mean, std = stats[k]
        else:
            mean = sum(vals) / n
            std = math.sqrt(sum((v - mean) ** 2 for v in vals) / n)
        for i, v in enumerate(vals):
            totals[i] += w[k] / wsum * ((v - mean) / std if std > 1e-12 else 0.0)
    return totals


def _finite(v: float) -> float:
    return float(v) if math.isfinite(float(v)) else -1e30


class VerifierSet:
    """The chosen verifiers, scored one batch at a time (thread-safe: one batch scores at a time)."""

    def __init__(self, verifiers: Sequence[Verifier], *, method: Aggregation = "ensemble",
                 weights: Mapping[str, float] | None = None, batch_size: int | None = None,
                 stats: Mapping[str, tuple[float, float]] | None = None):
        if not verifiers:
            raise ScoringError("noise search needs at least one verifier", hint="pass --verifiers, e.g. clipscore")
        self.verifiers = list(verifiers)
        self.method: Aggregation = method
        self.weights = dict(weights or {})
        self.stats = dict(stats or {})
        self.batch_size = batch_size
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.verifiers]

    def score(self, images: Sequence[Image.Image], prompt: str) -> list[dict[str, float]]:
        """Raw scores per image: ``[{verifier: score}]`` (batched; ``batch_size`` splits it further)."""
        out: list[dict[str, float]] = [{} for _ in images]
        step = self.batch_size or max(1, len(images))
        with self._lock:
            for v in self.verifiers:
                for start in range(0, len(images), step):
                    chunk = list(images[start:start + step])
                    vals = v.score(chunk, [prompt] * len(chunk))
                    vals = vals.tolist() if hasattr(vals, "tolist") else list(vals)
                    if len(vals) != len(chunk):
                        raise ScoringError(f"verifier {v.name} returned {len(vals)} scores for {len(chunk)} images")
                    for j, s in enumerate(vals):
                        out[start + j][v.name] = float(s)
        return out

    def totals(self, raws: Sequence[Mapping[str, float]]) -> list[float]:
        return aggregate({k: [r[k] for r in raws] for k in self.names}, self.method, self.weights, self.stats)

    @classmethod
    def for_scorers(cls, verifiers: Sequence[Verifier], settings: Any = None, *, method: Aggregation = "ensemble",
                    weights: Mapping[str, float] | None = None, batch_size: int | None = None) -> "VerifierSet":
        """With the scoring ensemble's default weights and reference statistics (shipped or calibrated)."""
        from ..scoring.ensemble import DEFAULT_WEIGHTS, load_reference_stats

        ref = load_reference_stats(settings)
        names = [v.name for v in verifiers]
        w = {n: DEFAULT_WEIGHTS.get(n, 1.0) for n in names} | dict(weights or {})
        stats = {n: (ref.scorers[n].mean, ref.scorers[n].std) for n in names if n in ref.scorers}
        return cls(verifiers, method=method, weights=w, batch_size=batch_size, stats=stats)


def build_verifiers(names: Sequence[str], settings: Any = None, *, tiny: bool = False) -> list[Verifier]:
    """Scorers by registry name (``comfygen.tools.scoring``), loaded once."""
    from ..scoring.registry import build_scorer

    out = []
    for name in names:
        scorer = build_scorer(name, settings, tiny=tiny)
        if hasattr(scorer, "load"):
            scorer.load()
        out.append(scorer)
    return out
