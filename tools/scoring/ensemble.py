"""The ensemble: each scorer standardized with reference statistics, then a weighted mean of the z-scores.

As in the ComfyGen paper, each predictor's output is brought to one scale (z = (raw - mean) / std) and
the z-scores are combined with weights that favour the human-preference models (ImageReward, HPS v2.1,
PickScore) over the aesthetic head and CLIPScore. ``total`` is the weighted mean of the z-scores of the
scorers that ran, so it stays on the z scale whatever subset is configured. The per-scorer breakdown
(``raw`` and ``z``) is always kept. :func:`mean_rank` is the noise-search seed's rank aggregation
(scale-free, within one candidate set).

Reference statistics come, in order, from: the ``stats`` argument; the user's calibration file
(``$COMFYGEN_HOME/scoring/reference_stats.json``, written by :func:`calibrate_stats`); the shipped
:data:`DEFAULT_STATS`, whose sources are recorded next to each number.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from PIL import Image
from pydantic import BaseModel, Field

from ..errors import ScoringError
from ..settings import Settings, get_settings
from .base import Scorer

log = logging.getLogger(__name__)

#: Defaults favour the human-preference predictors (paper: "higher weights to models that better align with
#: human preferences"); CLIPScore (alignment only) and the aesthetic head (image only) count less.
DEFAULT_WEIGHTS: dict[str, float] = {"imagereward": 1.0, "hpsv21": 1.0, "pickscore": 1.0, "aesthetic": 0.5,
                                     "clipscore": 0.25, "hpsv20": 1.0, "vlm": 0.5}


class ScorerStats(BaseModel):
    mean: float = Field(description="Reference mean of the raw score.")
    std: float = Field(gt=0, description="Reference spread (standard deviation) of the raw score.")
    n: int | None = Field(None, description="Number of images the statistics were computed on (None: not computed here).")
    source: str = Field(description="Where the numbers come from.")


class ReferenceStats(BaseModel):
    scorers: dict[str, ScorerStats] = Field(default_factory=dict)
    created: str | None = None

    def z(self, name: str, raw: float) -> float:
        st = self.scorers.get(name)
        if st is None:
            raise ScoringError(f"no reference statistics for scorer {name!r}",
                               hint="run `comfygen scorers calibrate` on your images, or pass stats=")
        return (raw - st.mean) / st.std

    def merged(self, other: ReferenceStats) -> ReferenceStats:
        return ReferenceStats(scorers={**self.scorers, **other.scorers}, created=other.created or self.created)

    @classmethod
    def load(cls, path: Path) -> ReferenceStats:
        return cls.model_validate_json(Path(path).read_text())

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json(indent=2))
        tmp.replace(path)
        return path


_PRIOR = ("spread is a prior, not measured here (no published per-image spread found); "
          "replace with `comfygen scorers calibrate`")

#: Shipped defaults. Only ImageReward's are exact by construction; the others are priors whose location comes
#: from published benchmark averages and whose spread is an estimate. Calibrate on your own images.
DEFAULT_STATS = ReferenceStats(created="shipped", scorers={
    "imagereward": ScorerStats(mean=0.0, std=1.0, source=(
        "ImageReward's released reward is already standardized: (raw - 0.16717) / 1.03334, constants fixed by "
        "its authors from raw rewards on their data (THUDM/ImageReward, ImageReward.py)")),
    "hpsv21": ScorerStats(mean=0.28, std=0.03, source=(
        "mean: HPS v2.1 benchmark averages of recent text-to-image models are about 0.28-0.31 (tables report x100, "
        "e.g. 30.20 for a 50-step baseline); " + _PRIOR)),
    "pickscore": ScorerStats(mean=21.0, std=1.0, source="mean and spread: prior (typical PickScore of SD-class "
                             "generations is about 20-22); " + _PRIOR),
    "aesthetic": ScorerStats(mean=5.3, std=0.6, source=(
        "mean: LAION aesthetic averages of 5.26-5.38 for DeepFloyd-IF and Openjourney on COCO captions "
        "(Schuture/Benchmarking-Awesome-Diffusion-Models README); " + _PRIOR)),
    "clipscore": ScorerStats(mean=0.26, std=0.04, source="raw cosine of CLIP ViT-L/14; mean and spread: prior; " + _PRIOR),
    "hpsv20": ScorerStats(mean=0.27, std=0.02, source=(
        "mean: HPS v2.0 benchmark averages of SD-class models are about 0.26-0.28; " + _PRIOR)),
    "vlm": ScorerStats(mean=7.0, std=1.5, source="0-10 rubric; mean and spread: prior; " + _PRIOR),
})


def user_stats_path(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).home / "scoring" / "reference_stats.json"


def load_reference_stats(settings: Settings | None = None) -> ReferenceStats:
    """Shipped defaults, overridden per scorer by the user's calibration file when it exists."""
    path = user_stats_path(settings)
    if path.exists():
        try:
            return DEFAULT_STATS.merged(ReferenceStats.load(path))
        except Exception as e:  # a corrupt file must not stop scoring
            log.warning("ignoring unreadable calibration file %s: %s", path, e)
    return DEFAULT_STATS


