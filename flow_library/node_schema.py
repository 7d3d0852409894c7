"""A ComfyUI node schema (``/object_info``) and the parts of validation every ComfyUI version shares.

:class:`NodeSchema` (the bundled 0.3.64 one or a live server's), the installation-specific file inputs,
the :class:`ValidationReport` and ComfyUI's per-output validation loop with its top-level error. The
rules themselves live in ``schema`` (0.3.64) and ``schema_v038`` (0.36+), which both build on this.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from .model import Graph

# Inputs whose choice list is the content of a models/ folder (or of input/): installation-specific.
FILE_INPUTS: dict[str, str] = {
    "ckpt_name": "checkpoints",
    "unet_name": "diffusion_models",
    "clip_name": "text_encoders",
    "clip_name1": "text_encoders",
    "clip_name2": "text_encoders",
    "clip_name3": "text_encoders",
    "clip_name4": "text_encoders",
    "vae_name": "vae",
    "lora_name": "loras",
    "control_net_name": "controlnet",
    "style_model_name": "style_models",
    "gligen_name": "gligen",
    "photomaker_model_name": "photomaker",
    "hypernetwork_name": "hypernetworks",
    "config_name": "configs",
    "image": "input",
}
# Loader classes whose generic ``model_name`` input is a file list, and the folder it lists.
MODEL_NAME_FOLDERS: dict[str, str] = {
    "UpscaleModelLoader": "upscale_models",
    "FaceRestoreModelLoader": "facerestore_models",
    "CLIPVisionLoader": "clip_vision",
    "ModelPatchLoader": "model_patches",
}
# (class, input) file lists whose input name does not say so, or says something else.
CLASS_FILE_INPUTS: dict[tuple[str, str], str] = {
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("ModelPatchLoader", "name"): "model_patches",
    ("DiffusersLoader", "model_path"): "diffusers",
    ("LoadLatent", "latent"): "input",
    ("LoadVideo", "file"): "input",
    ("LoadAudio", "audio"): "input",
    ("Load3D", "model_file"): "input",
    ("Load3DAnimation", "model_file"): "input",
}
# Upload pickers list the input/ folder.
_UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "file_upload")
# Nodes whose VALIDATE_INPUTS checks the file themselves: ComfyUI skips the list check for that input and
# answers ``custom_validation_failed`` with the node's own message.
CUSTOM_FILE_CHECKS: dict[tuple[str, str], str] = {
    ("LoadImage", "image"): "Invalid image file: {}",
    ("LoadImageMask", "image"): "Invalid image file: {}",
    ("LoadAudio", "audio"): "Invalid audio file: {}",
    ("LoadVideo", "file"): "Invalid video file: {}",
}
_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft", ".onnx")


@lru_cache(maxsize=1)
def _bundled_core() -> dict[str, Any]:
    text = (resources.files("comfygen.flow_library") / "data" / "object_info.json").read_text(encoding="utf-8")
    return json.loads(text)


@lru_cache(maxsize=1)
def _bundled_packs() -> dict[str, dict[str, Any]]:
    text = (resources.files("comfygen.flow_library") / "data" / "node_packs.json").read_text(encoding="utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


class NodeSchema:
    """Node classes as ComfyUI's ``/object_info`` describes them, with the node pack each one comes from."""

    def __init__(self, object_info: dict[str, Any], packs: dict[str, str] | None = None):
        self.info = object_info
        self.packs = packs or {}  # class -> pack name, for classes outside core ComfyUI

    @classmethod
    def bundled(cls) -> "NodeSchema":
        """The recorded ComfyUI v0.3.64 schema plus the custom packs flows may require (Pruna, face restore)."""
        return _bundled_schema()

    @classmethod
    def from_file(cls, path: str | Path) -> "NodeSchema":
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def with_packs(self, names: list[str] | None = None) -> "NodeSchema":
        """A copy that also knows the bundled custom packs (all, or the ones named)."""
        info = dict(self.info)
        packs = dict(self.packs)
        for pack, classes in _bundled_packs().items():
            if names is not None and pack not in names:
                continue
            for name, spec in classes.items():
                if name not in info:
                    info[name] = spec
                    packs[name] = pack
        return NodeSchema(info, packs)

    def __contains__(self, class_type: object) -> bool:
        return class_type in self.info

    def __len__(self) -> int:
        return len(self.info)

    def node(self, class_type: str) -> dict[str, Any]:
        return self.info[class_type]

    def inputs(self, class_type: str) -> list[tuple[str, list, str]]:
        """(name, spec, category) in ComfyUI's input order; category is required/optional."""
        spec = self.info[class_type].get("input", {})
        order = self.info[class_type].get("input_order", {})
        out = []
        for category in ("required", "optional"):
            group = spec.get(category) or {}
            names = order.get(category) or list(group)
            out += [(n, group[n], category) for n in names if n in group]
        return out

    def outputs(self, class_type: str) -> tuple[str, ...]:
        return tuple(self.info[class_type].get("output", []))

    def is_output(self, class_type: str) -> bool:
        return bool(self.info[class_type].get("output_node"))

    def model_lists(self) -> dict[str, list[str]]:
        """folder -> files, read from the loaders' choice lists (a live ComfyUI's schema lists what it has)."""
        out: dict[str, set[str]] = {}
        for class_type, node in self.info.items():
            for name, spec, _ in self.inputs(class_type):
                folder = file_folder(class_type, name, spec)
                if folder and folder != "input":
                    out.setdefault(folder, set()).update(o for o in combo_options(spec) or [] if isinstance(o, str))
        return {k: sorted(v) for k, v in out.items()}


