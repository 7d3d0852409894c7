"""Offline validation of ComfyUI API graphs against a node schema (ComfyUI's ``/object_info``).

The checks, their error ``type`` names and message shapes follow ComfyUI's own ``validate_prompt``
(``execution.py``, v0.3.64), so a graph that passes here passes there, and an error found here reads
like the one ComfyUI would have answered with HTTP 400:

- top level (``invalid_prompt``): a node without ``class_type``; a class the schema does not know;
  ``prompt_no_outputs`` when no output node exists;
- per node (``node_errors``): ``required_input_missing``, ``bad_linked_input``,
  ``return_type_mismatch``, ``invalid_input_type``, ``value_smaller_than_min``,
  ``value_bigger_than_max``, ``value_not_in_list``, ``exception_during_validation`` /
  ``exception_during_inner_validation`` (a link to a node that does not exist, an output index out of range).

Model-file choice lists (checkpoints, LoRAs, ...) depend on what a ComfyUI has installed, so they are
checked only with ``check_model_files=True``, i.e. against a live ComfyUI's own schema; a missing input file
of a node that checks its own file (``LoadImage``, ``LoadImageMask``, ``LoadAudio``, ``LoadVideo``) is then
``custom_validation_failed``, as ComfyUI answers. INT inputs are converted with ``int()`` as ComfyUI does, so
a float seed (5.5) passes.

One deliberate difference: ComfyUI 0.3.64 does not check the value of V3-style combo inputs
(``["COMBO", {"options": [...]}]``, e.g. ``CLIPTextEncodeSD3.empty_padding``, ``UpscaleModelLoader.model_name``)
when a prompt is queued (observed against a live server); such a value then fails when the node runs.
We check them by default; ``check_v3_combos=False`` reproduces ComfyUI's answer exactly.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import FlowValidationError
from .model import Graph
from .node_schema import (
    CUSTOM_FILE_CHECKS, NodeSchema, ValidationReport, _top, bad_link, combo_options, convert_value, file_folder,
    finish_report, inner_exception, missing_input, not_in_list, type_mismatch, validate_outputs,
)

__all__ = ["NodeSchema", "ValidationReport", "combo_options", "ensure_valid", "file_folder", "finish_report",
           "validate_graph", "validate_outputs"]


def _types_match(received: str, expected: Any) -> bool:
    """ComfyUI's ``validate_node_input``: equal, a ``*`` wildcard, or overlapping comma-separated unions."""
    if not isinstance(expected, str):  # a combo input fed by a link: ComfyUI compares the names
        return received == "COMBO" or isinstance(expected, list)
    if received == expected or "*" in (received, expected):
        return True
    if "," in received or "," in expected:
        return bool({t.strip() for t in received.split(",")} & {t.strip() for t in expected.split(",")})
    return False


