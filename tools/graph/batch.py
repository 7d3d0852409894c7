"""Batching (N images in one ComfyUI prompt) and the hook points for noise injection.

Latent *sources* are nodes that output LATENT and read no LATENT link: empty-latent nodes
(``EmptyLatentImage``, ``EmptySD3LatentImage``, ``StableCascade_EmptyLatentImage``...) and encoders
(``VAEEncode``). :func:`set_batch` sets ``batch_size`` on every source that feeds a sampler, and puts a
``RepeatLatentBatch`` after sources without one (img2img). Second passes (hires fix, refiner) read the
first sampler's LATENT output, so they are batched through it and never twice.

Noise injection (used by noise search): :func:`find_samplers` lists the sampler nodes in execution
order with where their model, seed and latent come from; :func:`find_latent_source` walks a sampler's
``latent_image`` back to its source. A search that wants to start from its own noise replaces the
first-pass sampler's ``latent_image`` (e.g. with a ``LatentBatch`` of prepared latents) via
:func:`replace_latent_input`, and/or its seed input (``seed`` on KSampler, ``noise_seed`` on
KSamplerAdvanced and RandomNoise) via :func:`set_seed`.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, Field

from ...flow_library.model import Flow
from ..errors import GuardError
from .core import Graph, Schema, consumers, is_link, link_type, new_node_id, output_types, topo_order

REPEAT_MAX = 64  # RepeatLatentBatch.amount max in ComfyUI


class SamplerInfo(BaseModel):
    """One sampling node and its noise-relevant inputs."""

    node: str
    class_type: str
    latent_input: str | None = Field(None, description="Input name holding the starting latent.")
    latent_source: str | None = Field(None, description="Node id of the latent's source (empty latent / encoder).")
    first_pass: bool = Field(True, description="True when the latent comes straight from a source, not a sampler.")
    seed_node: str | None = Field(None, description="Node holding this sampler's seed (itself or a RandomNoise).")
    seed_input: str | None = None
    add_noise: bool = True


_SAMPLER_LATENT_INPUTS = ("latent_image", "samples", "latent")


def _latent_inputs(graph: Graph, node_id: str, schema: Schema | None) -> list[tuple[str, list[Any]]]:
    return [(k, v) for k, v in graph[node_id].get("inputs", {}).items()
            if is_link(v) and str(v[0]) in graph and link_type(graph, v, schema) == "LATENT"]


def is_latent_source(graph: Graph, node_id: str, schema: Schema | None = None) -> bool:
    outs = output_types(graph[node_id]["class_type"], schema) or []
    return "LATENT" in outs and not _latent_inputs(graph, node_id, schema)


def find_latent_source(graph: Graph, node_id: str, schema: Schema | None = None) -> str | None:
    """Follow LATENT links up from ``node_id`` to the source node (first LATENT input at each step)."""
    seen: set[str] = set()
    current = node_id
    while current not in seen:
        seen.add(current)
        if current != node_id and is_latent_source(graph, current, schema):
            return current
        links = _latent_inputs(graph, current, schema)
        if not links:
            return current if current != node_id else None
        preferred = [v for k, v in links if k in _SAMPLER_LATENT_INPUTS] or [v for _, v in links]
        current = str(preferred[0][0])
    return None


def _is_sampler(graph: Graph, node_id: str, schema: Schema | None) -> bool:
    node = graph[node_id]
    outs = output_types(node["class_type"], schema) or []
    ins = node.get("inputs", {})
    if "LATENT" not in outs:
        return False
    has_noise = any(k in ins for k in ("seed", "noise_seed", "noise"))
    return has_noise and any(k in ins for k in _SAMPLER_LATENT_INPUTS)


def find_samplers(graph: Graph, schema: Schema | None = None) -> list[SamplerInfo]:
    """Sampling nodes in execution order (KSampler, KSamplerAdvanced, SamplerCustom(Advanced), ...)."""
    out = []
    for nid in topo_order(graph):
        if not _is_sampler(graph, nid, schema):
            continue
        node = graph[nid]
        ins = node["inputs"]
        latent_input = next((k for k in _SAMPLER_LATENT_INPUTS if k in ins), None)
        first_pass, source = True, None
        if latent_input and is_link(ins[latent_input]):
            up = str(ins[latent_input][0])
            source = find_latent_source(graph, nid, schema)
            chain_has_sampler = False
            cur = up
            visited: set[str] = set()
            while cur in graph and cur not in visited and cur != source:
                visited.add(cur)
                if _is_sampler(graph, cur, schema):
                    chain_has_sampler = True
                    break
                links = _latent_inputs(graph, cur, schema)
                if not links:
                    break
                cur = str(links[0][1][0])
            first_pass = not chain_has_sampler
        seed_node, seed_input = None, None
        if "seed" in ins:
            seed_node, seed_input = nid, "seed"
        elif "noise_seed" in ins:
            seed_node, seed_input = nid, "noise_seed"
        elif is_link(ins.get("noise")) and str(ins["noise"][0]) in graph:
            nn = str(ins["noise"][0])
            if "noise_seed" in graph[nn].get("inputs", {}):
                seed_node, seed_input = nn, "noise_seed"
        add_noise = ins.get("add_noise", "enable") != "disable" and ins.get("add_noise", True) is not False
        if is_link(ins.get("noise")) and str(ins["noise"][0]) in graph:
            add_noise = graph[str(ins["noise"][0])]["class_type"] != "DisableNoise"
        out.append(SamplerInfo(node=nid, class_type=node["class_type"], latent_input=latent_input,
                               latent_source=source, first_pass=first_pass, seed_node=seed_node,
                               seed_input=seed_input, add_noise=add_noise))
    return out


def set_seed(graph: Graph, seed: int, *, samplers: list[SamplerInfo] | None = None) -> Graph:
    """Copy of ``graph`` with every sampler's seed (or the given samplers') set to ``seed``."""
    out = copy.deepcopy(graph)
    for info in samplers if samplers is not None else find_samplers(out):
        if info.seed_node and info.seed_input:
            out[info.seed_node]["inputs"][info.seed_input] = seed
    return out


def replace_latent_input(graph: Graph, sampler: str, link: list[Any]) -> Graph:
    """Copy of ``graph`` with ``sampler``'s starting latent taken from ``link`` ([node_id, output])."""
    out = copy.deepcopy(graph)
    info = next((s for s in find_samplers(out) if s.node == sampler), None)
    if info is None or info.latent_input is None:
        raise GuardError(f"node {sampler} is not a sampler with a latent input",
                         hint="pick a node from find_samplers(graph)")
    out[sampler]["inputs"][info.latent_input] = list(link)
    return out


