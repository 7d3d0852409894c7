"""GPU benchmark of the acceleration modes on a real ComfyUI: SDXL-size UNet and FLUX-size DiT, 30 steps.

Variants: ``none``, core ``TorchCompileModel`` / ``EasyCache`` / ``LazyCache``, and Pruna's
``PrunaCompileModel`` / ``CacheModel*`` when the server has them (a variant whose node is missing is
reported as skipped, one that fails with its error; the others still run). Each variant inserts its node
exactly where ``--accelerate`` does (``comfygen.tools.graph.accel.apply_plan``).

Per family and variant: seconds per image (ComfyUI's own timing, submitted -> end of prompt), sampler
seconds (the KSampler node), the first run separately (compilation happens there), it/s, and the achieved
TFLOP/s of the diffusion model against the card's bf16 peak measured in the same run (8192^3 products).
FLOPs per pass are counted with ``torch.utils.flop_counter`` on ComfyUI's own model classes (meta tensors,
``gpu_models.py flops``); SDXL runs cond + uncond (cfg 7: two passes a step), FLUX-dev one (distilled
guidance 3.5). For caching variants TFLOP/s is *effective*: the uncached work over the cached time.

Models are random weights built on the machine with ComfyUI's classes (``gpu_models.py``); conditioning
comes from a small node (``gpu_bench_node.py``) instead of text encoders. Images are noise: speed only.
``--budget-s`` ends the run in time: variants run in order (cheap ones first, each on both families), and
one that would start past the budget (a compiling one: with less than ``--compile-reserve-s`` left) is
reported as skipped.

    # the prepared one-command run on a GPU machine (see PERFORMANCE.md): stage here, then
    bash evals/perf/gpu_run.sh
    # the same by hand, from a ComfyUI checkout
    python -m comfygen.evals.perf.gpu_accel --comfyui ~/ComfyUI --python python3 --make-models
    # CPU proof at tiny size (Segmind-Vega-layout UNet, 1+1-block FLUX, 64x64, 2 steps)
    python -m comfygen.evals.perf.gpu_accel --comfyui .gpu-stage/ComfyUI --python PY --make-models --tiny \\
        --size 64 --steps 2 --runs 1 --warmup 0 --variants none,easycache
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

COMMAND = "python -m comfygen.evals.perf.gpu_accel"
HERE = Path(__file__).resolve().parent
FILES = {"sdxl": {"model": "random_sdxl_unet.safetensors", "vae": "random_sdxl_vae.safetensors"},
         "flux": {"model": "random_flux_dit.safetensors", "vae": "random_flux_vae.safetensors"}}  # = gpu_models
CFG = {"sdxl": 7.0, "flux": 1.0}
VARIANTS: dict[str, tuple[str | None, dict[str, Any]]] = {
    "none": (None, {}),
    "easycache": ("EasyCache", {"reuse_threshold": 0.2, "start_percent": 0.15, "end_percent": 0.95, "verbose": False}),
    "lazycache": ("LazyCache", {"reuse_threshold": 0.2, "start_percent": 0.15, "end_percent": 0.95, "verbose": False}),
    "torch-compile": ("TorchCompileModel", {"backend": "inductor"}),
    "pruna-compile": ("PrunaCompileModel", {"compiler": "torch_compile"}),
    "pruna-cache-auto": ("CacheModelAuto", {"speed_factor": 0.5, "cache_mode": "default", "compiler": "none"}),
    "pruna-cache-adaptive": ("CacheModelAdaptive", {"threshold": 0.01, "max_skip_steps": 4, "cache_mode": "default",
                                                    "compiler": "none"}),
    "pruna-cache-periodic": ("CacheModelPeriodic", {"cache_interval": 2, "start_step": 2, "cache_mode": "default",
                                                    "compiler": "none"}),
}
PRUNA_NOTE = ("Pruna's ComfyUI nodes (pack ComfyUI_pruna + pruna with its extras, ~3 GB) do not fit the 64 MiB the "
              "GPU machine may be sent, and nothing can be fetched there")


def build_graph(family: str, size: int, steps: int, seed: int) -> dict[str, Any]:
    latent = "EmptySD3LatentImage" if family == "flux" else "EmptyLatentImage"
    return {
        "unet": {"class_type": "UNETLoader",
                 "inputs": {"unet_name": FILES[family]["model"], "weight_dtype": "default"}},
        "vae": {"class_type": "VAELoader", "inputs": {"vae_name": FILES[family]["vae"]}},
        "pos": {"class_type": "ComfygenRandomConditioning", "inputs": {"family": family, "seed": 1}},
        "neg": {"class_type": "ComfygenRandomConditioning", "inputs": {"family": family, "seed": 2}},
        "5": {"class_type": latent, "inputs": {"width": size, "height": size, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {"model": ["unet", 0], "seed": seed, "steps": steps,
                                                   "cfg": CFG[family], "sampler_name": "euler",
                                                   "scheduler": "simple" if family == "flux" else "normal",
                                                   "positive": ["pos", 0], "negative": ["neg", 0],
                                                   "latent_image": ["5", 0], "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["vae", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": f"comfygen/gpu_{family}"}},
    }


def start_comfyui(comfyui: Path, python: str, port: int, models: Path, gpu: bool,
                  extra: list[str]) -> tuple[subprocess.Popen[bytes], str, Path]:
    import httpx

    work = Path(tempfile.mkdtemp(prefix="comfygen-gpu-"))
    (work / "frontend").mkdir()
    (work / "extra_model_paths.yaml").write_text(
        f"comfygen:\n  base_path: {models.resolve()}\n  diffusion_models: diffusion_models\n  vae: vae\n")
    log_path = work / "comfyui.log"
    args = [python, "main.py", "--listen", "127.0.0.1", "--port", str(port), "--disable-api-nodes",
            "--front-end-root", str(work / "frontend"),
            "--extra-model-paths-config", str(work / "extra_model_paths.yaml"),
            "--output-directory", str(work / "output"), "--temp-directory", str(work),
            "--cache-lru", "32",  # both families' loaders stay cached while the variants alternate between them
            *(["--disable-cuda-malloc", "--highvram"] if gpu else ["--cpu"]), *extra]
    proc = subprocess.Popen(args, cwd=comfyui, stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ComfyUI exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/system_stats", timeout=2).status_code == 200:
                return proc, url, log_path
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"ComfyUI did not answer within 300 s; see {log_path}")


COMPILERS = ("torch-compile", "pruna-compile")


async def bench_variant(client: Any, schema: dict[str, Any], family: str, name: str, args: argparse.Namespace,
                        flops_per_image: float | None, peak: float | None, deadline: float) -> dict[str, Any]:
    """Warm-up run(s), then timed runs of one variant on one family (stops early past the deadline)."""
    from comfygen.tools.graph.accel import AccelPlan, apply_plan

    cls, inputs = VARIANTS[name]
    if cls is not None and cls not in schema:
        note = f" ({PRUNA_NOTE})" if name.startswith("pruna") else ""
        return {"skipped": f"{cls} is not installed on this ComfyUI{note}"}
    left = deadline - time.monotonic()
    if left <= 0 or (name in COMPILERS and left < args.compile_reserve_s):
        return {"skipped": f"time budget: {max(left, 0):.0f} s left of {args.budget_s:.0f} s"
                           + (f" (compiling needs {args.compile_reserve_s:.0f} s)" if name in COMPILERS else "")}
    seconds, sampler, first = [], [], None
    try:
        for i in range(args.warmup + args.runs):
            graph = build_graph(family, args.size, args.steps, 1000 + i)
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
            if time.monotonic() > deadline:
                break
    except Exception as e:  # noqa: BLE001 - report the variant's failure, keep benchmarking the rest
        return {"error": f"{type(e).__name__}: {getattr(e, 'message', None) or e}"[:500]}
    if not seconds:
        return {"skipped": "time budget spent during warm-up", "first_run_s": first}
    s_img, s_sampler = statistics.median(seconds), statistics.median(sampler)
    r: dict[str, Any] = {"node": cls, "s_per_image": round(s_img, 3), "sampler_s": round(s_sampler, 3),
                         "first_run_s": None if first is None else round(first, 2),
                         "it_per_s": round(args.steps / s_sampler, 2), "runs": len(seconds)}
    if flops_per_image:
        r["tflops"] = float(f"{flops_per_image / s_sampler / 1e12:.4g}")
        if peak:
            r["share_of_peak"] = round(r["tflops"] / peak, 3)
    return r


def model_dir(need_gb: float) -> Path:
    """/dev/shm when it has room for the models (loading from memory is fast), else a temp dir on disk."""
    import shutil

    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > need_gb * 1e9:
        return shm / "comfygen-models"
    return Path(tempfile.mkdtemp(prefix="comfygen-models-"))


def helper(python: str, comfyui: Path, *cmd: str) -> dict[str, Any]:
    out = subprocess.run([python, str(HERE / "gpu_models.py"), "--comfyui", str(comfyui), *cmd],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    ap.add_argument("--comfyui", type=Path, required=True, help="ComfyUI checkout (e.g. the staged .gpu-stage/ComfyUI)")
    ap.add_argument("--python", default=sys.executable, help="the Python that runs ComfyUI")
    ap.add_argument("--port", type=int, default=8199)
    ap.add_argument("--models", type=Path, default=None, help="model folder (default: /dev/shm/comfygen-models "
                                                                "when it has room, else a temp dir)")
    ap.add_argument("--make-models", action="store_true", help="build the random models first")
    ap.add_argument("--tiny", action="store_true", help="small layouts of the same architectures (CPU checks)")
    ap.add_argument("--family", default="sdxl,flux", help="comma-separated: sdxl, flux")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--budget-s", type=float, default=1e9, help="start no variant after this many seconds")
    ap.add_argument("--compile-reserve-s", type=float, default=150, help="start a compiling variant only with this "
                                                                         "much of the budget left")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated: " + ", ".join(VARIANTS))
    ap.add_argument("--comfyui-args", default="", help="extra ComfyUI flags")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    started = time.monotonic()
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    families = [f.strip() for f in args.family.split(",") if f.strip()]
    if unknown := [v for v in args.variants if v not in VARIANTS] + [f for f in families if f not in FILES]:
        ap.error(f"unknown variants/families {unknown}")
    models = args.models or model_dir(2 if args.tiny else 40)
    figures: dict[str, Any] = {"size": args.size, "steps": args.steps, "tiny": args.tiny, "models_dir": str(models)}
    prep = helper(args.python, args.comfyui, "prepare", "--family", ",".join(families), "--size", str(args.size),
                  *(["--models", str(models)] if args.make_models else []), *(["--tiny"] if args.tiny else []))
    figures.update(prep)
    gpu = figures["peak"].get("bf16_tflops") is not None
    flops: dict[str, float | None] = {}
    for fam in families:
        counted = figures["flops"].get(fam, {})
        flops[fam] = (counted["flops_per_pass"] * (2 if CFG[fam] > 1 else 1) * args.steps
                      if "flops_per_pass" in counted else None)
        counted["flops_per_image"] = flops[fam]
    t = time.monotonic()
    proc, url, log = start_comfyui(args.comfyui, args.python, args.port, models, gpu, shlex.split(args.comfyui_args))
    figures["comfyui_start_s"] = round(time.monotonic() - t, 1)
    try:
        figures["families"] = asyncio.run(_bench_all(url, families, args, flops, figures["peak"].get("bf16_tflops"),
                                                     started + args.budget_s, figures))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    figures["wall_s"] = round(time.monotonic() - started, 1)
    figures["comfyui_log"] = str(log)
    figures["command"] = (COMMAND + " " + shlex.join(argv if argv is not None else sys.argv[1:])).strip()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1))
    _print(figures)
    return figures


async def _bench_all(url: str, families: list[str], args: argparse.Namespace, flops: dict[str, float | None],
                     peak: float | None, deadline: float, figures: dict[str, Any]) -> dict[str, Any]:
    from comfygen.tools.comfy.client import ComfyClient

    out: dict[str, Any] = {}
    async with ComfyClient(url, read_timeout=args.timeout) as client:
        schema = await client.object_info()
        stats = await client.system_stats()
        figures["devices"] = [d.get("name") for d in stats.get("devices", [])]
        figures["comfyui_version"] = stats.get("system", {}).get("comfyui_version")
        for name in args.variants:  # variant-major: both families get the cheap variants before any compiling
            for fam in families:
                out.setdefault(fam, {})[name] = await bench_variant(client, schema, fam, name, args, flops.get(fam),
                                                                    peak, deadline)
    for variants in out.values():
        base = variants.get("none", {}).get("sampler_s")
        for r in variants.values():
            if base and "sampler_s" in r:
                r["speedup"] = round(base / r["sampler_s"], 2)
    return out


def _print(f: dict[str, Any]) -> None:
    peak = f["peak"].get("bf16_tflops")
    print(f"ComfyUI {f.get('comfyui_version')} on {f.get('devices')}; measured bf16 peak {peak} TFLOP/s; "
          f"{f['size']}x{f['size']}, {f['steps']} steps{' (tiny models)' if f['tiny'] else ''}; "
          f"models built in {f.get('models_build_s')} s, ComfyUI up in {f.get('comfyui_start_s')} s, "
          f"{f.get('wall_s')} s in all")
    for fam, variants in f.get("families", {}).items():
        fl = f.get("flops", {}).get(fam, {})
        print(f" {fam}: {fl.get('params', 0) / 1e9:.2f} G parameters, "
              f"{(fl.get('flops_per_image') or 0) / 1e12:.1f} TFLOP per image in the diffusion model")
        print(f"  {'variant':22s} {'s/image':>8s} {'sampler s':>9s} {'first s':>8s} {'it/s':>7s} {'TFLOP/s':>8s} "
              f"{'of peak':>7s} {'speedup':>7s}")
        for name, r in variants.items():
            if "s_per_image" not in r:
                print(f"  {name:22s} {r.get('skipped') or r.get('error')}")
                continue
            share = r.get("share_of_peak")
            print(f"  {name:22s} {r['s_per_image']:8.2f} {r['sampler_s']:9.2f} {r['first_run_s'] or 0:8.1f} "
                  f"{r['it_per_s']:7.2f} {r.get('tflops', 0):8.4g} {'' if share is None else f'{share:.1%}':>7s} "
                  f"{r.get('speedup', 0):7.2f}")
    print("  (TFLOP/s of cache variants is effective: uncached work / cached time)")
    print(f"reproduce: {f['command']}")


if __name__ == "__main__":  # pragma: no cover
    main()
