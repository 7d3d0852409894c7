"""What an imported API graph means: its slots, family, model files and sampling settings.

- prompts: the text encoders that reach a sampler's ``positive``/``negative`` input; an encoder fed by a string
  node (``PrimitiveStringMultiline`` …) has its slot on that node's value; encoders that reach the sampler
  only through an area / mask node are regional prompts, kept as the flow has them;
- sizes: every literal ``width``/``height`` of a size-bearing node (empty latents, hires ``LatentUpscale`` and
  ``ImageScale`` targets, SDXL/PixArt size conditioning, area boxes with their ``x``/``y``) follows ``--size``
  in proportion; the batch comes from the empty-latent node;
- outputs: the final image outputs only: an output whose image is upstream of another output's (a first-pass
  preview) or that duplicates a saving node's image (a preview beside a SaveImage) is not a result;
- input images: ``LoadImage``-like nodes mark a flow that needs an image.
"""

from __future__ import annotations

import re
from typing import Any

from .model import Family, FlowModels, Graph, LoraRef, SlotRef, Slots
from .schema import NodeSchema

SEED_NAMES = ("seed", "noise_seed")
# Text encoders and the inputs that hold the prompt.
TEXT_INPUTS: dict[str, tuple[str, ...]] = {
    "CLIPTextEncode": ("text",),
    "CLIPTextEncodeSDXL": ("text_g", "text_l"),
    "CLIPTextEncodeSDXLRefiner": ("text",),
    "CLIPTextEncodeSD3": ("clip_l", "clip_g", "t5xxl"),
    "CLIPTextEncodeFlux": ("clip_l", "t5xxl"),
    "CLIPTextEncodeHiDream": ("clip_l", "clip_g", "t5xxl", "llama"),
    "CLIPTextEncodeLumina2": ("user_prompt",),
    "CLIPTextEncodeHunyuanDiT": ("bert", "mt5xl"),
    "CLIPTextEncodePixArtAlpha": ("text",),
    "CLIPTextEncodeControlnet": ("text",),
    "TextEncodeQwenImageEdit": ("prompt",),
    "TextEncodeQwenImageEditPlus": ("prompt",),
}
SAMPLER_CONDS: dict[str, tuple[str | None, str | None]] = {
    "KSampler": ("positive", "negative"), "KSamplerAdvanced": ("positive", "negative"),
    "SamplerCustom": ("positive", "negative"), "CFGGuider": ("positive", "negative"),
    "DualCFGGuider": ("cond1", "negative"), "BasicGuider": ("conditioning", None),
    "PerpNegGuider": ("positive", "negative"),
}
COND_INPUTS = ("conditioning", "conditioning_1", "conditioning_2", "conditioning_to", "conditioning_from",
               "positive", "cond1", "cond2")
AREA_NODES = {"ConditioningSetArea", "ConditioningSetAreaPercentage", "ConditioningSetAreaPercentageVideo",
              "ConditioningSetMask"}
SIZE_INPUTS = {"width": "width", "height": "height", "target_width": "width", "target_height": "height"}
AREA_OFFSETS = {"x": "width", "y": "height"}
IMAGE_LOADERS = {"LoadImage": "image", "LoadImageMask": "image", "LoadImageOutput": "image"}


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


# -- prompts -----------------------------------------------------------------------------------------
def _encoders(graph: Graph, start: Any, area: bool = False, seen: set[str] | None = None) -> list[tuple[str, bool]]:
    """(text-encoder id, reached through an area node) found by following CONDITIONING links back."""
    seen = seen if seen is not None else set()
    if not _is_link(start) or start[0] in seen or start[0] not in graph:
        return []
    node_id = start[0]
    seen.add(node_id)
    node = graph[node_id]
    cls = node["class_type"]
    if cls in TEXT_INPUTS:
        return [(node_id, area)]
    if cls == "ConditioningZeroOut":
        return []
    area = area or cls in AREA_NODES
    out: list[tuple[str, bool]] = []
    for key, value in node["inputs"].items():
        if key in COND_INPUTS:
            out += _encoders(graph, value, area, seen)
    return out


def _text_refs(graph: Graph, node_ids: list[str]) -> list[SlotRef]:
    """Prompt slots of these encoders: their literal text inputs, or the string node that feeds one."""
    refs: list[SlotRef] = []
    for nid in node_ids:
        for key in TEXT_INPUTS[graph[nid]["class_type"]]:
            value = graph[nid]["inputs"].get(key)
            ref = SlotRef(node=nid, input=key) if isinstance(value, str) else _string_source(graph, value)
            if ref is not None and ref not in refs:
                refs.append(ref)
    return refs


