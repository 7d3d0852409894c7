"""Offline validation matches what a real ComfyUI (v0.3.64) answered for each error class."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from comfygen.flow_library.errors import FlowValidationError
from comfygen.flow_library.schema import NodeSchema, combo_options, ensure_valid, validate_graph

CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "comfyui" / "captures" / "errors.json"

BASE = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
    "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "bilinear", "width": 32,
                                                  "height": 32, "crop": "disabled"}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "t"}},
}


def _mutate(case: str) -> object:
    g = copy.deepcopy(BASE)
    if case == "unknown_class":
        g["9"] = {"class_type": "NoSuchNode", "inputs": {}}
    elif case == "unknown_class_on_path":
        g["3"]["class_type"] = "NoSuchOutputNode"
    elif case == "missing_required_input":
        del g["2"]["inputs"]["width"]
    elif case == "bad_value_type_int":
        g["2"]["inputs"]["width"] = "abc"
    elif case == "value_too_big":
        g["2"]["inputs"]["width"] = 99999
    elif case == "value_too_small":
        g["2"]["inputs"]["width"] = -5
    elif case == "bad_combo_value":
        g["2"]["inputs"]["upscale_method"] = "magic"
    elif case == "link_to_missing_node":
        g["2"]["inputs"]["image"] = ["77", 0]
    elif case == "link_bad_output_index":
        g["3"]["inputs"]["images"] = ["2", 5]
    elif case == "no_output_node":
        del g["3"]
    elif case == "type_mismatch_link":
        g["4"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
        g["2"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
    elif case == "missing_class_type":
        g = {"1": {"inputs": {}}, **{k: v for k, v in g.items() if k != "1"}}
    elif case == "no_prompt_key":
        return None
    return g


def _captures() -> dict:
    if not CAPTURES.is_file():
        pytest.skip("recorded ComfyUI captures not available")
    return json.loads(CAPTURES.read_text())


CASES = ["unknown_class", "unknown_class_on_path", "missing_required_input", "bad_value_type_int", "value_too_big",
         "value_too_small", "bad_combo_value", "link_to_missing_node", "link_bad_output_index", "no_output_node",
         "type_mismatch_link", "missing_class_type", "no_prompt_key"]


@pytest.mark.parametrize("case", CASES)
def test_same_errors_as_comfyui(case: str) -> None:
    expected = _captures()[case]["body"]
    report = validate_graph(_mutate(case), NodeSchema.bundled())  # type: ignore[arg-type]
    assert report.error is not None
    for key in ("type", "message", "details"):
        assert report.error[key] == expected["error"][key], key
    assert set(report.node_errors) == set(expected["node_errors"])
    for node_id, exp in expected["node_errors"].items():
        got = report.node_errors[node_id]
        assert got["class_type"] == exp["class_type"]
        assert got["dependent_outputs"] == exp["dependent_outputs"]
        assert [(e["type"], e["message"], e["details"]) for e in got["errors"]] == \
               [(e["type"], e["message"], e["details"]) for e in exp["errors"]]
        assert got["errors"][0]["extra_info"].get("input_name") == exp["errors"][0]["extra_info"].get("input_name")


def test_valid_graph_passes_and_ensure_valid_raises() -> None:
    assert validate_graph(BASE).ok
    ensure_valid(BASE)
    with pytest.raises(FlowValidationError) as exc:
        ensure_valid(_mutate("value_too_big"))  # type: ignore[arg-type]
    assert exc.value.error["type"] == "prompt_outputs_failed_validation"
    assert exc.value.node_errors["2"]["errors"][0]["type"] == "value_bigger_than_max"
    assert exc.value.hint


def test_type_mismatch_on_inner_node_and_bad_linked_input() -> None:
    g = copy.deepcopy(BASE)
    g["4"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
    g["2"]["inputs"]["image"] = ["4", 0]
    r = validate_graph(g)
    assert r.node_errors["2"]["errors"][0]["type"] == "return_type_mismatch"
    assert r.node_errors["2"]["dependent_outputs"] == ["3"]
    assert r.error["details"] == ""  # like ComfyUI: only the output's own reasons are listed
    g = copy.deepcopy(BASE)
    g["2"]["inputs"]["image"] = ["1", 0, 1]
    assert validate_graph(g).node_errors["2"]["errors"][0]["type"] == "bad_linked_input"


def test_one_good_output_means_no_top_level_error() -> None:
    g = copy.deepcopy(BASE)
    g["5"] = {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "ok"}}
    g["2"]["inputs"]["width"] = -1
    r = validate_graph(g)
    assert r.error is None and r.good_outputs == ["5"] and not r.ok
    assert r.node_errors["2"]["dependent_outputs"] == ["3"]


def test_model_files_checked_only_when_asked() -> None:
    g = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "not_installed.safetensors"}},
        "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 2]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "x"}},
        "5": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-UltraSharp.pth"}},
        "6": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["5", 0], "image": ["3", 0]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "y"}},
    }
    assert validate_graph(g).ok
    r = validate_graph(g, check_model_files=True)
    types = {(nid, e["type"]) for nid, e in r.errors()}
    assert ("1", "value_not_in_list") in types and ("5", "value_not_in_list") in types
    detail = dict(r.errors())["1"]["details"]
    assert detail == "ckpt_name: 'not_installed.safetensors' not in ['broken.safetensors', 'random_sd15.safetensors']"


def test_v3_combo_inputs_are_checked() -> None:
    schema = NodeSchema.bundled()
    spec = dict((n, s) for n, s, _ in schema.inputs("CLIPTextEncodeSD3"))["empty_padding"]
    assert spec[0] == "COMBO" and combo_options(spec) == ["none", "empty_prompt"]
    g = {
        "1": {"class_type": "TripleCLIPLoader", "inputs": {"clip_name1": "a.safetensors", "clip_name2": "b.safetensors",
                                                            "clip_name3": "c.safetensors"}},
        "2": {"class_type": "CLIPTextEncodeSD3", "inputs": {"clip": ["1", 0], "clip_l": "", "clip_g": "", "t5xxl": "",
                                                             "empty_padding": "sometimes"}},
        "3": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["2", 0]}},
    }
    g["4"] = {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
    g["5"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd3.5_large.safetensors"}}
    g["6"] = {"class_type": "KSampler", "inputs": {"model": ["5", 0], "seed": 1, "steps": 4, "cfg": 1.0,
                                                   "sampler_name": "euler", "scheduler": "simple", "positive": ["2", 0],
                                                   "negative": ["3", 0], "latent_image": ["4", 0], "denoise": 1.0}}
    g["7"] = {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["5", 2]}}
    g["8"] = {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "x"}}
    errors = validate_graph(g).errors()
    assert [(n, e["type"]) for n, e in errors] == [("2", "value_not_in_list")]
    assert errors[0][1]["details"] == "empty_padding: 'sometimes' not in ['none', 'empty_prompt']"


def test_bundled_schema_knows_custom_packs() -> None:
    schema = NodeSchema.bundled()
    assert len(schema) > 477
    for cls in ("PrunaCompileModel", "CacheModelAdaptive", "CacheModelPeriodic", "CacheModelAuto",
                "FaceRestoreModelLoader", "FaceRestoreCFWithModel"):
        assert cls in schema
    assert schema.packs["CacheModelAuto"] == "ComfyUI_pruna"
    assert schema.outputs("CacheModelAdaptive") == ("MODEL",)
    spec = dict((n, s) for n, s, _ in schema.inputs("CacheModelAdaptive"))
    assert spec["threshold"][1]["min"] == 0.001 and spec["max_skip_steps"][1]["max"] == 5
    core = NodeSchema(json.loads((Path(__file__).resolve().parents[2] / "flow_library" / "data" /
                                  "object_info.json").read_text()))
    assert "CacheModelAuto" not in core and len(core) == 477


def test_v3_combo_check_can_mirror_comfyui() -> None:
    g = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "x.pth"}},
        "3": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "x"}},
    }
    assert not validate_graph(g, check_model_files=True).ok
    # ComfyUI 0.3.64 does not check V3 combo values when queueing (observed on a live server)
    assert validate_graph(g, check_model_files=True, check_v3_combos=False).ok
