"""Throughput of :class:`EndpointPool`: 4 endpoints vs 1 at a fixed per-image latency.

Each endpoint is a fake ComfyUI (tests/fakecomfy.py, own process) that, like ComfyUI, runs one
prompt at a time and spends ``--latency`` seconds per image (sampler steps x step time). The same
``--images`` text-to-image prompts are sent concurrently through a pool of 1 and of 4 endpoints;
images per second and the speed-up are reported (goal >= 3.8x). Needs a source checkout.

The default latency, 0.5 s per image, is a fast GPU image; the fakes' own work (~15 ms of CPU per
image: validation, messages, PNG) is not part of that latency, so on a small or busy machine shorter
latencies show that CPU cost rather than the pool (measure it with ``--latency 0.2``).

    python -m comfygen.evals.perf.bench_pool [--images 48] [--latency 0.5] [--endpoints 4] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from .fake_comfyui import start_fake, stop_fake

COMMAND = "python -m comfygen.evals.perf.bench_pool"
STEPS = 4


def graph(i: int) -> dict[str, Any]:
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "random_sd15.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": f"prompt {i}", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {"seed": i, "steps": STEPS, "cfg": 7.0, "sampler_name": "euler",
                                                   "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
                                                   "positive": ["6", 0], "negative": ["7", 0],
                                                   "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "bench_pool", "images": ["8", 0]}},
    }


async def throughput(urls: list[str], images: int, offset: int) -> dict[str, Any]:
    from comfygen.tools.comfy.pool import EndpointPool

    async with EndpointPool(urls, health_interval_s=0) as pool:
        await asyncio.gather(*(pool.run(graph(offset + 5000 + k)) for k in range(len(urls))))  # warm connections
        t0 = time.perf_counter()
        outs = await asyncio.gather(*(pool.run(graph(offset + i),
                                               required_models=[("checkpoints", "random_sd15.safetensors")])
                                      for i in range(images)))
        dt = time.perf_counter() - t0
    per_ep = {u: sum(o.endpoint == u for o in outs) for u in urls}
    assert all(o.images and o.images[0].data for o in outs)
    return {"endpoints": len(urls), "images": images, "seconds": round(dt, 3),
            "images_per_s": round(images / dt, 3), "per_endpoint": list(per_ep.values())}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="EndpointPool throughput, N endpoints vs 1")
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--latency", type=float, default=0.5, help="seconds per image on each endpoint")
    ap.add_argument("--endpoints", type=int, default=4)
    ap.add_argument("--quick", action="store_true", help="24 images")
    args = ap.parse_args(argv)
    images = 24 if args.quick else args.images
    procs = [start_fake(step_time=args.latency / STEPS) for _ in range(args.endpoints)]
    try:
        urls = [u for _, u in procs]
        one = asyncio.run(throughput(urls[:1], images, 0))
        many = asyncio.run(throughput(urls, images, 10_000))
    finally:
        for p, _ in procs:
            stop_fake(p)
    speedup = round(many["images_per_s"] / one["images_per_s"], 2)
    ideal = round(1 / args.latency, 3)
    result = {"latency_s": args.latency, "one": one, "many": many, "speedup": speedup,
              "ideal_one_images_per_s": ideal, "goal": 3.8, "meets_goal": speedup >= 3.8,
              "command": (COMMAND + " " + " ".join(argv if argv is not None else sys.argv[1:])).strip()}
    print(f"1 endpoint : {one['images_per_s']:.2f} img/s ({images} images in {one['seconds']:.2f} s; "
          f"ideal {ideal:.2f})")
    print(f"{args.endpoints} endpoints: {many['images_per_s']:.2f} img/s ({images} images in {many['seconds']:.2f} s;"
          f" per endpoint {many['per_endpoint']})")
    print(f"speed-up   : {speedup:.2f}x (goal >= 3.8x)")
    print("command:", result["command"])
    return result


if __name__ == "__main__":
    main()
