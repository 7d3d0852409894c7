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
from .reference import per_label_reference
from .train import PlannerTrainConfig, train_planner

logger = logging.getLogger(__name__)


class CVReport(BaseModel):
    folds: int
    seed: int
    per_fold: list[EvalReport]
    label_column: str | None = None  # the per-label reference's column, when one was given
    reference: list[float] = []  # per fold: mean test score of the best flow per label (chosen on training folds)
    reference_min_prompts: list[int] = []  # per fold: the smallest label group given its own best flow

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
        out["share_mean"], out["share_sd"] = _share([r.planner for r in self.per_fold], self.per_fold)
        if self.reference:
            out["reference_mean"] = float(np.mean(self.reference))
            out["reference_sd"] = float(np.std(self.reference, ddof=1)) if len(self.reference) > 1 else 0.0
            out["reference_share_mean"], out["reference_share_sd"] = _share(self.reference, self.per_fold)
        return out

    def lines(self) -> list[str]:
        s = self.summary()
        out = [f"fold {i + 1}: planner={r.planner:.4f} best_single={r.best_single:.4f} ({r.best_single_flow}) "
               f"oracle={r.oracle:.4f} switched={100 * r.switched:.1f}%" for i, r in enumerate(self.per_fold)]
        out.append(f"{self.folds}-fold CV (seed {self.seed}): planner {s['planner_mean']:.4f} ± {s['planner_sd']:.4f}, "
                   f"best_single {s['best_single_mean']:.4f} ± {s['best_single_sd']:.4f}, "
                   f"oracle {s['oracle_mean']:.4f}, random {s['random_mean']:.4f}")
        out.append(f"gain over best single: {s['gain_mean']:+.4f} ± {s['gain_sd']:.4f} (sd over folds); "
                   f"folds won {s['folds_won']}, lost {s['folds_lost']}; share of the best-single->oracle gap "
                   f"{s['share_mean']:.3f} ± {s['share_sd']:.3f}")
        if self.reference:
            out.append(f"per-{self.label_column!r} reference (best flow per label, chosen on the training folds; it "
                       f"reads labels the planner does not): {s['reference_mean']:.4f} ± {s['reference_sd']:.4f}, "
                       f"share {s['reference_share_mean']:.3f} ± {s['reference_share_sd']:.3f} "
                       f"(own best from {'/'.join(map(str, self.reference_min_prompts))} training prompts a label)")
        return out


def _share(values: list[float], folds: list[EvalReport]) -> tuple[float, float]:
    """Mean and sd over folds of (value - best single) / (oracle - best single)."""
    s = np.array([(v - r.best_single) / (r.oracle - r.best_single) if r.oracle > r.best_single else 0.0
                  for v, r in zip(values, folds)])
    return float(s.mean()), float(s.std(ddof=1)) if len(s) > 1 else 0.0


def cross_validate(table: TripletTable, folds: int = 5, seed: int = 0, cfg: PlannerTrainConfig | None = None,
                   work_dir: Path | None = None, on_progress: Callable[[str], None] | None = None,
                   labels: dict[str, str] | None = None, label_column: str | None = None,
                   eval_flows: list[str] | None = None) -> CVReport:
    """Grouped K-fold CV; with ``labels`` (prompt id -> label) the per-label reference runs on the same folds.
    With ``eval_flows`` the planner trains on every flow but chooses among these only (as a planner trained with
    reference models serves a user who can run only some), and so do the baselines and the reference."""
    say = on_progress or logger.info
    reports: list[EvalReport] = []
    reference: list[float] = []
    reference_min: list[int] = []
    scored = table if eval_flows is None else table.select_flows(eval_flows)  # unknown flows fail before training
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(work_dir or tmp)
        for k, test_rows in enumerate(grouped_folds(len(table), folds, seed)):
            train_rows = np.setdiff1d(np.arange(len(table)), test_rows)
            out = base / f"fold{k}"
            train_planner(table.subset(train_rows), out, cfg, source=f"cv fold {k + 1}/{folds}", on_progress=say)
            rep = evaluate_planner(Planner.load(out), scored.subset(test_rows))
            line = (f"fold {k + 1}/{folds}: planner={rep.planner:.4f} best_single={rep.best_single:.4f} "
                    f"oracle={rep.oracle:.4f}")
            if labels is not None:
                ref, m = per_label_reference(scored.subset(train_rows), scored.subset(test_rows), labels)
                reference.append(ref), reference_min.append(m)
                line += f" per-label reference={ref:.4f}"
            say(line)
            reports.append(rep)
            if work_dir is not None:
                (out / "eval.json").write_text(json.dumps(rep.model_dump(), indent=1))
    return CVReport(folds=folds, seed=seed, per_fold=reports, label_column=label_column if labels else None,
                    reference=reference, reference_min_prompts=reference_min)
