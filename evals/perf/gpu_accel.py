"""GPU benchmark of the acceleration modes on a real ComfyUI: SDXL-size UNet, 1024x1024, 30 steps.

Variants: ``none``, core ``TorchCompileModel`` / ``EasyCache`` / ``LazyCache``, and Pruna's
``PrunaCompileModel`` / ``CacheModel*`` when the server has them (Pruna caching needs pruna_pro: a
variant that fails is reported with its error and the others still run). Each variant inserts its node
exactly where ``--accelerate`` does (``comfygen.tools.graph.accel.apply_plan``).

Figures per variant: seconds per image (``submitted -> end of prompt``, ComfyUI's own timing of
the run), sampler seconds (the KSampler node), the first run separately (compilation happens there),
sampler it/s, and achieved TFLOP/s.

FLOPs. A UNet forward pass costs ``F = 2 * P * T * k`` FLOPs: P = UNet parameters (read from the
checkpoint's safetensors header), T = latent positions ((W/8) * (H/8)), and k = the share of T an
average weight is applied to (the UNet runs its deepest, most parameter-heavy blocks at 1/2 and 1/4
of the latent size). k was measured with ``torch.utils.flop_counter.FlopCounterMode`` on ComfyUI's own
SDXL ``UNetModel`` (meta tensors, ComfyUI a125cd84): P = 2,567,463,684; 6.761 TFLOP per pass at
1024x1024 (k = 0.0804) and 1.589 TFLOP at 512x512 (k = 0.0755); ``--exact-flops`` recounts it with the
server's ComfyUI. Each step runs the UNet twice when cfg > 1 (cond + uncond), so an image at 1024x1024,
30 steps costs 30 * 2 * 6.761 = 405.7 TFLOP in the UNet (text encoders and VAE not counted). TFLOP/s =
that count / sampler seconds. For caching variants this is *effective* TFLOP/s: the work an
uncached run does, divided by the time the cached run took (skipped steps do less real work).

Models are random weights built with ComfyUI's own classes (``--make-models``, run once; ~8 GB):
``diffusion_models/random_sdxl_unet.safetensors``, ``text_encoders/random_clip_l.safetensors`` and
``random_clip_g.safetensors``, ``vae/random_sdxl_vae.safetensors``. Images are noise: this measures
speed only.

    # start ComfyUI from a checkout with its venv, build the models, run all variants
    python -m comfygen.evals.perf.gpu_accel --comfyui ~/ComfyUI --python ~/ComfyUI/venv/bin/python --make-models
    # against a ComfyUI you started yourself (with --disable-cuda-malloc for compile variants)
    python -m comfygen.evals.perf.gpu_accel --url http://127.0.0.1:8188
    # CPU smoke test of this script with the random SD1.5 checkpoint from make_random_checkpoint.py
    python -m comfygen.evals.perf.gpu_accel --url http://127.0.0.1:8188 --family sd15 --size 64 --steps 2

This file is also run *by ComfyUI's Python* for ``--build-models`` / ``--count-flops`` (it then imports
ComfyUI's ``comfy`` package and nothing from comfygen).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

COMMAND = "python -m comfygen.evals.perf.gpu_accel"
SDXL_UNET_PARAMS = 2_567_463_684
SDXL_K = {1024: 0.0804, 512: 0.0755}  # measured, see module doc
SDXL_UNET = {"use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
             "legacy": False, "num_classes": "sequential", "adm_in_channels": 2816, "in_channels": 4,
             "model_channels": 320, "num_res_blocks": [2, 2, 2], "transformer_depth": [0, 0, 2, 2, 10, 10],
             "channel_mult": [1, 2, 4], "transformer_depth_middle": 10, "use_linear_in_transformer": True,
             "context_dim": 2048, "num_head_channels": 64, "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
             "use_temporal_attention": False, "use_temporal_resblock": False}
FILES = {"unet": ("diffusion_models", "random_sdxl_unet.safetensors"),
         "clip_l": ("text_encoders", "random_clip_l.safetensors"),
         "clip_g": ("text_encoders", "random_clip_g.safetensors"),
         "vae": ("vae", "random_sdxl_vae.safetensors")}
VARIANTS: dict[str, tuple[str | None, dict[str, Any]]] = {
    "none": (None, {}),
    "torch-compile": ("TorchCompileModel", {"backend": "inductor"}),
    "easycache": ("EasyCache", {"reuse_threshold": 0.2, "start_percent": 0.15, "end_percent": 0.95, "verbose": False}),
    "lazycache": ("LazyCache", {"reuse_threshold": 0.2, "start_percent": 0.15, "end_percent": 0.95, "verbose": False}),
    "pruna-compile": ("PrunaCompileModel", {"compiler": "torch_compile"}),
    "pruna-cache-auto": ("CacheModelAuto", {"speed_factor": 0.5, "cache_mode": "default", "compiler": "none"}),
    "pruna-cache-adaptive": ("CacheModelAdaptive", {"threshold": 0.01, "max_skip_steps": 4, "cache_mode": "default",
                                                    "compiler": "none"}),
    "pruna-cache-periodic": ("CacheModelPeriodic", {"cache_interval": 2, "start_step": 2, "cache_mode": "default",
                                                    "compiler": "none"}),
}


# ---------------------------------------------------------------- run inside ComfyUI's Python


def _comfy_import(comfyui: Path) -> Any:
    sys.path.insert(0, str(comfyui))
    import torch

    import comfy.cli_args

    if not torch.cuda.is_available():
        comfy.cli_args.args.cpu = True
    comfy.cli_args.args.use_pytorch_cross_attention = True
    return torch


def _init_(module: Any, seed: int, device: str) -> None:
    import torch

    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif "norm" in name and p.ndim == 1:
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen, device=device, dtype=torch.float32).mul_(0.02).to(p.dtype))


def build_models(comfyui: Path, models_dir: Path, seed: int = 0) -> dict[str, Any]:
    """Random SDXL UNet, CLIP-L, CLIP-G and VAE from ComfyUI's classes, saved where its loaders look."""
    torch = _comfy_import(comfyui)
    import comfy.ops
    import comfy.sdxl_clip
    from comfy.ldm.models.autoencoder import AutoencoderKL
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from safetensors.torch import save_file

    device = "cuda" if torch.cuda.is_available() else "cpu"
    written = {}

    def save(key: str, sd: dict[str, Any]) -> None:
        folder, name = FILES[key]
        path = models_dir / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({k: v.to(torch.float16).contiguous().cpu() for k, v in sd.items()}, str(tmp),
                  metadata={"comfygen": f"random {key} seed={seed}"})
        tmp.replace(path)
        written[key] = str(path)

    unet = UNetModel(**SDXL_UNET, dtype=torch.float16, device=device, operations=comfy.ops.disable_weight_init)
    _init_(unet, seed, device)
    save("unet", unet.state_dict())
    del unet
    clip = comfy.sdxl_clip.SDXLClipModel(device=device, dtype=torch.float16)
    _init_(clip, seed + 1, device)
    sd = clip.state_dict()
    save("clip_l", {k[len("clip_l.transformer."):]: v for k, v in sd.items() if k.startswith("clip_l.transformer.")})
    save("clip_g", {k[len("clip_g.transformer."):]: v for k, v in sd.items() if k.startswith("clip_g.transformer.")})
    del clip
    ddconfig = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
                "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}
    vae = AutoencoderKL(ddconfig=ddconfig, embed_dim=4).to(device)
    _init_(vae, seed + 2, device)
    save("vae", vae.state_dict())
    return written


