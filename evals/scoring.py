"""Score an evaluation's images: every configured scorer, and the GenEval verdict for GenEval prompts.

Scores of real scorers found in the run store are reused, and new ones are merged back into it, so a
second evaluation over the same images scores nothing twice. Tiny (random) scorers never touch the store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from ..tools.errors import ComfyGenError, StoreError
from .metrics import Sample
from .prompts import Prompt

log = logging.getLogger(__name__)

BATCH = 16


def _open(path: str) -> Image.Image:
    """As stored: each scorer converts by its original's rule (``tools/scoring/preprocess.py``)."""
    from ..tools.scoring.runs import load_images

    return load_images([path])[0]


def _store_scores(store: Any, run_id: str | None) -> dict[str, float]:
    if store is None or run_id is None:
        return {}
    try:
        return dict(store.get(run_id).scores or {})
    except (StoreError, KeyError):
        return {}


def score_samples(samples: Sequence[Sample], cfg: Any, prompts: dict[str, Prompt], *, settings: Any, store: Any,
                  write: Callable[[Sample], None], scorer_factory: Callable[[str], Any] | None = None,
                  geneval_scorer: Any = None) -> int:
    """Fill missing scores (and GenEval verdicts) on ``samples``; writes each changed sample. Returns how many changed."""
    todo = [s for s in samples if s.error is None and s.image]
    missing = [s for s in todo if not Path(s.image or "").is_file()]
    for s in missing:
        log.warning("image of %s / %s (seed %s) is gone: not scored (%s)", s.strategy, s.prompt_id, s.seed, s.image)
    gone = {id(s) for s in missing}
    todo = [s for s in todo if id(s) not in gone]
    changed: dict[int, Sample] = {}
    tiny = bool(cfg.tiny_scorers)
    for name in cfg.scorers:
        need = []
        for s in todo:
            if name in s.scores:
                continue
            cached = {} if tiny else _store_scores(store, s.run_id)
            if name in cached:
                s.scores[name] = float(cached[name])
                changed[id(s)] = s
            else:
                need.append(s)
        if not need:
            continue
        if scorer_factory is not None:
            scorer = scorer_factory(name)
        else:
            from ..tools.scoring.registry import build_scorer

            scorer = build_scorer(name, settings, tiny=tiny)
        log.info("scoring %d images with %s", len(need), name)
        for i in range(0, len(need), BATCH):
            chunk = need[i:i + BATCH]
            values = scorer.score([_open(s.image or "") for s in chunk], [s.prompt for s in chunk]).tolist()
            for s, v in zip(chunk, values):
                s.scores[name] = float(v)
                changed[id(s)] = s
                if not tiny and store is not None and s.run_id:
                    _merge_into_store(store, s.run_id, name, float(v))
    if cfg.geneval is not None:
        need = [s for s in todo if s.geneval_correct is None and prompts.get(s.prompt_id) is not None
                and "include" in prompts[s.prompt_id].meta]
        if need:
            scorer = geneval_scorer or _geneval_scorer(cfg)
            for s in need:
                res = scorer.evaluate(_open(s.image or ""), prompts[s.prompt_id].meta)
                s.geneval_correct = res.correct
                changed[id(s)] = s
    for s in changed.values():
        write(s)
    return len(changed)


def _merge_into_store(store: Any, run_id: str, name: str, value: float) -> None:
    try:
        rec = store.get(run_id)
        store.set_scores(run_id, {**(rec.scores or {}), name: value}, rec.score_total, rec.score_breakdown)
    except ComfyGenError as e:
        log.warning("could not store the %s score of run %s: %s", name, run_id, e)


def _geneval_scorer(cfg: Any) -> Any:
    from .geneval import GenEvalScorer

    spec = cfg.geneval
    if spec.tiny:
        return GenEvalScorer.tiny(rules=spec.build_rules())
    return GenEvalScorer.from_pretrained(spec.detector, spec.clip, rules=spec.build_rules())