@lru_cache(maxsize=1)
def _bundled_schema() -> NodeSchema:
    return NodeSchema(_bundled_core()).with_packs()


def combo_options(spec: list) -> list | None:
    """The choice list of a combo input (classic ``[[...], {...}]`` or V3 ``["COMBO", {"options": [...]}]``)."""
    if not spec:
        return None
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO":
        return list((spec[1] if len(spec) > 1 else {}).get("options", []))
    return None


def file_folder(class_type: str, input_name: str, spec: list) -> str | None:
    """The models/ folder a combo input lists, or None when it is not a file list."""
    options = combo_options(spec)
    if options is None:
        return None
    if input_name == "model_name" and class_type in MODEL_NAME_FOLDERS:
        return MODEL_NAME_FOLDERS[class_type]
    if (class_type, input_name) in CLASS_FILE_INPUTS:
        return CLASS_FILE_INPUTS[(class_type, input_name)]
    extra = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if any(extra.get(flag) for flag in _UPLOAD_FLAGS):
        return "input"
    if input_name in FILE_INPUTS:
        return FILE_INPUTS[input_name]
    if any(isinstance(o, str) and o.lower().endswith(_FILE_SUFFIXES) for o in options):
        return "other"
    return None


@dataclass
class ValidationReport:
    """ComfyUI-shaped result: ``error`` is the top-level error (None when the graph would be queued),
    ``node_errors`` maps node id -> {errors, dependent_outputs, class_type}."""

    error: dict[str, Any] | None = None
    node_errors: dict[str, Any] = field(default_factory=dict)
    good_outputs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.node_errors

    def errors(self) -> list[tuple[str, dict[str, Any]]]:
        """Flat (node id, error) pairs."""
        return [(nid, e) for nid, ne in self.node_errors.items() for e in ne["errors"]]

    def summary(self) -> str:
        lines = []
        if self.error:
            lines.append(f"{self.error['type']}: {self.error['message']}"
                         + (f" ({self.error['details']})" if self.error.get("details") else ""))
        for nid, e in self.errors():
            cls = self.node_errors[nid]["class_type"]
            lines.append(f"node {nid} ({cls}): {e['type']}: {e['message']}: {e['details']}")
        return "\n".join(lines)


# ComfyUI's per-input error records, as its validator writes them (both versions)
def missing_input(name: str, details: str) -> dict[str, Any]:
    return {"type": "required_input_missing", "message": "Required input is missing", "details": details,
            "extra_info": {"input_name": name}}


def bad_link(name: str, spec: list, val: Any) -> dict[str, Any]:
    return {"type": "bad_linked_input", "message": "Bad linked input, must be a length-2 list of [node_id, slot_index]",
            "details": name, "extra_info": {"input_name": name, "input_config": spec, "received_value": val}}


def type_mismatch(name: str, spec: list, received: str, input_type: Any, val: Any) -> dict[str, Any]:
    return {"type": "return_type_mismatch", "message": "Return type mismatch between linked nodes",
            "details": f"{name}, received_type({received}) mismatch input_type({input_type})",
            "extra_info": {"input_name": name, "input_config": spec, "received_type": received, "linked_node": val}}


