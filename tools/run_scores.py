"""A run's scores as the run store keeps them: one typed record, whichever path scored the run.

Four paths score runs: a generate job (MCP ``generate`` / ``get_run``), :mod:`comfygen.tools.scoring.stored_runs`
(``comfygen score --run``, dataset builds), noise search (each candidate's verifier scores) and evaluations
(one scorer's value added to an image). Each builds a :class:`RunScores` and hands it to
:meth:`comfygen.tools.store.RunStore.set_scores`, the one writer, which also derives the run-level
``scores`` / ``score_total`` columns from it. Readers (``get_run``'s reply, the ``run://`` resource,
calibration from the store, evaluations' reuse of stored scores) read the same shape, so none of them
skips runs scored another way.

Store schema 1 kept an untyped dict in four shapes; :func:`from_legacy` converts each of them (the store's
migration to schema 2 runs it over every row of an older database).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:  # the ensemble imports torch; the store must not
    from .scoring.ensemble import Ensemble, ScoreResult

ScoredBy = Literal["generate", "score", "noise_search", "eval", "unknown"]
Aggregate = Literal["best", "mean"]

ENSEMBLE = "ensemble"  # weighted mean of z-scores against reference statistics
RAW_ONLY = "none"  # raw scorer outputs only, no combined total


class ScaleStats(BaseModel):
    """The reference statistics a scorer's raw score was standardized with (a snapshot, for re-standardizing)."""

    mean: float
    std: float
    n: int | None = None
    source: str | None = None


class ImageScore(BaseModel):
    """Scores of one image of a run."""

    index: int = Field(description="Position of the image in the run's outputs.")
    path: str | None = None
    total: float | None = Field(None, description="Combined score (see RunScores.method); None: raw scores only.")
    raw: dict[str, float] = Field(default_factory=dict, description="Scorer -> raw output.")
    z: dict[str, float] = Field(default_factory=dict, description="Scorer -> standardized score (ensemble only).")
    mean_rank: float | None = None
    candidate: int | None = Field(None, description="Noise search: the candidate's id.")
    rank: int | None = Field(None, description="Noise search: rank over all candidates of the search (1 = best).")
    noise: dict[str, Any] | None = Field(None, description="Noise search: the candidate's noise (a NoiseSpec, as JSON).")


