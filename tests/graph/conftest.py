"""API graphs shaped like the library's flows, for the graph-rewrite tests."""

from __future__ import annotations

import copy

import pytest

CKPT = "random_sd15.safetensors"
LORA = "random_lora_sd15.safetensors"


def sd15_lora_freeu() -> dict:
    """Checkpoint -> LoRA -> FreeU -> KSampler, empty latent, decode, save."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
        "10": {"class_type": "LoraLoader", "inputs": {"model": ["4", 0], "clip": ["4", 1], "lora_name": LORA,
                                                      "strength_model": 0.8, "strength_clip": 0.8}},
        "11": {"class_type": "FreeU_V2", "inputs": {"model": ["10", 0], "b1": 1.3, "b2": 1.4, "s1": 0.9, "s2": 0.2}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["10", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["10", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {"model": ["11", 0], "seed": 1, "steps": 30, "cfg": 7.0,
                                                   "sampler_name": "euler", "scheduler": "normal",
                                                   "positive": ["6", 0], "negative": ["7", 0],
                                                   "latent_image": ["5", 0], "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "comfygen/test"}},
    }


def sd15_hires() -> dict:
    """Two passes on the same model: first pass, latent upscale, second pass."""
    g = sd15_lora_freeu()
    g["12"] = {"class_type": "LatentUpscale", "inputs": {"samples": ["3", 0], "upscale_method": "nearest-exact",
                                                         "width": 768, "height": 768, "crop": "disabled"}}
    g["13"] = {"class_type": "KSampler", "inputs": {"model": ["11", 0], "seed": 1, "steps": 20, "cfg": 7.0,
                                                    "sampler_name": "euler", "scheduler": "normal",
                                                    "positive": ["6", 0], "negative": ["7", 0],
                                                    "latent_image": ["12", 0], "denoise": 0.5}}
    g["8"]["inputs"]["samples"] = ["13", 0]
    return g


def base_refiner() -> dict:
    """Two checkpoints, KSamplerAdvanced base then refiner."""
    g = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
        "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["1", 1]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
    }
    common = {"cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "positive": ["3", 0],
              "negative": ["4", 0], "steps": 40}
    g["6"] = {"class_type": "KSamplerAdvanced", "inputs": {**common, "model": ["1", 0], "add_noise": "enable",
                                                           "noise_seed": 5, "latent_image": ["5", 0],
                                                           "start_at_step": 0, "end_at_step": 32,
                                                           "return_with_leftover_noise": "enable"}}
    g["7"] = {"class_type": "KSamplerAdvanced", "inputs": {**common, "model": ["2", 0], "add_noise": "disable",
                                                           "noise_seed": 5, "latent_image": ["6", 0],
                                                           "start_at_step": 32, "end_at_step": 10000,
                                                           "return_with_leftover_noise": "disable"}}
    g["8"] = {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["2", 2]}}
    g["9"] = {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "refiner"}}
    return g


def custom_advanced(steps: int = 28) -> dict:
    """SamplerCustomAdvanced with RandomNoise, CFGGuider, BasicScheduler (Flux-style wiring)."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
        "5": {"class_type": "RandomNoise", "inputs": {"noise_seed": 42}},
        "6": {"class_type": "CFGGuider", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0],
                                                    "cfg": 3.5}},
        "7": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "8": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "simple", "steps": steps,
                                                         "denoise": 1.0}},
        "9": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["5", 0], "guider": ["6", 0],
                                                                "sampler": ["7", 0], "sigmas": ["8", 0],
                                                                "latent_image": ["4", 0]}},
        "10": {"class_type": "VAEDecode", "inputs": {"samples": ["9", 0], "vae": ["1", 2]}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "flux"}},
    }


def img2img() -> dict:
    g = sd15_lora_freeu()
    del g["5"]
    g["20"] = {"class_type": "LoadImage", "inputs": {"image": "example.png"}}
    g["21"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["20", 0], "vae": ["4", 2]}}
    g["3"]["inputs"]["latent_image"] = ["21", 0]
    g["3"]["inputs"]["denoise"] = 0.6
    return g


GRAPHS = {"sd15": sd15_lora_freeu, "hires": sd15_hires, "refiner": base_refiner, "custom": custom_advanced,
          "img2img": img2img}


@pytest.fixture
def graphs() -> dict:
    return {k: copy.deepcopy(f()) for k, f in GRAPHS.items()}


@pytest.fixture(scope="session")
def core_schema() -> dict:
    from comfygen.tools.graph.core import bundled_schema

    return bundled_schema()


@pytest.fixture(scope="session")
def pruna_schema() -> dict:
    """Stock ComfyUI plus the Pruna pack, as an endpoint with ComfyUI_pruna installed reports it."""
    from comfygen.flow_library.schema import NodeSchema

    return NodeSchema.bundled().with_packs(["ComfyUI_pruna"]).info
