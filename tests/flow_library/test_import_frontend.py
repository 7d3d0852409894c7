"""Importing as ComfyUI's frontend queues: defaults, subgraphs, group nodes, object links, primitives, strings."""

from __future__ import annotations

import copy

import pytest
from workflow_builders import SCHEMA, SUBGRAPH_ID, sd15, subgraphed

from comfygen.flow_library.errors import FlowValidationError
from comfygen.flow_library.importer import WorkflowImportError, import_workflow, ui_to_api
from comfygen.flow_library.render import render


def test_nodes_without_widget_values_get_the_schema_defaults() -> None:
    ui = sd15()
    del ui.nodes[9]["widgets_values"]  # SaveImage saved with no values
    ui.nodes[5]["widgets_values"] = [512, 512]  # EmptyLatentImage missing its batch_size
    ui.nodes[3]["widgets_values"] = [7, "fixed"]  # KSampler with only its seed
    g = ui_to_api(ui.workflow(), SCHEMA)
    assert g["9"]["inputs"]["filename_prefix"] == "ComfyUI"
    assert g["5"]["inputs"] == {"width": 512, "height": 512, "batch_size": 1}
    k = g["3"]["inputs"]
    assert (k["seed"], k["steps"], k["cfg"], k["sampler_name"], k["scheduler"], k["denoise"]) == \
           (7, 20, 8.0, "euler", "simple", 1.0)  # combo default: the first option
    flow = import_workflow(ui.workflow(), flow_id="get-started")
    assert flow.slots.output == ["9"] and flow.steps == 20


def test_object_form_links_read_like_array_links() -> None:
    assert ui_to_api(sd15(objects=True).workflow(), SCHEMA) == ui_to_api(sd15().workflow(), SCHEMA)


def test_subgraphs_flatten_with_inner_ids_and_promoted_widgets() -> None:
    wf = subgraphed()
    g = ui_to_api(wf, SCHEMA)
    assert set(g) == {"1", "9", "75:58", "75:59", "75:60", "75:61", "75:70:5"}
    assert g["75:58"]["inputs"] == {"text": "a promoted prompt", "clip": ["1", 1]}  # the instance's widget value
    assert g["75:59"]["inputs"]["text"] == "ugly"  # not promoted: the inner node's own value
    k = g["75:61"]["inputs"]
    assert k["seed"] == 42 and k["model"] == ["1", 0] and k["positive"] == ["75:58", 0] and k["steps"] == 20
    assert g["75:70:5"]["inputs"] == {"samples": ["75:61", 0], "vae": ["1", 2]}  # nested subgraph
    assert g["9"]["inputs"]["images"] == ["75:70:5", 0]
    flow = import_workflow(wf, flow_id="z-image")
    assert [(r.node, r.input) for r in flow.slots.positive] == [("75:58", "text")]
    assert [(r.node, r.input) for r in flow.slots.seed] == [("75:61", "seed")]
    assert flow.slots.output == ["9"]
    out = render(flow, "a fox", seed=3)
    assert out["75:58"]["inputs"]["text"] == "a fox" and out["75:61"]["inputs"]["seed"] == 3


def test_a_subgraph_widget_without_a_stored_value_keeps_the_inner_value() -> None:
    g = ui_to_api(subgraphed(prompt=None), SCHEMA)
    assert g["75:58"]["inputs"]["text"] == "inner default prompt" and g["75:61"]["inputs"]["seed"] == 1


def test_a_subgraph_input_linked_outside_takes_the_outer_link() -> None:
    wf = subgraphed()
    root = {n["id"]: n for n in wf["nodes"]}
    wf["nodes"].append({"id": 30, "type": "PrimitiveStringMultiline", "mode": 0, "inputs": [],
                        "outputs": [{"name": "STRING", "type": "STRING", "links": [99]}],
                        "widgets_values": ["from outside"]})
    root[75]["inputs"][3]["link"] = 99
    wf["links"].append({"id": 99, "origin_id": 30, "origin_slot": 0, "target_id": 75, "target_slot": 3,
                        "type": "STRING"})
    g = ui_to_api(wf, SCHEMA)
    assert g["75:58"]["inputs"]["text"] == ["30", 0]
    flow = import_workflow(wf, flow_id="outer")
    assert [(r.node, r.input) for r in flow.slots.positive] == [("30", "value")]


def test_muted_and_bypassed_subgraph_instances() -> None:
    wf = subgraphed()
    next(n for n in wf["nodes"] if n["id"] == 75)["mode"] = 2
    g = ui_to_api(wf, SCHEMA)
    assert not any(k.startswith("75:") for k in g) and "images" not in g["9"]["inputs"]


