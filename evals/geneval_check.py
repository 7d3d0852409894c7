"""Check the GenEval rule logic against GenEval's human annotations.

GenEval's annotation files (``annotations_{clip,if-xl,sdv2}.csv``; MTurk, 5 raters per image, ~400 images
per system) hold what people *saw* in each image: per prompt object a count (0-4, 5 = "5 or more"), the
colours present (multi-select, 10 GenEval colours + gray), for two-object prompts whether object 1 is
left/right/neither and above/below/neither of object 0, plus a holistic caption fit (1-4, 4 = "fully
captures the meaning") and realism. The images themselves are not in the files (only their URLs).

Without the images this module can check the *rules*, not the detector:

1. Each rater's answers become synthetic detections (boxes placed to encode the stated counts and
   relations; colours as stated) and go through :func:`comfygen.evals.geneval.evaluate`, the same code
   that judges real detections. That gives a rule verdict per (image, rater).
2. The verdicts are compared with the raters' own holistic judgement (caption fit == 4): agreement and
   Cohen's kappa per task, per image (majority of raters) and per rating.
3. Inter-rater consistency of the rule verdict, and a GenEval-style table of each annotated system as
   the humans saw it.

Not checkable here: detection quality, score thresholds, NMS, the 0.1 position margin (raters answer
categorically), CLIP colour classification. With the images downloaded (``--images DIR``, laid out as
their URLs: ``<system>/<prompt:05d>/samples/<image:05d>.png``), :func:`check_detector` runs the full
OWLv2 + CLIP scorer and measures agreement with the human majority verdict.

    python -m comfygen.evals.geneval_check [--data-dir DIR] [--json out.json] [--images DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from .geneval import COLORS, TASKS, evaluate, geneval_table
from .prompts import load_geneval, resolve_data_dir

log = logging.getLogger(__name__)

SYSTEMS = ["clip", "if-xl", "sdv2"]
_STEP = 100.0  # synthetic layout: boxes 10 px wide, centres 100 px apart, so GenEval's margin never matters


def _count(v: str | None) -> int | None:
    if v is None or v == "":
        return None
    return int(float(v))


def human_detections(row: dict[str, str], meta: dict[str, Any]) -> tuple[dict[str, list[np.ndarray]], dict[str, set[str]]]:
    """One rater's answers as GenEval detections: class -> boxes, and class -> colours the rater saw."""
    include = meta["include"]
    names = [include[0]["class"], include[1]["class"] if len(include) > 1 else None]
    counts = [_count(row.get("Answer.task-count-0")), _count(row.get("Answer.task-count-1"))]
    colors = [set(filter(None, (row.get(f"Answer.task-color-{i}") or "").split("|"))) for i in (0, 1)]
    x = row.get("Answer.task-position-x") or ""
    y = row.get("Answer.task-position-y") or ""
    dx = {"left": -1.0, "right": 1.0}.get(x, 0.0)
    dy = {"above": -1.0, "below": 1.0}.get(y, 0.0)
    det: dict[str, list[np.ndarray]] = {}
    seen: dict[str, set[str]] = {}
    for i, (name, n) in enumerate(zip(names, counts)):
        if name is None or not n:
            continue
        # object 0 at the origin; object 1 displaced as the rater said (relative to object 0)
        cx, cy = (dx * _STEP, dy * _STEP) if i == 1 else (0.0, 0.0)
        boxes = [np.array([cx - 5, cy - 5 + k * 0.01, cx + 5, cy + 5 + k * 0.01]) for k in range(n)]
        det.setdefault(name, []).extend(boxes)
        seen.setdefault(name, set()).update(colors[i])
    return det, seen


def rule_verdict(row: dict[str, str], meta: dict[str, Any]) -> tuple[bool, list[str]]:
    det, seen = human_detections(row, meta)

    def color_fn(cls: str, boxes: list[np.ndarray]) -> list[str]:
        # raters name the colours present among all objects of a class, not per object: the required
        # colour counts as seen on one object (every GenEval colour prompt asks for count 1)
        want = next((r["color"] for r in meta["include"] if r["class"] == cls and "color" in r), None)
        present = seen.get(cls, set())
        first = want if want in present else next((c for c in COLORS if c in present), "none")
        return [first] + ["none"] * (len(boxes) - 1)

    return evaluate(det, meta, color_fn)


def load_annotations(data_dir: Path, system: str) -> tuple[list[dict[str, str]], int]:
    """Valid rows of one system's file, and how many were skipped (rows broken by unquoted newlines)."""
    path = data_dir / "ratings" / f"geneval__annotations_{system}.csv"
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    ok = [r for r in rows if (r.get("Input.prompt_id") or "").isdigit() and r.get("Answer.task-quality")
          and r.get("Answer.task-count-0") not in (None, "")]
    return ok, len(rows) - len(ok)


def _kappa(a: np.ndarray, b: np.ndarray) -> float:
    po = float((a == b).mean())
    pa, pb = a.mean(), b.mean()
    pe = float(pa * pb + (1 - pa) * (1 - pb))
    return (po - pe) / (1 - pe) if pe < 1 else float("nan")


def _agreement(x: list[bool], y: list[bool]) -> dict[str, float]:
    a, b = np.array(x, dtype=float), np.array(y, dtype=float)
    return {"n": int(len(a)), "agreement": float((a == b).mean()) if len(a) else float("nan"),
            "kappa": _kappa(a, b) if len(a) else float("nan"),
            "rule_correct_rate": float(a.mean()) if len(a) else float("nan"),
            "human_fit4_rate": float(b.mean()) if len(b) else float("nan")}


