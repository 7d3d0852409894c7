"""The offline validator follows the server it validates for: 0.3.64's rules for the bundled schema,
0.36+ rules (read in 0.38's execution.py) for a newer server's ``/object_info``."""

from __future__ import annotations

import copy

import pytest

from comfygen.flow_library.schema import NodeSchema, validate_graph
from comfygen.flow_library.schema_v038 import is_newer_schema, types_match
from comfygen.tools.comfy.error_messages import validation_error

NEWER = {"is_input_list": False, "has_intermediate_output": False, "search_aliases": []}


def _newer(info: dict) -> NodeSchema:
    return NodeSchema({cls: {**NEWER, **node} for cls, node in info.items()})


@pytest.fixture(scope="module")
def bundled() -> NodeSchema:
    return NodeSchema.bundled()


@pytest.fixture(scope="module")
def newer(bundled: NodeSchema) -> NodeSchema:
    info = copy.deepcopy(bundled.info)
    out = {"input": {"required": {"images": ["IMAGE", {}]}}, "output": [], "output_node": True, "name": "Sink"}
    info.update({
        "Sink": out,
        "Pick": {"input": {"required": {
            "format": ["COMFY_DYNAMICCOMBO_V3", {"options": [
                {"key": "png", "inputs": {"required": {"compression": ["INT", {"min": 0, "max": 9}]}}},
                {"key": "jpg", "inputs": {"required": {"quality": ["INT", {"min": 1, "max": 100}]}}}]}],
            "values": ["COMFY_AUTOGROW_V3", {"template": {"input": {"required": {"value": ["FLOAT", {"max": 1.0}]}}}}],
            "tags": ["COMBO", {"options": ["a", "b", "c"], "multiselect": True}],
            "remote": ["COMBO", {"options": [], "remote_combo": {"route": "/x"}}],
            "image": ["COMFY_MATCHTYPE_V3", {}]}},
            "output": ["COMFY_MATCHTYPE_V3"], "output_node": False, "name": "Pick"},
        "StartLoop": {"input": {"required": {"image": ["IMAGE", {}]}}, "output": ["IMAGE"], "output_node": False,
                      "loop_boundary": "start", "name": "StartLoop"},
        "EndLoop": {"input": {"required": {"image": ["IMAGE", {}]}}, "output": ["IMAGE"], "output_node": False,
                    "loop_boundary": "end", "name": "EndLoop"},
    })
    return _newer(info)


def _img(extra: dict | None = None) -> dict:
    g = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
         "9": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "v"}}}
    g.update(extra or {})
    return g


def _pick(**inputs) -> dict:
    base = {"format": "png", "format.compression": 4, "tags": {"__value__": ["a"]}, "remote": "anything",
            "image": ["1", 0]}
    base.update(inputs)
    return _img({"5": {"class_type": "Pick", "inputs": base},
                 "6": {"class_type": "Sink", "inputs": {"images": ["5", 0]}}})


def _errors(report, node: str) -> list[dict]:
    return report.node_errors.get(node, {}).get("errors", [])


def test_detects_a_newer_servers_schema(bundled, newer) -> None:
    assert not is_newer_schema(bundled.info) and is_newer_schema(newer.info)


def test_unknown_node_is_missing_node_type_only_for_newer_servers(bundled, newer) -> None:
    g = _img({"7": {"class_type": "FaceDetailer", "inputs": {}, "_meta": {"title": "Detailer"}}})
    old = validate_graph(g, bundled)
    assert old.error["type"] == "invalid_prompt" and "FaceDetailer does not exist" in old.error["message"]
    new = validate_graph(g, newer)
    assert new.error == {"type": "missing_node_type",
                         "message": "Node 'Detailer' not found. The custom node may not be installed.",
                         "details": "Node ID '#7'",
                         "extra_info": {"node_id": "7", "class_type": "FaceDetailer", "node_title": "Detailer"}}
    assert "provides FaceDetailer" in validation_error({"error": new.error, "node_errors": {}}, url=None).hint
    no_class = validate_graph({"1": {"inputs": {}}}, newer)
    assert no_class.error["type"] == "missing_node_type" and no_class.error["extra_info"]["class_type"] is None


def test_v3_combo_values_are_checked_with_repr_only_by_newer_rules(bundled, newer) -> None:
    g = _img({"2": {"class_type": "ImageQuantize", "inputs": {"image": ["1", 0], "colors": 8, "dither": 5}}})
    g["9"]["inputs"]["images"] = ["2", 0]
    old = validate_graph(g, bundled, check_v3_combos=False)  # what 0.3.64 itself does: not checked
    assert old.ok
    new = validate_graph(g, newer)
    (err,) = _errors(new, "2")
    assert err["type"] == "value_not_in_list"
    assert err["details"] == ("dither: 5 not in ['none', 'floyd-steinberg', 'bayer-2', 'bayer-4', 'bayer-8', "
                              "'bayer-16']")
    # 0.3.64 quoted every value as a string: the same kind of mistake there reads '3'
    g = _img({"2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": 3, "width": 8,
                                                           "height": 8, "crop": "disabled"}}})
    g["9"]["inputs"]["images"] = ["2", 0]
    assert "upscale_method: '3' not in" in _errors(validate_graph(g, bundled), "2")[0]["details"]
    assert "upscale_method: 3 not in" in _errors(validate_graph(g, newer), "2")[0]["details"]


