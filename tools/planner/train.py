"""Train the planner from triplets (ComfyGen-FT, discriminative form).

The model predicts every flow's score for a prompt; it learns from within-prompt score differences (a
pairwise loss), so it needs no absolute calibration across prompts. Selection is shrunk toward the best
single flow of the training data: an alternative is picked first only when its predicted advantage exceeds
a threshold ``tau`` chosen on out-of-fold predictions (K members, each trained on K-1 folds of the
training prompts, predict the fold they did not see). The K members form the shipped ensemble.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import PlannerError
from .artifact import PlannerConfig, save_artifact
from .data import TripletTable, concat_tables, grouped_folds
from .linking import LinkedScale, ScaleData, fit_linked
from .net import EnsembleNet, TrainParams, train_member

logger = logging.getLogger(__name__)

TAU_GRID = tuple(round(0.05 * i, 2) for i in range(0, 17))  # multiples of the std of score differences


@dataclass
class PlannerTrainConfig:
    members: int = 3
    seed: int = 0
    params: TrainParams = field(default_factory=TrainParams)
    half: bool = False  # save weights as float16 (half the size; used for the bundled planner)
    default_tau_q: float = 0.25  # used when there are too few prompts for out-of-fold selection
    time_budget_s: float | None = None  # whole training; split over members (slow machines train fewer steps)


def select_tau(oof: np.ndarray, y: np.ndarray, order: list[int], diff_sd: float) -> tuple[float | None, dict[str, Any]]:
    """Choose the switching threshold from out-of-fold advantages.

    ``oof``: predicted scores [n, F] for prompts the predicting member did not train on; ``y``: true scores.
    Gains are smoothed over neighbouring thresholds (the curve is noisy); ties go to the larger threshold.
    Returns (tau in score units, or None when no threshold beats the best single flow; figures).
    """
    gains = np.array([pick_gain(oof, y, order, q * diff_sd) for q in TAU_GRID])
    smooth = np.convolve(np.pad(gains, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    best = max(range(len(TAU_GRID)), key=lambda i: (round(smooth[i], 6), i))
    info = {"tau_grid_q": list(TAU_GRID), "oof_gain": [round(float(g), 5) for g in gains],
            "chosen_q": TAU_GRID[best], "oof_gain_chosen": round(float(gains[best]), 5)}
    if smooth[best] <= 0:
        return None, info
    return float(TAU_GRID[best] * diff_sd), info


def pick_gain(pred: np.ndarray, y: np.ndarray, order: list[int], tau: float) -> float:
    """Mean (score of the pick - score of the best single flow) over prompts where both are measured."""
    from .planner import choose

    total, n = 0.0, 0
    mask = np.isfinite(y)
    b = order[0]
    for i in range(len(y)):
        if not mask[i, b]:
            continue
        j = choose(pred[i], mask[i], order, tau)
        total += y[i, j] - y[i, b]
        n += 1
    return total / max(n, 1)


def link_tables(tables: list[tuple[str, TripletTable]], *, anchor: str | None = None, bootstrap: int = 0,
                say: Callable[[str], None] = logger.info, link_only: set[str] = frozenset(),  # type: ignore[assignment]
                source_of: dict[str, str] | None = None) -> tuple[TripletTable, LinkedScale | None]:
    """Several sources -> one table in joint units (``linking.py``), prompts kept apart per source.

    Sources whose prompts are not rated under several flows, or named in ``link_only`` (e.g. a table whose
    prompt texts are unknown), inform the joint scale (each flow's quality) but not the prompt-level network,
    which learns from within-prompt differences of prompt texts. ``source_of`` groups several scales of one
    source (they never link each other); by default each table is its own source."""
    source_of = source_of or {}
    if len(tables) == 1:
        return tables[0][1], None
    data = [ScaleData.from_rows(name, t.to_rows(), source=source_of.get(name, name)) for name, t in tables]
    linked = fit_linked(data, anchor=anchor, bootstrap=bootstrap)
    for name, s in linked.scales.items():
        say(f"scale {name}: raw = {s['offset']:.3f} + {s['b']:.3f} x joint (noise sd {s['sigma']:.3f}, "
            f"{s['prompts']} prompts{'' if s['paired'] else ', unpaired: joint scale only'})")
    parts = []
    for (name, t), d in zip(tables, data):
        if not d.paired or name in link_only:
            continue
        z = linked.to_joint(name, t.scores)
        parts.append(TripletTable([f"{name}:{p}" for p in t.prompt_ids], list(t.prompts), list(t.flows), z, t.counts))
    if not parts:
        raise PlannerError("no training file rates its prompts under several flows",
                           hint="the planner learns from within-prompt differences: give at least one such file")
    return concat_tables(parts), linked


def train_planner(table: TripletTable | list[tuple[str, TripletTable]], out: Path,
                  cfg: PlannerTrainConfig | None = None, *, source: str | None = None,
                  on_progress: Callable[[str], None] | None = None, anchor: str | None = None,
                  bootstrap: int = 0, link_only: set[str] = frozenset(),  # type: ignore[assignment]
                  source_of: dict[str, str] | None = None) -> PlannerConfig:
    """Train and save a planner artifact in ``out``; returns its config.

    ``table`` is one triplet table, or several ``(name, table)`` sources: they are first put on one scale
    (``link_tables``), the first one's units being the reference."""
    cfg = cfg or PlannerTrainConfig()
    started = time.perf_counter()
    say0 = on_progress or (lambda msg: logger.info(msg))
    linked: LinkedScale | None = None
    if isinstance(table, list):
        table, linked = link_tables(table, anchor=anchor, bootstrap=bootstrap, say=say0, link_only=link_only,
                                    source_of=source_of)
    if len(table.flows) < 2:
        raise PlannerError("the triplets name only one flow", hint="a planner needs scores of at least two flows")
    present = table.scores[table.mask]
    mu, sd = float(present.mean()), float(present.std() or 1.0)
    z = (table.scores - mu) / sd
    order = table.flow_order()
    if linked is not None:  # the best single flow is the best on the joint scale among well-covered flows
        n_cov = table.mask.sum(0)
        reliable = n_cov >= max(1, 0.2 * n_cov.max())
        q = np.array([linked.quality(f) if f in linked.flows else -np.inf for f in table.flows])
        order = sorted(range(len(table.flows)), key=lambda j: (not reliable[j], -q[j]))
    b = order[0]
    diffs = (table.scores - table.scores[:, b:b + 1])[table.mask & table.mask[:, b:b + 1]]
    diffs = diffs[np.abs(diffs) > 0] if (np.abs(diffs) > 0).any() else np.array([sd])
    diff_sd = float(np.sqrt(np.mean(diffs ** 2)))
    n = len(table)
    k = cfg.members if n >= 2 * cfg.members and cfg.members >= 2 else 1
    say = on_progress or (lambda msg: logger.info(msg))
    if cfg.time_budget_s:
        cfg = replace(cfg, params=replace(cfg.params, time_budget_s=cfg.time_budget_s / (k + 0.5)))

    adapters, head_w, head_b = [], [], []
    oof = np.full_like(z, np.nan)
    if k == 1:
        say(f"training 1 member on {n} prompts (too few prompts for out-of-fold threshold selection)")
        state, w, bias = train_member(table.prompts, z, cfg.params, cfg.seed)
        adapters.append(state), head_w.append(w), head_b.append(bias)
        tau: float | None = cfg.default_tau_q * diff_sd
        cv_info: dict[str, Any] = {"note": f"tau = {cfg.default_tau_q} x std of score differences (no folds)"}
    else:
        for m, fold in enumerate(grouped_folds(n, k, cfg.seed)):
            train_rows = np.setdiff1d(np.arange(n), fold)
            say(f"member {m + 1}/{k}: training on {len(train_rows)} prompts, predicting {len(fold)} held out")
            state, w, bias = train_member([table.prompts[i] for i in train_rows], z[train_rows], cfg.params,
                                          cfg.seed + m)
            adapters.append(state), head_w.append(w), head_b.append(bias)
            net = EnsembleNet([state], w[None], bias[None], cfg.params)
            oof[fold] = net.scores([table.prompts[i] for i in fold])[:, 0, :]
        tau, cv_info = select_tau(oof * sd + mu, table.scores, order, diff_sd)
        cv_info["members"] = k
        cv_info["oof_best_single"] = round(float(np.nanmean(table.scores[:, b])), 5)
    means = table.flow_means()
    config = PlannerConfig(
        flows=list(table.flows), flow_order=[table.flows[j] for j in order],
        flow_means={f: round(float(means[j]), 5) for j, f in enumerate(table.flows) if np.isfinite(means[j])},
        flow_counts={f: int(table.mask[:, j].sum()) for j, f in enumerate(table.flows)},
        mean=mu, std=sd, score_min=float(present.min()), score_max=float(present.max()),
        tau=tau, tau_source="out-of-fold selection" if k > 1 else "default", members=k,
        params=asdict(cfg.params), cv={**cv_info, "diff_sd": round(diff_sd, 5)},
        trained_on={"source": source, "prompts": n, "cells": int(table.mask.sum()), "flows": len(table.flows),
                    "sha256": _table_hash(table), "seconds": round(time.perf_counter() - started, 1)},
        **_linking_fields(linked, table, means),
    )
    save_artifact(out, config, adapters, np.stack(head_w), np.stack(head_b), half=cfg.half)
    from .onnx_export import export_after_save

    export_after_save(out)  # planner.onnx: the torch-free serving graph
    say(f"saved planner to {out} ({k} member(s), tau={'none' if tau is None else round(tau, 4)}, "
        f"{time.perf_counter() - started:.0f} s)")
    return config


def _linking_fields(linked: LinkedScale | None, table: TripletTable, means: np.ndarray) -> dict[str, Any]:
    if linked is None:  # one source: its own flow means are the quality, in its own units
        return {"quality": {f: [round(float(means[j]), 5), None] for j, f in enumerate(table.flows)
                            if np.isfinite(means[j])}}
    sd = [None if not np.isfinite(v) else round(float(v), 5) for v in linked.theta_sd]
    return {"quality": {f: [round(float(linked.theta[j]), 5), sd[j]] for j, f in enumerate(linked.flows)},
            "scales": {k: {kk: (round(v, 5) if isinstance(v, float) else v) for kk, v in s.items()}
                       for k, s in linked.scales.items()},
            "flow_sources": linked.flow_scales}


def _table_hash(table: TripletTable) -> str:
    h = hashlib.sha256()
    for row in table.to_rows():
        h.update(f"{row['prompt_id']}\t{row['flow']}\t{row['score']:.6g}\n".encode())
    return h.hexdigest()[:16]