def count_flops(comfyui: Path, size: int) -> dict[str, Any]:
    """Exact FLOPs of one SDXL UNet pass at ``size`` (FlopCounterMode on meta tensors: no weights, no GPU)."""
    torch = _comfy_import(comfyui)
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from torch.utils.flop_counter import FlopCounterMode

    unet = UNetModel(**SDXL_UNET, dtype=torch.float16, device="meta", operations=comfy.ops.disable_weight_init)
    params = sum(p.numel() for p in unet.parameters())
    h = size // 8
    meta = {"device": "meta", "dtype": torch.float16}
    with FlopCounterMode(display=False) as fc:
        unet(torch.empty(1, 4, h, h, **meta), timesteps=torch.empty(1, **meta),
             context=torch.empty(1, 77, 2048, **meta), y=torch.empty(1, 2816, **meta))
    flops = fc.get_total_flops()
    return {"params": params, "size": size, "flops_per_pass": flops, "k": flops / (2 * params * h * h)}


# ---------------------------------------------------------------- driver (comfygen side)


def safetensors_params(path: Path, prefix: str = "") -> int:
    """Parameter count from a safetensors header (no tensor is read)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    total = 0
    for key, info in header.items():
        if key == "__metadata__" or not key.startswith(prefix):
            continue
        count = 1
        for d in info["shape"]:
            count *= d
        total += count
    return total


def build_graph(family: str, size: int, steps: int, cfg: float, seed: int, checkpoint: str | None) -> dict[str, Any]:
    common_tail = {
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["vae", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "comfygen/gpu_accel"}},
    }
    if family == "sdxl":
        graph = {
            "unet": {"class_type": "UNETLoader", "inputs": {"unet_name": FILES["unet"][1], "weight_dtype": "default"}},
            "clip": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": FILES["clip_l"][1],
                                                                "clip_name2": FILES["clip_g"][1], "type": "sdxl"}},
            "vae": {"class_type": "VAELoader", "inputs": {"vae_name": FILES["vae"][1]}},
        }
        model, clip, vae = ["unet", 0], ["clip", 0], ["vae", 0]
    else:
        graph = {"ckpt": {"class_type": "CheckpointLoaderSimple",
                          "inputs": {"ckpt_name": checkpoint or "random_sd15.safetensors"}}}
        model, clip, vae = ["ckpt", 0], ["ckpt", 1], ["ckpt", 2]
    graph.update(common_tail)
    graph["8"]["inputs"]["vae"] = vae
    graph["6"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse on a cliff at dusk", "clip": clip}}
    graph["7"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": clip}}
    graph["3"] = {"class_type": "KSampler", "inputs": {"model": model, "seed": seed, "steps": steps, "cfg": cfg,
                                                       "sampler_name": "euler", "scheduler": "normal",
                                                       "positive": ["6", 0], "negative": ["7", 0],
                                                       "latent_image": ["5", 0], "denoise": 1.0}}
    return graph


def _start_comfyui(comfyui: Path, python: str, port: int, extra: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"comfyui-{port}.log", "wb")
    args = [python, "main.py", "--listen", "127.0.0.1", "--port", str(port), "--disable-cuda-malloc", *extra]
    proc = subprocess.Popen(args, cwd=comfyui, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ComfyUI exited with {proc.returncode}; see {log.name}")
        try:
            if httpx.get(url + "/system_stats", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(1)
    proc.kill()
    raise RuntimeError(f"ComfyUI did not answer within 300 s; see {log.name}")


async def _bench(url: str, args: argparse.Namespace, flops_per_image: float) -> dict[str, Any]:
    from comfygen.tools.comfy.client import ComfyClient
    from comfygen.tools.graph.accel import AccelPlan, apply_plan

    results: dict[str, Any] = {}
    async with ComfyClient(url, read_timeout=600) as client:
        schema = await client.object_info()
        stats = await client.system_stats()
        results["_device"] = [d.get("name") for d in stats.get("devices", [])]
        for name in args.variants:
            cls, inputs = VARIANTS[name]
            if cls is not None and cls not in schema:
                results[name] = {"skipped": f"{cls} is not installed on this ComfyUI"}
                continue
            seconds, sampler, first = [], [], None
            try:
                for i in range(args.warmup + args.runs):
                    graph = build_graph(args.family, args.size, args.steps, args.cfg, 1000 + i, args.checkpoint)
                    if cls is not None:
                        graph = apply_plan(graph, AccelPlan(mode=name, resolved=name, node_class=cls, inputs=inputs),
                                           schema=schema)
                    out = await client.run(graph, deadline_s=args.timeout)
                    t = out.timings
                    total = (t.finished or time.time()) - t.submitted
                    if i < args.warmup:
                        first = first if first is not None else total
                        continue
                    seconds.append(total)
                    sampler.append(t.per_node.get("3", total))
            except Exception as e:  # noqa: BLE001 - report the variant's failure, keep benchmarking the rest
                results[name] = {"error": f"{type(e).__name__}: {getattr(e, 'message', None) or e}"}
                continue
            s_img, s_sampler = statistics.median(seconds), statistics.median(sampler)
            results[name] = {"node": cls, "s_per_image": round(s_img, 3), "sampler_s": round(s_sampler, 3),
                             "first_run_s": None if first is None else round(first, 2),
                             "it_per_s": round(args.steps / s_sampler, 2),
                             "tflops": float(f"{flops_per_image / s_sampler / 1e12:.3g}"), "runs": len(seconds)}
    base = results.get("none", {}).get("sampler_s")
    for name, r in results.items():
        if base and isinstance(r, dict) and "sampler_s" in r:
            r["speedup"] = round(base / r["sampler_s"], 2)
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=os.environ.get("COMFYUI_URL"), help="a running ComfyUI (default $COMFYUI_URL)")
    ap.add_argument("--comfyui", type=Path, help="ComfyUI checkout to start (needs --python unless it is ours)")
    ap.add_argument("--python", default=sys.executable, help="the Python of ComfyUI's venv")
    ap.add_argument("--port", type=int, default=8199)
    ap.add_argument("--comfyui-args", default="", help="extra ComfyUI flags, e.g. '--gpu-only'")
    ap.add_argument("--make-models", action="store_true", help="build the random SDXL models first (needs --comfyui)")
    ap.add_argument("--exact-flops", action="store_true", help="count FLOPs with ComfyUI's UNet (needs --comfyui)")
    ap.add_argument("--family", choices=["sdxl", "sd15"], default="sdxl")
    ap.add_argument("--checkpoint", default=None, help="sd15 family: checkpoint name (default random_sd15)")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--cfg", type=float, default=7.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated: " + ", ".join(VARIANTS))
    ap.add_argument("--unet-params", type=int, default=None, help="override P (default: from the UNet file)")
    ap.add_argument("--build-models", type=Path, help=argparse.SUPPRESS)  # internal: run by ComfyUI's Python
    ap.add_argument("--count-flops", type=int, help=argparse.SUPPRESS)  # internal: run by ComfyUI's Python
    args = ap.parse_args(argv)
    if args.build_models is not None or args.count_flops is not None:
        assert args.comfyui is not None
        res = (build_models(args.comfyui, args.build_models) if args.build_models is not None
               else count_flops(args.comfyui, args.count_flops))
        print(json.dumps(res))
        return res
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants {unknown}; pick from {list(VARIANTS)}")

    def helper(*extra: str) -> dict[str, Any]:
        out = subprocess.run([args.python, str(Path(__file__).resolve()), "--comfyui", str(args.comfyui), *extra],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    figures: dict[str, Any] = {"family": args.family, "size": args.size, "steps": args.steps, "cfg": args.cfg}
    if args.make_models:
        if args.comfyui is None:
            ap.error("--make-models needs --comfyui")
        figures["models"] = helper("--build-models", str(args.comfyui / "models"))
    proc = None
    url = args.url
    if url is None:
        if args.comfyui is None:
            ap.error("give --url (or COMFYUI_URL) or --comfyui")
        proc, url = _start_comfyui(args.comfyui, args.python, args.port, args.comfyui_args.split())
    try:
        passes = 2 if args.cfg > 1 else 1
        tokens = (args.size // 8) ** 2
        if args.exact_flops and args.comfyui is not None and args.family == "sdxl":
            counted = helper("--count-flops", str(args.size))
            per_pass, method = counted["flops_per_pass"], "FlopCounterMode on ComfyUI's SDXL UNetModel"
            figures["unet_params"] = counted["params"]
        else:
            params = args.unet_params
            unet_file = args.comfyui / "models" / FILES["unet"][0] / FILES["unet"][1] if args.comfyui else None
            if params is None and args.family == "sdxl":
                params = (safetensors_params(unet_file) if unet_file is not None and unet_file.is_file()
                          else SDXL_UNET_PARAMS)
            params = params or 859_520_964  # SD1.5 UNet
            k = SDXL_K.get(args.size, 0.08)
            per_pass, method = 2 * params * tokens * k, f"2 * P * T * k, P={params:,}, T={tokens}, k={k}"
            figures["unet_params"] = params
        flops_per_image = per_pass * passes * args.steps
        figures.update({"flops_per_image": flops_per_image, "flops_method": method, "endpoint": url})
        import asyncio

        figures["variants"] = asyncio.run(_bench(url, args, flops_per_image))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    import shlex

    command = COMMAND + " " + shlex.join(argv if argv is not None else sys.argv[1:])
    figures["command"] = command.strip()
    _print(figures)
    return figures


def _print(f: dict[str, Any]) -> None:
    v = f["variants"]
    print(f"{f['family']} {f['size']}x{f['size']}, {f['steps']} steps, cfg {f['cfg']} on {v.get('_device')} "
          f"({f['endpoint']}); UNet FLOPs/image {f['flops_per_image'] / 1e12:.1f} T ({f['flops_method']})")
    print(f"  {'variant':22s} {'s/image':>8s} {'sampler s':>9s} {'first s':>8s} {'it/s':>6s} {'TFLOP/s':>8s} "
          f"{'speedup':>7s}")
    for name, r in v.items():
        if name.startswith("_"):
            continue
        if "s_per_image" not in r:
            print(f"  {name:22s} {r.get('skipped') or r.get('error')}")
            continue
        print(f"  {name:22s} {r['s_per_image']:8.2f} {r['sampler_s']:9.2f} {r['first_run_s'] or 0:8.1f} "
              f"{r['it_per_s']:6.2f} {r['tflops']:8.3g} {r.get('speedup', 0):7.2f}")
    print("  (TFLOP/s of cache variants is effective: uncached work / cached time)")
    print(f"reproduce: {f['command']}")


if __name__ == "__main__":  # pragma: no cover
    main()
