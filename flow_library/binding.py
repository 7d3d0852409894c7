"""Binding flows to what a ComfyUI has installed.

Flows name models by the file names they are published under; a user's ComfyUI often has the same
model under another name (``juggernautXL_v9Rdphoto2Lightning.safetensors``, ``4x_UltraSharp.pth``,
a subfolder ``SDXL/…``). :func:`bind` matches each file a flow needs against the installed lists
(``folder -> files``, as ComfyUI's ``/models/<folder>`` answers, or :func:`installed_from_object_info`)
in three steps: exact name, same name in a subfolder / after normalisation (case, separators,
extension), then the same model family (a long common name prefix, SD 1.5 never matched with XL).
:func:`apply_binding` rewrites the graph's file names accordingly.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from .errors import FlowError
from .model import Flow, Graph
from .schema import NodeSchema, file_folder

# ComfyUI folder names and their legacy aliases (both are served by /models/<folder>).
FOLDER_ALIASES: dict[str, tuple[str, ...]] = {
    "text_encoders": ("text_encoders", "clip"),
    "diffusion_models": ("diffusion_models", "unet"),
    "checkpoints": ("checkpoints",),
}
FEW_STEP = re.compile(r"turbo|lightning|lcm|hyper|schnell")
_EXT = re.compile(r"\.(safetensors|ckpt|pt|pth|bin|gguf|sft|onnx)$", re.I)


class FileMatch(BaseModel):
    folder: str
    wanted: str = Field(description="File name the flow uses.")
    installed: str | None = Field(None, description="Installed file to use instead (None: missing).")
    how: Literal["exact", "normalised", "family", "missing"]
    note: str | None = None


class Binding(BaseModel):
    """How one flow maps onto an installation."""

    flow_id: str
    status: Literal["runnable", "mappable", "missing"] = Field(
        description="runnable: every file present as named; mappable: present under other names; missing: some absent.")
    matches: list[FileMatch] = Field(default_factory=list)
    missing_nodes: list[str] = Field(default_factory=list, description="Node classes the ComfyUI does not have.")

    @property
    def mapping(self) -> dict[str, str]:
        """wanted file -> installed file, for files installed under another name."""
        return {m.wanted: m.installed for m in self.matches if m.installed and m.installed != m.wanted}

    @property
    def missing(self) -> list[tuple[str, str]]:
        return [(m.folder, m.wanted) for m in self.matches if m.how == "missing"]


def normalise(name: str) -> str:
    """``SDXL/Juggernaut-XL_v9.safetensors`` -> ``juggernautxlv9``."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return re.sub(r"[^a-z0-9]", "", _EXT.sub("", base).lower())


def _is_xl(key: str) -> bool:
    return "xl" in key.replace("xxl", "")


def _family_score(wanted: str, candidate: str) -> float:
    """> 0 when ``candidate`` looks like the same model (family) as ``wanted``; higher is closer."""
    a, b = normalise(wanted), normalise(candidate)
    if not a or not b or _is_xl(a) != _is_xl(b):
        return 0.0
    prefix = 0
    for x, y in zip(a, b):
        if x != y:
            break
        prefix += 1
    stem = len(re.match(r"[a-z]*", a).group(0))
    shorter = min(len(a), len(b))
    if not (prefix >= max(6, stem) or (prefix == shorter and shorter >= 4)):
        return 0.0
    same_speed = bool(FEW_STEP.search(a)) == bool(FEW_STEP.search(b))
    return (2.0 if same_speed else 1.0) + prefix / 100 + difflib.SequenceMatcher(None, a, b).ratio() / 1000


def graph_files(graph: Graph, schema: NodeSchema | None = None) -> list[tuple[str, str, str, str]]:
    """(folder, file, node id, input name) for every model-file input in the graph."""
    schema = schema or NodeSchema.bundled()
    out = []
    for node_id, node in graph.items():
        cls = node.get("class_type")
        if cls not in schema:
            continue
        for name, spec, _ in schema.inputs(cls):
            value = node.get("inputs", {}).get(name)
            folder = file_folder(cls, name, spec)
            if isinstance(value, str) and folder and folder not in ("input", "other"):
                out.append((folder, value, node_id, name))
    return out


def installed_from_object_info(object_info: dict[str, Any] | NodeSchema) -> dict[str, list[str]]:
    """folder -> files, read from a live ComfyUI's /object_info choice lists."""
    schema = object_info if isinstance(object_info, NodeSchema) else NodeSchema(object_info)
    return schema.model_lists()


