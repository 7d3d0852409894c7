"""The verifiers of a noise search: a view of the scoring ensemble, scored in batches.

A :class:`VerifierSet` holds an :class:`~comfygen.tools.scoring.ensemble.Ensemble` and adds only what a
search needs on top of it: scoring candidate images in batches (one batch at a time, from a worker thread)
and one number per candidate to rank by. It has no combination rule of its own: the scorers, their weights,
the weight normalisation and the reference statistics are the ensemble's, so a candidate's total is the
``total`` that ``Ensemble.score`` (and ``generate``, and the run store) gives the same image. Two rankings,
both read off the ensemble's :class:`~comfygen.tools.scoring.ensemble.ScoreResult`:

* ``ensemble`` (default): ``total``, the weighted mean of the reference z-scores; a candidate's total does
  not depend on the other candidates.
* ``mean_rank``: the seed extension's rank aggregation within the scored set (``mean_rank``, 1 = best by
  every scorer), negated so that higher is better everywhere.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from PIL import Image

from ..errors import ScoringError

if TYPE_CHECKING:
    from ..scoring.ensemble import Ensemble, ScoreResult

Aggregation = Literal["ensemble", "mean_rank"]
AGGREGATIONS: tuple[Aggregation, ...] = ("ensemble", "mean_rank")


class VerifierSet:
    """The ensemble's scorers as a search's verifiers (thread-safe: one batch scores at a time).

    ``batch_size`` splits each scoring call further (the benchmark's batch-1 baseline); by default every
    candidate of a ComfyUI prompt is scored in one call per scorer."""

    def __init__(self, ensemble: Ensemble, *, method: Aggregation = "ensemble", batch_size: int | None = None):
        if method not in AGGREGATIONS:
            raise ScoringError(f"unknown aggregation {method!r}", hint="use 'ensemble' or 'mean_rank'")
        self.ensemble = ensemble
        self.method: Aggregation = method
        self.batch_size = batch_size
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return self.ensemble.names

    @property
    def weights(self) -> dict[str, float]:
        return dict(self.ensemble.weights)

    def score(self, images: Sequence[Image.Image], prompt: str) -> list[dict[str, float]]:
        """Raw scores per image, ``[{scorer: score}]``, from the ensemble's scorers."""
        out: list[dict[str, float]] = [{} for _ in images]
        step = self.batch_size or max(1, len(images))
        with self._lock:
            for start in range(0, len(images), step):
                chunk = list(images[start:start + step])
                for name, vals in self.ensemble.score_raw(chunk, [prompt] * len(chunk)).items():
                    values = vals.tolist() if hasattr(vals, "tolist") else list(vals)
                    if len(values) != len(chunk):
                        raise ScoringError(f"verifier {name} returned {len(values)} scores for {len(chunk)} images")
                    for j, s in enumerate(values):
                        out[start + j][name] = float(s)
        return out

    def results(self, raws: Sequence[Mapping[str, float]]) -> list[ScoreResult]:
        """The ensemble's score of each candidate from its raw scores (``Ensemble.combine``)."""
        if not raws:
            return []
        return self.ensemble.combine({n: [r[n] for r in raws] for n in self.names})

    def totals(self, raws: Sequence[Mapping[str, float]]) -> list[float]:
        """One number per candidate to rank by, higher is better; a candidate whose total is not a finite
        number (a scorer returned NaN or inf) ranks last."""
        results = self.results(raws)
        if self.method == "mean_rank":
            return [-float(r.mean_rank) if r.mean_rank is not None else -math.inf for r in results]
        return [r.total if math.isfinite(r.total) else -math.inf for r in results]
