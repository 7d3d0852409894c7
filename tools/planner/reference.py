"""The per-label reference of the selection benchmark: the best flow for each value of a label column (EvalMi-50K's
``task``, GenAI-Bench's ``skills``), chosen on the training prompts.

It reads labels the planner never sees, so it is the bar a prompt-only planner has to clear. A label's own best
flow is taken only where the label has at least ``min_prompts`` training prompts (the best of a handful of prompts
is mostly noise); that minimum is chosen by grouped cross-validation inside the training prompts, so the
reference, like the planner, is tuned on training data only.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import PlannerError
from .data import TripletTable, grouped_folds

MIN_PROMPTS_GRID = (1, 5, 10, 20, 40)


def read_labels(path: str | Path, column: str) -> dict[str, str]:
    """``prompt_id -> label`` from a triplet CSV's ``column`` (the first non-empty value per prompt)."""
    with Path(path).open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if column not in (reader.fieldnames or []):
            raise PlannerError(f"{Path(path).name} has no column {column!r}",
                               hint=f"its columns: {', '.join(reader.fieldnames or [])}")
        out: dict[str, str] = {}
        for row in reader:
            value = (row.get(column) or "").strip()
            if value and row["prompt_id"] not in out:
                out[row["prompt_id"]] = value
    if not out:
        raise PlannerError(f"column {column!r} is empty", hint="name a column that labels the prompts")
    return out


def fit_reference(train: TripletTable, labels: list[str], min_prompts: int) -> tuple[dict[str, int], list[int]]:
    """Each label's best flow (by mean training score) where it has ``min_prompts`` training prompts, and the
    training order of flows (its first is the best single flow, every other label's choice)."""
    order = train.flow_order()
    lab = np.array(labels, dtype=object)
    best: dict[str, int] = {}
    for value in set(labels):
        rows = np.flatnonzero(lab == value)
        if len(rows) < min_prompts:
            continue
        sub = train.subset(rows)
        counts = sub.mask.sum(0)
        means = np.where(counts >= max(1, 0.5 * len(rows)), np.nan_to_num(sub.flow_means(), nan=-np.inf), -np.inf)
        if np.isfinite(means).any():
            best[value] = int(np.argmax(means))
    return best, order


def reference_mean(best: dict[str, int], order: list[int], test: TripletTable, labels: list[str]) -> float:
    """Mean test score of the reference's pick (the label's flow where measured, else the first measured in order)."""
    total, n = 0.0, 0
    for i, value in enumerate(labels):
        avail = test.mask[i]
        if not avail.any():
            continue
        j = best.get(value, -1)
        if j < 0 or not avail[j]:
            j = next(c for c in order if avail[c])
        total += float(test.scores[i, j])
        n += 1
    return total / max(n, 1)


def choose_min_prompts(train: TripletTable, labels: list[str], folds: int = 5, seed: int = 1) -> int:
    """The minimum group size with the best mean score over grouped folds of the training prompts
    (ties go to the larger minimum, the more conservative reference)."""
    if len(train) < 2 * folds:
        return MIN_PROMPTS_GRID[-1]
    parts = grouped_folds(len(train), folds, seed)
    scores = []
    for m in MIN_PROMPTS_GRID:
        total = 0.0
        for held in parts:
            rows = np.setdiff1d(np.arange(len(train)), held)
            best, order = fit_reference(train.subset(rows), [labels[i] for i in rows], m)
            total += reference_mean(best, order, train.subset(held), [labels[i] for i in held]) * len(held)
        scores.append(total / len(train))
    return max(zip(scores, MIN_PROMPTS_GRID))[1]


def per_label_reference(train: TripletTable, test: TripletTable, labels: dict[str, str]) -> tuple[float, int]:
    """(mean test score of the per-label reference, the minimum group size chosen on the training prompts).
    Prompts without a label form one group of their own."""
    tr = [labels.get(p, "") for p in train.prompt_ids]
    te = [labels.get(p, "") for p in test.prompt_ids]
    m = choose_min_prompts(train, tr)
    best, order = fit_reference(train, tr, m)
    return reference_mean(best, order, test, te), m
