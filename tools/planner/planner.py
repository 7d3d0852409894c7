"""Load a planner artifact and rank flows for prompts."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from ..errors import PlannerError
from .artifact import PlannerConfig, load_artifact

logger = logging.getLogger(__name__)

BACKEND_ENV = "COMFYGEN_PLANNER_BACKEND"


def use_onnx() -> bool:
    """Serve with ONNX Runtime (the default) unless ``COMFYGEN_PLANNER_BACKEND=torch``."""
    return os.environ.get(BACKEND_ENV, "onnx").strip().lower() != "torch"


def bundled_dir() -> Path:
    """The planner shipped with the package (trained on real human ratings, see the README)."""
    return Path(__file__).resolve().parents[2] / "flow_library" / "planner"


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
