"""Regenerate the hand-built base flows (``flow_library/flows/base/*.json`` in a source checkout).

The JSON files are what ships and what the library loads; this script is how they were written, so a
change to a shared pattern (say, the hires-fix block) lands in every flow that uses it. Every flow is
validated against the bundled node schema before anything is written. To update the source tree:

    python scripts/build_base_flows.py --out flow_library/flows/base

and review the diff. ``--out`` names the folder the JSON files go to; JSON files there that are not base
flows any more are removed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from flow_builder import (NEG_ANIME, NEG_GENERIC, NEG_PEOPLE, NEG_PHOTO, Builder, Link, Spec, build_simple,
                          make_flow)

from comfygen.flow_library.model import Family, Flow, FlowModels, LoraRef
from comfygen.flow_library.schema import NodeSchema, ensure_valid

log = logging.getLogger(__name__)


# -- the flows -----------------------------------------------------------------------------------
SD15 = "v1-5-pruned-emaonly.safetensors"
SDXL = "sd_xl_base_1.0.safetensors"
SDXL_REFINER = "sd_xl_refiner_1.0.safetensors"
ULTRASHARP, ESRGAN, ESRGAN_ANIME = "4x-UltraSharp.pth", "RealESRGAN_x4plus.pth", "RealESRGAN_x4plus_anime_6B.pth"
CODEFORMER, GFPGAN = "codeformer-v0.1.0.pth", "GFPGANv1.4.pth"
SD15_VAE = "vae-ft-mse-840000-ema-pruned.safetensors"
FREEU_SD15, FREEU_SDXL = (1.5, 1.6, 0.9, 0.2), (1.3, 1.4, 0.9, 0.2)
HF = "https://huggingface.co/"
S, X = Family.SD15, Family.SDXL


def _simple_specs() -> list[Spec]:
    return [
        # SD 1.5 and its fine-tunes
        Spec("sd15-base", "SD 1.5", "Stable Diffusion 1.5, plain text-to-image at 512x512.", S, SD15,
             "euler", "normal", 20, 7.0, 512, 512, ["general", "fast"], source=HF + "stable-diffusion-v1-5/stable-diffusion-v1-5"),
        Spec("sd15-dreamshaper", "DreamShaper 8", "DreamShaper 8, a versatile SD 1.5 fine-tune.", S, "dreamshaper_8.safetensors",
             "dpmpp_2m", "karras", 25, 7.0, 512, 768, ["general", "illustration", "fantasy"]),
        Spec("sd15-realvis-people", "Realistic Vision 6 (people)", "Realistic Vision 6 with a 'bad anatomy' negative preset for people.",
             S, "realisticVisionV60B1_v51VAE.safetensors", "dpmpp_2m_sde", "karras", 30, 5.0, 512, 768,
             ["photoreal", "people", "portrait"], negative=NEG_PEOPLE),
        Spec("sd15-epicrealism-pag", "epiCRealism + PAG", "epiCRealism natural photo model with perturbed-attention guidance.",
             S, "epicrealism_naturalSinRC1VAE.safetensors", "dpmpp_2m", "karras", 25, 5.0, 512, 768,
             ["photoreal", "detailed"], negative=NEG_PHOTO, pag=3.0),
        Spec("sd15-absolutereality-hires", "AbsoluteReality + hires fix", "AbsoluteReality with a latent hires-fix second pass (1.5x).",
             S, "absolutereality_v181.safetensors", "dpmpp_2m", "karras", 25, 6.0, 512, 512,
             ["photoreal", "hires", "detailed"], negative=NEG_PHOTO, hires=(1.5, 0.5, 15)),
        Spec("sd15-revanimated", "ReV Animated", "ReV Animated: 2.5D fantasy and illustration looks, CLIP skip 2.", S,
             "revAnimated_v122EOL.safetensors", "euler_ancestral", "normal", 30, 7.0, 512, 768,
             ["illustration", "fantasy", "render3d"], clip_skip=-2),
        Spec("sd15-counterfeit-anime", "Counterfeit V3 (anime)", "Counterfeit V3 anime model, CLIP skip 2, anime negative preset.", S,
             "counterfeitV30_v30.safetensors", "dpmpp_2m", "karras", 28, 7.0, 512, 768, ["anime"],
             negative=NEG_ANIME, clip_skip=-2, vae=SD15_VAE),
        Spec("sd15-meinamix-anime-upscale", "MeinaMix + RealESRGAN anime", "MeinaMix anime model, upscaled with RealESRGAN x4 anime.", S,
             "meinamix_meinaV11.safetensors", "euler_ancestral", "karras", 30, 7.0, 512, 768, ["anime", "detailed"],
             negative=NEG_ANIME, clip_skip=-2, upscaler=ESRGAN_ANIME),
        Spec("sd15-lora-detail", "SD 1.5 + detail LoRAs", "DreamShaper 8 with a LoRA chain (Detail Tweaker, noise offset).", S,
             "dreamshaper_8.safetensors", "dpmpp_2m", "karras", 25, 7.0, 512, 768, ["detailed", "general"],
             loras=[LoraRef(name="add_detail.safetensors", strength_model=0.8, strength_clip=0.8),
                    LoraRef(name="epi_noiseoffset2.safetensors", strength_model=0.6, strength_clip=0.6)]),
        Spec("sd15-lcm", "SD 1.5 LCM (6 steps)", "SD 1.5 with the LCM LoRA: 6 steps at CFG 1.5.", S, SD15,
             "lcm", "sgm_uniform", 6, 1.5, 512, 512, ["fast", "general"],
             loras=[LoraRef(name="lcm-lora-sdv1-5.safetensors")], lcm=True, source=HF + "latent-consistency/lcm-lora-sdv1-5"),
        Spec("sd15-freeu", "SD 1.5 + FreeU", "DreamShaper 8 with FreeU V2 (SD 1.5 factors).", S, "dreamshaper_8.safetensors",
             "dpmpp_2m", "karras", 25, 7.0, 512, 512, ["general", "detailed"], freeu=FREEU_SD15),
        Spec("sd15-facerestore", "Realistic Vision + CodeFormer", "Realistic Vision portraits with CodeFormer face restoration.",
             S, "realisticVisionV60B1_v51VAE.safetensors", "dpmpp_2m_sde", "karras", 30, 5.0, 512, 768,
             ["photoreal", "people", "portrait", "face-restore"], negative=NEG_PEOPLE, face_restore=CODEFORMER),
        Spec("sd15-upscale-esrgan", "SD 1.5 + RealESRGAN x4", "epiCRealism, then RealESRGAN x4plus and a 0.5 downscale (2x).",
             S, "epicrealism_naturalSinRC1VAE.safetensors", "dpmpp_2m", "karras", 25, 5.0, 512, 512,
             ["photoreal", "hires", "detailed"], negative=NEG_PHOTO, upscaler=ESRGAN),
        # SDXL base and fine-tunes
        Spec("sdxl-base", "SDXL 1.0", "Stable Diffusion XL 1.0 base at 1024x1024.", X, SDXL, "dpmpp_2m", "karras", 30, 7.0,
             tags=["general"], source=HF + "stabilityai/stable-diffusion-xl-base-1.0"),
        Spec("sdxl-sizecond", "SDXL + size conditioning", "SDXL base with CLIPTextEncodeSDXL size conditioning (4096 original size).",
             X, SDXL, "dpmpp_2m", "karras", 30, 7.0, tags=["general", "detailed"], sdxl_size_cond=True),
        Spec("sdxl-offset-lora", "SDXL + offset LoRA", "SDXL base with Stability's offset-noise LoRA for deeper contrast.", X, SDXL,
             "dpmpp_2m", "karras", 30, 7.0, tags=["general", "dark"],
             loras=[LoraRef(name="sd_xl_offset_example-lora_1.0.safetensors", strength_model=0.5, strength_clip=0.5)]),
        Spec("sdxl-juggernaut", "Juggernaut XL v9", "Juggernaut XL v9 (RunDiffusion photo 2): photoreal SDXL fine-tune.", X,
             "juggernautXL_v9Rundiffusionphoto2.safetensors", "dpmpp_2m_sde", "karras", 35, 4.5, 832, 1216,
             ["photoreal", "people", "general"], negative=NEG_PHOTO),
        Spec("sdxl-juggernaut-hires", "Juggernaut XL + hires fix", "Juggernaut XL with a 1.5x latent hires-fix second pass.", X,
             "juggernautXL_v9Rundiffusionphoto2.safetensors", "dpmpp_2m_sde", "karras", 30, 4.5, 832, 1216,
             ["photoreal", "hires", "detailed"], negative=NEG_PHOTO, hires=(1.5, 0.45, 15)),
        Spec("sdxl-juggernaut-lightning", "Juggernaut XL Lightning", "Juggernaut XL v9 Lightning merge: 6 steps, CFG 1.5.", X,
             "juggernautXL_v9Rdphoto2Lightning.safetensors", "dpmpp_sde", "sgm_uniform", 6, 1.5, 832, 1216,
             ["photoreal", "fast"], negative=NEG_PHOTO),
        Spec("sdxl-realvis-portrait", "RealVisXL 4 portrait", "RealVisXL V4 portraits with a people negative preset and FreeU.", X,
             "RealVisXL_V4.0.safetensors", "dpmpp_2m_sde", "karras", 30, 5.0, 896, 1152,
             ["photoreal", "people", "portrait"], negative=NEG_PEOPLE, freeu=FREEU_SDXL),
        Spec("sdxl-realvis-facerestore", "RealVisXL + GFPGAN", "RealVisXL V4 people with GFPGAN face restoration.", X,
             "RealVisXL_V4.0.safetensors", "dpmpp_2m_sde", "karras", 30, 5.0, 896, 1152,
             ["photoreal", "people", "portrait", "face-restore"], negative=NEG_PEOPLE, face_restore=GFPGAN),
        Spec("sdxl-dreamshaper", "DreamShaper XL", "DreamShaper XL alpha 2: illustration, fantasy and concept art.", X,
             "dreamshaperXL_alpha2Xl10.safetensors", "dpmpp_2m", "karras", 30, 6.0,
             tags=["illustration", "fantasy", "general"], negative=NEG_GENERIC),
        Spec("sdxl-dreamshaper-turbo", "DreamShaper XL Turbo", "DreamShaper XL v2.1 Turbo: 8 steps with DPM++ SDE, CFG 2.", X,
             "dreamshaperXL_v21TurboDPMSDE.safetensors", "dpmpp_sde", "karras", 8, 2.0,
             tags=["fast", "illustration", "fantasy"]),
        Spec("sdxl-proteus", "Proteus v0.4", "Proteus v0.4: SDXL fine-tune tuned on preference data, strong prompt following.", X,
             "ProteusV0.4.safetensors", "dpmpp_2m_sde", "karras", 30, 7.0, tags=["general", "illustration", "fantasy"],
             source=HF + "dataautogpt3/ProteusV0.4"),
        Spec("sdxl-crystalclear", "crystalClearXL", "crystalClearXL: clean, bright photographic SDXL look.", X,
             "crystalClearXL_ccxl.safetensors", "dpmpp_2m", "karras", 30, 6.0, tags=["photoreal", "general", "objects"]),
        Spec("sdxl-animagine", "Animagine XL 3.1", "Animagine XL 3.1 anime model with an anime negative preset.", X,
             "animagine-xl-3.1.safetensors", "euler_ancestral", "normal", 28, 7.0, 832, 1216, ["anime"],
             negative=NEG_ANIME, source=HF + "cagliostrolab/animagine-xl-3.1"),
        Spec("sdxl-zavychroma", "ZavyChromaXL", "ZavyChromaXL v8: vivid, painterly-to-photo fantasy looks.", X,
             "zavychromaxl_v80.safetensors", "dpmpp_2m", "karras", 30, 6.0, tags=["fantasy", "painting", "detailed"],
             negative=NEG_GENERIC),
        Spec("sdxl-pag", "SDXL + PAG", "SDXL base with perturbed-attention guidance (scale 3).", X, SDXL, "dpmpp_2m", "karras", 30, 5.0,
             tags=["general", "detailed"], pag=3.0),
        Spec("sdxl-rescalecfg", "SDXL + RescaleCFG", "SDXL base at high CFG with RescaleCFG 0.7 against over-saturation.", X, SDXL,
             "dpmpp_2m", "karras", 30, 9.0, tags=["general"], rescale_cfg=0.7),
        Spec("sdxl-freeu", "SDXL + FreeU", "SDXL base with FreeU V2 (SDXL factors).", X, SDXL, "dpmpp_2m", "karras", 30, 7.0,
             tags=["general", "detailed"], freeu=FREEU_SDXL),
        Spec("sdxl-lora-detail", "SDXL + art/detail LoRAs", "DreamShaper XL with a LoRA chain (Add Detail XL, XL More Art).", X,
             "dreamshaperXL_alpha2Xl10.safetensors", "dpmpp_2m", "karras", 30, 6.0, tags=["detailed", "painting", "fantasy"],
             loras=[LoraRef(name="add-detail-xl.safetensors", strength_model=0.8, strength_clip=0.8),
                    LoraRef(name="xl_more_art-full_v1.safetensors", strength_model=0.6, strength_clip=0.6)]),
        Spec("sdxl-upscale-ultrasharp", "SDXL + 4x-UltraSharp", "Juggernaut XL, then 4x-UltraSharp and a 0.5 downscale (2x).", X,
             "juggernautXL_v9Rundiffusionphoto2.safetensors", "dpmpp_2m_sde", "karras", 30, 4.5,
             tags=["photoreal", "hires", "detailed"], negative=NEG_PHOTO, upscaler=ULTRASHARP),
        Spec("sdxl-hires", "SDXL + hires fix", "SDXL base with a latent hires-fix second pass (1.5x).", X, SDXL, "dpmpp_2m", "karras", 25,
             7.0, tags=["general", "hires", "detailed"], hires=(1.5, 0.5, 15)),
        Spec("sdxl-lightning-4step", "SDXL Lightning 4-step", "ByteDance SDXL-Lightning 4-step checkpoint: euler, sgm_uniform, CFG 1.", X,
             "sdxl_lightning_4step.safetensors", "euler", "sgm_uniform", 4, 1.0, tags=["fast", "general"],
             source=HF + "ByteDance/SDXL-Lightning"),
        Spec("sdxl-lightning-8step-lora", "SDXL + Lightning 8-step LoRA", "SDXL base with the SDXL-Lightning 8-step LoRA.", X, SDXL,
             "euler", "sgm_uniform", 8, 1.0, tags=["fast", "general"],
             loras=[LoraRef(name="sdxl_lightning_8step_lora.safetensors")], source=HF + "ByteDance/SDXL-Lightning"),
        Spec("sdxl-lcm", "SDXL LCM (6 steps)", "SDXL base with the LCM LoRA: 6 steps at CFG 1.5.", X, SDXL, "lcm", "sgm_uniform", 6, 1.5,
             tags=["fast", "general"], loras=[LoraRef(name="lcm-lora-sdxl.safetensors")], lcm=True,
             source=HF + "latent-consistency/lcm-lora-sdxl"),
        Spec("ssd1b-base", "SSD-1B", "Segmind SSD-1B: a distilled SDXL, about 60% faster.", Family.SSD1B, "SSD-1B.safetensors",
             "dpmpp_2m", "karras", 25, 7.0, tags=["fast", "general"], source=HF + "segmind/SSD-1B"),
        Spec("ssd1b-lcm", "SSD-1B LCM", "SSD-1B with its LCM LoRA: 4 steps.", Family.SSD1B, "SSD-1B.safetensors", "lcm", "sgm_uniform",
             4, 1.0, tags=["fast"], loras=[LoraRef(name="lcm-lora-ssd-1b.safetensors")], lcm=True,
             source=HF + "latent-consistency/lcm-lora-ssd-1b"),
    ]


def sdxl_refiner() -> Flow:
    b = Builder()
    model, clip, vae = b.checkpoint(SDXL)
    r_model, r_clip, _ = b.checkpoint(SDXL_REFINER)
    pos, neg = b.encode(clip, "", "positive"), b.encode(clip, NEG_GENERIC, "negative")
    r_ids = [b.add("CLIPTextEncodeSDXLRefiner", ascore=a, width=1024, height=1024, text=t, clip=r_clip)
             for a, t in ((6.0, ""), (2.5, NEG_GENERIC))]
    b.slot("positive", r_ids[0], "text")
    b.slot("negative", r_ids[1], "text")
    for n in r_ids:
        b.slot("width", n, "width")
        b.slot("height", n, "height")
    latent = b.latent(1024, 1024)
    common = dict(steps=25, cfg=7.0, sampler_name="dpmpp_2m", scheduler="karras")
    base = b.add("KSamplerAdvanced", model=model, add_noise="enable", noise_seed=0, positive=pos, negative=neg,
                 latent_image=latent, start_at_step=0, end_at_step=20, return_with_leftover_noise="enable", **common)
    ref = b.add("KSamplerAdvanced", model=r_model, add_noise="disable", noise_seed=0, positive=[r_ids[0], 0],
                negative=[r_ids[1], 0], latent_image=[base, 0], start_at_step=20, end_at_step=10000,
                return_with_leftover_noise="disable", **common)
    b.slot("seed", base, "noise_seed")
    b.slot("seed", ref, "noise_seed")
    b.save(b.decode([ref, 0], vae), "sdxl-refiner")
    return make_flow("sdxl-refiner", "SDXL base + refiner", "SDXL base for 20 of 25 steps, then the SDXL refiner finishes "
                 "(KSamplerAdvanced hand-off).", Family.SDXL_REFINER, b,
                 models=FlowModels(checkpoint=SDXL, refiner=SDXL_REFINER), sampler="dpmpp_2m", scheduler="karras",
                 steps=25, cfg=7.0, tags=["general", "detailed"], source=HF + "stabilityai/stable-diffusion-xl-refiner-1.0")


def sdxl_turbo() -> Flow:
    b = Builder()
    model, clip, vae = b.checkpoint("sd_xl_turbo_1.0_fp16.safetensors")
    pos, neg = b.encode(clip, "", "positive"), b.encode(clip, "", "negative")
    sigmas = b.add("SDTurboScheduler", model=model, steps=1, denoise=1.0)
    sampler = b.add("KSamplerSelect", sampler_name="euler_ancestral")
    latent = b.latent(512, 512)
    out = b.add("SamplerCustom", model=model, add_noise=True, noise_seed=0, cfg=1.0, positive=pos, negative=neg,
                sampler=[sampler, 0], sigmas=[sigmas, 0], latent_image=latent)
    b.slot("seed", out, "noise_seed")
    b.save(b.decode([out, 0], vae), "sdxl-turbo")
    return make_flow("sdxl-turbo", "SDXL Turbo (1 step)", "SDXL Turbo: one step at 512x512, no CFG.", Family.SDXL, b,
                 models=FlowModels(checkpoint="sd_xl_turbo_1.0_fp16.safetensors"), sampler="euler_ancestral",
                 steps=1, cfg=1.0, width=512, height=512, tags=["fast", "general"], source=HF + "stabilityai/sdxl-turbo")


def sdxl_dpo() -> Flow:
    unet = "dpo-sdxl-text2image-v1.safetensors"
    b = Builder()
    _, clip, vae = b.checkpoint(SDXL)
    model = [b.add("UNETLoader", unet_name=unet, weight_dtype="default"), 0]
    pos, neg = b.encode(clip, "", "positive"), b.encode(clip, NEG_GENERIC, "negative")
    samples = b.ksampler(model, pos, neg, b.latent(1024, 1024), steps=30, cfg=7.0, sampler="dpmpp_2m", scheduler="karras")
    b.save(b.decode(samples, vae), "sdxl-dpo")
    return make_flow("sdxl-dpo", "DPO-SDXL", "SDXL with the Diffusion-DPO UNet (preference-tuned on Pick-a-Pic), SDXL text "
                 "encoders and VAE.", Family.SDXL, b, models=FlowModels(checkpoint=SDXL, unet=unet), sampler="dpmpp_2m",
                 scheduler="karras", steps=30, cfg=7.0, tags=["general", "detailed"],
                 source=HF + "mhdang/dpo-sdxl-text2image-v1")


def sd35(id: str, ckpt: str, steps: int, cfg: float, tags: list[str], desc: str) -> Flow:
    clips = ["clip_g.safetensors", "clip_l.safetensors", "t5xxl_fp16.safetensors"]
    b = Builder()
    model, _, vae = b.checkpoint(ckpt)
    clip = [b.add("TripleCLIPLoader", clip_name1=clips[0], clip_name2=clips[1], clip_name3=clips[2]), 0]
    model = [b.add("ModelSamplingSD3", model=model, shift=3.0), 0]
    pos, neg = b.encode(clip, "", "positive"), b.encode(clip, NEG_GENERIC if cfg > 1 else "", "negative")
    samples = b.ksampler(model, pos, neg, b.latent(1024, 1024, "EmptySD3LatentImage"), steps=steps, cfg=cfg,
                         sampler="euler", scheduler="sgm_uniform")
    b.save(b.decode(samples, vae), id)
    return make_flow(id, desc.split(":")[0], desc, Family.SD3, b, models=FlowModels(checkpoint=ckpt, clip=clips),
                 sampler="euler", scheduler="sgm_uniform", steps=steps, cfg=cfg, tags=tags,
                 source=HF + "stabilityai/" + ckpt.split(".safetensors")[0].replace("sd3.5_", "stable-diffusion-3.5-").replace("_", "-"))


def flux(id: str, name: str, desc: str, *, unet: str | None, ckpt: str | None = None, steps: int, guidance: float | None,
         tags: list[str], lora: LoraRef | None = None, upscaler: str | None = None, source: str) -> Flow:
    clips = ["t5xxl_fp16.safetensors", "clip_l.safetensors"]
    b = Builder()
    if ckpt:
        model, clip, vae = b.checkpoint(ckpt)
    else:
        model = [b.add("UNETLoader", unet_name=unet, weight_dtype="default"), 0]
        clip = [b.add("DualCLIPLoader", clip_name1=clips[0], clip_name2=clips[1], type="flux"), 0]
        vae = [b.add("VAELoader", vae_name="ae.safetensors"), 0]
    if lora:
        model = [b.add("LoraLoaderModelOnly", model=model, lora_name=lora.name, strength_model=lora.strength_model), 0]
    cond = b.encode(clip, "", "positive")
    if guidance is not None:
        cond = [b.add("FluxGuidance", conditioning=cond, guidance=guidance), 0]
    if guidance is not None:
        ms = b.add("ModelSamplingFlux", model=model, max_shift=1.15, base_shift=0.5, width=1024, height=1024)
        b.slot("width", ms, "width")
        b.slot("height", ms, "height")
        model = [ms, 0]
    noise = b.add("RandomNoise", noise_seed=0)
    b.slot("seed", noise, "noise_seed")
    guider = b.add("BasicGuider", model=model, conditioning=cond)
    sampler = b.add("KSamplerSelect", sampler_name="euler")
    sigmas = b.add("BasicScheduler", model=model, scheduler="simple", steps=steps, denoise=1.0)
    out = b.add("SamplerCustomAdvanced", noise=[noise, 0], guider=[guider, 0], sampler=[sampler, 0],
                sigmas=[sigmas, 0], latent_image=b.latent(1024, 1024, "EmptySD3LatentImage"))
    image = b.decode([out, 0], vae)
    if upscaler:
        loader = b.add("UpscaleModelLoader", model_name=upscaler)
        image = [b.add("ImageUpscaleWithModel", upscale_model=[loader, 0], image=image), 0]
        image = [b.add("ImageScaleBy", image=image, upscale_method="lanczos", scale_by=0.5), 0]
    b.save(image, id)
    models = FlowModels(checkpoint=ckpt, unet=unet, clip=[] if ckpt else clips, vae=None if ckpt else "ae.safetensors",
                        loras=[lora] if lora else [], upscaler=upscaler)
    return make_flow(id, name, desc, Family.FLUX, b, models=models, sampler="euler", scheduler="simple", steps=steps,
                 cfg=1.0, tags=tags, source=source)


def cascade() -> Flow:
    b = Builder()
    model_c, clip, _ = b.checkpoint("stable_cascade_stage_c.safetensors")
    model_b, _, vae = b.checkpoint("stable_cascade_stage_b.safetensors")
    pos, neg = b.encode(clip, "", "positive"), b.encode(clip, NEG_GENERIC, "negative")
    lat = b.add("StableCascade_EmptyLatentImage", width=1024, height=1024, compression=42, batch_size=1)
    b.slot("width", lat, "width")
    b.slot("height", lat, "height")
    b.slot("batch", lat, "batch_size")
    stage_c = b.ksampler(model_c, pos, neg, [lat, 0], steps=20, cfg=4.0, sampler="euler_ancestral", scheduler="simple")
    cond_b = [b.add("StableCascade_StageB_Conditioning", conditioning=pos, stage_c=stage_c), 0]
    zero = [b.add("ConditioningZeroOut", conditioning=neg), 0]
    stage_b = b.ksampler(model_b, cond_b, zero, [lat, 1], steps=10, cfg=1.1, sampler="euler_ancestral", scheduler="simple")
    b.save(b.decode(stage_b, vae), "cascade")
    return make_flow("cascade", "Stable Cascade", "Stable Cascade: stage C (20 steps) then stage B (10 steps).", Family.CASCADE, b,
                 models=FlowModels(checkpoint="stable_cascade_stage_c.safetensors",
                                   other=["stable_cascade_stage_b.safetensors"]),
                 sampler="euler_ancestral", scheduler="simple", steps=20, cfg=4.0,
                 tags=["general", "illustration", "text-rendering"], source=HF + "stabilityai/stable-cascade")


def pixart(id: str, name: str, desc: str, unet: str, vae: str, *, steps: int, cfg: float, tags: list[str],
           source: str, lcm: bool = False) -> Flow:
    """PixArt-alpha / PixArt-Sigma: a DiT loaded as a diffusion model, the T5-XXL encoder (CLIPLoader type
    'pixart') and a separate VAE (SD 1.x for alpha, SDXL for Sigma)."""
    t5 = "t5xxl_fp16.safetensors"
    b = Builder()
    model = [b.add("UNETLoader", unet_name=unet, weight_dtype="default"), 0]
    clip = [b.add("CLIPLoader", clip_name=t5, type="pixart"), 0]
    vae_l = [b.add("VAELoader", vae_name=vae), 0]
    if lcm:
        model = [b.add("ModelSamplingDiscrete", model=model, sampling="lcm", zsnr=False), 0]
    pos, neg = b.encode(clip, "", "positive"), b.encode(clip, "" if cfg <= 1 else NEG_GENERIC, "negative")
    samples = b.ksampler(model, pos, neg, b.latent(1024, 1024), steps=steps, cfg=cfg,
                         sampler="lcm" if lcm else "euler", scheduler="sgm_uniform" if lcm else "normal")
    b.save(b.decode(samples, vae_l), id)
    return make_flow(id, name, desc, Family.PIXART, b, models=FlowModels(unet=unet, clip=[t5], vae=vae),
                 sampler="lcm" if lcm else "euler", scheduler="sgm_uniform" if lcm else "normal", steps=steps,
                 cfg=cfg, tags=tags, source=source)


def dit(id: str, name: str, desc: str, family: Family, *, unet: str | None = None, ckpt: str | None = None,
        clip_node: tuple[str, dict[str, Any]] | None = None, vae: str | None = None, shift: tuple[str, float],
        steps: int, cfg: float, sampler: str, scheduler: str, size: int, tags: list[str], source: str,
        encoder: str = "CLIPTextEncode", negative: str = "") -> Flow:
    """The shape ComfyUI's own templates use for the newer DiTs (Qwen-Image, HiDream, Lumina 2): a model
    loader, a text-encoder loader, a shift patch (ModelSamplingAuraFlow / ModelSamplingSD3), the SD3 latent."""
    b = Builder()
    if ckpt:
        model, clip, vae_l = b.checkpoint(ckpt)
    else:
        model = [b.add("UNETLoader", unet_name=unet, weight_dtype="default"), 0]
    if clip_node:
        clip = [b.add(clip_node[0], **clip_node[1]), 0]
    if vae:
        vae_l = [b.add("VAELoader", vae_name=vae), 0]
    model = [b.add(shift[0], model=model, shift=shift[1]), 0]

    def enc(text: str, slot: str) -> Link:
        if encoder == "CLIPTextEncodeLumina2":
            n = b.add(encoder, system_prompt="superior", user_prompt=text, clip=clip)
            b.slot(slot, n, "user_prompt")
        elif encoder == "CLIPTextEncodeHiDream":
            n = b.add(encoder, clip=clip, clip_l=text, clip_g=text, t5xxl=text, llama=text)
            b.slot(slot, n, "clip_l", "clip_g", "t5xxl", "llama")
        else:
            return b.encode(clip, text, slot)
        return [n, 0]

    pos, neg = enc("", "positive"), enc(negative, "negative")
    samples = b.ksampler(model, pos, neg, b.latent(size, size, "EmptySD3LatentImage"), steps=steps, cfg=cfg,
                         sampler=sampler, scheduler=scheduler)
    b.save(b.decode(samples, vae_l), id)
    clips = [v for k, v in sorted((clip_node or ("", {}))[1].items()) if k.startswith("clip_name")]
    models = FlowModels(checkpoint=ckpt, unet=unet, clip=clips, vae=vae)
    return make_flow(id, name, desc, family, b, models=models, sampler=sampler, scheduler=scheduler, steps=steps, cfg=cfg,
                 width=size, height=size, tags=tags, source=source)


def newer_flows() -> list[Flow]:
    """PixArt, Playground v2 and the DiTs core ComfyUI runs today, at their model cards' or ComfyUI templates'
    settings."""
    hidream_clips = ("QuadrupleCLIPLoader", {"clip_name1": "clip_l_hidream.safetensors",
                                             "clip_name2": "clip_g_hidream.safetensors",
                                             "clip_name3": "t5xxl_fp8_e4m3fn_scaled.safetensors",
                                             "clip_name4": "llama_3.1_8b_instruct_fp8_scaled.safetensors"})
    return [
        pixart("pixart-sigma", "PixArt-Sigma", "PixArt-Sigma XL 1024: a 0.6B DiT with the T5-XXL encoder; strong prompt "
               "following for its size (20 steps, CFG 4.5).", "PixArt-Sigma-XL-2-1024-MS.pth", "sdxl_vae.safetensors",
               steps=20, cfg=4.5, tags=["general", "illustration"], source=HF + "PixArt-alpha/PixArt-Sigma-XL-2-1024-MS"),
        pixart("pixart-alpha", "PixArt-alpha", "PixArt-alpha XL 1024: the first PixArt DiT (T5-XXL, SD VAE), 20 steps, "
               "CFG 4.5.", "PixArt-XL-2-1024-MS.pth", SD15_VAE, steps=20, cfg=4.5, tags=["general"],
               source=HF + "PixArt-alpha/PixArt-XL-2-1024-MS"),
        pixart("pixart-lcm", "PixArt-alpha LCM (4 steps)", "PixArt-LCM XL: PixArt-alpha distilled to 4 LCM steps without "
               "CFG.", "PixArt-LCM-XL-2-1024-MS.pth", SD15_VAE, steps=4, cfg=1.0, tags=["fast"], lcm=True,
               source=HF + "PixArt-alpha/PixArt-LCM-XL-2-1024-MS"),
        build_simple(Spec(
            "playground-v2", "Playground v2", "Playground v2 (1024px aesthetic): an SDXL-architecture model trained from "
            "scratch for aesthetics; 50 steps at CFG 3 as its model card says.", Family.PLAYGROUND,
            "playground-v2.fp16.safetensors", "euler", "normal", 50, 3.0, tags=["general", "vivid"],
            source=HF + "playgroundai/playground-v2-1024px-aesthetic")),
        dit("qwen-image", "Qwen-Image", "Qwen-Image (20B MMDiT, Qwen2.5-VL text encoder): excellent text rendering and "
            "prompt following; ComfyUI template settings (20 steps, CFG 2.5, shift 3.1).", Family.QWEN_IMAGE,
            unet="qwen_image_fp8_e4m3fn.safetensors",
            clip_node=("CLIPLoader", {"clip_name": "qwen_2.5_vl_7b_fp8_scaled.safetensors", "type": "qwen_image"}),
            vae="qwen_image_vae.safetensors", shift=("ModelSamplingAuraFlow", 3.1), steps=20, cfg=2.5, sampler="euler",
            scheduler="simple", size=1328, tags=["general", "text-rendering", "detailed"],
            source=HF + "Comfy-Org/Qwen-Image_ComfyUI"),
        dit("hidream-full", "HiDream-I1 Full", "HiDream-I1 Full (17B, four text encoders): 50 steps, CFG 5, shift 3 "
            "(ComfyUI template).", Family.HIDREAM, unet="hidream_i1_full_fp8.safetensors", clip_node=hidream_clips,
            vae="ae.safetensors", shift=("ModelSamplingSD3", 3.0), steps=50, cfg=5.0, sampler="uni_pc",
            scheduler="simple", size=1024, tags=["general", "detailed", "illustration"],
            encoder="CLIPTextEncodeHiDream", negative=NEG_GENERIC, source=HF + "Comfy-Org/HiDream-I1_ComfyUI"),
        dit("hidream-dev", "HiDream-I1 Dev", "HiDream-I1 Dev: guidance-distilled HiDream, 28 LCM steps without CFG, shift 6 "
            "(ComfyUI template).", Family.HIDREAM, unet="hidream_i1_dev_fp8.safetensors", clip_node=hidream_clips,
            vae="ae.safetensors", shift=("ModelSamplingSD3", 6.0), steps=28, cfg=1.0, sampler="lcm", scheduler="normal",
            size=1024, tags=["general", "fast"], encoder="CLIPTextEncodeHiDream",
            source=HF + "Comfy-Org/HiDream-I1_ComfyUI"),
        dit("lumina2", "Lumina Image 2.0", "Lumina Image 2.0 (2.6B, Gemma text encoder): 25 steps of res_multistep at CFG 4, "
            "shift 6 (ComfyUI example).", Family.LUMINA2, ckpt="lumina_2.safetensors",
            shift=("ModelSamplingAuraFlow", 6.0), steps=25, cfg=4.0, sampler="res_multistep", scheduler="simple",
            size=1024, tags=["general", "illustration"], encoder="CLIPTextEncodeLumina2",
            negative="blurry, low quality, watermark", source=HF + "Comfy-Org/Lumina_Image_2.0_Repackaged"),
    ]


def all_flows() -> list[Flow]:
    flows = [build_simple(s) for s in _simple_specs()]
    flows.append(build_simple(Spec(
        "playground-v25", "Playground v2.5", "Playground v2.5 (1024px aesthetic): vivid, high-aesthetic images; EDM sampling.",
        Family.PLAYGROUND, "playground-v2.5-1024px-aesthetic.fp16.safetensors", "dpmpp_2m", "karras", 30, 3.0,
        tags=["general", "illustration", "vivid"], patches=[("ModelSamplingContinuousEDM", {
            "sampling": "edm_playground_v2.5", "sigma_max": 120.0, "sigma_min": 0.002})],
        source=HF + "playgroundai/playground-v2.5-1024px-aesthetic")))
    flows += [sdxl_refiner(), sdxl_turbo(), sdxl_dpo(), cascade()]
    flows += newer_flows()
    flows += [
        sd35("sd35-large", "sd3.5_large.safetensors", 28, 4.5, ["general", "text-rendering", "detailed"],
             "SD 3.5 Large: 8B MMDiT with three text encoders; good typography and prompt following."),
        sd35("sd35-medium", "sd3.5_medium.safetensors", 40, 4.5, ["general", "text-rendering"],
             "SD 3.5 Medium: 2.5B MMDiT, lighter than Large."),
        sd35("sd35-large-turbo", "sd3.5_large_turbo.safetensors", 4, 1.0, ["fast", "text-rendering"],
             "SD 3.5 Large Turbo: distilled to 4 steps without CFG."),
        flux("flux-dev", "FLUX.1 dev", "FLUX.1 dev (guidance-distilled, 20 steps): strong prompt following, legible text.",
             unet="flux1-dev.safetensors", steps=20, guidance=3.5,
             tags=["general", "photoreal", "text-rendering", "detailed"], source=HF + "black-forest-labs/FLUX.1-dev"),
        flux("flux-schnell", "FLUX.1 schnell", "FLUX.1 schnell: 4-step distilled FLUX, Apache-2.0.",
             unet="flux1-schnell.safetensors", steps=4, guidance=None, tags=["fast", "general", "text-rendering"],
             source=HF + "black-forest-labs/FLUX.1-schnell"),
        flux("flux-dev-fp8", "FLUX.1 dev fp8 (checkpoint)", "FLUX.1 dev as ComfyUI's single fp8 checkpoint (less memory).",
             unet=None, ckpt="flux1-dev-fp8.safetensors", steps=20, guidance=3.5,
             tags=["general", "photoreal", "text-rendering"], source=HF + "Comfy-Org/flux1-dev"),
        flux("flux-dev-realism", "FLUX.1 dev + Realism LoRA", "FLUX.1 dev with the XLabs realism LoRA for photographic looks.",
             unet="flux1-dev.safetensors", steps=25, guidance=3.0, lora=LoraRef(name="flux_realism_lora.safetensors",
                                                                               strength_model=0.8, strength_clip=0.8),
             tags=["photoreal", "people", "portrait"], source=HF + "XLabs-AI/flux-RealismLora"),
        flux("flux-dev-upscale", "FLUX.1 dev + 4x-UltraSharp", "FLUX.1 dev, then 4x-UltraSharp and a 0.5 downscale (2x).",
             unet="flux1-dev.safetensors", steps=20, guidance=3.5, upscaler=ULTRASHARP,
             tags=["detailed", "hires", "photoreal"], source=HF + "black-forest-labs/FLUX.1-dev"),
        flux("flux-schnell-upscale", "FLUX.1 schnell + RealESRGAN", "FLUX.1 schnell, then RealESRGAN x4plus and a 0.5 downscale.",
             unet="flux1-schnell.safetensors", steps=4, guidance=None, upscaler=ESRGAN, tags=["fast", "hires"],
             source=HF + "black-forest-labs/FLUX.1-schnell"),
    ]
    return flows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True,
                    help="folder for the flow JSON files (flow_library/flows/base to update the source tree)")
    out_dir = ap.parse_args(argv).out
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    flows = all_flows()
    schema = NodeSchema.bundled()
    ids = [f.id for f in flows]
    if len(set(ids)) != len(ids):
        raise SystemExit(f"duplicate ids: {sorted({i for i in ids if ids.count(i) > 1})}")
    for flow in flows:
        ensure_valid(flow.graph, schema, what=f"flow {flow.id}")
    out_dir.mkdir(parents=True, exist_ok=True)
    keep = {f"{f.id}.json" for f in flows}
    for old in out_dir.glob("*.json"):
        if old.name not in keep:
            old.unlink()
    for flow in flows:
        data = flow.model_dump(mode="json", exclude_defaults=False)
        (out_dir / f"{flow.id}.json").write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    log.info("wrote %d base flows to %s", len(flows), out_dir)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
