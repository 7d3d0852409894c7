"""Score finished runs of the run store and write the scores back.

A run's stored score is the mean over its images: ``scores`` holds each scorer's mean raw score,
``score_total`` the mean ensemble total, and the typed :class:`~comfygen.tools.run_scores.RunScores` every
image's raw/z/total plus the weights and the reference statistics used, so the numbers can be
re-standardized later (``Ensemble.combine``). Images of several runs are scored together in batches
(:func:`score_runs`). :func:`stored_raw_scores` collects the raw scores of every scored run, however it
was scored, for calibration.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from ..errors import ScoringError
from ..run_scores import RunScores
from ..store import RunRecord, RunStore
from .ensemble import Ensemble, ScoreResult

log = logging.getLogger(__name__)


def load_images(paths: Sequence[str | Path], *, hint: str = "pass PNG/JPEG/WebP files") -> list[Image.Image]:
    """Open image files as stored (mode kept, EXIF orientation not applied): each scorer converts them by its
    original's rule (:mod:`.preprocess`). An unreadable one is a ScoringError naming the file."""
    out = []
    for p in paths:
        try:
            with Image.open(p) as im:
                im.load()
                out.append(im.copy())
        except OSError as e:
            raise ScoringError(f"cannot read image {p}: {e}", hint=hint) from e
    return out


def score_runs(store: RunStore, run_ids: Sequence[str], ensemble: Ensemble, *, stamp_png: bool = False,
               skip_scored: bool = False) -> dict[str, list[ScoreResult]]:
    """Score every image of the given finished runs in one batched ensemble pass per prompt group,
    then ``store.set_scores`` each run. Returns run id -> per-image results.

    ``stamp_png`` also writes the scores into each PNG's ``comfygen`` text chunk (this rewrites the
    file, so its sha256 changes from the one recorded at generation time).
    """
    records = [store.get(r) for r in run_ids]
    todo = []
    for rec in records:
        if skip_scored and rec.score_total is not None:
            continue
        if not rec.outputs:
            raise ScoringError(f"run {rec.id} has no output images (status {rec.status})",
                               hint="only finished runs can be scored")
        todo.append(rec)
    if not todo:
        return {}
    images: list[Image.Image] = []
    prompts: list[str] = []
    owners: list[int] = []
    for k, rec in enumerate(todo):
        imgs = load_images([o.path for o in rec.outputs],
                           hint="the image file was moved or deleted; re-run the flow")
        images += imgs
        prompts += [rec.prompt] * len(imgs)
        owners += [k] * len(imgs)
    results = ensemble.score(images, prompts)
    out: dict[str, list[ScoreResult]] = {}
    for k, rec in enumerate(todo):
        mine = [r for r, o in zip(results, owners, strict=True) if o == k]
        out[rec.id] = mine
        _write(store, rec, mine, ensemble)
        if stamp_png:
            from ..images import update_png_text

            for o, r in zip(rec.outputs, mine, strict=True):
                update_png_text(Path(o.path), {"comfygen": {"scores": r.model_dump()}})
    return out


def _write(store: RunStore, rec: RunRecord, results: list[ScoreResult], ensemble: Ensemble) -> None:
    scores = RunScores.from_results(results, [o.path for o in rec.outputs], scored_by="score", aggregate="mean",
                                    ensemble=ensemble)
    store.set_scores(rec.id, scores)


def score_run(store: RunStore, run_id: str, ensemble: Ensemble, *, stamp_png: bool = False) -> list[ScoreResult]:
    """Score one finished run (all its images) and write the scores into the store. Returns per-image results."""
    rec = store.get(run_id)
    return score_runs(store, [rec.id], ensemble, stamp_png=stamp_png)[rec.id]


def stored_raw_scores(store: RunStore) -> dict[str, list[float]]:
    """Scorer -> the raw score of every stored image, whichever path scored its run (a generate job, this module,
    a noise search, an evaluation): what ``comfygen scorers calibrate --from-store`` standardizes on."""
    raw: dict[str, list[float]] = {}
    for rec in store.list(limit=None, oldest_first=True):
        if rec.scoring is None:
            continue
        for name, values in rec.scoring.raw_values().items():
            raw.setdefault(name, []).extend(values)
    return raw