def _candidates(installed: dict[str, list[str]], folder: str) -> list[str]:
    out: list[str] = []
    for f in FOLDER_ALIASES.get(folder, (folder,)):
        out += [x for x in installed.get(f, []) if x not in out]
    return out


def match_file(folder: str, wanted: str, installed: dict[str, list[str]]) -> FileMatch:
    files = _candidates(installed, folder)
    if wanted in files:
        return FileMatch(folder=folder, wanted=wanted, installed=wanted, how="exact")
    key = normalise(wanted)
    same = [f for f in files if normalise(f) == key]
    if same:
        return FileMatch(folder=folder, wanted=wanted, installed=sorted(same, key=len)[0], how="normalised")
    scored = sorted(((s, f) for f in files if (s := _family_score(wanted, f)) > 0), key=lambda t: (-t[0], t[1]))
    if scored:
        score, best = scored[0]
        note = None
        if score < 2.0:
            note = ("the installed file is a few-step model and the flow is not (or the reverse): "
                    "adjust steps and CFG")
        return FileMatch(folder=folder, wanted=wanted, installed=best, how="family", note=note)
    return FileMatch(folder=folder, wanted=wanted, installed=None, how="missing")


def bind(flow: Flow, installed: dict[str, list[str]], *, schema: NodeSchema | None = None,
         node_classes: set[str] | None = None) -> Binding:
    """Match every model file ``flow`` uses against ``installed`` (folder -> files).

    ``node_classes``: the node classes the ComfyUI has (from its /object_info); when given, classes
    the flow needs and it lacks (e.g. a face-restore pack) are reported and make the flow ``missing``.
    """
    seen: dict[tuple[str, str], FileMatch] = {}
    for folder, wanted, _, _ in graph_files(flow.graph, schema):
        if (folder, wanted) not in seen:
            seen[(folder, wanted)] = match_file(folder, wanted, installed)
    matches = list(seen.values())
    missing_nodes = sorted({n["class_type"] for n in flow.graph.values()} - node_classes) if node_classes else []
    if missing_nodes or any(m.how == "missing" for m in matches):
        status = "missing"
    elif all(m.how == "exact" for m in matches):
        status = "runnable"
    else:
        status = "mappable"
    return Binding(flow_id=flow.id, status=status, matches=matches, missing_nodes=missing_nodes)


def apply_binding(flow: Flow, binding: Binding, *, schema: NodeSchema | None = None) -> Flow:
    """A copy of ``flow`` whose graph (and model list) names the installed files."""
    if binding.flow_id != flow.id:
        raise FlowError(f"binding is for flow {binding.flow_id!r}, not {flow.id!r}", hint="bind this flow first")
    if binding.status == "missing":
        what = [f"{folder}/{name}" for folder, name in binding.missing] + binding.missing_nodes
        raise FlowError(f"flow {flow.id!r} cannot run on this ComfyUI: missing {', '.join(what)}",
                        hint="install the missing models or node packs, or pick a runnable flow")
    by_file = {(m.folder, m.wanted): m.installed for m in binding.matches if m.installed}
    graph = {k: {**v, "inputs": dict(v.get("inputs", {}))} for k, v in flow.graph.items()}
    for folder, wanted, node_id, name in graph_files(flow.graph, schema):
        new = by_file.get((folder, wanted))
        if new:
            graph[node_id]["inputs"][name] = new
    rename = binding.mapping
    models = flow.models.model_copy(update={
        "checkpoint": rename.get(flow.models.checkpoint or "", flow.models.checkpoint),
        "refiner": rename.get(flow.models.refiner or "", flow.models.refiner),
        "unet": rename.get(flow.models.unet or "", flow.models.unet),
        "vae": rename.get(flow.models.vae or "", flow.models.vae),
        "clip": [rename.get(c, c) for c in flow.models.clip],
        "loras": [lo.model_copy(update={"name": rename.get(lo.name, lo.name)}) for lo in flow.models.loras],
        "upscaler": rename.get(flow.models.upscaler or "", flow.models.upscaler),
        "face_restore": rename.get(flow.models.face_restore or "", flow.models.face_restore),
        "other": [rename.get(o, o) for o in flow.models.other],
    })
    return flow.model_copy(update={"graph": graph, "models": models})
