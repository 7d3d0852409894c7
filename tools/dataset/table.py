"""Score-table cells from triplets (ComfyGen-IC's flow x category table), and the one writer of the user's table.

Everything that adds cells to ``$COMFYGEN_HOME/score_table.json`` (the service's online updates from scored
runs, :func:`update_table_from_run`, ``comfygen calibrate``) goes through :func:`add_to_score_table`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ...flow_library.score_table import ScoreTable
from ..files import locked
from ..settings import Settings, get_settings

if TYPE_CHECKING:
    from .builder import Triplet

logger = logging.getLogger(__name__)

LOCAL_METRIC = "ensemble score of local runs (comfygen scorers)"

Categorize = Callable[[list[str]], list[list[str]]]


def classifier_categorize(threshold: float = 0.5) -> Categorize:
    """Categories per prompt from the shipped classifier."""
    from ..categorize import CategoryClassifier

    clf = CategoryClassifier.load()
    return lambda prompts: [[c for c, _ in cats] for cats in clf.predict_many(prompts, threshold)]


def table_from_triplets(rows: Iterable[dict[str, Any]], categorize: Categorize, *, metric: str, notes: str = "",
                        source_of: Callable[[dict[str, Any]], str] | None = None) -> ScoreTable:
    """One observation per (prompt, flow) row into every category of its prompt."""
    rows = list(rows)
    prompts = list(dict.fromkeys(str(r["prompt"]) for r in rows))
    cats = dict(zip(prompts, categorize(prompts)))
    table = ScoreTable(metric=metric, notes=notes)
    for r in rows:
        score = float(r["score"])
        if not math.isfinite(score) or not cats.get(str(r["prompt"])):
            continue
        table.observe(str(r["flow"]), cats[str(r["prompt"])], score, source_of(r) if source_of else "triplets")
    return table


def add_to_score_table(path: Path, new: ScoreTable) -> ScoreTable:
    """The one writer of a user's score table: pool ``new``'s cells into the table on disk and save it atomically.

    The file is read afresh under an exclusive lock on every write, so cells that another process (a
    calibration, a second server) saves at the same time are kept rather than overwritten by an older copy.
    ``new``'s metric and notes name the table when the file does not exist yet. Returns the saved table.
    """
    with locked(path):
        table = ScoreTable.load(path).merge(new) if path.is_file() else new
        table.save(path)
    return table


def observation(flow_id: str, categories: list[str], score: float, source: str, *, metric: str = LOCAL_METRIC,
                notes: str = "") -> ScoreTable:
    """A table holding one measured score of ``flow_id`` in each of ``categories`` (to pass to add_to_score_table)."""
    table = ScoreTable(metric=metric, notes=notes)
    table.observe(flow_id, categories, float(score), source)
    return table


def add_calibration(triplets: Iterable[Triplet], path: Path) -> ScoreTable:
    """Merge a calibration build's scored runs into the user's score table (each under its prompt's categories)."""
    rows = [t.model_dump() for t in triplets]
    cat_of = {r["prompt"]: r["categories"] for r in rows}
    new = table_from_triplets(rows, lambda texts: [cat_of[t] for t in texts], metric=LOCAL_METRIC,
                              source_of=lambda r: "calibration")
    return add_to_score_table(path, new)


def update_table_from_run(flow_id: str, prompt: str, score: float | None, *, categories: list[str] | None = None,
                          source: str = "local run", settings: Settings | None = None,
                          path: Path | None = None) -> bool:
    """Add one scored run to the user's score table (``settings.score_table_path``).

    Does nothing (returns False) when ``settings.online_table_updates`` is off, the score is missing, or the
    prompt has no category. Categories come from the classifier when not given.
    """
    settings = settings or get_settings()
    if not settings.online_table_updates or score is None or not math.isfinite(score):
        return False
    if categories is None:
        categories = classifier_categorize()([prompt])[0]
    if not categories:
        return False
    add_to_score_table(path or settings.score_table_path,
                       observation(flow_id, categories, score, source, notes="updated online by scored runs"))
    return True
