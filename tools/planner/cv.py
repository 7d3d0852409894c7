"""Cross-validation grouped by prompt: train on K-1 folds, run the selection benchmark on the held-out fold."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
from pydantic import BaseModel

from .data import TripletTable, grouped_folds
from .evaluate import EvalReport, evaluate_planner
from .planner import Planner
from .train import PlannerTrainConfig, train_planner

logger = logging.getLogger(__name__)


class CVReport(BaseModel):
    folds: int
    seed: int
    per_fold: list[EvalReport]

    def summary(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for key in ("planner", "best_single", "random", "oracle", "switched"):
            vals = np.array([getattr(r, key) for r in self.per_fold])
            out[f"{key}_mean"] = float(vals.mean())
            out[f"{key}_sd"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        gains = np.array([r.planner - r.best_single for r in self.per_fold])
        out["gain_mean"] = float(gains.mean())
        out["gain_sd"] = float(gains.std(ddof=1)) if len(gains) > 1 else 0.0
        out["folds_won"] = int((gains > 0).sum())
        out["folds_lost"] = int((gains < 0).sum())
        return out

    def lines(self) -> list[str]:
        s = self.summary()
        out = [f"fold {i + 1}: planner={r.planner:.4f} best_single={r.best_single:.4f} ({r.best_single_flow}) "
               f"oracle={r.oracle:.4f} switched={100 * r.switched:.1f}%" for i, r in enumerate(self.per_fold)]
        out.append(f"{self.folds}-fold CV (seed {self.seed}): planner {s['planner_mean']:.4f} ± {s['planner_sd']:.4f}, "
                   f"best_single {s['best_single_mean']:.4f} ± {s['best_single_sd']:.4f}, "
                   f"oracle {s['oracle_mean']:.4f}, random {s['random_mean']:.4f}")
        out.append(f"gain over best single: {s['gain_mean']:+.4f} ± {s['gain_sd']:.4f} (sd over folds); "
                   f"folds won {s['folds_won']}, lost {s['folds_lost']}")
        return out


def cross_validate(table: TripletTable, folds: int = 5, seed: int = 0, cfg: PlannerTrainConfig | None = None,
                   work_dir: Path | None = None, on_progress: Callable[[str], None] | None = None) -> CVReport:
    say = on_progress or logger.info
    reports: list[EvalReport] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(work_dir or tmp)
        for k, test_rows in enumerate(grouped_folds(len(table), folds, seed)):
            train_rows = np.setdiff1d(np.arange(len(table)), test_rows)
            out = base / f"fold{k}"
            train_planner(table.subset(train_rows), out, cfg, source=f"cv fold {k + 1}/{folds}", on_progress=say)
            rep = evaluate_planner(Planner.load(out), table.subset(test_rows))
            say(f"fold {k + 1}/{folds}: planner={rep.planner:.4f} best_single={rep.best_single:.4f} "
                f"oracle={rep.oracle:.4f}")
            reports.append(rep)
            if work_dir is not None:
                (out / "eval.json").write_text(json.dumps(rep.model_dump(), indent=1))
    return CVReport(folds=folds, seed=seed, per_fold=reports)
