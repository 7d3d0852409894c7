"""The guard: what a graph may contain before it is sent to a user's ComfyUI.

- Node allowlist: core ComfyUI nodes (those the bundled ``object_info`` lists from ComfyUI's own
  ``nodes`` and ``comfy_extras`` modules) plus the node packs the user allowed (``COMFYGEN_NODE_PACKS``
  or ``allowed_packs``). A pack's node classes come from :data:`KNOWN_PACKS`, or from the endpoint's
  ``object_info`` (``python_module == "custom_nodes.<pack>"``) when a schema is given. ComfyUI's paid
  API nodes (``comfy_api_nodes``) call outside services with the user's account: they count as a pack
  named ``comfy_api_nodes`` and are refused unless allowed. comfygen's own pack (``comfygen_noise``)
  is always allowed.
- ``filename_prefix`` stays inside ComfyUI's output folder: no ``..``, no absolute path, no backslash,
  no drive letter, no control characters.
- Bounds from Settings: width/height <= ``max_side``, steps <= ``max_steps``, images per prompt
  <= ``max_batch``, and the side an upscale (``scale_by``, ``upscale_by``, ``megapixels``) leads to
  <= ``max_side``, seeds within ComfyUI's 0..2**64-1. A bounded input given as text (``"250"``) or as a float (``250.0``) is converted the
  way ComfyUI converts it (``int()``/``float()`` by the input's schema type) *before* the bound is
  checked, and the converted number is written back into the graph, so what is checked is what runs;
  text that is not a number, and fractions where ComfyUI wants an integer, are refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from ..errors import GuardError
from .core import Graph, Schema, bundled_schema, is_link, link_type

if TYPE_CHECKING:
    from ..settings import Settings

# Classes of custom node packs we know by name (pack name as its folder under custom_nodes/).
KNOWN_PACKS: dict[str, frozenset[str]] = {
    "ComfyUI_pruna": frozenset({"PrunaCompileModel", "CacheModelAdaptive", "CacheModelPeriodic", "CacheModelAuto"}),
    "facerestore_cf": frozenset({"FaceRestoreModelLoader", "FaceRestoreCFWithModel", "CropFace"}),
    "ComfyUI-Impact-Pack": frozenset({"FaceDetailer", "UltralyticsDetectorProvider", "SAMLoader",
                                      "DetailerForEach", "BboxDetectorSEGS", "SegmDetectorSEGS"}),
    "was-node-suite-comfyui": frozenset({"Image Resize", "Text Concatenate", "Image Blend"}),
    # comfygen's own pack (``comfygen comfyui install-nodes``): noise from recorded seeds for noise search.
    "comfygen_noise": frozenset({"ComfyGenNoise"}),
}
DEFAULT_PACKS = ("comfygen_noise",)  # always allowed: shipped by this project, no outside code

MAX_NODES = 1000
MAX_PREFIX = 200
_DRIVE = re.compile(r"^[A-Za-z]:")
_SIZE_INPUTS = ("width", "height", "empty_latent_width", "empty_latent_height", "target_width", "target_height")
_BATCH_INPUTS = ("batch_size", "amount")
_SCALE_INPUTS = ("scale_by", "upscale_by")  # factors on the incoming image/latent size
_SEED_INPUTS = ("seed", "noise_seed")
MAX_SEED = 2**64 - 1  # ComfyUI's own maximum (0xffffffffffffffff)
_BOUNDED = frozenset((*_SIZE_INPUTS, *_BATCH_INPUTS, *_SCALE_INPUTS, *_SEED_INPUTS, "steps", "megapixels"))
_SIZED_TYPES = ("IMAGE", "LATENT", "MASK")
MAX_SCALE = 8.0  # ComfyUI's own maximum for ImageScaleBy / LatentUpscaleBy


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def core_classes(schema: Schema | None = None) -> frozenset[str]:
    """Core node classes: ComfyUI's ``nodes`` and ``comfy_extras`` modules (bundled schema + ``schema``)."""
    out = set()
    for s in (bundled_schema(), schema or {}):
        for cls, info in s.items():
            module = str(info.get("python_module", "nodes"))
            if module == "nodes" or module.startswith(("nodes.", "comfy_extras")):
                out.add(cls)
    return frozenset(out)


@lru_cache(maxsize=1)
def _bundled_packs() -> dict[str, frozenset[str]]:
    """Pack schemas shipped with the flow library (``flow_library/data/node_packs.json``), pack -> classes."""
    try:
        text = (resources.files("comfygen.flow_library") / "data" / "node_packs.json").read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return {}
    return {k: frozenset(v) for k, v in json.loads(text).items() if not k.startswith("_") and isinstance(v, dict)}


def known_packs() -> dict[str, frozenset[str]]:
    out = dict(KNOWN_PACKS)
    for name, classes in _bundled_packs().items():
        out[name] = out.get(name, frozenset()) | classes
    return out


