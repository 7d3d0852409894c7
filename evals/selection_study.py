"""How much of the best-single->oracle gap can a prompt-only selector close on a rating file?

The planner (``comfygen planner cv``) is one answer. This study gives the figures that put it in context, in
seconds and without training a network:

- **frozen MiniLM + ridge**: each flow's within-prompt advantage regressed on the plain (unfine-tuned) prompt
  embedding; the penalty and the switching threshold chosen by grouped cross-validation inside the training
  folds, exactly as the planner chooses its threshold. Same outer folds as ``planner cv`` (seed 0).
- **learning curve**: the same selector trained on 25/50/75/100 % of each training fold's prompts: how far
  more prompts of the same kind would carry it.
- **per-label reference** (``--reference-column``): the best flow per label, as ``planner cv`` reports it.
- **rater noise** (``--ratings-column``, per-rater scores joined by ``;``, as GenAI-Bench's ``ratings``): how
  much of the flows' score differences is rater disagreement, and what picking the very image's best flow by
  two raters gains on a third. That gain bounds what any selector can reach when it knows the image itself; a
  selector that reads only the prompt knows less (the image also depends on the seed).

    python -m comfygen.evals.selection_study --triplets FILE.csv [--flows a,b,...] [--reference-column task]
        [--ratings-column ratings] [--folds 5]
"""

from __future__ import annotations

import argparse
import csv
import shlex
import sys
from pathlib import Path

import numpy as np

from ..tools.planner.data import TripletTable, grouped_folds, load_triplets
from ..tools.planner.planner import choose
from ..tools.planner.reference import per_label_reference, read_labels
from ..tools.planner.train import TAU_GRID

LAMBDAS = (1.0, 3.0, 10.0, 30.0, 100.0)
FRACTIONS = (0.25, 0.5, 0.75, 1.0)


def complete(table: TripletTable, flows: list[str] | None) -> TripletTable:
    """The table restricted to ``flows`` (default all) and to prompts measured under every one of them."""
    table = table.select_flows(flows) if flows else table
    return table.subset(np.flatnonzero(table.mask.all(1)))


def _ridge(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    yc = y - y.mean(1, keepdims=True)  # within-prompt advantages: the prompt's own level is not predicted
    return np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ yc)


def _picks(pred: np.ndarray, order: list[int], tau: float | None) -> np.ndarray:
    avail = np.ones(pred.shape[1], bool)
    return np.array([choose(p, avail, order, tau) for p in pred])


def fit_selector(x: np.ndarray, y: np.ndarray, inner: int = 5) -> tuple[np.ndarray, float | None, list[int]]:
    """Ridge weights, switching threshold and flow order, all chosen on (x, y) alone."""
    order = list(np.argsort(-y.mean(0), kind="stable"))
    b = order[0]
    diff_sd = float(np.sqrt(np.mean((y - y[:, [b]]) ** 2))) or 1.0
    best = (0.0, LAMBDAS[0], None)  # (gain, lambda, tau): None = never switch
    parts = grouped_folds(len(y), inner, 1)
    for lam in LAMBDAS:
        oof = np.zeros_like(y)
        for held in parts:
            rows = np.setdiff1d(np.arange(len(y)), held)
            oof[held] = x[held] @ _ridge(x[rows], y[rows], lam)
        for q in TAU_GRID:
            gain = float(y[np.arange(len(y)), _picks(oof, order, q * diff_sd)].mean() - y[:, b].mean())
            if gain > best[0] + 1e-12:
                best = (gain, lam, q * diff_sd)
    return _ridge(x, y, best[1]), best[2], order


def ridge_cv(x: np.ndarray, y: np.ndarray, folds: int = 5, fraction: float = 1.0, repeats: int = 1) -> np.ndarray:
    """Share of the gap per outer fold (averaged over ``repeats`` subsamples of ``fraction`` of its training)."""
    shares = np.zeros(folds)
    for k, test in enumerate(grouped_folds(len(y), folds, 0)):
        train_all = np.setdiff1d(np.arange(len(y)), test)
        base_col = int(np.argmax(y[train_all].mean(0)))
        base, oracle = y[test, base_col].mean(), y[test].max(1).mean()
        for r in range(repeats):
            rng = np.random.default_rng(r)
            train = train_all if fraction >= 1 else np.sort(rng.choice(train_all, int(fraction * len(train_all)),
                                                                       replace=False))
            w, tau, order = fit_selector(x[train], y[train])
            picked = y[test][np.arange(len(test)), _picks(x[test] @ w, order, tau)].mean()
            shares[k] += (picked - base) / (oracle - base) / repeats
    return shares


