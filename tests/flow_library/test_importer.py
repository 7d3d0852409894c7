"""Importing workflows: UI format -> API format, slot inference, the user library."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from comfygen.flow_library.errors import FlowError, FlowValidationError
from comfygen.flow_library.importer import (WorkflowImportError, import_file, import_workflow, save_user_flow,
                                            ui_to_api)
from comfygen.flow_library.library import FlowLibrary
from comfygen.flow_library.model import Family
from comfygen.flow_library.render import render
from comfygen.flow_library.schema import NodeSchema

UI = Path(__file__).parent / "data" / "default_ui.json"


@pytest.fixture
def ui() -> dict:
    return json.loads(UI.read_text())


def test_ui_to_api_widgets_links_and_pass_throughs(ui: dict) -> None:
    g = ui_to_api(ui, NodeSchema.bundled())
    assert set(g) == {"3", "4", "5", "6", "7", "8", "9", "10"}  # note, primitive, reroute, bypassed, muted dropped
    k = g["3"]["inputs"]
    # seed is followed by the hidden control_after_generate value ("randomize"), which must be skipped
    assert (k["seed"], k["steps"], k["cfg"], k["sampler_name"], k["scheduler"], k["denoise"]) == \
           (156680208700286, 25, 8, "euler", "normal", 1)
    assert k["model"] == ["10", 0]  # through the reroute and the bypassed FreeU to the LoRA
    assert k["positive"] == ["6", 0] and k["negative"] == ["7", 0] and k["latent_image"] == ["5", 0]
    assert g["10"]["inputs"] == {"model": ["4", 0], "clip": ["4", 1], "lora_name": "add_detail.safetensors",
                                 "strength_model": 0.8, "strength_clip": 0.7}
    assert g["5"]["inputs"] == {"width": 512, "height": 768, "batch_size": 1}
    assert g["9"]["inputs"] == {"images": ["8", 0], "filename_prefix": "ComfyUI"}


def test_import_ui_infers_slots_and_metadata(ui: dict) -> None:
    flow = import_workflow(ui, flow_id="my-default")
    s = flow.slots
    assert [(r.node, r.input) for r in s.positive] == [("6", "text")]
    assert [(r.node, r.input) for r in s.negative] == [("7", "text")]
    assert [(r.node, r.input) for r in s.seed] == [("3", "seed")]
    assert [(r.node, r.input) for r in s.width] == [("5", "width")]
    assert [(r.node, r.input) for r in s.batch] == [("5", "batch_size")]
    assert s.output == ["9"]
    assert flow.family == Family.SD15 and flow.provenance.kind == "imported"
    assert flow.models.checkpoint == "v1-5-pruned-emaonly.safetensors"
    assert [lo.name for lo in flow.models.loras] == ["add_detail.safetensors"]
    assert (flow.sampler, flow.steps, flow.width, flow.height) == ("euler", 25, 512, 768)
    g = render(flow, 'say "hi"\n', negative="ugly", seed=7)
    assert g["6"]["inputs"]["text"] == 'say "hi"\n' and g["7"]["inputs"]["text"] == "ugly" and g["3"]["inputs"]["seed"] == 7


def test_widget_values_as_dict_and_converted_widget_link(ui: dict) -> None:
    node = next(n for n in ui["nodes"] if n["id"] == 5)
    node["widgets_values"] = {"width": 640, "height": 384, "batch_size": 2}
    assert ui_to_api(ui, NodeSchema.bundled())["5"]["inputs"] == {"width": 640, "height": 384, "batch_size": 2}


def test_api_format_roundtrip_from_a_shipped_flow() -> None:
    shipped = FlowLibrary.default(variants=False).get("sdxl-refiner")
    flow = import_workflow(copy.deepcopy(shipped.graph), flow_id="refiner-copy")
    assert flow.family == Family.SDXL_REFINER
    for name in ("positive", "negative", "seed", "batch"):
        assert {(r.node, r.input) for r in getattr(flow.slots, name)} == \
               {(r.node, r.input) for r in getattr(shipped.slots, name)}, name
    assert flow.slots.output == shipped.slots.output
    flux = FlowLibrary.default(variants=False).get("flux-dev")
    f2 = import_workflow({"prompt": copy.deepcopy(flux.graph)}, flow_id="flux-copy")  # a /prompt request body
    assert f2.family == Family.FLUX and [r.node for r in f2.slots.positive] == [r.node for r in flux.slots.positive]
    assert f2.slots.negative == []


def test_import_of_pack_flow_records_requirement() -> None:
    shipped = FlowLibrary.default(variants=False).get("sd15-facerestore")
    flow = import_workflow(copy.deepcopy(shipped.graph), flow_id="fr")
    assert [r.name for r in flow.requires] == ["facerestore_cf"]


def test_import_errors(ui: dict) -> None:
    bad = copy.deepcopy(ui)
    next(n for n in bad["nodes"] if n["id"] == 5)["widgets_values"] = [99999, 768, 1]
    with pytest.raises(FlowValidationError) as e:
        import_workflow(bad)
    assert e.value.node_errors["5"]["errors"][0]["type"] == "value_bigger_than_max"
    unknown = copy.deepcopy(ui)
    unknown["nodes"].append({"id": 99, "type": "SomeCustomNode", "mode": 0, "inputs": [], "outputs": []})
    with pytest.raises(WorkflowImportError, match="SomeCustomNode"):
        import_workflow(unknown)
    no_prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
                 "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}
    with pytest.raises(WorkflowImportError, match="no prompt"):
        import_workflow(no_prompt)


def test_save_to_user_library_and_load(tmp_path: Path) -> None:
    flow = import_file(UI)
    assert flow.id == "default-ui"
    path = save_user_flow(flow, tmp_path / "flows")
    with pytest.raises(FlowError):
        save_user_flow(flow, tmp_path / "flows")
    save_user_flow(flow, tmp_path / "flows", overwrite=True)
    lib = FlowLibrary.default(tmp_path / "flows")
    assert lib.get("default-ui").graph == flow.graph
    assert any(f.provenance.parent == "default-ui" for f in lib) is False  # user flows are not augmented
    assert path.name == "default-ui.json"
