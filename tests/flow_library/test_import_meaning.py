"""What an imported graph means: family, sizes, final outputs, regional prompts, input images, sampling, validator."""

from __future__ import annotations

import copy

import pytest
from workflow_builders import SCHEMA, sd15

from comfygen.flow_library.importer import import_workflow, ui_to_api
from comfygen.flow_library.model import Family, latent_channels
from comfygen.flow_library.render import RenderError, render
from comfygen.flow_library.schema import file_folder, validate_graph


def _api(ui) -> dict:
    return ui_to_api(ui.workflow(), SCHEMA)


def _dit(clip_loader: dict, *, latent: str = "EmptySD3LatentImage", encoder: dict | None = None,
         unet: str = "model.safetensors", extra: dict | None = None) -> dict:
    """A DiT text-to-image graph: UNETLoader + a text-encoder loader + VAE, one prompt, SD3-style latent."""
    enc = encoder or {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["2", 0]}}
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": unet, "weight_dtype": "default"}},
        "2": clip_loader,
        "3": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
        "4": enc,
        "5": {"class_type": latent, "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
        "6": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["4", 0], "negative": ["4", 0],
                                                   "latent_image": ["5", 0], "seed": 1, "steps": 20, "cfg": 4.0,
                                                   "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["3", 0]}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "x"}},
        **(extra or {}),
    }


def _clip(type_: str, name: str = "te.safetensors") -> dict:
    return {"class_type": "CLIPLoader", "inputs": {"clip_name": name, "type": type_, "device": "default"}}


@pytest.mark.parametrize(("graph", "family"), [
    (_dit(_clip("qwen_image", "qwen_2.5_vl_7b.safetensors"), unet="qwen_image_fp8.safetensors"), Family.QWEN_IMAGE),
    (_dit(_clip("lumina2", "gemma_2_2b.safetensors")), Family.LUMINA2),
    (_dit(_clip("chroma", "t5xxl_fp16.safetensors"), unet="chroma-unlocked-v50.safetensors"), Family.CHROMA),
    (_dit(_clip("omnigen2", "qwen_2.5_vl_fp16.safetensors")), Family.OMNIGEN2),
    (_dit({"class_type": "QuadrupleCLIPLoader", "inputs": {f"clip_name{i}": f"c{i}.safetensors" for i in (1, 2, 3, 4)}}),
     Family.HIDREAM),
    (_dit(_clip("sd3")), Family.SD3),
    (_dit({"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "clip_l.safetensors",
                                                      "clip_name2": "t5xxl.safetensors", "type": "flux"}}),
     Family.FLUX),
    (_dit(_clip("stable_diffusion"), unet="hunyuan_dit_1.2.safetensors",
          encoder={"class_type": "CLIPTextEncodeHunyuanDiT", "inputs": {"bert": "a", "mt5xl": "a", "clip": ["2", 0]}},
          latent="EmptyLatentImage"), Family.HUNYUAN_DIT),
    (_dit(_clip("pixart"), latent="EmptyLatentImage"), Family.PIXART),
    (_dit(_clip("stable_diffusion"), unet="aura_flow_0.3.safetensors", latent="EmptyLatentImage"), Family.AURAFLOW),
    (_dit(_clip("stable_diffusion"), unet="Kolors-unet.safetensors", latent="EmptyLatentImage"), Family.KOLORS),
])
def test_family_is_inferred_for_every_architecture(graph: dict, family: Family) -> None:
    flow = import_workflow(graph, flow_id="f")
    assert flow.family == family
    assert flow.models.unet == graph["1"]["inputs"]["unet_name"] and flow.models.clip  # for selection


def test_sixteen_channel_families() -> None:
    assert {f for f in Family if latent_channels(f) == 16} >= {Family.QWEN_IMAGE, Family.LUMINA2, Family.CHROMA,
                                                              Family.OMNIGEN2, Family.HIDREAM, Family.FLUX, Family.SD3}
    assert latent_channels(Family.SD15) == latent_channels(Family.SDXL) == 4


