"""Noise search: batched generation + batched verification vs the seed extension's way.

The seed's way (ComfyUI-InferenceTimeScaling): one candidate per ComfyUI prompt (batch 1), each image
verified alone, one verifier after the other; zero-order re-generates and re-scores the pivot every
round. Ours: B candidates per prompt, every batch verified at once, scoring of batch j overlapping the
generation of batch j+1; the pivot is generated once.

Figures, per N in (8, 16), each the best of 2 runs (1 with ``--quick``) after a warm-up:
- ``random_seq_s`` / ``random_bB_s``: wall time of a random search of N candidates the seed's way / ours
  with batch B; ``random_bB_speedup`` = their ratio;
- zero-order (N/4 rounds of 4 neighbours) the same way (one run each);
- ``ceiling_ips[B]``: images/s of generation alone, one prompt of B images through the same pipeline
  (render, rewrite, record, run, save PNGs); ``per_candidate_vs_ceiling``: the search's seconds per
  candidate divided by 1/ceiling at the batch size the search used (goal <= 1.1), and
  ``vs_best_ceiling`` against the best images/s over every B measured.

Where: ``fake`` (always): the fake ComfyUI (tests/fakecomfy.py, source checkout) in its own process,
with the exact noise executors and a *latency model* for the sampler: a prompt costs
``overhead + steps * step_s * (1 + c * (B - 1))`` seconds, ``c = 0.177`` fitted to a real CPU ComfyUI
where one batch of 8 took 0.28x the time of 8 single runs (SD1.5 random weights, 64x64, 4 steps).
Scorers: tiny random-weight aesthetic + ImageReward on CPU (real architectures, tiny configs), with
``--torch-threads 1`` by default: on a shared, oversubscribed CPU, torch's OpenMP threads spin and made
single-image scoring 20-40x slower and erratic, which would inflate the sequential baseline.
``real`` (when ``COMFYUI_URL`` or ``--url`` is set): a real ComfyUI with an SD1.5 checkpoint
(``--ckpt``, default random_sd15.safetensors) at 64x64, 4 steps.

    python -m comfygen.evals.perf.bench_search [--quick] [--url http://127.0.0.1:8188] [--ckpt NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from comfygen.flow_library.model import Flow
from comfygen.tools.search.engine import SearchConfig, random_search, zero_order_search
from comfygen.tools.search.generate import ComfyGenerator
from comfygen.tools.scoring.ensemble import Ensemble
from comfygen.tools.search.initial_noise import NoiseSpec, NoiseTerm, derive_seed, latent_shape, neighbour
from comfygen.tools.search.verifiers import VerifierSet
from comfygen.tools.settings import Settings
from comfygen.tools.store import RunStore

from .fake_comfyui import REPO, start_fake, stop_fake

COMMAND = "python -m comfygen.evals.perf.bench_search"
CKPT_FAKE = "v1-5-pruned-emaonly.safetensors"
C_BATCH = 0.177  # per extra batch item, as a fraction of one item's step time (fitted, see docstring)

_FAKE_NOISE = """
import asyncio
from fakecomfy import FakeComfyUI
from fakecomfy_noise import NoiseExecutors
ex = NoiseExecutors().executors()
def slow(fn):
    async def run(i, c):
        out = fn(i, c)
        b = out[0]["samples"].shape[0]
        steps = int(i.get("steps", 1))
        await asyncio.sleep(kw["overhead"] + steps * kw["step_s"] * (1 + kw["c"] * (b - 1)))
        return out
    return run
for k in ("KSampler", "KSamplerAdvanced"):
    ex[k] = slow(ex[k])
def make_fake(kw):
    return FakeComfyUI(models={"checkpoints": [kw["ckpt"]]}, executors=ex)