def test_a_subgraph_that_contains_itself_is_refused() -> None:
    wf = subgraphed()
    wf["definitions"]["subgraphs"][0]["nodes"].append({"id": 99, "type": SUBGRAPH_ID, "mode": 0, "inputs": [],
                                                       "outputs": []})
    with pytest.raises(WorkflowImportError, match="contains itself"):
        ui_to_api(wf, SCHEMA)


def _group_workflow() -> dict:
    """The sd15 graph with both prompts packed into a legacy group node (id 20, ``workflow>Prompts``)."""
    ui = sd15()
    for nid in (6, 7):
        del ui.nodes[nid]
    ui.links = [lk for lk in ui.links if lk[1] not in (6, 7) and lk[3] not in (6, 7)]
    for node in ui.nodes.values():
        node["inputs"] = [i for i in node["inputs"] if any(lk[0] == i["link"] for lk in ui.links)]
    ui.node(20, "workflow>Prompts", ["a group prompt", "grainy"])
    ui.nodes[20]["outputs"] = [{"name": "CONDITIONING", "type": "CONDITIONING", "links": []},
                               {"name": "CONDITIONING", "type": "CONDITIONING", "links": []}]
    ui.link(4, 1, 20, "clip", "CLIP")
    ui.link(4, 1, 20, "CLIPTextEncode clip", "CLIP")
    ui.link(20, 0, 3, "positive", "CONDITIONING")
    ui.link(20, 1, 3, "negative", "CONDITIONING")
    group = {"nodes": [{"type": "CLIPTextEncode", "inputs": [{"name": "clip", "type": "CLIP", "link": None}],
                        "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": []}],
                        "widgets_values": ["inner a"], "index": 0},
                       {"type": "CLIPTextEncode", "inputs": [{"name": "clip", "type": "CLIP", "link": None}],
                        "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": []}],
                        "widgets_values": ["inner b"], "index": 1}],
             "links": [], "external": [[0, 0, "CONDITIONING"], [1, 0, "CONDITIONING"]]}
    return ui.workflow(extra={"groupNodes": {"Prompts": group}})


def test_legacy_group_nodes_expand_with_index_ids() -> None:
    g = ui_to_api(_group_workflow(), SCHEMA)
    assert g["20:0"]["inputs"] == {"text": "a group prompt", "clip": ["4", 1]}
    assert g["20:1"]["inputs"] == {"text": "grainy", "clip": ["4", 1]}
    assert g["3"]["inputs"]["positive"] == ["20:0", 0] and g["3"]["inputs"]["negative"] == ["20:1", 0]
    flow = import_workflow(_group_workflow(), flow_id="grouped")
    assert [r.node for r in flow.slots.positive] == ["20:0"] and [r.node for r in flow.slots.negative] == ["20:1"]


def test_a_stale_primitive_value_wins_over_the_target_widget() -> None:
    ui = sd15()
    ui.node(13, "PrimitiveNode", [30, "fixed"])
    ui.link(13, 0, 3, "steps", "INT", widget=True)
    ui.nodes[3]["widgets_values"][2] = 25  # what the KSampler itself still stores
    assert ui_to_api(ui.workflow(), SCHEMA)["3"]["inputs"]["steps"] == 30


def test_a_prompt_fed_by_a_string_node_is_that_node_s_value() -> None:
    ui = sd15()
    ui.node(30, "PrimitiveStringMultiline", ["a prompt in a string node"])
    ui.link(30, 0, 6, "text", "STRING", widget=True)
    flow = import_workflow(ui.workflow(), flow_id="strings")
    assert [(r.node, r.input) for r in flow.slots.positive] == [("30", "value")]
    g = render(flow, "the run's prompt")
    assert g["30"]["inputs"]["value"] == "the run's prompt" and g["6"]["inputs"]["text"] == ["30", 0]


def test_errors_name_every_failing_node_and_all_missing_classes() -> None:
    ui = sd15()
    ui.nodes[5]["widgets_values"] = [99999, 512, 1]  # upstream of the output: in node_errors only
    ui.nodes[3]["widgets_values"][4] = "no_such_sampler"
    with pytest.raises(FlowValidationError) as e:
        import_workflow(ui.workflow())
    msg = str(e.value)
    assert "node 5 (EmptyLatentImage) input 'width'" in msg and "node 3 (KSampler) input 'sampler_name'" in msg
    assert "comfygen flows validate FILE" in msg and set(e.value.node_errors) == {"3", "5"}
    ui = sd15()
    ui.node(40, "MyUpscaler")
    ui.node(41, "MyDetailer")
    with pytest.raises(WorkflowImportError) as e2:
        import_workflow(ui.workflow())
    assert "MyUpscaler, MyDetailer" in str(e2.value) and "--object-info" in str(e2.value)
    assert "--comfyui" not in str(e2.value)
    api = {"1": {"class_type": "CustomA", "inputs": {}}, "2": {"class_type": "CustomB", "inputs": {}}}
    with pytest.raises(WorkflowImportError, match="CustomA, CustomB"):
        import_workflow(api)


