"""Rendering of ComfyUI's validation bodies and execution errors (recorded bodies)."""

from __future__ import annotations

import json

import pytest
from fakecomfy import _SHARED as SHARED

from comfygen.tools.comfy.error_messages import execution_error, render_node_error, validation_error
from comfygen.tools.errors import ComfyUIExecutionError, ComfyUIValidationError

CAPTURES = SHARED / "comfyui" / "captures"
pytestmark = pytest.mark.skipif(not CAPTURES.exists(), reason="recorded captures not available")


def _errors() -> dict:
    return json.loads((CAPTURES / "errors.json").read_text())


@pytest.mark.parametrize("case", sorted(json.loads((CAPTURES / "errors.json").read_text())) if CAPTURES.exists()
                         else [])
def test_every_recorded_400_keeps_body_and_reads_well(case: str) -> None:
    body = _errors()[case]["body"]
    err = validation_error(body, url="http://x")
    assert isinstance(err, ComfyUIValidationError)
    assert err.error == body["error"] and err.node_errors == body["node_errors"]
    assert err.hint and err.url == "http://x"
    for nid, entry in body["node_errors"].items():
        assert f"node {nid} {entry['class_type']}:" in err.message


def test_readable_ranges_and_choices() -> None:
    e = _errors()
    assert "node 2 ImageScale: width -5 is below min 0" in validation_error(e["value_too_small"]["body"], url=None).message
    assert "width 99999 is above max 16384" in validation_error(e["value_too_big"]["body"], url=None).message
    assert "upscale_method 'magic' is not one of" in validation_error(e["bad_combo_value"]["body"], url=None).message
    assert "required input 'width' is missing" in validation_error(e["missing_required_input"]["body"],
                                                                     url=None).message
    unknown = validation_error(e["unknown_class"]["body"], url=None)
    assert "NoSuchNode does not exist" in unknown.message and "custom node" in (unknown.hint or "")


def test_steps_zero_style() -> None:
    err = {"type": "value_smaller_than_min", "message": "Value 0 smaller than min of 1", "details": "steps",
           "extra_info": {"input_name": "steps", "input_config": ["INT", {"default": 20, "min": 1, "max": 10000}],
                          "received_value": 0}}
    body = {"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                      "details": "", "extra_info": {}},
            "node_errors": {"3": {"errors": [err], "dependent_outputs": ["9"], "class_type": "KSampler"}}}
    assert render_node_error(err) == "steps 0 is below min 1"
    assert "node 3 KSampler: steps 0 is below min 1" in str(validation_error(body, url=None))


def test_execution_error_names_node_class_exception_and_traceback() -> None:
    data = json.loads((CAPTURES / "misc.json").read_text())["execution_error_example"]
    err = execution_error(data, url="http://x")
    assert isinstance(err, ComfyUIExecutionError)
    assert "node 4 CheckpointLoaderSimple" in err.message
    assert "SafetensorError" in err.message and "header too large" in err.message
    assert "get_output_data" in err.message  # last traceback lines
    assert err.details["node_id"] == "4"


def test_a_long_combo_list_keeps_comfyuis_details() -> None:
    # what ComfyUI 0.3.64 sends for a combo longer than it prints: no input_config, the count in the details
    err = {"type": "value_not_in_list", "message": "Value not in list",
           "details": "sampler_name: 'magic_sampler' not in (list of length 42)",
           "extra_info": {"input_name": "sampler_name", "input_config": None, "received_value": "magic_sampler"}}
    text = render_node_error(err)
    assert text == ("sampler_name 'magic_sampler' is not an allowed value "
                    "(sampler_name: 'magic_sampler' not in (list of length 42))")
    assert "[]" not in text
