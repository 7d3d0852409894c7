"""Score-table cells from triplets (ComfyGen-IC's flow x category table), and online updates from runs."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Callable, Iterable

from ...flow_library.score_table import ScoreTable
from ..settings import Settings, get_settings

logger = logging.getLogger(__name__)

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
    path = path or settings.score_table_path
    table = ScoreTable.load(path) if path.is_file() else ScoreTable(
        metric="ensemble score of local runs (comfygen scorers)", notes="updated online by scored runs")
    table.observe(flow_id, categories, float(score), source)
    table.save(path)
    return True