STRING_JOINS: dict[str, tuple[str, ...]] = {"StringConcatenate": ("string_a", "string_b")}
SYSTEM_PROMPT = re.compile(r"<Prompt Start>|^\s*You are (an|a) ", re.IGNORECASE)


def _string_source(graph: Graph, value: Any) -> SlotRef | None:
    """The string a prompt comes from when the encoder's text is a link: a string node's value, or, through a
    concatenation, its part that holds the prompt (not a system prompt; a string node before a literal;
    the first)."""
    candidates = _string_leaves(graph, value, 0)
    if not candidates:
        return None
    ranked = sorted(enumerate(candidates), key=lambda ic: (
        bool(SYSTEM_PROMPT.search(str(graph[ic[1][0].node]["inputs"].get(ic[1][0].input, "")))), not ic[1][1], ic[0]))
    return ranked[0][1][0]


def _string_leaves(graph: Graph, value: Any, depth: int) -> list[tuple[SlotRef, bool]]:
    """(literal string input, it is a string node's own value) reached from ``value``."""
    if not _is_link(value) or value[0] not in graph or depth > 8:
        return []
    node_id = value[0]
    cls, inputs = graph[node_id]["class_type"], graph[node_id]["inputs"]
    if cls in STRING_JOINS:
        out: list[tuple[SlotRef, bool]] = []
        for key in STRING_JOINS[cls]:
            v = inputs.get(key)
            if isinstance(v, str):
                out.append((SlotRef(node=node_id, input=key), False))
            else:
                out += _string_leaves(graph, v, depth + 1)
        return out
    literal = [k for k, v in inputs.items() if isinstance(v, str)]
    links = [v for v in inputs.values() if _is_link(v)]
    if len(literal) == 1 and not links:
        return [(SlotRef(node=node_id, input=literal[0]), True)]
    if not literal and len(links) == 1:
        return _string_leaves(graph, links[0], depth + 1)
    return []


def prompt_slots(graph: Graph) -> tuple[list[SlotRef], list[SlotRef], list[SlotRef]]:
    """(positive, negative, regional) prompt slots."""
    plain: list[str] = []
    regional: list[str] = []
    negative: list[str] = []
    for node in graph.values():
        conds = SAMPLER_CONDS.get(node["class_type"])
        if not conds:
            continue
        pos_in, neg_in = conds
        for nid, area in _encoders(graph, node["inputs"].get(pos_in)):
            target = regional if area else plain
            if nid not in target:
                target.append(nid)
        if neg_in:
            for nid, _ in _encoders(graph, node["inputs"].get(neg_in)):
                if nid not in negative:
                    negative.append(nid)
    regional = [n for n in regional if n not in plain]
    if not plain and regional:  # every prompt is regional: the first one carries the run's prompt
        plain, regional = regional[:1], regional[1:]
    negative = [n for n in negative if n not in plain and n not in regional]
    pos_refs = _text_refs(graph, plain)
    return pos_refs, [r for r in _text_refs(graph, negative) if r not in pos_refs], \
        [r for r in _text_refs(graph, regional) if r not in pos_refs]


# -- outputs -----------------------------------------------------------------------------------------
def _ancestors(graph: Graph, start: str) -> set[str]:
    seen: set[str] = set()
    stack = [start]
    while stack:
        nid = stack.pop()
        for v in graph.get(nid, {}).get("inputs", {}).values():
            if _is_link(v) and v[0] not in seen:
                seen.add(v[0])
                stack.append(v[0])
    return seen


def final_outputs(graph: Graph, schema: NodeSchema) -> list[str]:
    """Image-output nodes whose images are the result (see the module docstring)."""
    outs = [nid for nid, n in graph.items() if n["class_type"] in schema and schema.is_output(n["class_type"])
            and _is_link(n["inputs"].get("images"))]
    source = {nid: graph[nid]["inputs"]["images"][0] for nid in outs}
    deps = {nid: _ancestors(graph, source[nid]) for nid in outs}  # what the image is made from
    upstream = {nid: deps[nid] | {source[nid]} for nid in outs}

    def earlier(o: str, p: str) -> bool:
        """o's image is made from a part of what p's is made from (a first pass, a preprocessor preview)."""
        return source[o] != source[p] and deps[o] <= upstream[p] and not deps[p] <= upstream[o]

    final = [o for o in outs if not any(earlier(o, p) for p in outs if p != o)]
    saving = [o for o in final if graph[o]["class_type"] != "PreviewImage"]
    final = [o for o in final if graph[o]["class_type"] != "PreviewImage"
             or not any(source[s] == source[o] for s in saving)]
    return sorted(final, key=lambda k: (len(k), k))


