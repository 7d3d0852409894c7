"""Random-weight models for ``gpu_accel``, built with ComfyUI's own classes, and what the GPU can do.

Run by the Python that runs ComfyUI (it imports ComfyUI's ``comfy`` package and nothing from comfygen)::

    python evals/perf/gpu_models.py --comfyui DIR build --models DIR --family sdxl,flux [--tiny]
    python evals/perf/gpu_models.py --comfyui DIR flops --family flux --size 1024 [--tiny]
    python evals/perf/gpu_models.py --comfyui DIR peak

Full size: the SDXL UNet (2.57 G parameters) and the FLUX.1-dev DiT (11.9 G: 19 double + 38 single blocks,
width 3072), each with a random VAE of its latent format (4 and 16 channels). Weights are seeded
normal(0, 0.02), zero biases, unit norms; files are bf16 (FLUX) / fp16 (SDXL) in ComfyUI's key layout so
``UNETLoader`` and ``VAELoader`` detect them. No text encoder is built: the prompts' conditioning comes from
the ``ComfygenRandomConditioning`` node (``gpu_bench_node.py``), which ComfyUI caches like a text encoder's
output for a repeated prompt, so warm runs time the same work either way.

``--tiny`` (CPU checks): ComfyUI recognises SDXL only at its exact depths, so the smallest SDXL-family
UNet it detects is Segmind Vega's layout (745 M); FLUX keeps width 3072 with one block of each kind
(~0.5 G). ``peak`` times bf16 8192^3 matrix products (the card's measured peak, TFLOP/s).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

SDXL_UNET = {"use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
             "legacy": False, "num_classes": "sequential", "adm_in_channels": 2816, "in_channels": 4,
             "model_channels": 320, "num_res_blocks": [2, 2, 2], "transformer_depth": [0, 0, 2, 2, 10, 10],
             "channel_mult": [1, 2, 4], "transformer_depth_middle": 10, "use_linear_in_transformer": True,
             "context_dim": 2048, "num_head_channels": 64, "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
             "use_temporal_attention": False, "use_temporal_resblock": False}
SDXL_TINY = {**SDXL_UNET, "transformer_depth": [0, 0, 1, 1, 2, 2], "transformer_depth_middle": 1,
             "transformer_depth_output": [0, 0, 0, 1, 1, 1, 2, 2, 2]}  # Segmind Vega's layout
FLUX_DIT = {"in_channels": 16, "out_channels": 16, "vec_in_dim": 768, "context_in_dim": 4096, "hidden_size": 3072,
            "mlp_ratio": 4.0, "num_heads": 24, "depth": 19, "depth_single_blocks": 38, "axes_dim": [16, 56, 56],
            "theta": 10000, "patch_size": 2, "qkv_bias": True, "guidance_embed": True}
FLUX_TINY = {**FLUX_DIT, "depth": 1, "depth_single_blocks": 1}
FILES = {"sdxl": {"model": "random_sdxl_unet.safetensors", "vae": "random_sdxl_vae.safetensors"},
         "flux": {"model": "random_flux_dit.safetensors", "vae": "random_flux_vae.safetensors"}}
LATENT_CHANNELS = {"sdxl": 4, "flux": 16}
CONTEXT = {"sdxl": (77, 2048, 1280), "flux": (256, 4096, 768)}  # tokens, width, pooled width


def comfy_import(comfyui: Path) -> Any:
    sys.path.insert(0, str(comfyui.resolve()))
    import torch

    import comfy.cli_args

    if not torch.cuda.is_available():
        comfy.cli_args.args.cpu = True
    comfy.cli_args.args.use_pytorch_cross_attention = True
    return torch


def _init_(module: Any, seed: int) -> None:
    import torch

    dev = next(module.parameters()).device
    gen = torch.Generator(device=dev).manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif ("norm" in name or name.endswith("scale")) and p.ndim == 1:
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen, device=dev, dtype=torch.float32).mul_(0.02).to(p.dtype))


def diffusion_model(family: str, tiny: bool, device: str, dtype: Any) -> Any:
    import comfy.ops

    if family == "sdxl":
        from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

        return UNetModel(**(SDXL_TINY if tiny else SDXL_UNET), dtype=dtype, device=device,
                         operations=comfy.ops.disable_weight_init)
    from comfy.ldm.flux.model import Flux

    return Flux(**(FLUX_TINY if tiny else FLUX_DIT), dtype=dtype, device=device,
                operations=comfy.ops.disable_weight_init)


def build(comfyui: Path, models: Path, families: list[str], tiny: bool, seed: int = 0) -> dict[str, Any]:
    """Write each family's random diffusion model and VAE where ComfyUI's loaders look."""
    torch = comfy_import(comfyui)
    from comfy.ldm.models.autoencoder import AutoencoderKL
    from safetensors.torch import save_file

    device = "cuda" if torch.cuda.is_available() else "cpu"
    out: dict[str, Any] = {}
    for family in families:
        dtype = torch.bfloat16 if family == "flux" else torch.float16
        t = time.perf_counter()
        model = diffusion_model(family, tiny, device, dtype)
        _init_(model, seed)
        params = sum(p.numel() for p in model.parameters())
        _save(save_file, {k: v.to(dtype) for k, v in model.state_dict().items()},
              models / "diffusion_models" / FILES[family]["model"])
        del model
        z = LATENT_CHANNELS[family]
        ddconfig = {"double_z": True, "z_channels": z, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
                    "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}
        vae = AutoencoderKL(ddconfig=ddconfig, embed_dim=z).to(device)
        _init_(vae, seed + 1)
        _save(save_file, {k: v.to(dtype) for k, v in vae.state_dict().items()}, models / "vae" / FILES[family]["vae"])
        del vae
        if device == "cuda":
            torch.cuda.empty_cache()
        out[family] = {"params": params, "dtype": str(dtype).replace("torch.", ""), "tiny": tiny,
                       "build_s": round(time.perf_counter() - t, 1), **FILES[family]}
    return out


def _save(save_file: Any, sd: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous().cpu() for k, v in sd.items()}, str(tmp), metadata={"comfygen": "random weights"})
    tmp.replace(path)


def flops(comfyui: Path, family: str, size: int, tiny: bool) -> dict[str, Any]:
    """FLOPs of one diffusion-model pass at ``size`` (FlopCounterMode on meta tensors: no weights, no GPU)."""
    torch = comfy_import(comfyui)
    from torch.utils.flop_counter import FlopCounterMode

    model = diffusion_model(family, tiny, "meta", torch.bfloat16)
    params = sum(p.numel() for p in model.parameters())
    meta = {"device": "meta", "dtype": torch.bfloat16}
    h = size // 8
    tokens, width, pooled = CONTEXT[family]
    with FlopCounterMode(display=False) as fc:
        if family == "sdxl":
            model(torch.empty(1, 4, h, h, **meta), timesteps=torch.empty(1, **meta),
                  context=torch.empty(1, tokens, width, **meta), y=torch.empty(1, 2816, **meta))
        else:
            model(torch.empty(1, 16, h, h, **meta), torch.empty(1, **meta), torch.empty(1, tokens, width, **meta),
                  y=torch.empty(1, pooled, **meta), guidance=torch.empty(1, **meta))
    return {"family": family, "params": params, "size": size, "flops_per_pass": fc.get_total_flops(),
            "context_tokens": tokens}


def peak() -> dict[str, Any]:
    """The card's bf16 matrix-product rate: mean of 10 timed 8192^3 products after 3 warm-ups."""
    import torch

    if not torch.cuda.is_available():
        return {"bf16_tflops": None, "device": "cpu"}
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        a @ b
    end.record()
    torch.cuda.synchronize()
    s = start.elapsed_time(end) / 1000 / 10
    return {"bf16_tflops": round(2 * n ** 3 / s / 1e12, 1), "device": torch.cuda.get_device_name(0),
            "torch": torch.__version__}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--comfyui", type=Path, required=True)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--models", type=Path, required=True)
    b.add_argument("--family", default="sdxl,flux")
    b.add_argument("--tiny", action="store_true")
    f = sub.add_parser("flops")
    f.add_argument("--family", choices=list(FILES), required=True)
    f.add_argument("--size", type=int, default=1024)
    f.add_argument("--tiny", action="store_true")
    sub.add_parser("peak")
    pr = sub.add_parser("prepare", help="peak, then (with --models) build, then flops: one process, one import")
    pr.add_argument("--models", type=Path, default=None)
    pr.add_argument("--family", default="sdxl,flux")
    pr.add_argument("--size", type=int, default=1024)
    pr.add_argument("--tiny", action="store_true")
    args = ap.parse_args(argv)
    if args.cmd == "build":
        res = build(args.comfyui, args.models, [x for x in args.family.split(",") if x], args.tiny)
    elif args.cmd == "flops":
        res = flops(args.comfyui, args.family, args.size, args.tiny)
    elif args.cmd == "prepare":
        families = [x for x in args.family.split(",") if x]
        res = {"peak": peak()}
        if args.models is not None:
            t = time.perf_counter()
            res["models"] = build(args.comfyui, args.models, families, args.tiny)
            res["models_build_s"] = round(time.perf_counter() - t, 1)
        res["flops"] = {}
        for fam in families:
            try:
                res["flops"][fam] = flops(args.comfyui, fam, args.size, args.tiny)
            except Exception as e:  # noqa: BLE001 - the benchmark still runs, without TFLOP/s for this family
                res["flops"][fam] = {"error": f"{type(e).__name__}: {e}"[:500]}
    else:
        res = peak()
    print(json.dumps(res))


if __name__ == "__main__":
    main()
