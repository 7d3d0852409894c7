"""Realise candidate noises inside a stock ComfyUI graph (core nodes only).

Two ways, both exact:

* **seeded** (plain draws, any model family): the flow's own sampler keeps its seeded noise; the empty
  latent gets an explicit ``batch_index`` through ``LatentFromBatch``, so batch item ``k`` starts from
  ``draw(seed, k)`` (``comfy.sample.prepare_noise`` with ``noise_inds``), whether it runs in a batch or
  alone.
* **latent** (weighted sums of draws, EPS / v-prediction families): each term ``c * draw(s, k)`` is
  materialised as a latent by ``AddNoise(model, RandomNoise(s), SetFirstSigma([1, 0], |c| * K),
  LatentFromBatch(EmptyLatentImage(k + 1), k))``, summed with ``LatentAdd`` / ``LatentSubtract``, the
  candidates joined with ``LatentBatch``, and the sampler runs with its noise disabled. ComfyUI then
  starts sampling from ``process_latent_in(latent) = K * sum(c * draw)``, where ``K = sqrt(1 + sigma0^2)``
  is exactly the factor its sampler applies to seeded noise at full denoise. Flow-matching models
  (SD3, Flux) scale the latent by ``1 - sigma0 = 0`` at the first step, so this path refuses them.

:func:`probe_graph` turns a search graph into one that returns the sampler's *starting* latent
(``SamplerCustomAdvanced`` over the first sigma only, ``SaveLatent``): used to check on a real ComfyUI
that the noise a candidate starts from is the one the search meant.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from ...flow_library.model import Family, Graph
from ..errors import FlowError
from .initial_noise import MAX_INDEX, NoiseSpec, discrete_sigma_max, eps_start_scale

SAMPLERS = ("KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced")
EMPTY_LATENTS = ("EmptyLatentImage", "EmptySD3LatentImage", "EmptyHunyuanLatentVideo", "EmptyMochiLatentVideo")
# Families whose sampler computes x_T = latent + K * noise with the standard discrete schedule.
LATENT_FAMILIES = {Family.SD15, Family.SD21, Family.SDXL, Family.SSD1B, Family.SDXL_REFINER}


def _is_link(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and isinstance(v[1], int) and not isinstance(v[1], bool)


class _Ids:
    def __init__(self, graph: Graph, prefix: str = "ns"):
        self.graph, self.prefix, self.n = graph, prefix, 0

    def add(self, class_type: str, **inputs: Any) -> str:
        while True:
            self.n += 1
            nid = f"{self.prefix}{self.n}"
            if nid not in self.graph:
                break
        self.graph[nid] = {"class_type": class_type, "inputs": inputs}
        return nid


def find_noise_sampler(graph: Graph) -> tuple[str, str]:
    """(sampler node id, empty-latent node id) of the sampler that starts from an empty latent."""
    found: list[tuple[str, str]] = []
    for nid, node in graph.items():
        if node.get("class_type") not in SAMPLERS:
            continue
        src = node.get("inputs", {}).get("latent_image")
        if _is_link(src) and graph.get(str(src[0]), {}).get("class_type") in EMPTY_LATENTS:
            found.append((nid, str(src[0])))
    if len(found) != 1:
        raise FlowError(
            f"noise search needs exactly one sampler fed by an empty latent; found {len(found)}",
            hint="use a text-to-image flow whose first sampler (KSampler, KSamplerAdvanced, SamplerCustom or "
                 "SamplerCustomAdvanced) reads an EmptyLatentImage",
        )
    return found[0]


def _sampler_model(graph: Graph, sampler: str) -> list:
    node = graph[sampler]
    if "model" in node["inputs"]:
        return node["inputs"]["model"]
    guider = node["inputs"].get("guider")
    if _is_link(guider) and "model" in graph[str(guider[0])]["inputs"]:
        return graph[str(guider[0])]["inputs"]["model"]
    raise FlowError(f"cannot find the model feeding sampler {sampler}", hint="use a KSampler-based flow")


def _check_contiguous(indices: Sequence[int]) -> None:
    if not indices or list(indices) != list(range(indices[0], indices[0] + len(indices))):
        raise ValueError(f"batch indices must be a contiguous range, got {list(indices)}")
    if indices[0] > MAX_INDEX or len(indices) > MAX_INDEX + 1:
        raise ValueError("batch indices must start at most at 63 and span at most 64 items")


def seeded_graph(graph: Graph, seed: int, indices: Sequence[int]) -> Graph:
    """Candidates ``draw(seed, k)`` for ``k`` in the contiguous ``indices``, one ComfyUI batch."""
    _check_contiguous(indices)
    g = copy.deepcopy(graph)
    sampler, empty = find_noise_sampler(g)
    ids = _Ids(g)
    start, n = indices[0], len(indices)
    empty_node = copy.deepcopy(g[empty])
    empty_node["inputs"]["batch_size"] = start + n
    new_empty = ids.add(empty_node["class_type"], **empty_node["inputs"])
    pick = ids.add("LatentFromBatch", samples=[new_empty, 0], batch_index=start, length=n)
    node = g[sampler]
    node["inputs"]["latent_image"] = [pick, 0]
    _set_seed(g, sampler, seed)
    return g


def _set_seed(g: Graph, sampler: str, seed: int) -> None:
    node = g[sampler]
    ct, inputs = node["class_type"], node["inputs"]
    if ct == "KSampler":
        inputs["seed"] = seed
    elif ct == "KSamplerAdvanced":
        inputs["noise_seed"] = seed
        inputs["add_noise"] = "enable"
    elif ct == "SamplerCustom":
        inputs["noise_seed"] = seed
        inputs["add_noise"] = True
    else:  # SamplerCustomAdvanced: its NOISE comes from a node
        inputs["noise"] = [_Ids(g).add("RandomNoise", noise_seed=seed), 0]


def start_scale(family: Family | str) -> float:
    """K: the factor the sampler applies to unit noise at full denoise, for latent-mode families."""
    fam = Family(family)
    if fam not in LATENT_FAMILIES:
        raise FlowError(
            f"weighted noise combinations cannot be realised with core nodes for the {fam.value} family",
            hint="use random search for this flow (it needs only seeded noise and works on every family), "
                 "or pick an SD1.5 / SD2.x / SDXL flow for zero-order search",
        )
    return eps_start_scale(discrete_sigma_max())


def _check_latent_flow(g: Graph, sampler: str) -> None:
    for nid, node in g.items():
        if str(node.get("class_type", "")).startswith("ModelSampling"):
            raise FlowError(f"node {nid} ({node['class_type']}) changes the noise schedule; zero-order search "
                            "cannot reproduce the starting noise through it", hint="use random search for this flow")
    inputs = g[sampler]["inputs"]
    if g[sampler]["class_type"] == "KSampler" and float(inputs.get("denoise", 1.0)) != 1.0:
        raise FlowError("the noise sampler denoises less than 1.0", hint="use a plain text-to-image flow")
    if g[sampler]["class_type"] == "KSamplerAdvanced" and int(inputs.get("start_at_step", 0)) != 0:
        raise FlowError("the noise sampler starts after step 0", hint="use a plain text-to-image flow")


def latent_graph(graph: Graph, specs: Sequence[NoiseSpec], family: Family | str) -> Graph:
    """One ComfyUI batch whose item ``i`` starts from ``K * realise(specs[i])`` (EPS families)."""
    if not specs:
        raise ValueError("no candidates")
    k_scale = start_scale(family)
    g = copy.deepcopy(graph)
    sampler, empty = find_noise_sampler(g)
    _check_latent_flow(g, sampler)
    ids = _Ids(g)
    model = _sampler_model(g, sampler)
    width, height = g[empty]["inputs"]["width"], g[empty]["inputs"]["height"]
    unit_sigmas = ids.add("KarrasScheduler", steps=1, sigma_max=1.0, sigma_min=0.5, rho=7.0)  # [1, 0]
    picks: dict[int, str] = {}

    def pick(index: int) -> str:
        if index not in picks:
            e = ids.add("EmptyLatentImage", width=width, height=height, batch_size=index + 1)
            picks[index] = ids.add("LatentFromBatch", samples=[e, 0], batch_index=index, length=1)
        return picks[index]

    batch: str | None = None
    for spec in specs:
        terms = sorted(spec.terms, key=lambda t: t.coef < 0)  # a positive term first when there is one
        acc: str | None = None
        for t in terms:
            noise = ids.add("RandomNoise", noise_seed=t.seed)
            sig = ids.add("SetFirstSigma", sigmas=[unit_sigmas, 0], sigma=abs(t.coef) * k_scale)
            lat = ids.add("AddNoise", model=model, noise=[noise, 0], sigmas=[sig, 0], latent_image=[pick(t.index), 0])
            if acc is None:
                acc = lat if t.coef >= 0 else ids.add("LatentMultiply", samples=[lat, 0], multiplier=-1.0)
            else:
                acc = ids.add("LatentAdd" if t.coef >= 0 else "LatentSubtract", samples1=[acc, 0], samples2=[lat, 0])
        assert acc is not None
        batch = acc if batch is None else ids.add("LatentBatch", samples1=[batch, 0], samples2=[acc, 0])
    assert batch is not None
    node = g[sampler]
    node["inputs"]["latent_image"] = [batch, 0]
    ct = node["class_type"]
    if ct == "KSampler":
        inputs = node["inputs"]
        node["class_type"] = "KSamplerAdvanced"
        node["inputs"] = {
            "model": inputs["model"], "add_noise": "disable", "noise_seed": inputs["seed"], "steps": inputs["steps"],
            "cfg": inputs["cfg"], "sampler_name": inputs["sampler_name"], "scheduler": inputs["scheduler"],
            "positive": inputs["positive"], "negative": inputs["negative"], "latent_image": [batch, 0],
            "start_at_step": 0, "end_at_step": 10000, "return_with_leftover_noise": "disable",
        }
    elif ct == "KSamplerAdvanced":
        node["inputs"]["add_noise"] = "disable"
    elif ct == "SamplerCustom":
        node["inputs"]["add_noise"] = False
    else:
        node["inputs"]["noise"] = [ids.add("DisableNoise"), 0]
    return g


def pack_graph(graph: Graph, specs: Sequence[NoiseSpec]) -> Graph:
    """One ComfyUI batch whose item ``i`` starts from ``realise(specs[i])`` as the sampler's NOISE, through
    the ``ComfyGenNoise`` node (``comfygen comfyui install-nodes``). Works for every family; the sampler
    becomes ``SamplerCustomAdvanced`` when it is not one already."""
    from .nodepack import NODE, noises_json

    if not specs:
        raise ValueError("no candidates")
    g = copy.deepcopy(graph)
    sampler, empty = find_noise_sampler(g)
    ids = _Ids(g)
    empty_node = copy.deepcopy(g[empty])
    empty_node["inputs"]["batch_size"] = len(specs)
    latent = ids.add(empty_node["class_type"], **empty_node["inputs"])
    noise = ids.add(NODE, noises=noises_json(specs), noise_seed=specs[0].terms[0].seed)
    node = g[sampler]
    ct, inputs = node["class_type"], node["inputs"]
    if ct == "SamplerCustomAdvanced":
        inputs["noise"], inputs["latent_image"] = [noise, 0], [latent, 0]
        return g
    if ct == "KSamplerAdvanced" and int(inputs.get("start_at_step", 0)) != 0:
        raise FlowError("the noise sampler starts after step 0", hint="use a plain text-to-image flow")
    guider = ids.add("CFGGuider", model=inputs["model"], positive=inputs["positive"], negative=inputs["negative"],
                     cfg=inputs["cfg"])
    if ct == "SamplerCustom":
        sampler_link, sigmas = inputs["sampler"], inputs["sigmas"]
    else:
        sampler_link = [ids.add("KSamplerSelect", sampler_name=inputs["sampler_name"]), 0]
        sigmas = [ids.add("BasicScheduler", model=inputs["model"], scheduler=inputs["scheduler"],
                          steps=inputs["steps"], denoise=float(inputs.get("denoise", 1.0))), 0]
    g[sampler] = {"class_type": "SamplerCustomAdvanced", "inputs": {
        "noise": [noise, 0], "guider": [guider, 0], "sampler": sampler_link, "sigmas": sigmas,
        "latent_image": [latent, 0]}}
    return g


def probe_graph(graph: Graph, *, prefix: str = "comfygen_probe") -> Graph:
    """Turn a search graph into one that saves the latent the noise sampler *starts* from.

    The noise sampler becomes ``SamplerCustomAdvanced`` with the flow's first sigma only
    (``SplitSigmas`` at step 0): ComfyUI applies its noise handling and scaling, runs zero steps and
    returns ``process_latent_out(x_T)``, which ``SaveLatent`` writes. Everything downstream of the
    sampler is dropped.
    """
    g = copy.deepcopy(graph)
    sampler = None
    for nid, node in g.items():
        src = node.get("inputs", {}).get("latent_image")
        if node.get("class_type") in ("KSampler", "KSamplerAdvanced") and _is_link(src):
            up = g.get(str(src[0]), {}).get("class_type")
            if up in ("LatentFromBatch", "LatentBatch", "LatentAdd", "LatentSubtract", "AddNoise", "LatentMultiply"):
                sampler = nid
        if node.get("class_type") == "SamplerCustomAdvanced" and _is_link(node["inputs"].get("noise")) and \
                g.get(str(node["inputs"]["noise"][0]), {}).get("class_type") == "ComfyGenNoise":
            sampler = nid
    if sampler is None:
        raise FlowError("no rewritten noise sampler in this graph", hint="probe a graph from seeded_graph/latent_graph")
    inputs = g[sampler]["inputs"]
    if g[sampler]["class_type"] == "SamplerCustomAdvanced":
        _drop_downstream(g, sampler)
        ids = _Ids(g, "probe")
        inputs["sigmas"] = [ids.add("SplitSigmas", sigmas=inputs["sigmas"], step=0), 0]
        ids.add("SaveLatent", samples=[sampler, 0], filename_prefix=f"latents/{prefix}")
        return g
    enabled = g[sampler]["class_type"] == "KSampler" or inputs.get("add_noise", "enable") == "enable"
    seed = inputs.get("seed", inputs.get("noise_seed", 0))
    _drop_downstream(g, sampler)
    ids = _Ids(g, "probe")
    noise = ids.add("RandomNoise", noise_seed=seed) if enabled else ids.add("DisableNoise")
    guider = ids.add("CFGGuider", model=inputs["model"], positive=inputs["positive"], negative=inputs["negative"],
                     cfg=inputs["cfg"])
    sel = ids.add("KSamplerSelect", sampler_name="euler")
    sched = ids.add("BasicScheduler", model=inputs["model"], scheduler=inputs["scheduler"], steps=inputs["steps"],
                    denoise=1.0)
    first = ids.add("SplitSigmas", sigmas=[sched, 0], step=0)
    g[sampler] = {"class_type": "SamplerCustomAdvanced", "inputs": {
        "noise": [noise, 0], "guider": [guider, 0], "sampler": [sel, 0], "sigmas": [first, 0],
        "latent_image": inputs["latent_image"]}}
    ids.add("SaveLatent", samples=[sampler, 0], filename_prefix=f"latents/{prefix}")
    return g


def _drop_downstream(g: Graph, node_id: str) -> None:
    """Remove every node that reads (directly or not) from ``node_id``."""
    downstream = {node_id}
    changed = True
    while changed:
        changed = False
        for nid, node in g.items():
            if nid not in downstream and any(_is_link(v) and str(v[0]) in downstream for v in node["inputs"].values()):
                downstream.add(nid)
                changed = True
    for nid in downstream - {node_id}:
        del g[nid]
