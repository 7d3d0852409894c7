"""Adaptive dataset plans, simulated on real human ratings: how much of the full grid does a score table of
the same quality cost?

Data: GenAI-Bench (6 models x prompts, human 1-5 alignment) with its own skill tags as categories (plus "all").
Each repetition splits the prompts in half: the *build* half is where a plan spends runs, the *reference* half
gives the table the plan should agree with (held out, so the full grid is not its own yardstick).

Plans on the build half:
- ``grid``: every prompt x flow (cost 1.0);
- ``random``: a uniform random subset of cells at a given cost;
- ``halving``: successive halving per category (``tools/dataset/halving.py``, the policy the dataset builder's
  ``--plan halving`` runs): all flows on ``n0`` prompts, keep the better half, double the prompts, repeat;
  cells shared between categories are paid once, and all categories walk the prompts in one shared random
  order so they share cells.

Quality per category: top-1 agreement with the reference's best flow, and Spearman correlation of the flow
ranking. "Same quality" = mean top-1 agreement and Spearman within 0.02 of the grid's (both over categories
and repetitions). Reported: the cheapest halving setting that reaches it, and its cost ratio to the grid.

    python -m comfygen.evals.sim_adaptive --ratings DIR [--reps 200] [--quick]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..tools.dataset.halving import DEFAULT_ETA, successive_halving

COMMAND = "python -m comfygen.evals.sim_adaptive"


def load_genai(ratings: Path) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
    rows = list(csv.DictReader((ratings / "genai_bench_dev.csv").open(encoding="utf-8")))
    pids = list(dict.fromkeys(r["prompt_id"] for r in rows))
    flows = sorted({r["flow"] for r in rows})
    pi, fi = {p: i for i, p in enumerate(pids)}, {f: j for j, f in enumerate(flows)}
    y = np.full((len(pids), len(flows)), np.nan)
    skills: dict[str, set[int]] = {"all": set(range(len(pids)))}
    for r in rows:
        y[pi[r["prompt_id"]], fi[r["flow"]]] = float(r["score"])
        for s in filter(None, r["skills"].split("|")):
            skills.setdefault(s, set()).add(pi[r["prompt_id"]])
    return y, {k: np.array(sorted(v)) for k, v in skills.items()}, flows


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def ranking_from_cells(y: np.ndarray, seen: np.ndarray, prompts: np.ndarray) -> np.ndarray:
    """Per-flow mean over the category's prompts where the cell was paid for (-inf when never)."""
    sub, m = y[prompts], seen[prompts]
    with np.errstate(invalid="ignore"):
        means = np.where(m.any(0), np.nansum(np.where(m, sub, 0), 0) / np.maximum(m.sum(0), 1), -np.inf)
    return means


def halving(y: np.ndarray, cats: dict[str, np.ndarray], build: np.ndarray, n0: int, rng: np.random.Generator,
            eta: int = DEFAULT_ETA) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The builder's successive-halving policy per category, with the ratings as the score of each run."""
    seen = np.zeros_like(y, dtype=bool)
    scores: dict[str, np.ndarray] = {}
    known: dict[tuple[int, int], float] = {}
    # one prompt order for every category, so a category's early rounds reuse cells another one paid for
    position = np.full(len(y), np.iinfo(np.int64).max)
    position[build] = rng.permutation(len(build))
    for name, prompts in cats.items():
        pool = prompts[np.argsort(position[prompts])][: int((position[prompts] < len(y)).sum())]
        while not (state := successive_halving(pool.tolist(), range(y.shape[1]), known, n0=n0, eta=eta)).done:
            for i, j in state.pending:
                seen[i, j] = True
                known[(i, j)] = float(y[i, j])
        # elimination round * 1000 + mean: later rounds rank higher
        scores[name] = np.array([state.stage[j] * 1000 + state.means[j] for j in range(y.shape[1])])
    return seen, scores


def quality(scores: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> tuple[float, float]:
    top = [float(np.argmax(scores[c]) == np.argmax(ref[c])) for c in ref]
    rho = [spearman(scores[c], ref[c]) for c in ref]
    return float(np.mean(top)), float(np.mean(rho))


def simulate(y: np.ndarray, cats: dict[str, np.ndarray], reps: int, n0s: list[int], random_costs: list[float],
             seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    acc: dict[str, list[tuple[float, float, float]]] = {}
    for _ in range(reps):
        perm = rng.permutation(len(y))
        build, ref_rows = perm[: len(y) // 2], perm[len(y) // 2:]
        full = np.zeros_like(y, dtype=bool)
        full[build] = True
        ref_seen = np.zeros_like(y, dtype=bool)
        ref_seen[ref_rows] = True
        ref = {c: ranking_from_cells(y, ref_seen, p) for c, p in cats.items()}
        grid = {c: ranking_from_cells(y, full, p) for c, p in cats.items()}
        acc.setdefault("grid", []).append((1.0, *quality(grid, ref)))
        for n0 in n0s:
            seen, sc = halving(y, cats, build, n0, rng)
            acc.setdefault(f"halving n0={n0}", []).append((seen.sum() / full.sum(), *quality(sc, ref)))
        for cost in random_costs:
            seen = full & (rng.random(y.shape) < cost)
            sc = {c: ranking_from_cells(y, seen, p) for c, p in cats.items()}
            acc.setdefault(f"random {cost:.2f}", []).append((seen.sum() / full.sum(), *quality(sc, ref)))
    return {k: {"cost": float(np.mean([v[0] for v in vals])), "top1": float(np.mean([v[1] for v in vals])),
                "spearman": float(np.mean([v[2] for v in vals]))} for k, vals in acc.items()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ratings", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "ratings")
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--tolerance", type=float, default=0.02)
    ap.add_argument("--quick", action="store_true", help="20 repetitions.")
    args = ap.parse_args(argv)
    reps = 20 if args.quick else args.reps
    y, cats, flows = load_genai(args.ratings)
    plans = simulate(y, cats, reps, n0s=[2, 4, 6, 8, 12, 16, 24, 32], random_costs=[0.1, 0.2, 0.3, 0.5])
    g = plans["grid"]
    same = [(v["cost"], k) for k, v in plans.items() if k.startswith("halving")
            and v["top1"] >= g["top1"] - args.tolerance and v["spearman"] >= g["spearman"] - args.tolerance]
    best = min(same) if same else None
    for k, v in plans.items():
        print(f"{k:18s} cost {v['cost']:.3f}  top-1 agreement {v['top1']:.3f}  spearman {v['spearman']:.3f}")
    verdict = (f"cheapest halving plan with the grid's quality (±{args.tolerance}): {best[1]} at "
               f"{best[0]:.3f}x the grid's cost" if best else "no halving plan reached the grid's quality")
    print(verdict)
    cmd = f"{COMMAND} --ratings {args.ratings} --reps {reps}"
    print(f"reproduce: {cmd}")
    return {"benchmark": "sim_adaptive", "data": "GenAI-Bench human ratings (genai_bench_dev.csv)",
            "categories": len(cats), "flows": flows, "reps": reps, "plans": plans,
            "same_quality_plan": best[1] if best else None, "cost_ratio": best[0] if best else None,
            "command": cmd}


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