def not_in_list(name: str, spec: list, shown: str, options: list, val: Any) -> dict[str, Any]:
    """``shown``: the offending value(s) as ComfyUI prints them; lists over 20 are summarised and their config
    left out, as ComfyUI does."""
    config: Any = spec
    list_info = str(options)
    if len(options) > 20:
        list_info, config = f"(list of length {len(options)})", None
    return {"type": "value_not_in_list", "message": "Value not in list",
            "details": f"{name}: {shown} not in {list_info}",
            "extra_info": {"input_name": name, "input_config": config, "received_value": val}}


def inner_exception(name: str, spec: list, ex: BaseException, val: Any) -> dict[str, Any]:
    return {"type": "exception_during_inner_validation", "message": "Exception when validating inner node",
            "details": str(ex), "extra_info": {"input_name": name, "input_config": spec, "exception_message": str(ex),
                                               "exception_type": type(ex).__name__, "linked_node": val}}


def convert_value(name: str, spec: list, input_type: Any, extra: dict, val: Any) -> tuple[Any, list[dict]]:
    """A widget value converted to its type and checked against min/max, as ComfyUI's validator does (every
    version): (converted value, []) or (the value, [its error]). A float seed (5.5) truncates; a numeric
    string parses."""
    try:
        if input_type == "INT":
            val = int(val)
        elif input_type == "FLOAT":
            val = float(val)
        elif input_type == "STRING":
            val = str(val)
        elif input_type == "BOOLEAN":
            val = bool(val)
    except Exception as ex:  # noqa: BLE001 - mirrors ComfyUI's catch-all conversion
        return val, [{"type": "invalid_input_type",
                      "message": f"Failed to convert an input value to a {input_type} value",
                      "details": f"{name}, {val}, {ex}",
                      "extra_info": {"input_name": name, "input_config": spec, "received_value": val,
                                     "exception_message": str(ex)}}]
    if input_type in ("INT", "FLOAT"):
        where = {"input_name": name, "input_config": spec, "received_value": val}
        if "min" in extra and val < extra["min"]:
            return val, [{"type": "value_smaller_than_min",
                          "message": f"Value {val} smaller than min of {extra['min']}", "details": name,
                          "extra_info": where}]
        if "max" in extra and val > extra["max"]:
            return val, [{"type": "value_bigger_than_max", "message": f"Value {val} bigger than max of {extra['max']}",
                          "details": name, "extra_info": where}]
    return val, []


def _top(type_: str, message: str, details: str = "") -> dict[str, Any]:
    return {"type": type_, "message": message, "details": details, "extra_info": {}}


def validate_outputs(v: Any, graph: Graph, outputs: list[str]) -> tuple[ValidationReport, list[tuple[str, list[dict]]]]:
    """Validate each output node with validator ``v`` (``v.node(id) -> (ok, reasons)``, ``v.validated``) as
    ComfyUI's ``validate_prompt`` loop does: node errors with their dependent outputs, and the failed outputs."""
    report = ValidationReport()
    failed: list[tuple[str, list[dict]]] = []
    for out in sorted(outputs):
        try:
            ok, reasons = v.node(out)
        except (KeyError, IndexError, TypeError) as ex:
            ok, reasons = False, [{"type": "exception_during_validation", "message": "Exception when validating node",
                                   "details": str(ex), "extra_info": {"exception_type": type(ex).__name__}}]
            v.validated[out] = (False, reasons)
        if ok:
            report.good_outputs.append(out)
            continue
        failed.append((out, reasons))
        for node_id, (node_ok, node_reasons) in v.validated.items():
            if node_ok or not node_reasons:
                continue
            entry = report.node_errors.setdefault(
                node_id, {"errors": node_reasons, "dependent_outputs": [], "class_type": graph[node_id]["class_type"]})
            if out not in entry["dependent_outputs"]:
                entry["dependent_outputs"].append(out)
    return report, failed


def finish_report(report: ValidationReport, failed: list[tuple[str, list[dict]]]) -> ValidationReport:
    """The top-level error ComfyUI gives when no output validated."""
    if not report.good_outputs:
        details = "\n".join(f"{e['message']}: {e['details']}" for _, reasons in failed for e in reasons)
        report.error = _top("prompt_outputs_failed_validation", "Prompt outputs failed validation", details)
    return report