class ScoreResult(BaseModel):
    total: float = Field(description="Weighted mean of the per-scorer z-scores (0 = reference average, +1 = one spread better).")
    raw: dict[str, float] = Field(description="Raw output of each scorer.")
    z: dict[str, float] = Field(description="Each scorer's standardized score.")
    mean_rank: float | None = Field(None, description="Mean rank within the scored set (1 = best by every scorer).")


def mean_rank(raw: Mapping[str, Sequence[float]]) -> list[float]:
    """Rank aggregation of the noise-search seed: per scorer, rank candidates by descending score
    (1 = best, ties broken by lower index), then average the ranks over scorers. Lower is better."""
    lists = [list(v) for v in raw.values()]
    if not lists:
        return []
    n = len(lists[0])
    if any(len(v) != n for v in lists):
        raise ScoringError("mean_rank: every scorer needs one score per candidate", hint="pass equal-length lists")
    totals = [0.0] * n
    for scores in lists:
        order = sorted(range(n), key=lambda i: (-_finite(scores[i]), i))
        for rank, i in enumerate(order, start=1):
            totals[i] += rank
    return [t / len(lists) for t in totals]


def _finite(x: float) -> float:
    return x if math.isfinite(x) else -math.inf


class Ensemble:
    """``Ensemble(scorers, weights=None, stats=None)``; ``score(images, prompts) -> list[ScoreResult]``."""

    def __init__(self, scorers: Sequence[Scorer] | Mapping[str, Scorer], weights: Mapping[str, float] | None = None,
                 stats: ReferenceStats | Mapping[str, ScorerStats | Mapping[str, float]] | None = None,
                 settings: Settings | None = None):
        items = scorers.items() if isinstance(scorers, Mapping) else ((s.name, s) for s in scorers)
        self.scorers: dict[str, Scorer] = dict(items)
        if not self.scorers:
            raise ScoringError("an ensemble needs at least one scorer", hint="configure COMFYGEN_SCORERS")
        w = {**DEFAULT_WEIGHTS, **(weights or {})}
        self.weights = {n: float(w.get(n, 1.0)) for n in self.scorers}
        if sum(self.weights.values()) <= 0:
            raise ScoringError("ensemble weights sum to zero", hint="give at least one scorer a positive weight")
        self.stats = _coerce_stats(stats) if stats is not None else load_reference_stats(settings)
        missing = [n for n in self.scorers if n not in self.stats.scorers]
        if missing:
            raise ScoringError(f"no reference statistics for {missing}", hint="run `comfygen scorers calibrate`")

    @classmethod
    def from_settings(cls, settings: Settings | None = None, names: Sequence[str] | None = None, *, tiny: bool = False,
                      weights: Mapping[str, float] | None = None) -> Ensemble:
        from .config import load_config
        from .registry import build_scorers

        settings = settings or get_settings()
        cfg_weights = load_config().ensemble_weights or {}
        return cls(build_scorers(list(names) if names else None, settings, tiny=tiny),
                   weights={**cfg_weights, **(weights or {})}, settings=settings)

    @property
    def names(self) -> list[str]:
        return list(self.scorers)

    def load(self) -> Ensemble:
        for s in self.scorers.values():
            s.load()
        return self

    def score_raw(self, images: Sequence[Image.Image], prompts: Sequence[str] | str) -> dict[str, torch.Tensor]:
        """Every scorer over the whole batch (each batches internally)."""
        return {n: s.score(images, prompts) for n, s in self.scorers.items()}

    def combine(self, raw: Mapping[str, Sequence[float]]) -> list[ScoreResult]:
        """Standardize and combine raw scores ``{scorer: [score per image]}`` (e.g. read back from the run store)."""
        names = [n for n in raw if n in self.weights or n in self.stats.scorers]
        lists = {n: [float(x) for x in raw[n]] for n in names}
        ranks = mean_rank(lists) if lists else []
        n_img = len(next(iter(lists.values()))) if lists else 0
        out = []
        for i in range(n_img):
            r = {n: lists[n][i] for n in names}
            z = {n: self.stats.z(n, v) for n, v in r.items()}
            wsum = sum(self.weights.get(n, 1.0) for n in z)
            total = sum(self.weights.get(n, 1.0) * v for n, v in z.items()) / wsum if wsum > 0 else float("nan")
            out.append(ScoreResult(total=total, raw=r, z=z, mean_rank=ranks[i]))
        return out

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | str) -> list[ScoreResult]:
        raw = self.score_raw(images, prompts)
        return self.combine({n: t.tolist() for n, t in raw.items()})


