"""Variant generation: deterministic augmentation of the base flows, as in ComfyGen (sec. 3.2, 33 -> 310).

Each base flow gets a fixed number of variants made of one or two changes: a checkpoint swapped for a
compatible fine-tune of the same family, a LoRA added or removed, another sampler/scheduler pair, more
or fewer steps, another CFG (or Flux guidance), a latent hires-fix pass added or removed. Everything
is derived from the parent id and the change list (no randomness, no clock), so ids are the same on
every run and machine: ``<parent>-v<6 hex of sha1(parent|changes)>``. Variants whose canonical graph
hash equals an earlier flow's are dropped.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .model import Family, Flow, Graph, LoraRef, Provenance, SlotRef, graph_hash

log = logging.getLogger(__name__)

VARIANTS_PER_FLOW = 6

STYLE_TAGS = {"photoreal", "anime", "illustration", "fantasy", "painting", "render3d", "general"}


@dataclass(frozen=True)
class Policy:
    """What may change within one family."""

    checkpoints: dict[str, tuple[str, ...]] = field(default_factory=dict)  # file -> style tags
    samplers: tuple[tuple[str, str], ...] = ()
    steps: tuple[int, ...] = ()
    cfg: tuple[float, ...] = ()
    loras: tuple[LoraRef, ...] = ()
    hires: tuple[float, float, int] | None = None
    fast_samplers: tuple[tuple[str, str], ...] = (("euler", "sgm_uniform"), ("dpmpp_sde", "karras"),
                                                 ("euler_ancestral", "sgm_uniform"))
    fast_steps: tuple[int, ...] = (4, 6, 8)
    guidance: tuple[float, ...] = ()


_SD15_SAMPLERS = (("euler_ancestral", "normal"), ("dpmpp_2m", "karras"), ("dpmpp_2m_sde", "karras"),
                  ("dpmpp_sde", "karras"), ("uni_pc", "normal"), ("ddim", "ddim_uniform"), ("euler", "normal"))
POLICIES: dict[Family, Policy] = {
    Family.SD15: Policy(
        checkpoints={"v1-5-pruned-emaonly.safetensors": ("general",), "dreamshaper_8.safetensors": ("general", "illustration"),
                     "realisticVisionV60B1_v51VAE.safetensors": ("photoreal",),
                     "epicrealism_naturalSinRC1VAE.safetensors": ("photoreal",),
                     "absolutereality_v181.safetensors": ("photoreal",),
                     "revAnimated_v122EOL.safetensors": ("illustration", "fantasy"),
                     "counterfeitV30_v30.safetensors": ("anime",), "meinamix_meinaV11.safetensors": ("anime",)},
        samplers=_SD15_SAMPLERS, steps=(20, 30, 40), cfg=(5.0, 6.5, 8.0),
        loras=(LoraRef(name="add_detail.safetensors", strength_model=0.7, strength_clip=0.7),
               LoraRef(name="epi_noiseoffset2.safetensors", strength_model=0.6, strength_clip=0.6)),
        hires=(1.5, 0.5, 15)),
    Family.SDXL: Policy(
        checkpoints={"sd_xl_base_1.0.safetensors": ("general",),
                     "juggernautXL_v9Rundiffusionphoto2.safetensors": ("photoreal",),
                     "RealVisXL_V4.0.safetensors": ("photoreal",),
                     "dreamshaperXL_alpha2Xl10.safetensors": ("illustration", "fantasy"),
                     "ProteusV0.4.safetensors": ("general", "illustration"),
                     "crystalClearXL_ccxl.safetensors": ("photoreal", "general"),
                     "zavychromaxl_v80.safetensors": ("fantasy", "painting"),
                     "animagine-xl-3.1.safetensors": ("anime",)},
        samplers=(("dpmpp_2m", "karras"), ("dpmpp_2m_sde", "karras"), ("euler_ancestral", "normal"),
                  ("dpmpp_3m_sde", "exponential"), ("euler", "normal"), ("dpmpp_sde", "karras")),
        steps=(20, 30, 40), cfg=(4.0, 5.5, 7.5),
        loras=(LoraRef(name="add-detail-xl.safetensors", strength_model=0.8, strength_clip=0.8),
               LoraRef(name="xl_more_art-full_v1.safetensors", strength_model=0.6, strength_clip=0.6),
               LoraRef(name="sd_xl_offset_example-lora_1.0.safetensors", strength_model=0.5, strength_clip=0.5)),
        hires=(1.5, 0.45, 15)),
    Family.SDXL_REFINER: Policy(samplers=(("dpmpp_2m", "karras"), ("euler", "normal"), ("dpmpp_2m_sde", "karras")),
                                steps=(30, 40), cfg=(5.0, 8.0)),
    Family.SSD1B: Policy(samplers=(("dpmpp_2m", "karras"), ("euler_ancestral", "normal"), ("dpmpp_2m_sde", "karras")),
                         steps=(20, 30), cfg=(5.0, 9.0), hires=(1.5, 0.45, 15)),
    Family.PLAYGROUND: Policy(samplers=(("dpmpp_2m", "karras"), ("dpmpp_2m_sde", "karras"), ("euler", "karras")),
                              steps=(20, 40, 50), cfg=(2.0, 4.0, 5.0)),
    Family.SD3: Policy(samplers=(("euler", "sgm_uniform"), ("dpmpp_2m", "sgm_uniform"), ("euler", "beta"),
                                 ("dpmpp_2m", "beta")),
                       steps=(20, 35, 50), cfg=(3.5, 5.5, 7.0), fast_steps=(4, 6, 8)),
    Family.FLUX: Policy(samplers=(("euler", "simple"), ("euler", "beta"), ("dpmpp_2m", "sgm_uniform"), ("deis", "beta"),
                                  ("ipndm", "simple")),
                        steps=(16, 28, 35), guidance=(2.5, 3.0, 4.0),
                        loras=(LoraRef(name="flux_realism_lora.safetensors", strength_model=0.8, strength_clip=0.8),),
                        fast_samplers=(("euler", "simple"), ("euler", "beta"), ("dpmpp_2m", "sgm_uniform")),
                        fast_steps=(2, 4, 6, 8)),
    Family.PIXART: Policy(samplers=(("euler", "normal"), ("dpmpp_2m", "karras"), ("dpmpp_2m", "sgm_uniform"),
                                    ("uni_pc", "normal")),
                          steps=(14, 25, 35), cfg=(3.5, 5.5)),
    Family.QWEN_IMAGE: Policy(samplers=(("euler", "simple"), ("res_multistep", "simple"), ("dpmpp_2m", "sgm_uniform")),
                              steps=(30, 40), cfg=(2.0, 4.0)),
    Family.HIDREAM: Policy(samplers=(("uni_pc", "simple"), ("euler", "simple"), ("dpmpp_2m", "sgm_uniform")),
                           steps=(30, 40), cfg=(3.5, 5.0)),
    Family.LUMINA2: Policy(samplers=(("res_multistep", "simple"), ("euler", "simple"), ("dpmpp_2m", "sgm_uniform")),
                           steps=(30, 40), cfg=(3.0, 5.5)),
    Family.CASCADE: Policy(samplers=(("euler_ancestral", "simple"), ("dpmpp_2m", "karras"), ("euler", "simple")),
                           steps=(20, 30), cfg=(3.0, 5.0)),
}
# LoRAs that make a flow what it is (few-step distillations): never removed by a variant.
ESSENTIAL_LORA_MARKERS = ("lcm", "lightning", "hyper", "turbo")
# Checkpoints that are distilled or merged for few steps: never swapped for a full-step model.
FEW_STEP_MARKERS = ("turbo", "lightning", "lcm", "schnell", "hyper")

SAMPLER_NODES = ("KSampler", "KSamplerAdvanced")


@dataclass
class _Draft:
    """A mutable copy of a flow being changed."""

    flow: Flow
    graph: Graph
    slots: dict[str, Any]
    fields: dict[str, Any]

    @classmethod
    def of(cls, flow: Flow) -> "_Draft":
        return cls(flow, _copy_graph(flow.graph), flow.slots.model_dump(), {})

    def nodes(self, *classes: str) -> list[tuple[str, dict]]:
        return [(i, n) for i, n in sorted(self.graph.items(), key=lambda kv: _num(kv[0])) if n["class_type"] in classes]

    def new_id(self) -> str:
        return str(max((_num(i) for i in self.graph), default=0) + 1)


def _copy_graph(graph: Graph) -> Graph:
    """A copy deep enough to edit inputs (values are JSON scalars, links and small lists); faster than deepcopy."""
    return {nid: {**node, "inputs": {k: copy.deepcopy(v) if isinstance(v, (list, dict)) else v
                                     for k, v in node["inputs"].items()}} for nid, node in graph.items()}


def _num(node_id: str) -> int:
    return int(node_id) if node_id.isdigit() else 10**9


def _is_link(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], int)


def _relink(graph: Graph, old: list, new: list, skip: Iterable[str] = ()) -> None:
    skip = set(skip)
    for node_id, node in graph.items():
        if node_id in skip:
            continue
        for k, v in node["inputs"].items():
            if _is_link(v) and v[0] == old[0] and v[1] == old[1]:
                node["inputs"][k] = list(new)


def _few_step(flow: Flow) -> bool:
    names = " ".join(n for _, n in flow.models.files()).lower()
    low_cfg = flow.cfg is not None and flow.cfg <= 2.0 and flow.family != Family.FLUX  # Flux dev runs at CFG 1
    return (flow.steps or 99) <= 8 or low_cfg or any(m in names for m in FEW_STEP_MARKERS)


# -- the changes ---------------------------------------------------------------------------------------
Change = tuple[str, Callable[[_Draft], bool]]  # (description, apply) ; apply returns False when not applicable


def _swap_checkpoint(new: str, policy: Policy) -> Change:
    def apply(d: _Draft) -> bool:
        old = d.flow.models.checkpoint
        if not old or old == new or old not in policy.checkpoints or d.flow.models.unet:
            return False
        hits = [n for _, n in d.nodes("CheckpointLoaderSimple") if n["inputs"].get("ckpt_name") == old]
        if not hits:
            return False
        for n in hits:
            n["inputs"]["ckpt_name"] = new
        d.fields["models"] = d.flow.models.model_copy(update={"checkpoint": new})
        old_style = set(policy.checkpoints[old])
        tags = [t for t in d.fields.get("tags", d.flow.tags) if t not in old_style or t not in STYLE_TAGS]
        d.fields["tags"] = tags + [t for t in policy.checkpoints[new] if t not in tags]
        return True
    return f"checkpoint={new}", apply


def _set_sampler(sampler: str, scheduler: str) -> Change:
    def apply(d: _Draft) -> bool:
        changed = False
        for _, n in d.nodes(*SAMPLER_NODES, "KSamplerSelect", "BasicScheduler"):
            if "sampler_name" in n["inputs"] and n["inputs"]["sampler_name"] != sampler:
                n["inputs"]["sampler_name"], changed = sampler, True
            if "scheduler" in n["inputs"] and n["inputs"]["scheduler"] != scheduler:
                n["inputs"]["scheduler"], changed = scheduler, True
        d.fields.update(sampler=sampler, scheduler=scheduler)
        return changed
    return f"sampler={sampler},scheduler={scheduler}", apply


def _set_steps(steps: int) -> Change:
    def apply(d: _Draft) -> bool:
        advanced = d.nodes("KSamplerAdvanced")
        if advanced:  # base + refiner hand-off: keep the 80/20 split
            split = round(steps * 0.8)
            for _, n in advanced:
                n["inputs"]["steps"] = steps
                if n["inputs"]["start_at_step"] > 0:
                    n["inputs"]["start_at_step"] = split
                else:
                    n["inputs"]["end_at_step"] = split
        else:
            first = [n for _, n in d.nodes("KSampler", "BasicScheduler") if n["inputs"].get("denoise", 1.0) == 1.0]
            if not first or d.nodes("SDTurboScheduler"):
                return False
            for n in first[:1] if d.flow.family == Family.CASCADE else first:
                n["inputs"]["steps"] = steps
        if d.flow.steps == steps:
            return False
        d.fields["steps"] = steps
        return True
    return f"steps={steps}", apply


def _set_cfg(cfg: float) -> Change:
    def apply(d: _Draft) -> bool:
        nodes = d.nodes(*SAMPLER_NODES)
        if d.flow.family == Family.CASCADE:
            nodes = nodes[:1]  # stage B keeps its own low CFG
        if not nodes or d.flow.cfg == cfg:
            return False
        for _, n in nodes:
            n["inputs"]["cfg"] = cfg
        d.fields["cfg"] = cfg
        return True
    return f"cfg={cfg:g}", apply


def _set_guidance(guidance: float) -> Change:
    def apply(d: _Draft) -> bool:
        nodes = d.nodes("FluxGuidance")
        if not nodes or all(n["inputs"]["guidance"] == guidance for _, n in nodes):
            return False
        for _, n in nodes:
            n["inputs"]["guidance"] = guidance
        return True
    return f"guidance={guidance:g}", apply


def _add_lora(lora: LoraRef) -> Change:
    def apply(d: _Draft) -> bool:
        if any(lo.name == lora.name for lo in d.flow.models.loras):
            return False
        new = d.new_id()
        ckpts = d.nodes("CheckpointLoaderSimple")
        if d.flow.models.unet or d.flow.family == Family.FLUX:
            unets = d.nodes("UNETLoader") or ckpts
            if not unets:
                return False
            src = unets[0][0]
            d.graph[new] = {"class_type": "LoraLoaderModelOnly", "inputs": {
                "model": [src, 0], "lora_name": lora.name, "strength_model": lora.strength_model}}
            _relink(d.graph, [src, 0], [new, 0], skip={new})
        else:
            if len(ckpts) != 1:
                return False
            src = ckpts[0][0]
            d.graph[new] = {"class_type": "LoraLoader", "inputs": {
                "model": [src, 0], "clip": [src, 1], "lora_name": lora.name,
                "strength_model": lora.strength_model, "strength_clip": lora.strength_clip}}
            _relink(d.graph, [src, 0], [new, 0], skip={new})
            _relink(d.graph, [src, 1], [new, 1], skip={new})
        d.fields["models"] = d.fields.get("models", d.flow.models).model_copy(
            update={"loras": [*d.flow.models.loras, lora]})
        return True
    return f"+lora={lora.name}@{lora.strength_model:g}", apply


def _remove_lora(name: str) -> Change:
    def apply(d: _Draft) -> bool:
        hits = [(i, n) for i, n in d.nodes("LoraLoader", "LoraLoaderModelOnly") if n["inputs"]["lora_name"] == name]
        if len(hits) != 1:
            return False
        node_id, node = hits[0]
        _relink(d.graph, [node_id, 0], node["inputs"]["model"])
        if node["class_type"] == "LoraLoader":
            _relink(d.graph, [node_id, 1], node["inputs"]["clip"])
        del d.graph[node_id]
        models = d.fields.get("models", d.flow.models)
        d.fields["models"] = models.model_copy(update={"loras": [lo for lo in models.loras if lo.name != name]})
        return True
    return f"-lora={name}", apply


def _add_hires(scale: float, denoise: float, steps: int) -> Change:
    def apply(d: _Draft) -> bool:
        samplers = d.nodes("KSampler")
        decoders = d.nodes("VAEDecode")
        if len(samplers) != 1 or len(decoders) != 1 or d.nodes("LatentUpscaleBy", "LatentUpscale"):
            return False
        k_id, k = samplers[0]
        if decoders[0][1]["inputs"]["samples"] != [k_id, 0]:
            return False
        up, k2 = d.new_id(), str(int(d.new_id()) + 1)
        d.graph[up] = {"class_type": "LatentUpscaleBy", "inputs": {
            "samples": [k_id, 0], "upscale_method": "nearest-exact", "scale_by": scale}}
        d.graph[k2] = {"class_type": "KSampler", "inputs": {**copy.deepcopy(k["inputs"]), "latent_image": [up, 0],
                                                            "steps": steps, "denoise": denoise}}
        decoders[0][1]["inputs"]["samples"] = [k2, 0]
        d.slots["seed"].append({"node": k2, "input": "seed"})
        d.fields["tags"] = [*d.fields.get("tags", d.flow.tags), "hires"]
        return True
    return f"+hires={scale:g}x@{denoise:g}", apply


def _remove_hires() -> Change:
    def apply(d: _Draft) -> bool:
        ups = d.nodes("LatentUpscaleBy")
        if len(ups) != 1:
            return False
        up_id, up = ups[0]
        second = [(i, n) for i, n in d.nodes("KSampler") if n["inputs"]["latent_image"] == [up_id, 0]]
        if len(second) != 1:
            return False
        k2_id = second[0][0]
        _relink(d.graph, [k2_id, 0], up["inputs"]["samples"])
        del d.graph[k2_id], d.graph[up_id]
        d.slots = {k: ([r for r in v if r["node"] not in (k2_id, up_id)] if k != "output" else v)
                   for k, v in d.slots.items()}
        d.fields["tags"] = [t for t in d.fields.get("tags", d.flow.tags) if t != "hires"]
        return True
    return "-hires", apply


# -- selection -----------------------------------------------------------------------------------------
def _h(*parts: str) -> str:
    return hashlib.sha1("|".join(parts).encode()).hexdigest()


def _options(flow: Flow, policy: Policy) -> dict[str, list[Change]]:
    """Candidate changes by kind, each list in a stable pseudo-random order keyed on the flow id."""
    fast = _few_step(flow)
    opts: dict[str, list[Change]] = {}
    if not fast and flow.models.checkpoint in policy.checkpoints and not flow.models.unet:
        opts["checkpoint"] = [_swap_checkpoint(c, policy) for c in policy.checkpoints]
    samplers = policy.fast_samplers if fast else policy.samplers
    opts["sampler"] = [_set_sampler(s, sch) for s, sch in samplers if (s, sch) != (flow.sampler, flow.scheduler)]
    opts["steps"] = [_set_steps(s) for s in (policy.fast_steps if fast else policy.steps) if s != flow.steps]
    if not fast:
        opts["cfg"] = [_set_cfg(c) for c in policy.cfg if c != flow.cfg]
    opts["guidance"] = [_set_guidance(g) for g in policy.guidance] if "FluxGuidance" in _classes(flow) else []
    removable = [lo.name for lo in flow.models.loras if not any(m in lo.name.lower() for m in ESSENTIAL_LORA_MARKERS)]
    opts["lora"] = [_remove_lora(n) for n in removable] + [_add_lora(lo) for lo in policy.loras]
    if policy.hires and not fast:
        opts["hires"] = [_remove_hires()] if "LatentUpscaleBy" in _classes(flow) else [_add_hires(*policy.hires)]
    for kind, changes in opts.items():
        changes.sort(key=lambda c: _h(flow.id, c[0]))
    return {k: v for k, v in opts.items() if v}


def _classes(flow: Flow) -> set[str]:
    return {n["class_type"] for n in flow.graph.values()}


def _plans(flow: Flow, policy: Policy) -> list[list[Change]]:
    """Single changes round-robin over kinds, then pairs (checkpoint or LoRA/hires with a sampler or steps)."""
    opts = _options(flow, policy)
    plans: list[list[Change]] = []
    depth = max((len(v) for v in opts.values()), default=0)
    for i in range(depth):
        for kind in sorted(opts, key=lambda k: _h(flow.id, k)):
            if i < len(opts[kind]):
                plans.append([opts[kind][i]])
    firsts = [c for k in ("checkpoint", "lora", "hires") for c in opts.get(k, [])]
    seconds = [c for k in ("sampler", "steps", "cfg", "guidance") for c in opts.get(k, [])]
    pairs = [[a, b] for a in firsts for b in seconds]
    pairs.sort(key=lambda p: _h(flow.id, p[0][0], p[1][0]))
    # interleave: a pair after every two singles, so a flow's quota mixes both
    out: list[list[Change]] = []
    while plans or pairs:
        out += plans[:2]
        plans = plans[2:]
        if pairs:
            out.append(pairs.pop(0))
    return out


def _make(flow: Flow, plan: list[Change]) -> Flow | None:
    d = _Draft.of(flow)
    for _, apply in plan:
        if not apply(d):
            return None
    changes = [desc for desc, _ in plan]
    vid = f"{flow.id}-v{_h(flow.id, *changes)[:6]}"
    slots = {k: v if k == "output" else [SlotRef(**r) if isinstance(r, dict) else r for r in v]
             for k, v in d.slots.items()}
    update: dict[str, Any] = {
        "id": vid, "name": f"{flow.name} ({'; '.join(changes)})", "graph": d.graph,
        "slots": flow.slots.model_copy(update=slots),
        "provenance": Provenance(kind="variant", parent=flow.id, changes=changes, source=flow.provenance.source),
        **d.fields,
    }
    return flow.model_copy(update=update)


def generate_variants(base: list[Flow], per_flow: int = VARIANTS_PER_FLOW) -> list[Flow]:
    """Variants of every hand-built or imported base flow (never of external or rating-source flows)."""
    seen = {f.graph_hash() for f in base if f.graph}
    out: list[Flow] = []
    for flow in base:
        policy = POLICIES.get(flow.family)
        if policy is None or flow.family == Family.EXTERNAL or flow.provenance.kind in ("rating-source", "variant"):
            continue
        made = 0
        for plan in _plans(flow, policy):
            if made >= per_flow:
                break
            variant = _make(flow, plan)
            if variant is None:
                continue
            h = graph_hash(variant.graph)
            if h in seen:
                continue
            seen.add(h)
            out.append(variant)
            made += 1
    log.debug("generated %d variants from %d base flows", len(out), len(base))
    return out
