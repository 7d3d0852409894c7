"""The lead's core pieces: flow model, rendering, canonical hashing, flow files, settings, errors."""

from __future__ import annotations

import json

import pytest

from comfygen.flow_library.errors import FlowError
from comfygen.flow_library.library import FlowFileError, FlowLibrary, load_flow_file
from comfygen.flow_library.model import Flow, graph_hash
from comfygen.flow_library.render import RenderError, render
from comfygen.tools.errors import ComfyGenError, FlowNotFound
from comfygen.tools.settings import Settings


def tiny_flow(**overrides) -> Flow:
    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": 0, "steps": 20, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
            "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "comfygen"}},
    }
    data = {
        "id": "sd15-test", "name": "SD 1.5 test", "family": "sd15", "width": 512, "height": 512, "graph": graph,
        "slots": {"positive": [{"node": "6", "input": "text"}], "negative": [{"node": "7", "input": "text"}],
                  "seed": [{"node": "3", "input": "seed"}], "width": [{"node": "5", "input": "width"}],
                  "height": [{"node": "5", "input": "height"}], "batch": [{"node": "5", "input": "batch_size"}],
                  "output": ["9"]},
    }
    data.update(overrides)
    return Flow.model_validate(data)


def test_render_fills_every_slot_and_leaves_the_flow_untouched():
    flow = tiny_flow()
    prompt = 'a "quoted" {brace} prompt\nwith a newline and \\ backslash'
    graph = render(flow, prompt, "ugly", seed=42, width=768, height=640, batch=3)
    assert graph["6"]["inputs"]["text"] == prompt
    assert graph["7"]["inputs"]["text"] == "ugly"
    assert graph["3"]["inputs"]["seed"] == 42
    assert graph["5"]["inputs"] == {"width": 768, "height": 640, "batch_size": 3}
    assert flow.graph["6"]["inputs"]["text"] == "" and flow.graph["3"]["inputs"]["seed"] == 0


def test_render_keeps_the_flows_own_negative_when_none_is_given():
    assert render(tiny_flow(), "cat")["7"]["inputs"]["text"] == "blurry"


@pytest.mark.parametrize("kwargs, message", [
    ({"seed": -1}, "seed"), ({"seed": 2**64}, "seed"), ({"width": 100}, "multiple of 8"),
    ({"height": 8}, "at least 16"), ({"batch": 0}, "batch"),
])
def test_render_refuses_bad_values_with_a_clear_error(kwargs, message):
    with pytest.raises(RenderError, match=message):
        render(tiny_flow(), "cat", **kwargs)


def test_reference_flows_cannot_be_rendered():
    ref = Flow(id="api-dalle3", name="DALL-E 3", family="external")
    assert not ref.executable
    with pytest.raises(RenderError, match="reference flow"):
        render(ref, "cat")


def test_graph_hash_ignores_node_ids_and_key_order_but_not_values():
    flow = tiny_flow()
    renumbered = {str(int(k) + 100): {"class_type": v["class_type"], "inputs": {
        name: ([str(int(val[0]) + 100), val[1]] if isinstance(val, list) else val)
        for name, val in reversed(list(v["inputs"].items()))}} for k, v in flow.graph.items()}
    assert graph_hash(renumbered) == flow.graph_hash()
    changed = json.loads(json.dumps(flow.graph))
    changed["3"]["inputs"]["steps"] = 21
    assert graph_hash(changed) != flow.graph_hash()


def test_flow_model_rejects_slots_pointing_outside_the_graph_and_non_api_graphs():
    with pytest.raises(ValueError, match="not in the graph"):
        tiny_flow(slots={"positive": [{"node": "99", "input": "text"}]})
    with pytest.raises(ValueError, match="API format"):
        tiny_flow(graph={"1": {"inputs": {}}}, slots={})


def test_flow_files_report_the_file_and_the_field_on_error(tmp_path):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    with pytest.raises(FlowFileError, match="bad.json: not valid JSON"):
        load_flow_file(bad_json)
    bad_field = tmp_path / "field.json"
    bad_field.write_text(json.dumps({"id": "x", "name": "x", "family": "nope"}))
    with pytest.raises(FlowFileError, match=r"field.json\[0\]: family"):
        load_flow_file(bad_field)
    good = tmp_path / "good.json"
    good.write_text(json.dumps([tiny_flow().model_dump(mode="json")]))
    assert load_flow_file(good)[0] == tiny_flow()


def test_library_lookup_errors_are_flow_errors_with_a_hint():
    lib = FlowLibrary([tiny_flow()])
    assert lib.get("sd15-test").id == "sd15-test" and "sd15-test" in lib and len(lib) == 1
    with pytest.raises(FlowNotFound) as info:
        lib.get("sd15-nope")
    assert isinstance(info.value, ComfyGenError) and "sd15-test" in str(info.value)
    with pytest.raises(FlowError, match="duplicate"):
        FlowLibrary([tiny_flow(), tiny_flow()])


def test_settings_read_comma_separated_lists_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("COMFYGEN_COMFYUI_URLS", "http://a:8188, http://b:8188")
    monkeypatch.setenv("COMFYGEN_HOME", str(tmp_path))
    s = Settings()
    assert s.comfyui_urls == ["http://a:8188", "http://b:8188"]
    assert s.store_path == tmp_path / "runs.sqlite" and s.outputs_dir == tmp_path / "outputs"
