"""Load a planner artifact and rank flows for prompts."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field

from ..errors import PlannerError
from .artifact import PlannerConfig, bundled_dir, load_artifact

if TYPE_CHECKING:
    from ...flow_library.library import FlowLibrary
    from .coverage import CoverageMap

logger = logging.getLogger(__name__)

BACKEND_ENV = "COMFYGEN_PLANNER_BACKEND"


def use_onnx() -> bool:
    """Serve with ONNX Runtime (the default) unless ``COMFYGEN_PLANNER_BACKEND=torch``."""
    return os.environ.get(BACKEND_ENV, "onnx").strip().lower() != "torch"


class Prediction(BaseModel):
    flow_id: str = Field(description="Flow id.")
    score: float = Field(description="Predicted score for this prompt, in the units of the planner's training data.")
    advantage: float = Field(0.0, description="Predicted score minus the best single flow's predicted score.")
    normalized: float = Field(0.0, description="Predicted score mapped to [0, 1] over the training score range.")


def choose(pred: np.ndarray, available: np.ndarray, order: list[int], tau: float | None) -> int:
    """The flow to run: the best single flow (first available in ``order``) unless an available alternative's
    predicted score beats it by more than ``tau``."""
    base = next((j for j in order if available[j]), None)
    if base is None:
        cand = np.flatnonzero(available)
        return int(cand[np.argmax(pred[cand])])
    if tau is None:
        return base
    adv = np.where(available, pred - pred[base], -np.inf)
    adv[base] = -np.inf
    j = int(np.argmax(adv))
    return j if adv[j] > tau else base


class Planner:
    """A trained planner. ``Planner.load()`` gives the bundled one; weights load on first use."""

    def __init__(self, path: Path, config: PlannerConfig):
        self.path = path
        self.config = config
        self._net: Any = None
        self._lock = threading.Lock()
        self._torch = True
        self._index = {f: j for j, f in enumerate(config.flows)}
        self._order = [self._index[f] for f in config.flow_order]
        self._coverage: Any = None

    @classmethod
    def load(cls, dir: str | Path | None = None) -> "Planner":
        path = Path(dir) if dir is not None else bundled_dir()
        config_path = path / "config.json"
        if not config_path.is_file():
            raise PlannerError(f"no planner in {str(path)!r}",
                               hint="train one with `comfygen planner train --triplets FILE.csv --out DIR`, or "
                                    "unset COMFYGEN_PLANNER_DIR to use the bundled planner")
        try:
            config = PlannerConfig.model_validate_json(config_path.read_text())
        except ValueError as e:
            raise PlannerError(f"{config_path} is not a planner config ({e})", hint="retrain the planner") from e
        return cls(path, config)

    @property
    def flows(self) -> list[str]:
        return list(self.config.flows)

    @property
    def best_single(self) -> str:
        return self.config.best_single

    def _ensure(self) -> Any:
        if self._net is None:
            with self._lock:
                if self._net is None and use_onnx():
                    try:
                        from .runtime import planner_export, runtime_for

                        graph = planner_export(self.path)
                        self._net = runtime_for(graph) if graph is not None else None
                        self._torch = self._net is None
                        why = "no up-to-date planner.onnx"
                    except (ImportError, PlannerError) as e:
                        why = str(e)
                    if self._net is None:
                        logger.warning("%s in %s: serving with torch (export it with "
                                       "`python -m comfygen.tools.planner.onnx_export %s`)", why, self.path, self.path)
                if self._net is None:
                    from .net import EnsembleNet, TrainParams

                    config, adapters, head_w, head_b = load_artifact(self.path)
                    known = {f for f in TrainParams.__dataclass_fields__}
                    params = TrainParams(**{k: v for k, v in config.params.items() if k in known})
                    self._net = EnsembleNet(adapters, head_w, head_b, params)
        return self._net

    def score_matrix(self, prompts: list[str]) -> np.ndarray:
        """Predicted scores [n, F] (ensemble mean, training units), columns in ``self.flows`` order."""
        if not prompts:
            return np.zeros((0, len(self.config.flows)))
        z = self._ensure().scores(list(prompts)).mean(1)
        return z * self.config.std + self.config.mean

    def score_matrix_one(self, prompt: str) -> np.ndarray:
        """Predicted scores of one prompt (the torch path on one thread: see ``_one_thread``)."""
        self._ensure()
        with _one_thread() if self._torch else contextlib.nullcontext():
            return self.score_matrix([prompt])[0]

    def choose_index(self, pred: np.ndarray, available: np.ndarray | None = None) -> int:
        avail = np.ones(len(self.config.flows), bool) if available is None else available
        return choose(pred, avail, self._order, self.config.tau)

    def rank(self, pred: np.ndarray, target_score: float | None = None,
             allowed: set[str] | None = None) -> list[Prediction]:
        cfg = self.config
        avail = np.array([allowed is None or f in allowed for f in cfg.flows])
        if not avail.any():
            return []
        first = self.choose_index(pred, avail)
        base = next((j for j in self._order if avail[j]), first)
        span = max(cfg.score_max - cfg.score_min, 1e-9)
        norm = np.clip((pred - cfg.score_min) / span, 0.0, 1.0)
        idx = [j for j in np.argsort(-pred, kind="stable") if avail[j]]
        if target_score is not None:
            # ComfyGen-FT conditions on a target score: flows whose predicted (normalised) score is closest
            # to the target come first; ties go to the higher prediction.
            idx.sort(key=lambda j: (round(abs(norm[j] - target_score), 6), -pred[j]))
        else:
            idx.remove(first)
            idx.insert(0, first)
        return [Prediction(flow_id=cfg.flows[j], score=round(float(pred[j]), 5),
                           advantage=round(float(pred[j] - pred[base]), 5), normalized=round(float(norm[j]), 5))
                for j in idx]

    def coverage(self, flows: FlowLibrary) -> CoverageMap:
        """How every executable flow of ``flows`` (a library) borrows from this planner's rated flows."""
        from .coverage import CoverageMap

        key = id(flows)
        if self._coverage is None or self._coverage[0] != key:
            cfg = self.config
            quality = {f: (float(v[0]), float("nan") if v[1] is None else float(v[1]))
                       for f, v in cfg.quality.items() if v and v[0] is not None}
            for f, m in cfg.flow_means.items():  # artifacts from before the joint scale
                quality.setdefault(f, (float(m), float("nan")))
            self._coverage = (key, CoverageMap(flows, cfg.flows, quality, cfg.flow_counts, cfg.flow_sources))
        return self._coverage[1]

    def rank_library(self, pred: np.ndarray, flows: Any, *, allowed: set[str] | None = None,
                     target_score: float | None = None, user: dict[str, tuple[float, float, int]] | None = None
                     ) -> list[Any]:
        """Every executable flow of ``flows`` ranked for one prompt (``pred``: ``score_matrix`` row), each with
        its provenance. The flow best on the joint scale overall leads unless a flow predicted for this prompt
        beats it by more than the planner's threshold ``tau``."""
        from .coverage import combine_measured

        cov = self.coverage(flows)
        ranked = cov.predict(pred, allowed)
        if user:
            from .coverage import link_user_cells

            ref = {p.flow_id: p.score for p in ranked if p.provenance != "none"}
            user_joint = link_user_cells(user, ref)
            ranked = combine_measured(ranked, user_joint)
            overall = combine_measured(cov.predict(np.nan_to_num(cov.global_scores(), nan=-10.0), allowed),
                                       user_joint)
            base_id = overall[0].flow_id if overall else None
        else:
            base_id = cov.best_overall(allowed)
        if not ranked:
            return []
        if target_score is not None:
            cfg = self.config
            span = max(cfg.score_max - cfg.score_min, 1e-9)
            known = [p for p in ranked if p.provenance != "none"]
            known.sort(key=lambda p: (round(abs(min(max((p.score - cfg.score_min) / span, 0), 1) - target_score), 6),
                                      -p.rank_key))
            return known + [p for p in ranked if p.provenance == "none"]
        base = base_id
        first = ranked[0]
        if first.flow_id != base and self.config.tau is not None:
            base_now = next(p for p in ranked if p.flow_id == base)
            if first.rank_key - base_now.rank_key <= self.config.tau:
                ranked.remove(base_now)
                ranked.insert(0, base_now)
        elif first.flow_id != base and self.config.tau is None:
            base_now = next(p for p in ranked if p.flow_id == base)
            ranked.remove(base_now)
            ranked.insert(0, base_now)
        return ranked

    def rank_prompt(self, prompt: str, flows: Any, *, k: int = 5, target_score: float | None = None,
                    allowed: set[str] | None = None, user: dict[str, tuple[float, float, int]] | None = None
                    ) -> list[Any]:
        """``rank_library`` for one prompt text: the top ``k`` executable flows of ``flows``."""
        if not prompt or not prompt.strip():
            raise PlannerError("empty prompt", hint="pass the text of the image you want")
        if target_score is not None and not 0.0 <= target_score <= 1.0:
            raise PlannerError(f"target_score={target_score} is outside [0, 1]",
                               hint="give a normalised target, e.g. 0.9 for flows near the top of the training range")
        return self.rank_library(self.score_matrix_one(prompt), flows, allowed=allowed, target_score=target_score,
                                 user=user)[:k]

    def normalized(self, score: float) -> float:
        cfg = self.config
        return float(min(max((score - cfg.score_min) / max(cfg.score_max - cfg.score_min, 1e-9), 0.0), 1.0))

    def predict(self, prompt: str, k: int = 5, target_score: float | None = None,
                allowed: set[str] | None = None) -> list[Prediction]:
        """Top-k flows for a prompt. ``target_score`` in [0, 1] (normalised training range) asks for flows
        expected to reach about that score, as ComfyGen-FT's score-conditioned prompt does."""
        if not prompt or not prompt.strip():
            raise PlannerError("empty prompt", hint="pass the text of the image you want")
        if target_score is not None and not 0.0 <= target_score <= 1.0:
            raise PlannerError(f"target_score={target_score} is outside [0, 1]",
                               hint="give a normalised target, e.g. 0.9 for flows near the top of the training range")
        self._ensure()
        with _one_thread() if self._torch else contextlib.nullcontext():
            pred = self.score_matrix([prompt])[0]
        return self.rank(pred, target_score, allowed)[:k]


_THREADS_LOCK = threading.Lock()


class _one_thread:
    """Run one prompt's forward on one torch thread, then restore the setting.

    A single prompt through MiniLM is too small to gain from a second intra-op thread, and on a busy
    machine OpenMP's spinning makes it several times slower (measured: p50 19 ms on 1 thread vs 18-215 ms
    on 2, depending on other load; ``python -m comfygen.evals.perf.bench_planner``).
    """

    def __enter__(self) -> None:
        import torch

        _THREADS_LOCK.acquire()
        self._saved = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.set_num_threads(self._saved)
        _THREADS_LOCK.release()