def test_dynamic_combo_sub_inputs(newer) -> None:
    assert validate_graph(_pick(), newer).ok
    too_big = validate_graph(_pick(**{"format": "jpg", "format.quality": 500}), newer)
    (err,) = _errors(too_big, "5")
    assert err["type"] == "value_bigger_than_max" and err["details"] == "format.quality"
    missing = validate_graph(_pick(format="jpg"), newer)
    assert [(e["type"], e["details"]) for e in _errors(missing, "5")] == [("required_input_missing", "quality")]
    bad = validate_graph(_pick(format="gif"), newer)
    (err,) = _errors(bad, "5")
    assert err["type"] == "invalid_dynamic_input" and "'gif'" in err["details"]


def test_autogrow_members_multiselect_remote_and_wrapped_values(newer) -> None:
    ok = validate_graph(_pick(**{"values.a": 0.5, "values.b": 0.25}), newer)
    assert ok.ok
    over = validate_graph(_pick(**{"values.a": 0.5, "values.b": 7.0}), newer)
    assert [(e["type"], e["details"]) for e in _errors(over, "5")] == [("value_bigger_than_max", "values.b")]
    tags = validate_graph(_pick(tags={"__value__": ["a", "z", "y"]}), newer)
    (err,) = _errors(tags, "5")
    assert err["details"] == "tags: 'z', 'y' not in ['a', 'b', 'c']"
    # a bare list is a link, as on the server
    bare = validate_graph(_pick(tags=["a", "b", "c"]), newer)
    assert _errors(bare, "5")[0]["type"] == "bad_linked_input"


def test_matchtype_and_wildcard_links() -> None:
    assert types_match("IMAGE", "COMFY_MATCHTYPE_V3") and types_match("COMFY_MATCHTYPE_V3", "LATENT")
    assert types_match("*", "MODEL") and types_match(["a", "b"], "COMBO") and types_match("INT,FLOAT", "FLOAT")
    assert not types_match("IMAGE", "LATENT") and not types_match("COMBO", ["a", "b"])


def test_dependency_cycle_is_reported_with_its_path(newer) -> None:
    g = _img({"2": {"class_type": "ImageBlur", "inputs": {"image": ["3", 0], "blur_radius": 1, "sigma": 1.0}},
              "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}}})
    g["9"]["inputs"]["images"] = ["3", 0]
    rep = validate_graph(g, newer)
    errs = _errors(rep, "3") + _errors(rep, "2")
    assert {e["type"] for e in errs} == {"dependency_cycle"}
    assert errs[0]["details"] == "3 (ImageInvert) -> 2 (ImageBlur) -> 3 (ImageInvert)"
    assert rep.error["type"] == "prompt_outputs_failed_validation"


def test_loop_boundaries(newer) -> None:
    closed = _img({"2": {"class_type": "StartLoop", "inputs": {"image": ["1", 0]}},
                   "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
                   "4": {"class_type": "EndLoop", "inputs": {"image": ["3", 0]}}})
    closed["9"]["inputs"]["images"] = ["4", 0]
    assert validate_graph(closed, newer).ok
    no_start = copy.deepcopy(closed)
    no_start["3"]["inputs"]["image"] = ["1", 0]
    del no_start["2"]
    rep = validate_graph(no_start, newer)
    (err,) = _errors(rep, "4")
    assert err["type"] == "custom_validation_failed" and err["extra_info"]["loop_error_type"] == "loop_end_without_start"
    assert err["extra_info"]["output_ids"] == ["9"] and rep.good_outputs == []
    no_end = copy.deepcopy(closed)
    no_end["9"]["inputs"]["images"] = ["3", 0]
    del no_end["4"]
    (err,) = _errors(validate_graph(no_end, newer), "2")
    assert err["extra_info"]["loop_error_type"] == "loop_start_without_end"


def test_the_test_double_validates_like_the_server_it_plays() -> None:
    from fakecomfy import FakeComfyUI
    from fakecomfy_v038 import FakeComfyUI038

    old, new = FakeComfyUI(), FakeComfyUI038()
    g = _img({"7": {"class_type": "NoSuchNode", "inputs": {}}})
    assert old._validate(g)[1]["type"] == "invalid_prompt"
    assert new._validate(g)[1]["type"] == "missing_node_type"
