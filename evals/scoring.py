"""Score an evaluation's images: every configured scorer, and the GenEval verdict for GenEval prompts.

Scores of real scorers found in the run store are reused, and new ones are merged back into it, so a
second evaluation over the same images scores nothing twice. Tiny (random) scorers never touch the store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from ..tools.errors import ComfyGenError, StoreError
from ..tools.run_scores import RAW_ONLY, RunScores
from ..tools.store import RunStore

if TYPE_CHECKING:
    from ..tools.settings import Settings
from .metrics import Sample
from .prompts import Prompt

log = logging.getLogger(__name__)

BATCH = 16


def _open(path: str) -> Image.Image:
    """As stored: each scorer converts by its original's rule (``tools/scoring/preprocess.py``)."""
    from ..tools.scoring.stored_runs import load_images

    return load_images([path])[0]


def _stored(store: RunStore | None, s: Sample) -> dict[str, float]:
    """Raw scores the store holds for the sample's image (any path may have scored its run)."""
    if store is None or s.run_id is None:
        return {}
    try:
        rec = store.get(s.run_id)
    except (StoreError, KeyError):
        return {}
    image = rec.scoring.image_at(s.image or "") if rec.scoring is not None else None
    return dict(image.raw) if image is not None else dict(rec.scores or {})


def score_samples(samples: Sequence[Sample], cfg: Any, prompts: dict[str, Prompt], *, settings: Settings,
                  store: RunStore | None, write: Callable[[Sample], None],
                  scorer_factory: Callable[[str], Any] | None = None, geneval_scorer: Any = None) -> int:
    """Fill missing scores (and GenEval verdicts) on ``samples``; writes each changed sample. Returns how many changed.

    Each image is opened once, for every scorer and the GenEval check that still need it.
    """
    todo = [s for s in samples if s.error is None and s.image]
    missing = [s for s in todo if not Path(s.image or "").is_file()]
    for s in missing:
        log.warning("image of %s / %s (seed %s) is gone: not scored (%s)", s.strategy, s.prompt_id, s.seed, s.image)
    gone = {id(s) for s in missing}
    todo = [s for s in todo if id(s) not in gone]
    tiny = bool(cfg.tiny_scorers)
    changed: dict[int, Sample] = {}
    need = _reuse_stored(todo, list(cfg.scorers), None if tiny else store, changed)
    check = _geneval_needed(todo, cfg, prompts)
    pending = [s for s in todo if id(s) in check or any(id(s) in who for who in need.values())]
    scorers: dict[str, Any] = {}
    geneval = None
    for i in range(0, len(pending), BATCH):
        chunk = pending[i:i + BATCH]
        images = {id(s): _open(s.image or "") for s in chunk}
        for name, who in need.items():
            part = [s for s in chunk if id(s) in who]
            if not part:
                continue
            if name not in scorers:
                log.info("scoring %d images with %s", len(who), name)
                scorers[name] = _build(name, settings, tiny, scorer_factory)
            values = scorers[name].score([images[id(s)] for s in part], [s.prompt for s in part]).tolist()
            for s, v in zip(part, values):
                s.scores[name] = float(v)
                changed[id(s)] = s
                if not tiny and store is not None and s.run_id:
                    _merge_into_store(store, s.run_id, s.image, name, float(v))
        for s in (s for s in chunk if id(s) in check):
            geneval = geneval or geneval_scorer or _geneval_scorer(cfg)
            s.geneval_correct = geneval.evaluate(images[id(s)], prompts[s.prompt_id].meta).correct
            changed[id(s)] = s
    for s in changed.values():
        write(s)
    return len(changed)


def _reuse_stored(todo: list[Sample], names: list[str], store: RunStore | None,
                  changed: dict[int, Sample]) -> dict[str, set[int]]:
    """Take scores the run store already has; returns scorer -> ids of the samples still to score with it."""
    stored = {id(s): _stored(store, s) for s in todo} if store is not None else {}
    need: dict[str, set[int]] = {}
    for name in names:
        for s in todo:
            if name in s.scores:
                continue
            cached = stored.get(id(s), {})
            if name in cached:
                s.scores[name] = float(cached[name])
                changed[id(s)] = s
            else:
                need.setdefault(name, set()).add(id(s))
    return need


def _geneval_needed(todo: list[Sample], cfg: Any, prompts: dict[str, Prompt]) -> set[int]:
    if cfg.geneval is None:
        return set()
    return {id(s) for s in todo if s.geneval_correct is None and prompts.get(s.prompt_id) is not None
            and "include" in prompts[s.prompt_id].meta}


def _build(name: str, settings: Settings, tiny: bool, scorer_factory: Callable[[str], Any] | None) -> Any:
    if scorer_factory is not None:
        return scorer_factory(name)
    from ..tools.scoring.registry import build_scorer

    return build_scorer(name, settings, tiny=tiny)


def _merge_into_store(store: RunStore, run_id: str, image: str | None, name: str, value: float) -> None:
    """Add one scorer's value to the run's image (its total and the other scores stay as they were)."""
    try:
        rec = store.get(run_id)
        paths = [o.path for o in rec.outputs]
        index = paths.index(image) if image in paths else 0
        scoring = rec.scoring or RunScores(scored_by="eval", method=RAW_ONLY)
        store.set_scores(rec.id, scoring.with_raw(index, image, name, value))
    except ComfyGenError as e:
        log.warning("could not store the %s score of run %s: %s", name, run_id, e)


def _geneval_scorer(cfg: Any) -> Any:
    from .geneval import GenEvalScorer

    spec = cfg.geneval
    if spec.tiny:
        return GenEvalScorer.tiny(rules=spec.build_rules())
    return GenEvalScorer.from_pretrained(spec.detector, spec.clip, rules=spec.build_rules())