def rater_split(ratings: np.ndarray) -> dict[str, float]:
    """``ratings`` [prompts, flows, raters]: rater variance, variance of flows' score differences (vs the
    best flow), and the gain of picking each image's best flow by all raters but one, scored by that one."""
    n_r = ratings.shape[2]
    mean = ratings.mean(2)
    b = int(np.argmax(mean.mean(0)))
    rater_var = float(ratings.var(2, ddof=1).mean())
    diff_var = float(np.delete((mean - mean[:, [b]]).var(0), b).mean())
    gains = []
    for c in range(n_r):
        rest = np.delete(ratings, c, axis=2).mean(2)
        held = ratings[:, :, c]
        gains.append(held[np.arange(len(held)), rest.argmax(1)].mean() - held[:, b].mean())
    return {"rater_var": rater_var, "diff_var": diff_var, "diff_var_from_raters": 2 * rater_var / n_r,
            "image_pick_gain": float(np.mean(gains)), "oracle_gap": float(mean.max(1).mean() - mean[:, b].mean())}


def read_ratings(path: Path, column: str, table: TripletTable) -> np.ndarray | None:
    """Per-rater scores [prompts, flows, raters] for the table's cells, or None when the raters differ in count."""
    cell: dict[tuple[str, str], list[float]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            values = [float(v) for v in (row.get(column) or "").split(";") if v.strip()]
            if values:
                cell[(row["prompt_id"], row["flow"])] = values
    sizes = {len(cell.get((p, f), [])) for p in table.prompt_ids for f in table.flows}
    if len(sizes) != 1 or 0 in sizes or sizes == {1}:
        return None
    return np.array([[cell[(p, f)] for f in table.flows] for p in table.prompt_ids])


def embed(texts: list[str]) -> np.ndarray:
    from ..tools.categorize.classifier import CategoryClassifier

    emb = CategoryClassifier.encoder()(texts)
    return np.hstack([emb, np.ones((len(emb), 1))])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--triplets", type=Path, required=True)
    ap.add_argument("--score-column", default="score")
    ap.add_argument("--flows", help="comma-separated flows to compare (default: all in the file)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--reference-column", help="label column for the per-label reference (e.g. task, skills)")
    ap.add_argument("--ratings-column", help="per-rater scores joined by ';' (e.g. ratings)")
    ap.add_argument("--repeats", type=int, default=3, help="subsamples per learning-curve point")
    args = ap.parse_args(argv)

    table = complete(load_triplets(args.triplets, score_column=args.score_column),
                     args.flows.split(",") if args.flows else None)
    print(f"{args.triplets.name}: {len(table)} prompts measured under all of {', '.join(table.flows)}")
    x, y = embed(table.prompts), table.scores
    folds = grouped_folds(len(y), args.folds, 0)
    base = [y[t, int(np.argmax(y[np.setdiff1d(np.arange(len(y)), t)].mean(0)))].mean() for t in folds]
    oracle = [y[t].max(1).mean() for t in folds]
    print(f"best single (training folds) {np.mean(base):.4f}, oracle {np.mean(oracle):.4f} "
          f"({args.folds}-fold, grouped by prompt, seed 0)")
    s = ridge_cv(x, y, args.folds)
    print(f"frozen MiniLM + ridge: share of the gap {s.mean():.3f} ± {s.std(ddof=1):.3f} (sd over folds)")
    curve = [ridge_cv(x, y, args.folds, f, args.repeats if f < 1 else 1).mean() for f in FRACTIONS]
    print("learning curve (share at that fraction of each training fold): "
          + ", ".join(f"{int(100 * f)}% {v:.3f}" for f, v in zip(FRACTIONS, curve)))
    if args.reference_column:
        labels = read_labels(args.triplets, args.reference_column)
        shares = []
        for t, b0, o in zip(folds, base, oracle):
            ref, _ = per_label_reference(table.subset(np.setdiff1d(np.arange(len(y)), t)), table.subset(t), labels)
            shares.append((ref - b0) / (o - b0))
        print(f"per-{args.reference_column!r} reference: share {np.mean(shares):.3f} ± {np.std(shares, ddof=1):.3f}")
    if args.ratings_column:
        ratings = read_ratings(args.triplets, args.ratings_column, table)
        if ratings is None:
            print(f"rater noise: column {args.ratings_column!r} has no equal number (>1) of ratings per cell")
        else:
            r = rater_split(ratings)
            print(f"rater noise: {ratings.shape[2]} raters a cell, rater variance {r['rater_var']:.3f}; variance of a "
                  f"flow's difference to the best flow {r['diff_var']:.3f}, of which raters "
                  f"{r['diff_var_from_raters']:.3f}; picking each image's best flow by {ratings.shape[2] - 1} raters "
                  f"gains {r['image_pick_gain']:+.3f} "
                  f"on the held-out rater (oracle gap {r['oracle_gap']:.3f})")
    given = argv if argv is not None else sys.argv[1:]
    print("reproduce: python -m comfygen.evals.selection_study " + " ".join(shlex.quote(a) for a in given))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