def pack_classes(packs: Iterable[str], schema: Schema | None = None) -> frozenset[str]:
    """Node classes of the named packs (known map, plus the endpoint's object_info when given)."""
    wanted = {_norm(p) for p in packs}
    out: set[str] = set()
    for name, classes in known_packs().items():
        if _norm(name) in wanted:
            out |= classes
    for s in (bundled_schema(), schema or {}):
        for cls, info in s.items():
            module = str(info.get("python_module", ""))
            if module.startswith("custom_nodes."):
                pack = module.split(".", 2)[1]
                if _norm(pack) in wanted:
                    out.add(cls)
            elif module.startswith("comfy_api_nodes") and "comfyapinodes" in wanted:
                out.add(cls)
    return frozenset(out)


def allowed_classes(packs: Iterable[str] = (), schema: Schema | None = None) -> frozenset[str]:
    if schema is None:
        return _allowed_bundled(tuple(sorted(set(packs))))
    return core_classes(schema) | pack_classes(packs, schema)


@lru_cache(maxsize=64)
def _allowed_bundled(packs: tuple[str, ...]) -> frozenset[str]:
    return core_classes(None) | pack_classes(packs, None)


def check_filename_prefix(value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise GuardError(f"{where}: filename_prefix must be text, not {type(value).__name__}",
                         hint="use a relative name such as 'comfygen/run'")
    problems = []
    if not value.strip():
        problems.append("is empty")
    if len(value) > MAX_PREFIX:
        problems.append(f"is longer than {MAX_PREFIX} characters")
    if value.startswith(("/", "~")):
        problems.append("is an absolute path")
    if "\\" in value:
        problems.append("contains a backslash")
    if _DRIVE.match(value):
        problems.append("starts with a drive letter")
    if ".." in value.replace("\\", "/").split("/"):
        problems.append("contains '..'")
    if any(ord(c) < 32 or c == "\x7f" for c in value):
        problems.append("contains control characters")
    if problems:
        raise GuardError(f"{where}: filename_prefix {value!r} {' and '.join(problems)}",
                         hint="use a relative name inside ComfyUI's output folder, e.g. 'comfygen/run'")


def _input_type(cls: str, name: str, schema: Schema | None) -> str | None:
    """'INT', 'FLOAT', ... for an input of a node class, from ``schema`` or the bundled one; None when unknown."""
    for s in (schema or {}, bundled_schema()):
        info = s.get(cls)
        if info is None:
            continue
        spec = {**(info.get("input", {}).get("required") or {}), **(info.get("input", {}).get("optional") or {})}
        entry = spec.get(name)
        if entry and isinstance(entry[0], str):
            return entry[0]
        return None
    return None


def _number(value: Any, kind: str | None, where: str, name: str) -> int | float:
    """``value`` as the number ComfyUI would make of it (``int()`` for INT inputs, ``float()`` for FLOAT)."""
    bad = GuardError(f"{where}: {name} {value!r} is not a number",
                     hint=f"give {name} as a plain number, e.g. {name}: 20")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise bad
    if isinstance(value, str):
        try:
            value = float(value.strip()) if kind == "FLOAT" else _parse_text_number(value)
        except ValueError:
            raise bad from None
    if value != value or value in (float("inf"), float("-inf")):  # NaN / infinity
        raise bad
    if kind == "FLOAT":
        return float(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise GuardError(f"{where}: {name} {value!r} is not a whole number", hint=f"give {name} as an integer")
        return int(value)
    return value


def _parse_text_number(text: str) -> int | float:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        return float(text)


def guard(graph: Graph, settings: Settings, *, allowed_packs: Iterable[str] = (), schema: Schema | None = None) -> None:
    """Raise GuardError when ``graph`` breaks a rule (see module doc); return None when it is fine.

    ``allowed_packs`` adds to ``settings.node_packs``; ``schema`` (the endpoint's ``object_info``) lets
    packs be recognised by their module name.
    """
    if not isinstance(graph, dict) or not graph:
        raise GuardError("the graph is empty", hint="render a flow first")
    if len(graph) > MAX_NODES:
        raise GuardError(f"the graph has {len(graph)} nodes, more than {MAX_NODES}", hint="use a smaller graph")
    packs = list(DEFAULT_PACKS) + list(settings.node_packs) + list(allowed_packs)
    allowed = allowed_classes(packs, schema)
    max_side, max_steps, max_batch = settings.max_side, settings.max_steps, settings.max_batch

    refused: list[str] = []
    for node_id, node in graph.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            raise GuardError(f"node {node_id}: not an API-format node (needs 'class_type' and 'inputs')",
                             hint="export the workflow with 'Save (API)' in ComfyUI")
        cls = node["class_type"]
        where = f"node {node_id} {cls}"
        if cls not in allowed:
            refused.append(f"{node_id} {cls}")
        inputs = node.get("inputs", {})
        if not isinstance(inputs, dict):
            raise GuardError(f"{where}: inputs must be an object", hint="export the workflow in API format")
        for name, value in inputs.items():
            if is_link(value):
                if str(value[0]) not in graph:
                    raise GuardError(f"{where}: input {name} links to missing node {value[0]}",
                                     hint="fix the link or add the node")
                continue
            if name == "filename_prefix":
                check_filename_prefix(value, where)
            if name not in _BOUNDED:
                continue
            kind = _input_type(cls, name, schema)
            if kind not in (None, "INT", "FLOAT"):
                continue  # e.g. a COMBO of its own: not a number input
            v = _number(value, kind, where, name)
            if v != value or type(v) is not type(value):
                inputs[name] = v  # what is checked is what runs (ComfyUI would convert it the same way)
            if name in _SCALE_INPUTS and not 0 < v <= MAX_SCALE:
                raise GuardError(f"{where}: {name} {v} is outside 0..{MAX_SCALE:g}",
                                 hint=f"upscale by at most {MAX_SCALE:g}x per node")
            if name == "megapixels" and not 0 < v * 1e6 <= max_side * max_side:
                raise GuardError(f"{where}: megapixels {v} is above the limit of {max_side}x{max_side} px",
                                 hint=f"ask for at most {max_side * max_side / 1e6:.1f} megapixels "
                                      "(or raise COMFYGEN_MAX_SIDE)")
            if name in _SEED_INPUTS and not 0 <= v <= MAX_SEED:
                raise GuardError(f"{where}: {name} {v} is outside ComfyUI's range 0..{MAX_SEED}",
                                 hint="use a seed between 0 and 2**64-1")
            if kind == "FLOAT" and name not in _SCALE_INPUTS and name != "megapixels":
                continue  # e.g. ConditioningSetAreaPercentage's width: a fraction, not pixels
            if name in _SIZE_INPUTS and v > max_side:
                raise GuardError(f"{where}: {name} {v} is above the limit of {max_side}",
                                 hint=f"ask for at most {max_side} px per side (or raise COMFYGEN_MAX_SIDE)")
            if name == "steps" and v > max_steps:
                raise GuardError(f"{where}: steps {v} is above the limit of {max_steps}",
                                 hint=f"use at most {max_steps} steps (or raise COMFYGEN_MAX_STEPS)")
            if name in _BATCH_INPUTS and v > max_batch:
                raise GuardError(f"{where}: {name} {v} is above the limit of {max_batch}",
                                 hint=f"ask for at most {max_batch} images per prompt (or raise COMFYGEN_MAX_BATCH)")
    if refused:
        unknown = ", ".join(refused[:8]) + (" ..." if len(refused) > 8 else "")
        raise GuardError(f"node classes not allowed: {unknown}",
                         hint="these are not core ComfyUI nodes; allow their pack with COMFYGEN_NODE_PACKS "
                              f"(known packs: {', '.join(sorted(known_packs()))}; others by their custom_nodes "
                              "folder name when the endpoint's object_info names it)")
    _check_total_batch(graph, max_batch)
    _check_upscaled_sides(graph, max_side, schema)


def _check_upscaled_sides(graph: Graph, max_side: int, schema: Schema | None) -> None:
    """Refuse an upscale whose result would be larger than ``max_side`` (e.g. 2048 px scaled by 4).

    The side of a node's output is estimated from its literal width/height, else from the images and
    latents linked into it (the largest), times its scale factor. Only upscaling nodes are checked:
    other nodes' sizes were bounded above.
    """
    memo: dict[str, float | None] = {}

    def side(nid: str, depth: int = 0) -> float | None:
        if nid in memo:
            return memo[nid]
        memo[nid] = None  # cycles and deep chains end here
        node = graph.get(nid)
        if node is None or depth > 200:
            return None
        inputs = node.get("inputs") or {}
        own = [float(inputs[k]) for k in ("width", "height")
               if isinstance(inputs.get(k), (int, float)) and not isinstance(inputs.get(k), bool)
               and _input_type(node["class_type"], k, schema) != "FLOAT" and inputs[k] > 0]
        result: float | None = max(own) if own else None
        if result is None:
            linked = [side(str(v[0]), depth + 1) for v in inputs.values()
                      if is_link(v) and link_type(graph, v, schema) in (*_SIZED_TYPES, None)]
            known = [x for x in linked if x is not None]
            result = max(known) if known else None
        factor = next((float(inputs[k]) for k in _SCALE_INPUTS if isinstance(inputs.get(k), (int, float))), None)
        if result is not None and factor is not None:
            result *= factor
        memo[nid] = result
        return result

    for nid, node in graph.items():
        inputs = node.get("inputs") or {}
        if not any(k in inputs for k in _SCALE_INPUTS):
            continue
        s = side(nid)
        if s is not None and s > max_side:
            raise GuardError(f"node {nid} {node['class_type']}: the upscaled image would be {int(s)} px per side, "
                             f"above the limit of {max_side}",
                             hint=f"lower the scale factor or the size (at most {max_side} px per side after "
                                  "upscaling, or raise COMFYGEN_MAX_SIDE)")


def _check_total_batch(graph: Graph, max_batch: int) -> None:
    from .batch import graph_batch

    try:
        n = graph_batch(graph)
    except Exception:  # noqa: BLE001 - batch analysis is best effort; per-node bounds already held
        return
    if n > max_batch:
        raise GuardError(f"the graph makes {n} images per prompt, above the limit of {max_batch}",
                         hint=f"ask for at most {max_batch} images (or raise COMFYGEN_MAX_BATCH)")
