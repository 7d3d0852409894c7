"""Build a random-weight Stable Diffusion 1.5 checkpoint with ComfyUI's own model classes.

Run it with the Python that runs ComfyUI (it imports ComfyUI's ``comfy`` package), e.g.::

    /path/to/comfyui-venv/bin/python -m comfygen.evals.perf.make_random_checkpoint \
        --comfyui /path/to/ComfyUI --out /path/to/ComfyUI/models/checkpoints/random_sd15.safetensors

or as a plain script (``python evals/perf/make_random_checkpoint.py ...``). The file has the LDM key
layout (``model.diffusion_model.*``, ``cond_stage_model.transformer.text_model.*``,
``first_stage_model.*``) so ``CheckpointLoaderSimple`` detects it as SD1.5. Weights are seeded
normal(0, 0.02) with zero biases and unit norms, so runs are deterministic and finite (the images
are noise: this is for protocol checks and timing, not quality). ``--broken`` also writes a corrupt
``broken.safetensors`` next to it (for runtime-error checks).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _init_(module, seed: int) -> None:  # type: ignore[no-untyped-def]
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif "norm" in name and p.ndim == 1:
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32).mul_(0.02).to(p.dtype))


def build_sd15(comfyui_dir: Path, seed: int = 0):  # type: ignore[no-untyped-def]
    """The SD1.5 UNet, CLIP-L text model and KL VAE as ComfyUI builds them, randomly initialised."""
    sys.path.insert(0, str(comfyui_dir))
    import torch
    import comfy.cli_args

    if not torch.cuda.is_available():
        comfy.cli_args.args.cpu = True  # ComfyUI otherwise asks CUDA for its device at import
    import comfy.ops
    import comfy.sd1_clip
    from comfy.ldm.models.autoencoder import AutoencoderKL
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    unet_cfg = {"use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
                "legacy": False, "adm_in_channels": None, "in_channels": 4, "model_channels": 320,
                "num_res_blocks": [2, 2, 2, 2], "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
                "channel_mult": [1, 2, 4, 4], "transformer_depth_middle": 1, "use_linear_in_transformer": False,
                "context_dim": 768, "num_heads": 8, "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
                "use_temporal_attention": False, "use_temporal_resblock": False}
    unet = UNetModel(**unet_cfg, dtype=torch.float32, device="cpu", operations=comfy.ops.disable_weight_init)
    _init_(unet, seed)
    clip = comfy.sd1_clip.SDClipModel(device="cpu", dtype=torch.float32)
    _init_(clip, seed + 1)
    ddconfig = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
                "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}
    vae = AutoencoderKL(ddconfig=ddconfig, embed_dim=4)
    _init_(vae, seed + 2)
    return unet, clip, vae


def state_dict_sd15(unet, clip, vae, dtype: str = "fp16") -> dict:  # type: ignore[no-untyped-def]
    import torch

    cast = torch.float16 if dtype == "fp16" else torch.float32
    sd = {}
    for k, v in unet.state_dict().items():
        sd["model.diffusion_model." + k] = v.to(cast).contiguous()
    for k, v in clip.state_dict().items():
        if k.startswith("transformer."):
            sd["cond_stage_model." + k] = v.to(cast).contiguous()
    for k, v in vae.state_dict().items():
        sd["first_stage_model." + k] = v.to(cast).contiguous()
    return sd


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--comfyui", type=Path, required=True, help="ComfyUI checkout (its comfy/ package is imported)")
    ap.add_argument("--out", type=Path, required=True, help="Where to write the .safetensors file")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["fp16", "fp32"], default="fp16")
    ap.add_argument("--broken", action="store_true", help="Also write a corrupt broken.safetensors beside it")
    args = ap.parse_args(argv)

    from safetensors.torch import save_file

    t0 = time.perf_counter()
    unet, clip, vae = build_sd15(args.comfyui, args.seed)
    sd = state_dict_sd15(unet, clip, vae, args.dtype)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    save_file(sd, str(tmp), metadata={"format": "pt", "comfygen": f"random sd15 seed={args.seed}"})
    tmp.replace(args.out)
    if args.broken:
        (args.out.parent / "broken.safetensors").write_bytes(b"\xff" * 64)
    figures = {"path": str(args.out), "tensors": len(sd), "bytes": args.out.stat().st_size,
               "seconds": round(time.perf_counter() - t0, 1)}
    print(figures)
    print("command: python -m comfygen.evals.perf.make_random_checkpoint " + " ".join(argv or sys.argv[1:]))
    return figures


if __name__ == "__main__":
    main()
