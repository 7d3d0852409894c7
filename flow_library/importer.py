"""Import a user's ComfyUI workflow (API format, or the UI format the editor saves) as a :class:`Flow`.

UI format (``{"nodes": [...], "links": [...]}``) is converted to API format with the node schema, as
ComfyUI's frontend does when it queues a prompt: widget values are assigned to the schema's inputs
in input order (skipping the hidden ``control_after_generate`` value that follows seed inputs and the
upload value after image pickers), links become ``[source_id, output_index]``, reroutes and bypassed
nodes are passed through, muted nodes and notes are dropped, primitive nodes are folded into the
widgets they feed. Then the slots are inferred from the graph: the prompts are the text encoders that
reach the samplers' ``positive``/``negative`` inputs, the seed is every seed input, the size and batch
come from the empty-latent node, the outputs are the image-saving nodes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .errors import FlowError
from .model import Family, Flow, FlowModels, Graph, LoraRef, Provenance, Requirement, SlotRef, Slots
from .schema import NodeSchema, ensure_valid

FRONTEND_ONLY = {"Note", "MarkdownNote", "PrimitiveNode", "Reroute"}
MUTED, BYPASSED = 2, 4
SEED_NAMES = ("seed", "noise_seed")
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
# Text encoders and the inputs that hold the prompt.
TEXT_INPUTS: dict[str, tuple[str, ...]] = {
    "CLIPTextEncode": ("text",),
    "CLIPTextEncodeSDXL": ("text_g", "text_l"),
    "CLIPTextEncodeSDXLRefiner": ("text",),
    "CLIPTextEncodeSD3": ("clip_l", "clip_g", "t5xxl"),
    "CLIPTextEncodeFlux": ("clip_l", "t5xxl"),
}
SAMPLER_CONDS: dict[str, tuple[str | None, str | None]] = {
    "KSampler": ("positive", "negative"), "KSamplerAdvanced": ("positive", "negative"),
    "SamplerCustom": ("positive", "negative"), "CFGGuider": ("positive", "negative"),
    "DualCFGGuider": ("cond1", "negative"), "BasicGuider": ("conditioning", None),
}


class WorkflowImportError(FlowError):
    """The workflow cannot be imported as it is."""


def is_ui_format(data: dict[str, Any]) -> bool:
    return isinstance(data.get("nodes"), list) and "links" in data


# -- UI -> API ---------------------------------------------------------------------------------------
def _is_widget(spec: list) -> bool:
    return isinstance(spec[0], list) or spec[0] in WIDGET_TYPES


def _has_control(name: str, spec: list) -> bool:
    extra = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return bool(extra.get("control_after_generate")) or (spec[0] == "INT" and name in SEED_NAMES)


def ui_to_api(workflow: dict[str, Any], schema: NodeSchema) -> Graph:
    """Convert a UI-format workflow to an API graph."""
    nodes = {int(n["id"]): n for n in workflow["nodes"]}
    links = {int(lk[0]): lk for lk in workflow.get("links", []) if lk}

    def source(link_id: int | None, want_type: str | None = None, depth: int = 0) -> list | None:
        """Follow a link back through reroutes and bypassed nodes to a real output."""
        if link_id is None or link_id not in links or depth > 64:
            return None
        _, src_id, src_slot, *_ = links[link_id]
        src = nodes.get(int(src_id))
        if src is None:
            return None
        if src.get("type") == "Reroute":
            return source((src.get("inputs") or [{}])[0].get("link"), want_type, depth + 1)
        if src.get("mode") == BYPASSED:
            out_type = (src.get("outputs") or [{}] * (src_slot + 1))[src_slot].get("type")
            for inp in src.get("inputs") or []:
                if inp.get("type") == out_type and inp.get("link") is not None:
                    return source(inp["link"], want_type, depth + 1)
            return None
        if src.get("mode") == MUTED or src.get("type") in FRONTEND_ONLY:
            return None
        return [str(src_id), int(src_slot)]

    graph: Graph = {}
    for node_id, node in sorted(nodes.items()):
        cls = node.get("type")
        if cls in FRONTEND_ONLY or node.get("mode") in (MUTED, BYPASSED):
            continue
        if cls not in schema:
            raise WorkflowImportError(f"node #{node_id} is a {cls!r}, which this node schema does not know",
                               hint="install its node pack, or validate against your ComfyUI with "
                                    "`--comfyui URL` / `--object-info FILE`")
        linked = {inp["name"]: inp.get("link") for inp in node.get("inputs") or []}
        values = node.get("widgets_values")
        inputs: dict[str, Any] = {}
        pos = 0
        for name, spec, _ in schema.inputs(cls):
            if _is_widget(spec):
                if isinstance(values, dict):
                    value, has_value = values.get(name), name in values
                else:
                    has_value = values is not None and pos < len(values)
                    value = values[pos] if has_value else None
                    pos += 1
                    if _has_control(name, spec):
                        pos += 1  # the frontend's control_after_generate widget ("fixed", "randomize", ...)
                    if (spec[1] if len(spec) > 1 else {}).get("image_upload"):
                        pos += 1  # the upload button's value
                link = source(linked.get(name))
                if link is not None and nodes[int(link[0])].get("type") != "PrimitiveNode":
                    inputs[name] = link
                elif has_value:
                    inputs[name] = value
            else:
                link = source(linked.get(name))
                if link is not None:
                    inputs[name] = link
        graph[str(node_id)] = {"class_type": cls, "inputs": inputs}
    return graph


# -- slot inference ---------------------------------------------------------------------------------
def _encoders(graph: Graph, start: Any, seen: set[str] | None = None) -> list[str]:
    """Text-encoder node ids reached by following CONDITIONING links back from ``start``."""
    seen = seen if seen is not None else set()
    if not (isinstance(start, list) and len(start) == 2 and isinstance(start[0], str)):
        return []
    node_id = start[0]
    if node_id in seen or node_id not in graph:
        return []
    seen.add(node_id)
    node = graph[node_id]
    if node["class_type"] in TEXT_INPUTS:
        return [node_id]
    if node["class_type"] == "ConditioningZeroOut":
        return []
    out: list[str] = []
    for key, value in node["inputs"].items():
        if key in ("conditioning", "conditioning_1", "conditioning_2", "conditioning_to", "conditioning_from",
                   "positive", "cond1"):
            out += _encoders(graph, value, seen)
    return out


def infer_slots(graph: Graph, schema: NodeSchema) -> Slots:
    positive: list[str] = []
    negative: list[str] = []
    for node in graph.values():
        conds = SAMPLER_CONDS.get(node["class_type"])
        if not conds:
            continue
        pos_in, neg_in = conds
        for nid in _encoders(graph, node["inputs"].get(pos_in)):
            if nid not in positive:
                positive.append(nid)
        if neg_in:
            for nid in _encoders(graph, node["inputs"].get(neg_in)):
                if nid not in negative and nid not in positive:
                    negative.append(nid)

    def refs(ids: list[str]) -> list[SlotRef]:
        return [SlotRef(node=i, input=k) for i in ids for k in TEXT_INPUTS[graph[i]["class_type"]]
                if isinstance(graph[i]["inputs"].get(k), str)]

    slots: dict[str, list[SlotRef]] = {"seed": [], "width": [], "height": [], "batch": []}
    outputs: list[str] = []
    for nid, node in sorted(graph.items(), key=lambda kv: (len(kv[0]), kv[0])):
        cls, inputs = node["class_type"], node["inputs"]
        for name in SEED_NAMES:
            if isinstance(inputs.get(name), int):
                slots["seed"].append(SlotRef(node=nid, input=name))
        outs = schema.outputs(cls)
        sized = "LATENT" in outs and all(isinstance(inputs.get(k), int) for k in ("width", "height", "batch_size"))
        if sized or cls == "ModelSamplingFlux":
            slots["width"].append(SlotRef(node=nid, input="width"))
            slots["height"].append(SlotRef(node=nid, input="height"))
        if sized:
            slots["batch"].append(SlotRef(node=nid, input="batch_size"))
        if cls == "CLIPTextEncodeSDXL":
            slots["width"].append(SlotRef(node=nid, input="target_width"))
            slots["height"].append(SlotRef(node=nid, input="target_height"))
        if schema.is_output(cls) and any(isinstance(v, list) for v in inputs.values()) and "images" in inputs:
            outputs.append(nid)
    return Slots(positive=refs(positive), negative=refs(negative), output=outputs, **slots)


# -- the rest of the flow's description --------------------------------------------------------------
def infer_family(graph: Graph) -> Family:
    classes = {n["class_type"] for n in graph.values()}
    names = " ".join(str(v).lower() for n in graph.values() for v in n["inputs"].values() if isinstance(v, str))
    if classes & {"FluxGuidance", "CLIPTextEncodeFlux", "ModelSamplingFlux"} or "flux" in names:
        return Family.FLUX
    if any(c.startswith("StableCascade") for c in classes):
        return Family.CASCADE
    if classes & {"TripleCLIPLoader", "ModelSamplingSD3", "CLIPTextEncodeSD3"} or "sd3" in names:
        return Family.SD3
    if "playground" in names:
        return Family.PLAYGROUND
    if "ssd-1b" in names or "ssd1b" in names:
        return Family.SSD1B
    if "refiner" in names and "KSamplerAdvanced" in classes:
        return Family.SDXL_REFINER
    if "CLIPTextEncodeSDXL" in classes or re.search(r"xl|sdxl", names.replace("xxl", "")):
        return Family.SDXL
    return Family.SD15


def infer_models(graph: Graph) -> FlowModels:
    m = FlowModels()
    for node in sorted(graph.values(), key=lambda n: n["class_type"]):
        cls, inp = node["class_type"], node["inputs"]
        if cls.startswith("CheckpointLoader") and isinstance(inp.get("ckpt_name"), str):
            name = inp["ckpt_name"]
            if "refiner" in name.lower() and m.checkpoint:
                m.refiner = name
            elif m.checkpoint is None:
                m.checkpoint = name
            else:
                m.other.append(name)
        elif cls == "UNETLoader":
            m.unet = inp.get("unet_name")
        elif cls in ("CLIPLoader", "DualCLIPLoader", "TripleCLIPLoader", "QuadrupleCLIPLoader"):
            m.clip += [v for k, v in sorted(inp.items()) if k.startswith("clip_name") and isinstance(v, str)]
        elif cls == "VAELoader":
            m.vae = inp.get("vae_name")
        elif cls in ("LoraLoader", "LoraLoaderModelOnly") and isinstance(inp.get("lora_name"), str):
            m.loras.append(LoraRef(name=inp["lora_name"], strength_model=float(inp.get("strength_model", 1.0)),
                                   strength_clip=float(inp.get("strength_clip", inp.get("strength_model", 1.0)))))
        elif cls == "UpscaleModelLoader":
            m.upscaler = inp.get("model_name")
        elif cls == "FaceRestoreModelLoader":
            m.face_restore = inp.get("model_name")
    return m


def _requirements(graph: Graph, schema: NodeSchema) -> list[Requirement]:
    packs: dict[str, set[str]] = {}
    for node in graph.values():
        cls = node["class_type"]
        pack = schema.packs.get(cls)
        module = str(schema.node(cls).get("python_module", ""))
        if pack is None and module.startswith("custom_nodes."):
            pack = module.split(".", 1)[1]
        if pack:
            packs.setdefault(pack, set()).add(cls)
    return [Requirement(kind="node_pack", name=p, note=", ".join(sorted(c))) for p, c in sorted(packs.items())]


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "imported-flow"


def import_workflow(data: dict[str, Any], schema: NodeSchema | None = None, *, flow_id: str | None = None,
                    name: str | None = None, family: Family | str | None = None, source: str | None = None) -> Flow:
    """Build a validated :class:`Flow` from a workflow in API or UI format."""
    schema = schema or NodeSchema.bundled()
    if not isinstance(data, dict):
        raise WorkflowImportError("a workflow must be a JSON object", hint="export it from ComfyUI (Save, or Export (API))")
    if isinstance(data.get("prompt"), dict) and not is_ui_format(data):
        data = data["prompt"]  # the body of a /prompt request
    graph = ui_to_api(data, schema) if is_ui_format(data) else {str(k): v for k, v in data.items()}
    ensure_valid(graph, schema, what="imported workflow")
    slots = infer_slots(graph, schema)
    if not slots.positive:
        raise WorkflowImportError("no prompt found: no text encoder reaches a sampler's positive input",
                           hint="import a text-to-image workflow whose sampler takes a CLIPTextEncode* prompt")
    if not slots.output:
        raise WorkflowImportError("no image output found", hint="add a SaveImage node")
    first = next((n for n in graph.values() if n["class_type"] in ("KSampler", "KSamplerAdvanced")), None)
    sampler_node = next((n for n in graph.values() if n["class_type"] == "KSamplerSelect"), first)
    latent = next((graph[r.node]["inputs"] for r in slots.width if r.input == "width"), {})
    fid = flow_id or slugify(name or "imported-flow")
    return Flow(
        id=fid, name=name or fid, description="Imported workflow.", family=Family(family) if family else infer_family(graph),
        models=infer_models(graph),
        sampler=(sampler_node or {}).get("inputs", {}).get("sampler_name"),
        scheduler=(first or {}).get("inputs", {}).get("scheduler"),
        steps=(first or {}).get("inputs", {}).get("steps"), cfg=(first or {}).get("inputs", {}).get("cfg"),
        width=int(latent.get("width", 1024)), height=int(latent.get("height", 1024)),
        tags=["imported"], requires=_requirements(graph, schema),
        provenance=Provenance(kind="imported", source=source), slots=slots, graph=graph)


def import_file(path: str | Path, schema: NodeSchema | None = None, *, flow_id: str | None = None) -> Flow:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise WorkflowImportError(f"cannot read workflow {path}: {e}", hint="pass a ComfyUI workflow JSON file") from e
    return import_workflow(data, schema, flow_id=flow_id or slugify(path.stem), name=path.stem, source=str(path))


def save_user_flow(flow: Flow, user_dir: Path, *, overwrite: bool = False) -> Path:
    """Write ``flow`` to ``user_dir/<id>.json`` (the user library, loaded beside the shipped one)."""
    user_dir.mkdir(parents=True, exist_ok=True)
    path = user_dir / f"{flow.id}.json"
    if path.exists() and not overwrite:
        raise FlowError(f"a user flow {flow.id!r} already exists at {path}",
                        hint="pass another id (--id) or overwrite it (--force)")
    path.write_text(json.dumps(flow.model_dump(mode="json"), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


__all__ = ["import_workflow", "import_file", "save_user_flow", "ui_to_api", "infer_slots", "infer_family",
           "infer_models", "is_ui_format", "WorkflowImportError"]
