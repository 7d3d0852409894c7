"""Scorer throughput: images/second scored in batches vs one image at a time, with and without torch.compile.

Models have random weights (no download): by default the tiny configs of ``build_scorer(..., tiny=True)``
(what tests and CPU smoke runs use); with ``--real-size`` the real architectures (ImageReward's BLIP
ViT-L/16 + BERT-base, ViT-H-14 for HPS v2.1 and PickScore, ViT-L/14 for the aesthetic head and CLIPScore),
meant for a GPU (fp16 there). Each figure is the median of ``--repeat`` timed passes after one warm-up
pass; preprocessing (PIL resize, tokenization) is included, as in real use. Besides wall-clock images/s it
reports images per CPU-second of this process, which stays meaningful on a shared, loaded machine. ``--compile`` adds a
torch.compile run (its one-off compile time is reported separately). ``--smash`` adds a run of a fresh copy of
each scorer passed through Pruna (``Scorer.smash``, Pruna's ``torch_compile`` by default; ``--smash-backend
openvino`` picks its other CPU backend); it needs the optional ``pruna`` package, best kept in its own
environment (it pins older peft/transformers), and says so when it is missing.

    python -m comfygen.evals.perf.bench_scoring [--n 16] [--batch-size 8] [--size 256] [--compile]
    python -m comfygen.evals.perf.bench_scoring --real-size --device cuda --n 32 --batch-size 16
    PRUNA_METRICS_ENABLED=false python -m comfygen.evals.perf.bench_scoring --smash --threads 1
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from typing import Any

import numpy as np
import torch
from PIL import Image

from ...tools.scoring.base import RewardMLP, Scorer
from ...tools.scoring.registry import build_scorer

COMMAND = "python -m comfygen.evals.perf.bench_scoring"
DEFAULT_SCORERS = ["imagereward", "hpsv21", "pickscore", "aesthetic", "clipscore"]
PROMPTS = ["a photo of a cat on a red sofa, soft light", "astronaut riding a horse on the moon, digital art",
           "city street at night with neon lights, highly detailed", "an oil painting of the sea at sunset"]

# Real architectures (shapes of the official checkpoints), random weights.
VIT_H14 = dict(vision=dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
                           image_size=224, patch_size=14, hidden_act="gelu"),
               text=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                         vocab_size=49408, max_position_embeddings=77, hidden_act="gelu"), projection_dim=1024)
VIT_L14 = dict(vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                           image_size=224, patch_size=14, hidden_act="quick_gelu"),
               text=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                         vocab_size=49408, max_position_embeddings=77, hidden_act="quick_gelu"), projection_dim=768)


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _images(n: int, size: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB") for _ in range(n)]


def _clip(arch: dict[str, Any], device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import CLIPConfig, CLIPModel

    cfg = CLIPConfig(text_config={**arch["text"], "eos_token_id": 2}, vision_config=arch["vision"],
                     projection_dim=arch["projection_dim"])
    with torch.device(device):
        return CLIPModel(cfg).to(dtype).eval()


def real_size(name: str, device: str) -> Scorer:
    """A scorer with the real architecture and random weights (tokenizer: the tiny one; ids fit any vocab)."""
    from ...tools.scoring.aesthetic import AestheticNet
    from ...tools.scoring.clip_common import ClipPair
    from ...tools.scoring.imagereward import REAL_TEXT, REAL_VISION, ImageRewardModel

    s = build_scorer(name, tiny=True, device=device)
    s.dtype = torch.float16 if s.device.type == "cuda" else torch.float32
    s.load()  # tiny build: tokenizer and attributes; the model is replaced below
    if name == "imagereward":
        with torch.device(s.device):
            s.model = ImageRewardModel(REAL_VISION, REAL_TEXT).to(s.dtype).eval()
        s.image_size = 224
    elif name in ("hpsv21", "pickscore", "clipscore"):
        s.model = _clip(VIT_H14 if name != "clipscore" else VIT_L14, s.device, s.dtype)
        s.net = ClipPair(s.model)
        s.image_size, s.max_length = 224, 77
    elif name == "aesthetic":
        with torch.device(s.device):
            head = RewardMLP(768).to(s.dtype)
        s.net = AestheticNet(_clip(VIT_L14, s.device, s.dtype), head).eval()
        s.image_size = 224
    else:
        raise ValueError(name)
    return s


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device, repeat: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds of this process (the latter is robust to other load)."""
    fn()  # warm-up
    _sync(device)
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        _sync(device)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def bench_one(s: Scorer, imgs: list[Image.Image], prompts: list[str], batch_size: int, repeat: int) -> dict[str, Any]:
    s.batch_size = batch_size
    batched, batched_cpu = _time(lambda: s.score(imgs, prompts), s.device, repeat)
    single, single_cpu = _time(lambda: [s.score([im], [p]) for im, p in zip(imgs, prompts, strict=True)], s.device,
                               repeat)
    n = len(imgs)
    return {"batched_img_s": round(n / batched, 2), "one_at_a_time_img_s": round(n / single, 2),
            "speedup": round(single / batched, 2),
            "batched_img_per_cpu_s": round(n / max(batched_cpu, 1e-9), 2),
            "one_at_a_time_img_per_cpu_s": round(n / max(single_cpu, 1e-9), 2),
            "speedup_cpu_time": round(single_cpu / max(batched_cpu, 1e-9), 2)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    ap.add_argument("--scorers", default=",".join(DEFAULT_SCORERS))
    ap.add_argument("--n", type=int, default=16, help="images per pass")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--size", type=int, default=256, help="side of the (square, random) input images")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--real-size", action="store_true", help="real architectures, random weights (use a GPU)")
    ap.add_argument("--device", default=None, help="cpu / cuda (default: cuda when available)")
    ap.add_argument("--compile", action="store_true", help="also measure torch.compile'd scorers")
    ap.add_argument("--smash", action="store_true", help="also measure Pruna-smashed scorers (needs pruna)")
    ap.add_argument("--smash-algorithms", default="torch_compile", help="comma-separated Pruna algorithms")
    ap.add_argument("--smash-backend", default=None, help="torch_compile backend for Pruna (inductor, openvino)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--quick", action="store_true", help="n=4, repeat=1 (smoke run)")
    ap.add_argument("--json", action="store_true", help="print only the JSON figures")
    args = ap.parse_args(argv)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    if args.quick:
        args.n, args.repeat = 4, 1
    if args.smash:
        os.environ.setdefault("PRUNA_METRICS_ENABLED", "false")  # no telemetry; read when pruna is imported
        try:
            import pruna  # noqa: F401  # type: ignore[import-not-found]
        except Exception as e:
            ap.error(f"--smash needs pruna, which is not installed (or not importable) in this Python "
                     f"({type(e).__name__}: {e}); "
                     "install it in a separate virtual environment (pip install pruna) and run this there")
    previous_threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _run(args, argv)
    finally:
        torch.set_num_threads(previous_threads)