"""


def sd15_flow(ckpt: str, size: int = 64, steps: int = 4) -> Flow:
    data = json.loads((REPO / "flow_library" / "flows" / "base" / "sd15-base.json").read_text())
    flow = Flow.model_validate(data)
    graph = flow.graph
    graph["1"]["inputs"]["ckpt_name"] = ckpt
    graph["5"]["inputs"]["steps"] = steps
    models = flow.models.model_copy(update={"checkpoint": ckpt})
    return flow.model_copy(update={"width": size, "height": size, "graph": graph, "models": models})


class _Pool:
    """One endpoint (keeps the figures free of pool health checks)."""

    def __init__(self, url: str):
        from comfygen.tools.comfy.client import ComfyClient

        self.urls = [url]
        self.client = ComfyClient(url, read_timeout=900)

    async def run(self, graph: dict[str, Any], *, prompt_id: str | None = None, on_event: Any = None,
                  deadline_s: float | None = None, **_: Any) -> Any:
        return await self.client.run(graph, prompt_id=prompt_id, on_event=on_event, deadline_s=deadline_s)

    async def object_info(self, url: str | None = None) -> dict[str, Any]:
        return await self.client.object_info()


async def _measure(url: str, ckpt: str, ns: list[int], batches: list[int], home: Path, repeat: int) -> dict[str, Any]:
    settings = Settings(home=home)
    store = RunStore(settings.store_path)
    flow = sd15_flow(ckpt)
    prompt = "a lighthouse on a cliff at dusk"
    verifiers = Ensemble.from_settings(settings, ["aesthetic", "imagereward"], tiny=True).load()
    batched_vs = VerifierSet(verifiers)
    seq_vs = VerifierSet(verifiers, batch_size=1)
    pool = _Pool(url)
    await pool.client.open()
    out: dict[str, Any] = {}
    try:
        gen = ComfyGenerator(flow, prompt, pool=pool, store=store, settings=settings)
        # warm up: model load on the server, scorer kernels for every batch shape used below
        warm = await gen([NoiseSpec.seeded(1, k) for k in range(max(batches))], "seeded")
        for b in batches:
            batched_vs.score([w.image for w in warm[:b]], prompt)
        for k in range(8):  # and the batch-1 path end to end (the first passes run measurably slower)
            g = await gen([NoiseSpec.seeded(2, k)], "seeded")
            seq_vs.score([x.image for x in g], prompt)
        # ceiling: generation alone, one prompt of B images
        ceiling: dict[int, float] = {}
        for b in batches:
            best = float("inf")
            for r in range(repeat):
                specs = [NoiseSpec.seeded(derive_seed(99, "ceiling", r * 100 + b), k) for k in range(b)]
                t = time.perf_counter()
                await gen(specs, "seeded")
                best = min(best, time.perf_counter() - t)
            ceiling[b] = b / best
        out["ceiling_ips"] = {str(b): round(v, 3) for b, v in ceiling.items()}
        best_ips = max(ceiling.values())
        shape = latent_shape(flow.width, flow.height)
        for n in ns:
            row: dict[str, Any] = {}
            # the seed's way: batch 1, each image verified alone, verifier after verifier
            seq = float("inf")
            for r in range(repeat):
                t = time.perf_counter()
                for k in range(n):
                    g = await gen([NoiseSpec.seeded(derive_seed(n, f"seq{r}", k), 0)], "seeded")
                    seq_vs.score([x.image for x in g], prompt)
                seq = min(seq, time.perf_counter() - t)
            row["random_seq_s"] = round(seq, 3)
            for b in [x for x in batches if 1 < x <= n]:
                el = float("inf")
                for r in range(repeat):
                    cfg = SearchConfig(algorithm="random", candidates=n, batch=b, seed=n * 1000 + b * 10 + r,
                                       width=64, height=64)
                    t = time.perf_counter()
                    res = await random_search(prompt, generate=gen, verifiers=batched_vs, config=cfg)
                    el = min(el, time.perf_counter() - t)
                    assert len(res.candidates) == n
                row[f"random_b{b}_s"] = round(el, 3)
                row[f"random_b{b}_speedup"] = round(row["random_seq_s"] / el, 2)
                row[f"random_b{b}_per_candidate_vs_ceiling"] = round((el / n) * ceiling[b], 3)
                row[f"random_b{b}_vs_best_ceiling"] = round((el / n) * best_ips, 3)
            # zero-order, rounds of 4 neighbours: seed's way re-generates the pivot each round, batch 1
            rounds = max(1, n // 4)
            t = time.perf_counter()
            pivot = NoiseSpec.seeded(derive_seed(n, "zo-pivot", 0), 0)
            for r in range(rounds):
                cands = [pivot] + [neighbour(pivot, NoiseTerm(seed=derive_seed(n, "zo-dir", r), index=k), 0.9, shape)
                                   for k in range(4)]
                scores = []
                for c in cands:
                    g = await gen([c], "latent")
                    scores.append(sum(seq_vs.score([x.image for x in g], prompt)[0].values()))
                best = max(range(len(cands)), key=lambda i: scores[i])
                pivot = cands[best] if best else NoiseSpec.seeded(derive_seed(n, "zo-pivot", r + 1), 0)
            row["zero_order_seq_s"] = round(time.perf_counter() - t, 3)
            row["zero_order_seq_images"] = rounds * 5
            cfg = SearchConfig(algorithm="zero-order", candidates=rounds * 4 + 1, rounds=rounds, neighbours=4,
                               lam=0.9, batch=8, seed=n, width=64, height=64)
            t = time.perf_counter()
            res = await zero_order_search(prompt, generate=gen, verifiers=batched_vs, config=cfg)
            el = time.perf_counter() - t
            row["zero_order_batched_s"] = round(el, 3)
            row["zero_order_batched_images"] = len(res.candidates)
            row["zero_order_speedup"] = round(row["zero_order_seq_s"] / el, 2)
            out[f"n{n}"] = row
    finally:
        await pool.client.close()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="N=8 only, one repeat")
    ap.add_argument("--url", default=os.environ.get("COMFYUI_URL"), help="also measure this real ComfyUI")
    ap.add_argument("--ckpt", default=os.environ.get("COMFYUI_CKPT", "random_sd15.safetensors"))
    ap.add_argument("--step-s", type=float, default=0.05, help="fake: one item's sampler step time (s)")
    ap.add_argument("--overhead-s", type=float, default=0.02, help="fake: fixed sampler cost per prompt (s)")
    ap.add_argument("--real-only", action="store_true")
    ap.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads for the verifiers")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.torch_threads)
    ns = [8] if args.quick else [8, 16]
    batches = [1, 2, 4, 8] if args.quick else [1, 2, 4, 8, 16]
    figures: dict[str, Any] = {"command": f"{COMMAND} {' '.join(argv or sys.argv[1:])}".strip()}
    with tempfile.TemporaryDirectory(prefix="bench_search_") as tmp:
        if not args.real_only:
            proc, url = start_fake(_FAKE_NOISE, ckpt=CKPT_FAKE, step_s=args.step_s, overhead=args.overhead_s, c=C_BATCH)
            try:
                figures["fake"] = asyncio.run(_measure(url, CKPT_FAKE, ns, batches, Path(tmp) / "fake",
                                                       1 if args.quick else 2))
                figures["fake"]["latency_model"] = {"step_s": args.step_s, "overhead_s": args.overhead_s,
                                                    "c_batch": C_BATCH, "steps": 4}
                figures["fake"]["torch_threads"] = args.torch_threads
            finally:
                stop_fake(proc)
        if args.url:
            figures["real"] = asyncio.run(_measure(args.url, args.ckpt, [8], [1, 8], Path(tmp) / "real", 1))
            figures["real"]["url"] = args.url
    print(json.dumps(figures, indent=1))
    print(f"reproduce: {figures['command']}")
    return figures


if __name__ == "__main__":  # pragma: no cover
    main()