def _hires() -> dict:
    """sd15 at 512, LatentUpscale to 768, second KSampler, with a PreviewImage on the first pass."""
    g = _api(sd15())
    g["10"] = {"class_type": "LatentUpscale", "inputs": {"samples": ["3", 0], "upscale_method": "nearest-exact",
                                                         "width": 768, "height": 768, "crop": "disabled"}}
    g["11"] = {"class_type": "KSampler", "inputs": {**g["3"]["inputs"], "latent_image": ["10", 0], "denoise": 0.5}}
    g["8"]["inputs"]["samples"] = ["11", 0]
    g["12"] = {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}}
    g["13"] = {"class_type": "PreviewImage", "inputs": {"images": ["12", 0]}}
    g["14"] = {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}  # beside the final SaveImage
    return g


def test_size_follows_on_every_size_bearing_node_and_hires_targets_keep_their_ratio() -> None:
    flow = import_workflow(_hires(), flow_id="hires")
    assert (flow.width, flow.height) == (512, 512)
    g = render(flow, "a cat", width=1024, height=640)
    assert (g["5"]["inputs"]["width"], g["5"]["inputs"]["height"]) == (1024, 640)
    assert (g["10"]["inputs"]["width"], g["10"]["inputs"]["height"]) == (1536, 960)


def test_a_size_fed_by_a_link_is_named() -> None:
    g = _hires()
    g["30"] = {"class_type": "PrimitiveInt", "inputs": {"value": 768}}
    g["10"]["inputs"]["width"] = ["30", 0]
    flow = import_workflow(g, flow_id="linked-size")
    assert any("node 10 (LatentUpscale)" in n and "--size" in n for n in flow.provenance.notes)


def test_only_the_final_image_is_the_result() -> None:
    flow = import_workflow(_hires(), flow_id="hires")
    assert flow.slots.output == ["9"]  # not the first-pass preview, not the preview beside it
    g = _api(sd15())  # two independent samplers, each saved: both are results
    g["15"] = {"class_type": "KSampler", "inputs": {**g["3"]["inputs"], "seed": 2}}
    g["16"] = {"class_type": "VAEDecode", "inputs": {"samples": ["15", 0], "vae": ["4", 2]}}
    g["17"] = {"class_type": "SaveImage", "inputs": {"images": ["16", 0], "filename_prefix": "b"}}
    assert import_workflow(g, flow_id="two").slots.output == ["9", "17"]


def test_area_prompts_are_kept_and_said() -> None:
    g = _api(sd15())
    g["20"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "a red moon", "clip": ["4", 1]}}
    g["21"] = {"class_type": "ConditioningSetArea", "inputs": {"conditioning": ["20", 0], "width": 256, "height": 256,
                                                              "x": 256, "y": 0, "strength": 1.0}}
    g["22"] = {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["6", 0], "conditioning_2": ["21", 0]}}
    g["3"]["inputs"]["positive"] = ["22", 0]
    flow = import_workflow(g, flow_id="areas")
    assert [(r.node, r.input) for r in flow.slots.positive] == [("6", "text")]
    assert [(r.node, r.input) for r in flow.slots.regional] == [("20", "text")]
    assert any("regional prompts kept" in n for n in flow.provenance.notes)
    out = render(flow, "a night sky", width=1024, height=1024)
    assert out["20"]["inputs"]["text"] == "a red moon" and out["6"]["inputs"]["text"] == "a night sky"
    assert (out["21"]["inputs"]["x"], out["21"]["inputs"]["width"]) == (512, 512)  # the box scales with the image


def test_image_input_flows_are_marked_and_refuse_a_size_they_cannot_take() -> None:
    g = _api(sd15())
    g["30"] = {"class_type": "LoadImage", "inputs": {"image": "photo.png"}}
    g["31"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["30", 0], "vae": ["4", 2]}}
    g["3"]["inputs"]["latent_image"] = ["31", 0]
    del g["5"]
    flow = import_workflow(g, flow_id="img2img")
    assert flow.needs_image and "needs-image" in flow.tags and flow.slots.image[0].node == "30"
    assert flow.slots.width == [] and any("no size input" in n for n in flow.provenance.notes)
    render(flow, "x")  # its own size is fine
    with pytest.raises(RenderError, match="no size input.*input image"):
        render(flow, "x", width=768, height=768)
    assert not import_workflow(_api(sd15()), flow_id="t2i").needs_image


