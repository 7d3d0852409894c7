"""A small SD1.5-shaped flow the fake ComfyUI can run, and settings under a temp home."""

from __future__ import annotations

import pytest

from comfygen.flow_library.model import Flow, FlowModels, LoraRef, SlotRef, Slots
from comfygen.tools.settings import Settings

CKPT = "random_sd15.safetensors"
LORA = "random_lora_sd15.safetensors"


def make_flow(steps: int = 4, flow_id: str = "test-sd15-lora", with_batch_slot: bool = True) -> Flow:
    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
        "10": {"class_type": "LoraLoader", "inputs": {"model": ["4", 0], "clip": ["4", 1], "lora_name": LORA,
                                                      "strength_model": 0.8, "strength_clip": 0.8}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["10", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["10", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {"model": ["10", 0], "seed": 0, "steps": steps, "cfg": 7.0,
                                                   "sampler_name": "euler", "scheduler": "normal",
                                                   "positive": ["6", 0], "negative": ["7", 0],
                                                   "latent_image": ["5", 0], "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "comfygen/test"}},
    }
    slots = Slots(positive=[SlotRef(node="6", input="text")], negative=[SlotRef(node="7", input="text")],
                  seed=[SlotRef(node="3", input="seed")], width=[SlotRef(node="5", input="width")],
                  height=[SlotRef(node="5", input="height")],
                  batch=[SlotRef(node="5", input="batch_size")] if with_batch_slot else [], output=["9"])
    return Flow(id=flow_id, name="test flow", family="sd15", steps=steps, width=64, height=64,
                models=FlowModels(checkpoint=CKPT, loras=[LoraRef(name=LORA)]), slots=slots, graph=graph)


@pytest.fixture
def flow() -> Flow:
    return make_flow()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home", run_deadline_s=30)


@pytest.fixture
def store(settings):
    from comfygen.tools.store import RunStore

    with RunStore.from_settings(settings) as s:
        yield s