def _smash_row(name: str, device: str, args: argparse.Namespace, imgs: list[Image.Image], prompts: list[str],
               plain: torch.Tensor, plain_batched_img_s: float) -> dict[str, Any]:
    """A fresh copy of the scorer through ``Scorer.smash``: smash time, first calls, throughput, score drift."""
    s = real_size(name, device) if args.real_size else build_scorer(name, tiny=True, device=device).load()
    hp = {"torch_compile_backend": args.smash_backend} if args.smash_backend else {}
    t = time.perf_counter()
    s.smash(tuple(a.strip() for a in args.smash_algorithms.split(",") if a.strip()), **hp)
    smash_s = time.perf_counter() - t
    t = time.perf_counter()
    out = s.score(imgs[: args.batch_size], prompts[: args.batch_size])
    s.score(imgs[:1], prompts[:1])
    row = {"smash_s": round(smash_s, 2), "smash_first_calls_s": round(time.perf_counter() - t, 2)}
    if not args.real_size:  # same seeds, same weights: the scores must not move
        row["smash_max_abs_diff"] = float((out - plain[: len(out)]).abs().max())
    sm = bench_one(s, imgs, prompts, args.batch_size, args.repeat)
    row.update({f"smashed_{k}": v for k, v in sm.items()})
    row["smash_gain_batched"] = round(sm["batched_img_s"] / plain_batched_img_s, 2)
    return row