def test_numbers_stored_as_strings_become_numbers_so_bounds_apply() -> None:
    ui = sd15()
    ui.nodes[5]["widgets_values"] = ["640", "384", "1"]
    flow = import_workflow(ui.workflow(), flow_id="strings-as-numbers")
    assert flow.graph["5"]["inputs"] == {"width": 640, "height": 384, "batch_size": 1} and flow.width == 640
    api = copy.deepcopy(flow.graph)
    api["20"] = {"class_type": "ImageScale", "inputs": {"image": ["8", 0], "upscale_method": "nearest-exact",
                                                         "width": "99999", "height": "512", "crop": "disabled"}}
    api["9"]["inputs"]["images"] = ["20", 0]
    with pytest.raises(FlowValidationError, match=r"node 20 \(ImageScale\) input 'width'"):
        import_workflow(api)


def test_newer_subgraph_instances_promote_widgets_through_proxy_widgets() -> None:
    wf = subgraphed()
    inst = next(n for n in wf["nodes"] if n["id"] == 75)
    inst["inputs"] = [i for i in inst["inputs"] if not i.get("widget")]  # the current editor lists none
    inst["properties"] = {"proxyWidgets": [["-1", "text"], ["59", "text"], ["-1", "seed"]]}
    inst["widgets_values"] = ["a proxied prompt", "a proxied negative", 9]
    g = ui_to_api(wf, SCHEMA)
    assert g["75:58"]["inputs"]["text"] == "a proxied prompt" and g["75:61"]["inputs"]["seed"] == 9
    assert g["75:59"]["inputs"]["text"] == "a proxied negative"  # an inner widget shown on the instance
    assert g["75:61"]["inputs"]["model"] == ["1", 0]  # outer links still matched by input name


def test_a_prompt_built_by_concatenation_fills_its_prompt_part() -> None:
    ui = sd15()
    ui.node(30, "PrimitiveStringMultiline", ["You are an assistant designed to generate images. <Prompt Start> "])
    ui.node(31, "PrimitiveStringMultiline", ["a castle at dawn"])
    ui.node(32, "StringConcatenate", ["", "", ""])
    ui.link(30, 0, 32, "string_a", "STRING", widget=True)
    ui.link(31, 0, 32, "string_b", "STRING", widget=True)
    ui.link(32, 0, 6, "text", "STRING", widget=True)
    ui.node(33, "StringConcatenate", ["a cat", "gummy candy style", ","])  # subject first, style after
    ui.link(33, 0, 7, "text", "STRING", widget=True)
    flow = import_workflow(ui.workflow(), flow_id="concat")
    assert [(r.node, r.input) for r in flow.slots.positive] == [("31", "value")]  # not the system prompt
    assert [(r.node, r.input) for r in flow.slots.negative] == [("33", "string_a")]
    g = render(flow, "a lighthouse", negative="blurry")
    assert g["30"]["inputs"]["value"].startswith("You are") and g["31"]["inputs"]["value"] == "a lighthouse"
    assert g["33"]["inputs"] == {"string_a": "blurry", "string_b": "gummy candy style", "delimiter": ","}


def test_a_group_node_s_converted_widget_takes_the_outer_link() -> None:
    wf = _group_workflow()
    group = wf["extra"]["groupNodes"]["Prompts"]
    group["nodes"][1]["inputs"].append({"name": "text", "type": "STRING", "link": None, "widget": {"name": "text"}})
    inst = next(n for n in wf["nodes"] if n["id"] == 20)
    inst["widgets_values"] = ["a group prompt"]  # the second text is an input now, not a widget
    inst["inputs"].append({"name": "text", "type": "STRING", "link": 90})
    wf["nodes"].append({"id": 30, "type": "PrimitiveStringMultiline", "mode": 0, "inputs": [],
                        "outputs": [{"name": "STRING", "type": "STRING", "links": [90]}], "widgets_values": ["grain"]})
    wf["links"].append([90, 30, 0, 20, 2, "STRING"])
    g = ui_to_api(wf, SCHEMA)
    assert g["20:0"]["inputs"]["text"] == "a group prompt"
    assert g["20:1"]["inputs"] == {"text": ["30", 0], "clip": ["4", 1]}