class RunScores(BaseModel):
    """How a run was scored, per image, and which image is its best."""

    scored_by: ScoredBy = Field(description="Which path scored the run.")
    method: str = Field(ENSEMBLE, description="How totals were made: 'ensemble' (weighted z against reference "
                                              "statistics), 'mean_rank' (noise search ranks), 'none' (raw only).")
    aggregate: Aggregate = Field("best", description="The run's score is its best image's, or the mean over images.")
    images: list[ImageScore] = Field(default_factory=list)
    best: int | None = Field(None, description="Index (in the run's outputs) of the best image.")
    skipped: str | None = Field(None, description="Why the run is unscored (e.g. scorer weights missing).")
    weights: dict[str, float] = Field(default_factory=dict, description="Ensemble weight of each scorer.")
    stats: dict[str, ScaleStats] = Field(default_factory=dict)
    search_id: str | None = Field(None, description="Noise search that scored the run.")

    # ---------------------------------------------------------------- reading
    def image(self, index: int) -> ImageScore | None:
        return next((im for im in self.images if im.index == index), None)

    def image_at(self, path: str) -> ImageScore | None:
        return next((im for im in self.images if im.path == path), None)

    @property
    def total(self) -> float | None:
        """The run's score: the best image's total, or the mean of the images' totals."""
        if self.aggregate == "mean":
            totals = [im.total for im in self.images]
            return None if not totals or None in totals else sum(totals) / len(totals)  # type: ignore[arg-type]
        best = self.image(self.best) if self.best is not None else None
        return best.total if best else None

    def per_scorer(self) -> dict[str, float]:
        """Scorer -> the run's raw score: the best image's, or the mean over the images that have one."""
        if self.aggregate == "best":
            best = self.image(self.best if self.best is not None else 0)
            return dict(best.raw) if best else {}
        values: dict[str, list[float]] = {}
        for im in self.images:
            for name, v in im.raw.items():
                values.setdefault(name, []).append(v)
        return {name: sum(vs) / len(vs) for name, vs in values.items()}

    def totals(self, n: int) -> list[float | None]:
        """Total of each of ``n`` outputs, by position (None where unscored)."""
        out: list[float | None] = [None] * n
        for im in self.images:
            if 0 <= im.index < n:
                out[im.index] = im.total
        return out

    def raw_values(self) -> dict[str, list[float]]:
        """Scorer -> every image's raw score (what calibration standardizes on)."""
        out: dict[str, list[float]] = {}
        for im in self.images:
            for name, v in im.raw.items():
                out.setdefault(name, []).append(float(v))
        return out

    # ---------------------------------------------------------------- building
    @classmethod
    def from_results(cls, results: Sequence[ScoreResult], paths: Sequence[str], *, scored_by: ScoredBy,
                     aggregate: Aggregate = "best", ensemble: Ensemble | None = None) -> RunScores:
        """Ensemble results of a run's images (in output order); ``ensemble`` adds its weights and statistics.

        Only ``total`` and ``raw`` are required of a result (a scorer plugged into the service may give no z)."""
        images = [ImageScore(index=i, path=str(p), total=float(r.total), raw={k: float(v) for k, v in r.raw.items()},
                             z={k: float(v) for k, v in (getattr(r, "z", None) or {}).items()},
                             mean_rank=getattr(r, "mean_rank", None))
                  for i, (p, r) in enumerate(zip(paths, results, strict=True))]
        names = list(results[0].raw) if results else []
        weights = {n: float(ensemble.weights.get(n, 1.0)) for n in names} if ensemble is not None else {}
        stats = ({n: ScaleStats.model_validate(ensemble.stats.scorers[n].model_dump()) for n in names
                  if n in ensemble.stats.scorers} if ensemble is not None else {})
        return cls(scored_by=scored_by, method=ENSEMBLE, aggregate=aggregate, images=images, best=_argmax(images),
                   weights=weights, stats=stats)

    @classmethod
    def unscored(cls, reason: str, *, scored_by: ScoredBy) -> RunScores:
        """No scores, and why (so a later ``get_run`` says it too)."""
        return cls(scored_by=scored_by, method=RAW_ONLY, skipped=reason)

    def with_raw(self, index: int, path: str | None, name: str, value: float) -> RunScores:
        """A copy with one more raw score on one image (evaluations add scorers one at a time)."""
        out = self.model_copy(deep=True)
        image = out.image(index)
        if image is None:
            image = ImageScore(index=index, path=path)
            out.images = sorted([*out.images, image], key=lambda im: im.index)
        image.raw[name] = float(value)
        if out.best is None:
            out.best = index if out.aggregate == "best" else _argmax(out.images)
        return out


def _argmax(images: Sequence[ImageScore]) -> int | None:
    scored = [im for im in images if im.total is not None]
    if not scored:
        return images[0].index if images else None
    return max(scored, key=lambda im: im.total).index  # type: ignore[arg-type, return-value]


# -------------------------------------------------------------------- store schema 1
def from_legacy(breakdown: dict[str, Any] | None, *, scores: dict[str, float], total: float | None,
                paths: Sequence[str]) -> RunScores | None:
    """A schema-1 record's scores as :class:`RunScores`.

    Schema 1 stored ``score_breakdown`` in the shape of whichever path wrote it: a generate job's
    ``{best, totals, raw}`` (or ``{skipped}``), ``scoring/stored_runs.py``'s ``{aggregate, images, z, weights, stats}``,
    a noise search's ``{noise_search, aggregation, candidates}``; evaluations merged their scorers into the
    ``scores`` column only. Scores found in the column but in no image go on the best image; a record with
    scores and no known shape becomes one image holding them.
    """
    bd = breakdown if isinstance(breakdown, dict) else {}
    if isinstance(bd.get("images"), list):
        out = _legacy_scoring(bd, paths)
    elif isinstance(bd.get("candidates"), list):
        out = _legacy_search(bd, paths)
    elif isinstance(bd.get("raw"), list):
        out = _legacy_job(bd, paths)
    elif isinstance(bd.get("skipped"), str):
        out = RunScores.unscored(bd["skipped"], scored_by="generate")
    elif scores or total is not None:
        out = RunScores(scored_by="unknown", method=RAW_ONLY if total is None else ENSEMBLE, best=0,
                        images=[ImageScore(index=0, path=paths[0] if paths else None, total=total)])
    else:
        return None
    return _with_column_extras(out, scores)