def _run(args: argparse.Namespace, argv: list[str] | None) -> dict:
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    imgs = _images(args.n, args.size)
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(args.n)]
    rows: dict[str, Any] = {}
    for name in [n.strip() for n in args.scorers.split(",") if n.strip()]:
        t = time.perf_counter()
        s = real_size(name, device) if args.real_size else build_scorer(name, tiny=True, device=device).load()
        build_s = time.perf_counter() - t
        plain = s.score(imgs[: args.batch_size], prompts[: args.batch_size]) if args.smash else None
        row = {"build_s": round(build_s, 3), "params": s.param_count(), "dtype": str(s.dtype).replace("torch.", ""),
               **bench_one(s, imgs, prompts, args.batch_size, args.repeat)}
        if args.compile:
            s._apply_compile()
            t = time.perf_counter()
            s.score(imgs[: args.batch_size], prompts[: args.batch_size])
            s.score(imgs[:1], prompts[:1])
            row["compile_first_calls_s"] = round(time.perf_counter() - t, 2)
            comp = bench_one(s, imgs, prompts, args.batch_size, args.repeat)
            row.update({f"compiled_{k}": v for k, v in comp.items()})
            row["compile_gain_batched"] = round(comp["batched_img_s"] / row["batched_img_s"], 2)
        del s
        if args.smash:
            row.update(_smash_row(name, device, args, imgs, prompts, plain, row["batched_img_s"]))
            row["smash_gain_batched_cpu_time"] = round(row["smashed_batched_img_per_cpu_s"]
                                                       / row["batched_img_per_cpu_s"], 2)
        rows[name] = row
    result = {
        "bench": "scoring", "device": device, "real_size": args.real_size, "n": args.n, "batch_size": args.batch_size,
        "image_size": args.size, "repeat": args.repeat,
        "smash": ({"algorithms": args.smash_algorithms, "backend": args.smash_backend or "pruna default (inductor)",
                   "pruna": _version("pruna")} if args.smash else None), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "cpu_count": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None, "scorers": rows,
        "command": " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])]),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return result
    print(f"scoring throughput on {device} ({'real-size' if args.real_size else 'tiny'} random models), "
          f"n={args.n}, batch={args.batch_size}, {args.size}px, median of {args.repeat}, {result['threads']} threads, "
          f"load average {result['load_avg_1m']}")
    head = (f"{'scorer':<12}{'params':>12}{'batched img/s':>15}{'1-by-1 img/s':>14}{'speedup':>9}"
            f"{'img/cpu-s b':>13}{'img/cpu-s 1':>13}{'speedup':>9}")
    if args.compile:
        head += f"{'compiled img/s':>16}{'gain':>7}{'compile s':>11}"
    if args.smash:
        head += f"{'smashed img/s':>15}{'gain':>7}{'smash+1st s':>13}"
    print(head)
    for name, r in rows.items():
        line = (f"{name:<12}{r['params']:>12,}{r['batched_img_s']:>15}{r['one_at_a_time_img_s']:>14}{r['speedup']:>9}"
                f"{r['batched_img_per_cpu_s']:>13}{r['one_at_a_time_img_per_cpu_s']:>13}{r['speedup_cpu_time']:>9}")
        if args.compile:
            line += f"{r['compiled_batched_img_s']:>16}{r['compile_gain_batched']:>7}{r['compile_first_calls_s']:>11}"
        if args.smash:
            line += (f"{r['smashed_batched_img_s']:>15}{r['smash_gain_batched']:>7}"
                     f"{r['smash_s'] + r['smash_first_calls_s']:>13.2f}")
        print(line)
    print(f"command: {result['command']}")
    return result


if __name__ == "__main__":
    main()