class _Validator:
    def __init__(self, graph: Graph, schema: NodeSchema, check_model_files: bool, check_v3_combos: bool = True):
        self.check_v3 = check_v3_combos
        self.graph = graph
        self.schema = schema
        self.check_files = check_model_files
        self.validated: dict[str, tuple[bool, list[dict]]] = {}

    def node(self, node_id: str) -> tuple[bool, list[dict]]:
        """Validate one node (and, first, what it links to). Raises KeyError/IndexError like ComfyUI does."""
        if node_id in self.validated:
            return self.validated[node_id]
        node = self.graph[node_id]
        class_type = node["class_type"]
        inputs = node.get("inputs", {})
        errors: list[dict] = []
        valid = True
        for name, raw_spec, category in self.schema.inputs(class_type):
            input_type = raw_spec[0]
            extra = raw_spec[1] if len(raw_spec) > 1 and isinstance(raw_spec[1], dict) else {}
            spec = [input_type, extra]  # ComfyUI reports input_config as (type, extra_info), extra_info {} when absent
            if name not in inputs:
                if category == "required":
                    errors.append(missing_input(name, name))
                continue
            val = inputs[name]
            if isinstance(val, list) and not _is_literal_list(val):
                if len(val) != 2:
                    errors.append(bad_link(name, spec, val))
                    continue
                src_id = val[0]
                src_class = self.graph[src_id]["class_type"]  # KeyError: link to a missing node
                received = self.schema.outputs(src_class)[val[1]]  # IndexError: output index out of range
                if not _types_match(received, input_type):
                    errors.append(type_mismatch(name, spec, received, input_type, val))
                    continue
                try:
                    ok, _ = self.node(src_id)
                    if not ok:
                        valid = False
                except (KeyError, IndexError, TypeError) as ex:
                    valid = False
                    self.validated[src_id] = (False, [inner_exception(name, spec, ex, val)])
                continue
            errors += self._value_errors(class_type, name, spec, input_type, extra, val)
        result = (valid and not errors, errors)
        self.validated[node_id] = result
        return result

    def _value_errors(self, class_type: str, name: str, spec: list, input_type: Any, extra: dict,
                      val: Any) -> list[dict]:
        val, errors = convert_value(name, spec, input_type, extra, val)
        if errors:
            return errors
        options = combo_options(spec)
        if options is not None and spec[0] == "COMBO" and not self.check_v3:
            return []
        if options is not None and val not in options:
            if file_folder(class_type, name, spec) is not None and not self.check_files:
                return []
            if (class_type, name) in CUSTOM_FILE_CHECKS:
                return [{"type": "custom_validation_failed", "message": "Custom validation failed for node",
                         "details": f"{name} - " + CUSTOM_FILE_CHECKS[(class_type, name)].format(val),
                         "extra_info": {"input_name": name, "input_config": spec, "received_value": val}}]
            return [not_in_list(name, spec, f"'{val}'", options, val)]
        return []


def _is_literal_list(val: list) -> bool:
    """A list value that is data, not a link (rare in core nodes; links are ``[node_id:str, index:int]``)."""
    return len(val) == 2 and not isinstance(val[0], str) and not isinstance(val[1], int)


def validate_graph(graph: Graph, schema: NodeSchema | None = None, *,
                   check_model_files: bool = False, check_v3_combos: bool = True) -> ValidationReport:
    """Check ``graph`` the way ComfyUI's ``POST /prompt`` does, without a ComfyUI.

    A newer server's schema (0.36+) is checked with that server's rules (``schema_v038``).
    """
    schema = schema or NodeSchema.bundled()
    from . import schema_v038

    if schema_v038.is_newer_schema(schema.info):
        return schema_v038.validate_graph_v038(graph, schema, check_model_files=check_model_files)
    if not isinstance(graph, dict):
        return ValidationReport(error=_top("no_prompt", "No prompt provided", "No prompt provided"))
    outputs: list[str] = []
    for node_id, node in graph.items():
        if not isinstance(node, dict) or "class_type" not in node:
            return ValidationReport(error=_top("invalid_prompt",
                                               "Cannot execute because a node is missing the class_type property.",
                                               f"Node ID '#{node_id}'"))
        if node["class_type"] not in schema:
            return ValidationReport(error=_top("invalid_prompt",
                                               f"Cannot execute because node {node['class_type']} does not exist.",
                                               f"Node ID '#{node_id}'"))
        if schema.is_output(node["class_type"]):
            outputs.append(node_id)
    if not outputs:
        return ValidationReport(error=_top("prompt_no_outputs", "Prompt has no outputs"))

    v = _Validator(graph, schema, check_model_files, check_v3_combos)
    report, failed = validate_outputs(v, graph, outputs)
    return finish_report(report, failed)



def ensure_valid(graph: Graph, schema: NodeSchema | None = None, *, check_model_files: bool = False,
                 what: str = "graph") -> None:
    """Raise :class:`FlowValidationError` (ComfyUI-shaped ``error`` and ``node_errors``) unless the graph is valid.

    Unlike ComfyUI, which queues a prompt when at least one output validates, any node error fails here.
    """
    report = validate_graph(graph, schema, check_model_files=check_model_files)
    if report.ok:
        return
    error = report.error or _top("prompt_outputs_failed_validation", "Prompt outputs failed validation")
    first = report.summary().splitlines()[0] if report.summary() else error["message"]
    raise FlowValidationError(f"{what} failed validation: {first}", error=copy.deepcopy(error),
                              node_errors=copy.deepcopy(report.node_errors),
                              hint="fix the named node inputs (see node_errors), or check the flow with "
                                   "`comfygen flows validate`")