def _legacy_scoring(bd: dict[str, Any], paths: Sequence[str]) -> RunScores:
    images = [ImageScore(index=i, path=im.get("path") or _path(paths, i), total=im.get("total"),
                         raw=im.get("raw") or {}, z=im.get("z") or {}, mean_rank=im.get("mean_rank"))
              for i, im in enumerate(bd["images"])]
    stats = {n: ScaleStats.model_validate(s) for n, s in (bd.get("stats") or {}).items()}
    return RunScores(scored_by="score", aggregate="mean", images=images, best=_argmax(images),
                     weights=bd.get("weights") or {}, stats=stats)


def _legacy_search(bd: dict[str, Any], paths: Sequence[str]) -> RunScores:
    images = [ImageScore(index=i, path=_path(paths, i), total=c.get("total"), raw=c.get("raw") or {},
                         candidate=c.get("candidate"), rank=c.get("rank"), noise=c.get("noise"))
              for i, c in enumerate(bd["candidates"])]
    return RunScores(scored_by="noise_search", method=str(bd.get("aggregation") or ENSEMBLE), images=images,
                     best=_argmax(images), search_id=bd.get("noise_search"))


def _legacy_job(bd: dict[str, Any], paths: Sequence[str]) -> RunScores:
    totals = bd.get("totals") or []
    images = [ImageScore(index=i, path=_path(paths, i), total=totals[i] if i < len(totals) else None, raw=raw or {})
              for i, raw in enumerate(bd["raw"])]
    best = bd.get("best")
    return RunScores(scored_by="generate", images=images,
                     best=best if isinstance(best, int) and any(im.index == best for im in images) else _argmax(images))


def _with_column_extras(out: RunScores, scores: dict[str, float]) -> RunScores:
    known = out.per_scorer()
    for name, value in scores.items():
        if name not in known:
            index = out.best if out.best is not None else 0
            image = out.image(index)
            out = out.with_raw(index, image.path if image else None, name, value)
    return out


def legacy_row_scores(row: Mapping[str, Any]) -> RunScores | None:
    """A ``runs`` row's schema-1 scores (its ``outputs``, ``scores``, ``score_total``, ``score_breakdown``)."""
    return from_legacy(None if row["score_breakdown"] is None else json.loads(row["score_breakdown"]),
                       scores=json.loads(row["scores"]), total=row["score_total"],
                       paths=[o.get("path") for o in json.loads(row["outputs"])])


def migrate_schema1(db: sqlite3.Connection) -> int:
    """Store schema 1 -> 2, inside the caller's transaction: every row's breakdown becomes a RunScores.
    Returns how many rows were rewritten."""
    cur = db.execute("SELECT id, outputs, scores, score_total, score_breakdown FROM runs WHERE "
                     "score_breakdown IS NOT NULL OR scores != '{}' OR score_total IS NOT NULL")
    cols = [c[0] for c in cur.description]
    rows = [dict(zip(cols, r)) for r in cur.fetchall()]
    for row in rows:
        typed = legacy_row_scores(row)
        db.execute("UPDATE runs SET score_breakdown=? WHERE id=?",
                   (None if typed is None else typed.model_dump_json(exclude_defaults=True), row["id"]))
    return len(rows)


def _path(paths: Sequence[str], i: int) -> str | None:
    return paths[i] if i < len(paths) else None


__all__ = ["ENSEMBLE", "RAW_ONLY", "Aggregate", "ImageScore", "RunScores", "ScaleStats", "ScoredBy", "from_legacy",
           "legacy_row_scores", "migrate_schema1"]