def _coerce_stats(stats: ReferenceStats | Mapping[str, ScorerStats | Mapping[str, float]]) -> ReferenceStats:
    if isinstance(stats, ReferenceStats):
        return stats
    out = {}
    for n, s in stats.items():
        out[n] = s if isinstance(s, ScorerStats) else ScorerStats(source="given", **dict(s))  # type: ignore[arg-type]
    return ReferenceStats(scorers=out, created="given")


def stats_from_raw(raw: Mapping[str, Sequence[float]], *, source: str) -> ReferenceStats:
    """Mean and (sample) standard deviation per scorer from raw scores; at least 2 finite values each."""
    out = {}
    for name, values in raw.items():
        vals = [float(v) for v in values if math.isfinite(float(v))]
        if len(vals) < 2:
            raise ScoringError(f"calibration needs at least 2 scores for {name!r}, got {len(vals)}",
                               hint="calibrate on more images (dozens or more for stable statistics)")
        t = torch.tensor(vals, dtype=torch.float64)
        std = float(t.std(unbiased=True))
        if std <= 0:
            raise ScoringError(f"calibration: every {name} score is identical ({vals[0]})",
                               hint="calibrate on varied images")
        out[name] = ScorerStats(mean=float(t.mean()), std=std, n=len(vals), source=source)
    return ReferenceStats(scorers=out, created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))


def calibrate_stats(scorers: Ensemble | Sequence[Scorer], images: Sequence[Image.Image] | None = None,
                    prompts: Sequence[str] | str | None = None, *, raw: Mapping[str, Sequence[float]] | None = None,
                    settings: Settings | None = None, save: bool = True,
                    source: str | None = None) -> ReferenceStats:
    """Recompute reference statistics on the user's images (or on raw scores already computed) and, with
    ``save``, merge them into ``$COMFYGEN_HOME/scoring/reference_stats.json``. Returns the new statistics."""
    if raw is None:
        if images is None or prompts is None:
            raise ScoringError("calibrate_stats needs images and prompts, or raw scores", hint="pass images= and prompts=")
        ens = scorers if isinstance(scorers, Ensemble) else None
        named = ens.scorers if ens else {s.name: s for s in scorers}  # type: ignore[union-attr]
        raw = {n: s.score(images, prompts).tolist() for n, s in named.items()}
        source = source or f"calibrated on {len(images)} user images"
    stats = stats_from_raw(raw, source=source or "calibrated on user scores")
    if save:
        path = user_stats_path(settings)
        previous = ReferenceStats.load(path) if path.exists() else ReferenceStats()
        previous.merged(stats).save(path)
        log.info("saved reference statistics for %s to %s", sorted(stats.scorers), path)
    return stats


def stats_table(stats: ReferenceStats) -> list[dict[str, object]]:
    return [{"scorer": n, "mean": s.mean, "std": s.std, "n": s.n, "source": s.source} for n, s in stats.scorers.items()]


def dumps_results(results: Sequence[ScoreResult]) -> str:
    return json.dumps([r.model_dump() for r in results], indent=2)