def test_sampler_custom_advanced_settings_are_read() -> None:
    g = _api(sd15())
    del g["3"]
    g.update({
        "40": {"class_type": "RandomNoise", "inputs": {"noise_seed": 9}},
        "41": {"class_type": "CFGGuider", "inputs": {"model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
                                                     "cfg": 3.5}},
        "42": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "dpmpp_2m"}},
        "43": {"class_type": "BasicScheduler", "inputs": {"model": ["4", 0], "scheduler": "karras", "steps": 12,
                                                          "denoise": 1.0}},
        "44": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["40", 0], "guider": ["41", 0],
                                                                 "sampler": ["42", 0], "sigmas": ["43", 0],
                                                                 "latent_image": ["5", 0]}},
    })
    g["8"]["inputs"]["samples"] = ["44", 0]
    flow = import_workflow(g, flow_id="custom")
    assert (flow.sampler, flow.scheduler, flow.steps, flow.cfg) == ("dpmpp_2m", "karras", 12, 3.5)
    assert [(r.node, r.input) for r in flow.slots.seed] == [("40", "noise_seed")]


def test_dynamic_prompts_resolve_per_seed() -> None:
    g = _api(sd15())
    g["7"]["inputs"]["text"] = "{blurry|grainy|dark}, watermark"
    flow = import_workflow(g, flow_id="dyn")
    seen = {render(flow, "a {red|blue} car", seed=s)["7"]["inputs"]["text"] for s in range(30)}
    assert seen == {"blurry, watermark", "grainy, watermark", "dark, watermark"}
    assert render(flow, "a {red|blue} car", seed=4) == render(flow, "a {red|blue} car", seed=4)
    assert render(flow, "a {red|blue} car", seed=4)["6"]["inputs"]["text"] in ("a red car", "a blue car")
    assert render(flow, "{braces} stay", seed=1)["6"]["inputs"]["text"] == "{braces} stay"


def test_validator_matches_comfyui_on_the_known_differences() -> None:
    g = _api(sd15())
    g["3"]["inputs"]["seed"] = 5.5  # ComfyUI int()s it
    assert validate_graph(g, SCHEMA).ok
    g2 = copy.deepcopy(g)
    g2["30"] = {"class_type": "LoadImage", "inputs": {"image": "missing.png"}}
    g2["31"] = {"class_type": "PreviewImage", "inputs": {"images": ["30", 0]}}
    assert validate_graph(g2, SCHEMA).ok  # offline: the input folder is the user's
    err = validate_graph(g2, SCHEMA, check_model_files=True).node_errors["30"]["errors"][0]
    assert err["type"] == "custom_validation_failed" and err["details"] == "image - Invalid image file: missing.png"
    assert file_folder("CLIPVisionLoader", "clip_name", [[]]) == "clip_vision"
    assert file_folder("ModelPatchLoader", "name", [[]]) == "model_patches"
    assert file_folder("LoadVideo", "file", ["COMBO", {"options": [], "video_upload": True}]) == "input"
    g3 = copy.deepcopy(g)
    g3["50"] = {"class_type": "ModelPatchLoader", "inputs": {"name": "uso-flux1-projector-v1.safetensors"}}
    g3["51"] = {"class_type": "LoadVideo", "inputs": {"file": "clip.mp4"}}
    g3["52"] = {"class_type": "GetVideoComponents", "inputs": {"video": ["51", 0]}}
    g3["53"] = {"class_type": "PreviewImage", "inputs": {"images": ["52", 0]}}
    report = validate_graph(g3, SCHEMA)
    assert report.ok, report.summary()


def test_an_unnamed_architecture_is_a_guess_and_said() -> None:
    flow = import_workflow(_dit(_clip("stable_diffusion"), unet="mystery.safetensors"), flow_id="m")
    assert flow.family == Family.SD3 and latent_channels(flow.family) == 16  # the 16-channel latent decides
    assert any("family guessed (sd3)" in n for n in flow.provenance.notes)
    plain = import_workflow(_api(sd15("my_merge.safetensors")), flow_id="p")
    assert plain.family == Family.SD15 and any("family guessed" in n for n in plain.provenance.notes)
    named = import_workflow(_api(sd15()), flow_id="n")
    assert named.family == Family.SD15 and not any("family guessed" in n for n in named.provenance.notes)