# -- sizes, seeds, batch, input images ----------------------------------------------------------------
def size_slots(graph: Graph, schema: NodeSchema) -> tuple[list[SlotRef], list[SlotRef], list[SlotRef]]:
    """(width, height, batch) slots: every literal size of a size-bearing node, and the empty latent's batch."""
    width: list[SlotRef] = []
    height: list[SlotRef] = []
    batch: list[SlotRef] = []
    for nid, node in _ordered(graph):
        cls, inputs = node["class_type"], node["inputs"]
        if cls not in schema:
            continue
        names = {n: spec for n, spec, _ in schema.inputs(cls)}
        sized = [k for k in SIZE_INPUTS if isinstance(inputs.get(k), int) and (names.get(k) or [""])[0] == "INT"]
        if not sized:
            continue
        for k in sized:
            (width if SIZE_INPUTS[k] == "width" else height).append(SlotRef(node=nid, input=k))
        if cls in AREA_NODES or cls == "GLIGENTextBoxApply":
            for k, axis in AREA_OFFSETS.items():
                if isinstance(inputs.get(k), int):
                    (width if axis == "width" else height).append(SlotRef(node=nid, input=k))
        empty = "LATENT" in schema.outputs(cls) and not any(_is_link(v) for v in inputs.values())
        if empty and isinstance(inputs.get("batch_size"), int):
            batch.append(SlotRef(node=nid, input="batch_size"))
    return width, height, batch


def base_size(graph: Graph, width: list[SlotRef], height: list[SlotRef]) -> tuple[int | None, int | None]:
    """The flow's size: the first empty-latent node's, else the first size slot's."""
    def first(refs: list[SlotRef]) -> int | None:
        for ref in refs:
            node = graph[ref.node]
            if ref.input in ("width", "height") and not any(_is_link(v) for v in node["inputs"].values()):
                return int(node["inputs"][ref.input])
        return next((int(graph[r.node]["inputs"][r.input]) for r in refs if r.input in ("width", "height")), None)

    return first(width), first(height)


def _ordered(graph: Graph) -> list[tuple[str, dict]]:
    return sorted(graph.items(), key=lambda kv: (len(kv[0]), kv[0]))


def infer_slots(graph: Graph, schema: NodeSchema) -> Slots:
    positive, negative, regional = prompt_slots(graph)
    seeds = [SlotRef(node=nid, input=k) for nid, n in _ordered(graph) for k in SEED_NAMES
             if isinstance(n["inputs"].get(k), int) and not isinstance(n["inputs"].get(k), bool)]
    width, height, batch = size_slots(graph, schema)
    images = [SlotRef(node=nid, input=IMAGE_LOADERS[n["class_type"]]) for nid, n in _ordered(graph)
              if n["class_type"] in IMAGE_LOADERS]
    return Slots(positive=positive, negative=negative, regional=regional, seed=seeds, width=width, height=height,
                 batch=batch, image=images, output=final_outputs(graph, schema))


# -- sampling settings ----------------------------------------------------------------------------------
def sampling_settings(graph: Graph) -> dict[str, Any]:
    """sampler, scheduler, steps and cfg of the first sampler (KSampler*, or SamplerCustom(Advanced)'s parts)."""
    nodes = [n for _, n in _ordered(graph)]
    first = next((n["inputs"] for n in nodes if n["class_type"] in ("KSampler", "KSamplerAdvanced")), None)
    if first is not None:
        return {"sampler": first.get("sampler_name"), "scheduler": first.get("scheduler"),
                "steps": first.get("steps"), "cfg": first.get("cfg")}
    out: dict[str, Any] = {"sampler": None, "scheduler": None, "steps": None, "cfg": None}
    for n in nodes:
        cls, inp = n["class_type"], n["inputs"]
        if cls == "KSamplerSelect" and out["sampler"] is None:
            out["sampler"] = inp.get("sampler_name")
        elif cls.endswith("Scheduler") and out["steps"] is None and isinstance(inp.get("steps"), int):
            out["steps"] = inp["steps"]
            sched = inp.get("scheduler")
            out["scheduler"] = sched if isinstance(sched, str) else re.sub(r"Scheduler$", "", cls).lower()
        elif cls in ("SamplerCustom", "CFGGuider", "PerpNegGuider") and out["cfg"] is None \
                and isinstance(inp.get("cfg"), (int, float)):
            out["cfg"] = inp["cfg"]
        elif cls == "DualCFGGuider" and out["cfg"] is None and isinstance(inp.get("cfg_conds"), (int, float)):
            out["cfg"] = inp["cfg_conds"]
        elif cls == "BasicGuider" and out["cfg"] is None:
            out["cfg"] = 1.0  # no classifier-free guidance
    return out


