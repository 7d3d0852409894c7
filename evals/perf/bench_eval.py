"""Eval-harness overhead: win-rate matrix with bootstrap CIs, GenEval rules, the annotation check, report building.

Everything here is CPU-only and model-free except ``--detector``, which times the tiny OWLv2 + CLIP path
(random weights: the speed of the code around the models, not of real weights).

    python -m comfygen.evals.perf.bench_eval [--quick] [--detector]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _samples(n_prompts: int, strategies: int, seed: int = 0) -> list[Any]:
    from ..metrics import Sample

    rng = np.random.default_rng(seed)
    out = []
    for k in range(strategies):
        for i in range(n_prompts):
            out.append(Sample(strategy=f"s{k}", prompt_id=f"p{i}", prompt=f"prompt {i}", category=f"c{i % 12}", seed=0,
                              flow_id=f"f{rng.integers(0, 40)}", scores={"hps": float(rng.normal(0.25 + 0.01 * k, 0.02)),
                                                                         "ir": float(rng.normal())},
                              gpu_seconds=float(rng.uniform(1, 5)), geneval_correct=bool(rng.random() < 0.5)))
    return out


def bench_win_matrix(n_prompts: int, strategies: int, n_boot: int) -> dict[str, Any]:
    from ..metrics import win_matrix

    samples = _samples(n_prompts, strategies)
    t = time.perf_counter()
    m = win_matrix(samples, [f"s{k}" for k in range(strategies)], "hps", n_boot=n_boot)
    dt = time.perf_counter() - t
    return {"prompts": n_prompts, "strategies": strategies, "pairs": len(m), "n_boot": n_boot, "seconds": dt,
            "ms_per_pair": 1000 * dt / len(m)}


def bench_rules(n: int) -> dict[str, Any]:
    from ..geneval import evaluate, select_detections
    from ..prompts import load_geneval

    prompts = load_geneval(None)
    rng = np.random.default_rng(0)
    items = []
    for i in range(n):
        meta = prompts[i % len(prompts)].meta
        raw = {}
        for req in meta["include"]:
            k = int(rng.integers(0, 4))
            raw[req["class"]] = [(np.array([x := rng.uniform(0, 400), y := rng.uniform(0, 400), x + 60, y + 60]),
                                  float(rng.uniform(0.2, 1.0))) for _ in range(k)]
        items.append((raw, meta))
    t = time.perf_counter()
    correct = 0
    for raw, meta in items:
        kept = select_detections(raw, meta["tag"])
        correct += evaluate(kept, meta, lambda c, b: ["red"] * len(b))[0]
    dt = time.perf_counter() - t
    return {"images": n, "seconds": dt, "us_per_image": 1e6 * dt / n}


def bench_check() -> dict[str, Any]:
    from ..geneval_check import check
    from ..prompts import default_data_dir

    data = default_data_dir()
    if data is None or not (data / "ratings").is_dir():
        return {"skipped": "no data dir with ratings/ (set COMFYGEN_DATA_DIR)"}
    t = time.perf_counter()
    res = check(data)
    return {"seconds": time.perf_counter() - t, "images": res["per_image_majority"]["all"]["n"],
            "agreement": res["per_image_majority"]["all"]["agreement"]}


def bench_report(n_prompts: int, strategies: int) -> dict[str, Any]:
    from PIL import Image

    from ..report import build_report

    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        samples = _samples(n_prompts, strategies)
        for i, s in enumerate(samples):
            p = root / f"{i}.png"
            Image.new("RGB", (512, 512), (i % 255, (7 * i) % 255, 90)).save(p)
            s.image = str(p)
        (root / "samples.jsonl").write_text("".join(s.model_dump_json() + "\n" for s in samples))
        (root / "run.json").write_text(json.dumps({"name": "bench", "heldout": "hps", "baseline": "s0"}))
        t = time.perf_counter()
        path = build_report(root, n_boot=1000, max_grid_prompts=24)
        dt = time.perf_counter() - t
        size = path.stat().st_size
    return {"samples": len(samples), "seconds": dt, "html_kb": size / 1024}


def bench_detector(images: int) -> dict[str, Any]:
    from PIL import Image

    from ..geneval import GenEvalScorer
    from ..prompts import load_geneval

    t = time.perf_counter()
    scorer = GenEvalScorer.tiny()
    build = time.perf_counter() - t
    metas = [p.meta for p in load_geneval(None) if p.category == "color_attr"]
    img = Image.new("RGB", (512, 512), (120, 30, 30))
    t = time.perf_counter()
    for i in range(images):
        scorer.evaluate(img, metas[i % len(metas)])
    dt = time.perf_counter() - t
    return {"build_s": build, "images": images, "ms_per_image": 1000 * dt / images}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m comfygen.evals.perf.bench_eval", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    ap.add_argument("--detector", action="store_true", help="also time the tiny OWLv2 + CLIP path")
    args = ap.parse_args(argv)
    q = args.quick
    out: dict[str, Any] = {
        "win_matrix": bench_win_matrix(100 if q else 500, 4 if q else 8, 1000 if q else 2000),
        "geneval_rules": bench_rules(2000 if q else 20000),
        "geneval_check": bench_check(),
        "report": bench_report(25 if q else 100, 4),
    }
    if args.detector:
        out["tiny_detector"] = bench_detector(4 if q else 16)
    print(json.dumps(out, indent=2))
    print("reproduce: python -m comfygen.evals.perf.bench_eval" + (" --quick" if q else "")
          + (" --detector" if args.detector else ""))
    return out


if __name__ == "__main__":  # pragma: no cover
    main()
