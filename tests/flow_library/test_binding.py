"""Binding flows to installed model files."""

from __future__ import annotations

import pytest

from comfygen.flow_library.binding import apply_binding, bind, installed_from_object_info, match_file, normalise
from comfygen.flow_library.errors import FlowError
from comfygen.flow_library.library import FlowLibrary
from comfygen.flow_library.schema import NodeSchema, validate_graph


@pytest.fixture(scope="module")
def lib() -> FlowLibrary:
    return FlowLibrary.default(variants=False)


def test_normalise() -> None:
    assert normalise("SDXL/Juggernaut-XL_v9.safetensors") == "juggernautxlv9"
    assert normalise("4x-UltraSharp.pth") == normalise("4x_ultrasharp.PTH")


@pytest.mark.parametrize("folder,wanted,files,installed,how", [
    ("checkpoints", "sd_xl_base_1.0.safetensors", ["sd_xl_base_1.0.safetensors"], "sd_xl_base_1.0.safetensors", "exact"),
    ("checkpoints", "sd_xl_base_1.0.safetensors", ["XL/sd_xl_base_1.0.safetensors"], "XL/sd_xl_base_1.0.safetensors",
     "normalised"),
    ("upscale_models", "4x-UltraSharp.pth", ["4x_UltraSharp.pth"], "4x_UltraSharp.pth", "normalised"),
    ("checkpoints", "juggernautXL_v9Rundiffusionphoto2.safetensors", ["juggernautXL_v9Rdphoto2Lightning.safetensors"],
     "juggernautXL_v9Rdphoto2Lightning.safetensors", "family"),
    ("checkpoints", "realisticVisionV60B1_v51VAE.safetensors", ["realisticVisionV51_v51VAE.safetensors"],
     "realisticVisionV51_v51VAE.safetensors", "family"),
    ("text_encoders", "t5xxl_fp16.safetensors", ["t5xxl_fp8_e4m3fn.safetensors"], "t5xxl_fp8_e4m3fn.safetensors", "family"),
    # never across SD 1.5 / SDXL, never between unrelated models
    ("checkpoints", "dreamshaper_8.safetensors", ["dreamshaperXL_alpha2Xl10.safetensors"], None, "missing"),
    ("checkpoints", "sd_xl_base_1.0.safetensors", ["sd_xl_refiner_1.0.safetensors"], None, "missing"),
    ("text_encoders", "clip_l.safetensors", ["clip_g.safetensors"], None, "missing"),
    ("diffusion_models", "flux1-dev.safetensors", ["flux1-schnell.safetensors"], None, "missing"),
])
def test_match_file(folder: str, wanted: str, files: list[str], installed: str | None, how: str) -> None:
    m = match_file(folder, wanted, {folder: files})
    assert (m.installed, m.how) == (installed, how)


def test_family_match_prefers_same_speed_and_notes_a_mismatch() -> None:
    files = ["juggernautXL_v9Rdphoto2Lightning.safetensors", "juggernautXL_v8Rundiffusion.safetensors"]
    m = match_file("checkpoints", "juggernautXL_v9Rundiffusionphoto2.safetensors", {"checkpoints": files})
    assert m.installed == "juggernautXL_v8Rundiffusion.safetensors" and m.note is None
    m = match_file("checkpoints", "juggernautXL_v9Rundiffusionphoto2.safetensors", {"checkpoints": files[:1]})
    assert m.note and "few-step" in m.note


def test_legacy_folder_aliases(lib: FlowLibrary) -> None:
    installed = {"unet": ["flux1-dev.safetensors"], "clip": ["t5xxl_fp16.safetensors", "clip_l.safetensors"],
                 "vae": ["ae.safetensors"]}
    assert bind(lib.get("flux-dev"), installed).status == "runnable"


def test_bind_statuses_and_apply(lib: FlowLibrary) -> None:
    flow = lib.get("sdxl-upscale-ultrasharp")
    installed = {"checkpoints": ["SDXL/juggernautXL_v9Rdphoto2Lightning.safetensors"], "upscale_models": ["4x_UltraSharp.pth"]}
    b = bind(flow, installed)
    assert b.status == "mappable"
    assert b.mapping == {"juggernautXL_v9Rundiffusionphoto2.safetensors": "SDXL/juggernautXL_v9Rdphoto2Lightning.safetensors",
                         "4x-UltraSharp.pth": "4x_UltraSharp.pth"}
    bound = apply_binding(flow, b)
    values = {v for n in bound.graph.values() for v in n["inputs"].values() if isinstance(v, str)}
    assert {"SDXL/juggernautXL_v9Rdphoto2Lightning.safetensors", "4x_UltraSharp.pth"} <= values
    assert bound.models.checkpoint == "SDXL/juggernautXL_v9Rdphoto2Lightning.safetensors"
    assert flow.models.checkpoint == "juggernautXL_v9Rundiffusionphoto2.safetensors"  # original untouched
    assert validate_graph(bound.graph).ok
    assert bind(bound, installed).status == "runnable"

    missing = bind(lib.get("sdxl-refiner"), {"checkpoints": ["sd_xl_base_1.0.safetensors"]})
    assert missing.status == "missing" and missing.missing == [("checkpoints", "sd_xl_refiner_1.0.safetensors")]
    with pytest.raises(FlowError):
        apply_binding(lib.get("sdxl-refiner"), missing)


def test_missing_node_pack_makes_a_flow_missing(lib: FlowLibrary) -> None:
    flow = lib.get("sd15-facerestore")
    installed = {"checkpoints": ["realisticVisionV60B1_v51VAE.safetensors"], "facerestore_models": ["codeformer-v0.1.0.pth"]}
    assert bind(flow, installed).status == "runnable"
    core = {c for c in NodeSchema.bundled().info if c not in NodeSchema.bundled().packs}
    b = bind(flow, installed, node_classes=core)
    assert b.status == "missing" and b.missing_nodes == ["FaceRestoreCFWithModel", "FaceRestoreModelLoader"]


def test_installed_from_object_info() -> None:
    bundled = NodeSchema.bundled().info
    info = {k: bundled[k] for k in ("CheckpointLoaderSimple", "UpscaleModelLoader", "LoadImage", "KSampler")}
    info["CheckpointLoaderSimple"] = {**info["CheckpointLoaderSimple"], "input": {"required": {
        "ckpt_name": [["a.safetensors", "b.ckpt"], {}]}}, "input_order": {"required": ["ckpt_name"]}}
    info["UpscaleModelLoader"] = {**info["UpscaleModelLoader"], "input": {"required": {
        "model_name": ["COMBO", {"options": ["4x-UltraSharp.pth"]}]}}}
    installed = installed_from_object_info(info)
    assert installed["checkpoints"] == ["a.safetensors", "b.ckpt"]
    assert installed["upscale_models"] == ["4x-UltraSharp.pth"]
    assert "input" not in installed