# -- family ----------------------------------------------------------------------------------------------
CLIP_TYPES = {"qwen_image": Family.QWEN_IMAGE, "lumina2": Family.LUMINA2, "chroma": Family.CHROMA,
              "omnigen2": Family.OMNIGEN2, "hidream": Family.HIDREAM, "pixart": Family.PIXART,
              "stable_cascade": Family.CASCADE, "sd3": Family.SD3, "flux": Family.FLUX, "sdxl": Family.SDXL}
CLASS_FAMILIES = [
    ({"CLIPTextEncodeHiDream", "QuadrupleCLIPLoader"}, Family.HIDREAM),
    ({"CLIPTextEncodeLumina2"}, Family.LUMINA2),
    ({"TextEncodeQwenImageEdit", "TextEncodeQwenImageEditPlus", "EmptyHunyuanImageLatent"}, Family.QWEN_IMAGE),
    ({"EmptyChromaRadianceLatentImage"}, Family.CHROMA),
    ({"CLIPTextEncodeHunyuanDiT"}, Family.HUNYUAN_DIT),
    ({"CLIPTextEncodePixArtAlpha"}, Family.PIXART),
    ({"FluxGuidance", "CLIPTextEncodeFlux", "ModelSamplingFlux"}, Family.FLUX),
    ({"TripleCLIPLoader", "ModelSamplingSD3", "CLIPTextEncodeSD3"}, Family.SD3),
]
NAME_FAMILIES = [
    (r"qwen[-_ ]?image|qwen_2\.5_vl", Family.QWEN_IMAGE), (r"hidream", Family.HIDREAM),
    (r"lumina|neta[-_ ]?yume", Family.LUMINA2), (r"chroma", Family.CHROMA), (r"omnigen", Family.OMNIGEN2),
    (r"aura[-_ ]?flow", Family.AURAFLOW), (r"hunyuan[-_ ]?dit", Family.HUNYUAN_DIT), (r"kolors", Family.KOLORS),
    (r"pixart", Family.PIXART), (r"flux", Family.FLUX), (r"stable[-_ ]?cascade", Family.CASCADE),
    (r"sd3|sd_3|stable[-_ ]?diffusion[-_ ]?3", Family.SD3),
]
MODEL_INPUTS = ("ckpt_name", "unet_name", "clip_name", "clip_name1", "clip_name2", "clip_name3", "clip_name4",
                "model_name", "vae_name")


def infer_family(graph: Graph) -> Family:
    """The architecture, from the text-encoder loader's type, the family-specific nodes, then the file names."""
    return family_guess(graph)[0]


def family_guess(graph: Graph) -> tuple[Family, bool]:
    """(family, guessed): guessed when nothing in the graph names the architecture (the latent node or the
    plain-checkpoint default decided)."""
    family = _family(graph)
    if family is not None:
        return family, False
    classes = {n["class_type"] for n in graph.values()}
    if "EmptySD3LatentImage" in classes:  # a 16-channel latent: at least the noise shape is right
        return Family.SD3, True
    return Family.SD15, True


def _family(graph: Graph) -> Family | None:
    classes = {n["class_type"] for n in graph.values()}
    for n in graph.values():
        if n["class_type"] in ("CLIPLoader", "DualCLIPLoader") and n["inputs"].get("type") in CLIP_TYPES:
            family = CLIP_TYPES[n["inputs"]["type"]]
            if family != Family.SDXL:
                return family
    for group, family in CLASS_FAMILIES:
        if classes & group:
            return family
    files = " ".join(str(n["inputs"].get(k)).lower() for n in graph.values() for k in MODEL_INPUTS
                     if isinstance(n["inputs"].get(k), str))
    for pattern, family in NAME_FAMILIES:
        if re.search(pattern, files):
            return family
    if any(c.startswith("StableCascade") for c in classes):
        return Family.CASCADE
    if "ModelSamplingAuraFlow" in classes:
        return Family.AURAFLOW
    if "playground" in files:
        return Family.PLAYGROUND
    if "ssd-1b" in files or "ssd1b" in files:
        return Family.SSD1B
    if "refiner" in files and "KSamplerAdvanced" in classes:
        return Family.SDXL_REFINER
    if "CLIPTextEncodeSDXL" in classes or re.search(r"xl|sdxl", files.replace("xxl", "")):
        return Family.SDXL
    if re.search(r"v2-1|sd21|sd2\.1|768-v", files):
        return Family.SD21
    if re.search(r"v1-5|sd15|sd1\.5|v1-4|sd-v1", files):
        return Family.SD15
    return None


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
        elif cls in ("UNETLoader", "UnetLoaderGGUF") and isinstance(inp.get("unet_name"), str):
            if m.unet is None:
                m.unet = inp["unet_name"]
            else:
                m.other.append(inp["unet_name"])
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