def add_node(graph: Graph, class_type: str, inputs: dict[str, Any], title: str | None = None) -> str:
    """Add a node in place; returns its new id."""
    node_id = new_node_id(graph)
    graph[node_id] = {"class_type": class_type, "inputs": inputs}
    if title:
        graph[node_id]["_meta"] = {"title": title}
    return node_id


def latent_sources(graph: Graph, schema: Schema | None = None) -> list[str]:
    """Sources feeding at least one sampler (in execution order, no duplicates)."""
    seen: list[str] = []
    for info in find_samplers(graph, schema):
        if info.latent_source and info.latent_source not in seen and info.first_pass:
            seen.append(info.latent_source)
    return seen


def set_batch(graph: Graph, flow: Flow | None, n: int, *, schema: Schema | None = None) -> Graph:
    """Copy of ``graph`` producing ``n`` images per sampler in one prompt.

    Uses the flow's ``batch`` slots when it has them; otherwise sets ``batch_size`` on every latent
    source feeding a first-pass sampler, and inserts ``RepeatLatentBatch`` after sources that have no
    ``batch_size`` (an encoded input image).
    """
    if not isinstance(n, int) or n < 1:
        raise GuardError(f"batch {n} must be a whole number >= 1", hint="ask for at least one image")
    out = copy.deepcopy(graph)
    if flow is not None and flow.slots.batch:
        for ref in flow.slots.batch:
            out[ref.node]["inputs"][ref.input] = n
        return out
    sources = latent_sources(out, schema)
    if not sources:
        if n == 1:
            return out
        raise GuardError("cannot batch this flow: no latent source feeds a sampler",
                         hint="run it several times instead of asking for a batch")
    for src in sources:
        ins = out[src]["inputs"]
        if "batch_size" in ins and not is_link(ins["batch_size"]):
            ins["batch_size"] = n
            continue
        if n == 1:
            continue
        if n > REPEAT_MAX:
            raise GuardError(f"batch {n} is above {REPEAT_MAX} for an image-to-image source",
                             hint=f"ask for at most {REPEAT_MAX} images")
        latent_idx = (output_types(out[src]["class_type"], schema) or ["LATENT"]).index("LATENT")
        uses = consumers(out, src, latent_idx)
        rep = add_node(out, "RepeatLatentBatch", {"samples": [src, latent_idx], "amount": n},
                       title="batch (comfygen)")
        for consumer, name in uses:
            out[consumer]["inputs"][name] = [rep, 0]
    return out


def graph_batch(graph: Graph, schema: Schema | None = None) -> int:
    """Images per prompt the graph will produce (product of batch_size / RepeatLatentBatch on the path)."""
    total = 1
    for src in latent_sources(graph, schema):
        ins = graph[src]["inputs"]
        size = ins.get("batch_size", 1) if not is_link(ins.get("batch_size")) else 1
        for consumer, _ in consumers(graph, src):
            if graph[consumer]["class_type"] == "RepeatLatentBatch":
                amt = graph[consumer]["inputs"].get("amount", 1)
                size *= amt if isinstance(amt, int) else 1
        total = max(total, size if isinstance(size, int) else 1)
    return total