def check(data_dir: str | Path | None = None) -> dict[str, Any]:
    data = resolve_data_dir(data_dir)
    meta = {int(p.id.split(":")[1]): p.meta for p in load_geneval(data)}
    per_rating: dict[str, tuple[list[bool], list[bool]]] = defaultdict(lambda: ([], []))
    per_image: dict[str, tuple[list[bool], list[bool]]] = defaultdict(lambda: ([], []))
    unanimous: dict[str, list[bool]] = defaultdict(list)
    table_rows: list[tuple[str, str, bool]] = []
    skipped: dict[str, int] = {}
    images: dict[str, dict[str, bool]] = {}
    for system in SYSTEMS:
        rows, skipped[system] = load_annotations(data, system)
        by_image: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
        for r in rows:
            m = meta[int(r["Input.prompt_id"])]
            ok, _ = rule_verdict(r, m)
            fit = int(float(r["Answer.task-quality"])) == 4
            for key in (m["tag"], "all"):
                per_rating[key][0].append(ok)
                per_rating[key][1].append(fit)
            by_image[f"{r['Input.prompt_id']}_{r['Input.image_id']}"].append((ok, fit))
        images[system] = {}
        for img, votes in by_image.items():
            m = meta[int(img.split("_")[0])]
            rule = sum(v[0] for v in votes) * 2 > len(votes)
            fit = sum(v[1] for v in votes) * 2 > len(votes)
            images[system][img] = rule
            for key in (m["tag"], "all", f"system:{system}"):
                per_image[key][0].append(rule)
                per_image[key][1].append(fit)
                unanimous[key].append(len({v[0] for v in votes}) == 1)
            table_rows.append((system, m["tag"], rule))
    order = [t for t, _ in TASKS] + ["all"] + [f"system:{x}" for x in SYSTEMS]
    return {
        "source": "djghosh13/geneval@af4902f2 annotations (MTurk, 5 raters per image)",
        "skipped_rows": skipped,
        "per_image_majority": {k: _agreement(*per_image[k]) for k in order if k in per_image},
        "per_rating": {k: _agreement(*per_rating[k]) for k in order if k in per_rating},  # one row per rater answer
        "rule_unanimity": {k: float(np.mean(unanimous[k])) for k in order if k in unanimous},
        "human_geneval_table": geneval_table(table_rows),
        "not_checked": ["detector boxes and scores", "score thresholds (0.3 / 0.9 counting)", "NMS",
                        "the 0.1 position margin (raters answer left/right/neither)",
                        "CLIP colour classification on crops", "automatic-vs-human agreement (needs the images)"],
        "_image_verdicts": images,
    }


def check_detector(images_dir: str | Path, data_dir: str | Path | None = None, scorer: Any = None,
                   limit: int | None = None) -> dict[str, Any]:
    """With the annotated images on disk: automatic GenEval verdicts vs the human majority rule verdicts."""
    from PIL import Image

    from .geneval import GenEvalScorer

    human = check(data_dir)["_image_verdicts"]
    data = resolve_data_dir(data_dir)
    meta = {int(p.id.split(":")[1]): p.meta for p in load_geneval(data)}
    scorer = scorer or GenEvalScorer.from_pretrained()
    root = Path(images_dir)
    out: dict[str, dict[str, Any]] = {}
    for system, verdicts in human.items():
        auto, hum, tags = [], [], []
        for img, h in sorted(verdicts.items())[:limit]:
            pid, iid = (int(v) for v in img.split("_"))
            path = root / system / f"{pid:05d}" / "samples" / f"{iid:05d}.png"
            if not path.exists():
                continue
            res = scorer.evaluate(Image.open(path), meta[pid])
            auto.append(res.correct)
            hum.append(h)
            tags.append(meta[pid]["tag"])
        out[system] = _agreement(auto, hum) | {"images_found": len(auto)}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m comfygen.evals.geneval_check", description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--json", default=None, help="write the full result here")
    ap.add_argument("--images", default=None, help="folder with the annotated images, to check the detector too")
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args(argv)
    res = check(args.data_dir)
    res.pop("_image_verdicts")
    if args.images:
        res["detector_vs_human"] = check_detector(args.images, args.data_dir, limit=args.limit)
    print(f"GenEval rule logic vs human caption-fit (source: {res['source']})")
    print(f"skipped malformed rows: {res['skipped_rows']}")
    print(f"{'task':<14}{'images':>7}{'agree':>8}{'kappa':>8}{'rule ok':>9}{'fit=4':>8}{'unanimous':>11}")
    for k, v in res["per_image_majority"].items():
        print(f"{k:<14}{v['n']:>7}{v['agreement']:>8.3f}{v['kappa']:>8.3f}{v['rule_correct_rate']:>9.3f}"
              f"{v['human_fit4_rate']:>8.3f}{res['rule_unanimity'][k]:>11.3f}")
    print("GenEval-style table of the annotated systems, from the raters' answers (majority):")
    for system, row in res["human_geneval_table"].items():
        print(f"  {system:<6} " + "  ".join(f"{k}={v:.2f}" for k, v in row.items()))
    print("not checked here: " + "; ".join(res["not_checked"]))
    print("reproduce: python -m comfygen.evals.geneval_check")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":  # pragma: no cover
    main()
