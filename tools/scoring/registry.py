"""Build scorers by name, and report which ones are configured and loadable.

``build_scorer(name, settings, tiny=False)`` returns an unloaded scorer (models load on first use).
``tiny=True`` builds the same classes from tiny configs with seeded random weights and a tiny (or the
bundled) tokenizer: deterministic, offline, milliseconds to build. Tests, smoke evals and CPU
benchmarks use it; its numbers mean nothing about image quality.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from ..errors import ComfyGenError, ScoringError
from ..settings import Settings, get_settings
from .base import Scorer, pick_device
from .config import ScoringConfig, load_config

log = logging.getLogger(__name__)

SCORER_NAMES: tuple[str, ...] = ("imagereward", "hpsv21", "pickscore", "aesthetic", "clipscore", "hpsv20", "vlm")
ALIASES = {"hps": "hpsv21", "hpsv2.1": "hpsv21", "hpsv2.0": "hpsv20", "hpsv2": "hpsv20", "image_reward": "imagereward", "ir": "imagereward",
           "pick": "pickscore", "laion_aesthetic": "aesthetic", "clip": "clipscore"}


def canonical_name(name: str) -> str:
    n = name.strip().lower()
    n = ALIASES.get(n, n)
    if n not in SCORER_NAMES:
        raise ScoringError(f"unknown scorer {name!r}", hint=f"choose from {', '.join(SCORER_NAMES)}")
    return n


def _common(settings: Settings, cfg: ScoringConfig, tiny: bool, device: str | None) -> dict[str, Any]:
    return {"device": device or ("cpu" if tiny else settings.scorer_device), "batch_size": cfg.score_batch_size,
            "compile": cfg.score_compile, "tiny": tiny}


def _imagereward(s: Settings, c: ScoringConfig, kw: dict[str, Any]) -> Scorer:
    from .imagereward import ImageRewardScorer

    return ImageRewardScorer(checkpoint=c.imagereward_path, repo_id=c.imagereward_repo, weights_dir=s.weights_dir,
                             vocab_dir=c.imagereward_vocab, **kw)


def _hps(s: Settings, c: ScoringConfig, kw: dict[str, Any]) -> Scorer:
    from .hps import HPSv21Scorer

    return HPSv21Scorer(checkpoint=c.hps_path, repo_id=c.hps_repo, filename=c.hps_file, tokenizer=c.hps_tokenizer,
                        weights_dir=s.weights_dir, **kw)


def _hps20(s: Settings, c: ScoringConfig, kw: dict[str, Any]) -> Scorer:
    from .hps import HPSv20Scorer

    return HPSv20Scorer(checkpoint=c.hpsv20_path, repo_id=c.hps_repo, filename=c.hpsv20_file, tokenizer=c.hps_tokenizer,
                        weights_dir=s.weights_dir, **kw)


def _pickscore(s: Settings, c: ScoringConfig, kw: dict[str, Any]) -> Scorer:
    from .pickscore import PickScoreScorer

    return PickScoreScorer(model=c.pickscore_model, processor=c.pickscore_processor, weights_dir=s.weights_dir, **kw)


def _aesthetic(s: Settings, c: ScoringConfig, kw: dict[str, Any]) -> Scorer:
    from .aesthetic import AestheticScorer

    return AestheticScorer(clip=c.aesthetic_clip, head=c.aesthetic_path, repo_id=c.aesthetic_repo,
                           filename=c.aesthetic_file, activation=c.aesthetic_activation, weights_dir=s.weights_dir, **kw)


def _clipscore(s: Settings, c: ScoringConfig, kw: dict[str, Any]) -> Scorer:
    from .clipscore import ClipScoreScorer

    return ClipScoreScorer(model=c.clipscore_model, tokenizer=c.clipscore_tokenizer, activation=c.clipscore_activation,
                           weights_dir=s.weights_dir, **kw)


def _vlm(s: Settings, c: ScoringConfig, kw: dict[str, Any]) -> Scorer:
    from .vlm import VLMGrader

    return VLMGrader(base_url=c.vlm_url, model=c.vlm_model, api_key=c.vlm_api_key, aspect=c.vlm_aspect,
                     timeout_s=c.vlm_timeout_s, batch_size=kw["batch_size"], tiny=kw["tiny"])


_BUILDERS: dict[str, Callable[[Settings, ScoringConfig, dict[str, Any]], Scorer]] = {
    "imagereward": _imagereward, "hpsv21": _hps, "pickscore": _pickscore, "aesthetic": _aesthetic,
    "clipscore": _clipscore, "hpsv20": _hps20, "vlm": _vlm,
}


def build_scorer(name: str, settings: Settings | None = None, *, tiny: bool = False, device: str | None = None,
                 config: ScoringConfig | None = None) -> Scorer:
    """An (unloaded) scorer by name. ``tiny=True``: same architecture, tiny seeded random weights, CPU."""
    n = canonical_name(name)
    settings = settings or get_settings()
    cfg = config or load_config()
    return _BUILDERS[n](settings, cfg, _common(settings, cfg, tiny, device))


def build_scorers(names: list[str] | None = None, settings: Settings | None = None, *, tiny: bool = False,
                  device: str | None = None) -> list[Scorer]:
    settings = settings or get_settings()
    return [build_scorer(n, settings, tiny=tiny, device=device) for n in (names or settings.scorers)]


class ScorerStatus(BaseModel):
    name: str = Field(description="Scorer name.")
    configured: bool = Field(description="In the configured ensemble (COMFYGEN_SCORERS).")
    description: str = Field("", description="What the scorer measures.")
    device: str = Field("", description="Device it runs on.")
    loadable: bool | None = Field(None, description="Weights found and model built (None when not checked).")
    error: str | None = Field(None, description="Why it could not load, with what to set.")
    params: int | None = Field(None, description="Parameter count once loaded.")


def scorer_statuses(settings: Settings | None = None, *, check: bool = False, tiny: bool = False,
                    names: list[str] | None = None) -> list[ScorerStatus]:
    """``scorers list`` (check=False) and ``scorers check`` (check=True: try to load each one)."""
    settings = settings or get_settings()
    configured = {canonical_name(n) for n in settings.scorers}
    out = []
    for n in names or list(SCORER_NAMES):
        n = canonical_name(n)
        st = ScorerStatus(name=n, configured=n in configured)
        try:
            sc = build_scorer(n, settings, tiny=tiny)
            st.description, st.device = sc.description, str(sc.device)
            if check:
                sc.load()
                st.loadable = True
                st.params = sc.param_count() if sc.modules() else None
        except ComfyGenError as e:
            st.loadable, st.error = False, str(e)
        except Exception as e:  # a broken install must show up in `check`, not crash it
            st.loadable, st.error = False, f"{type(e).__name__}: {e}"
        out.append(st)
    return out


def default_device(settings: Settings | None = None) -> str:
    return str(pick_device((settings or get_settings()).scorer_device))
