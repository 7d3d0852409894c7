"""Acceleration rewrite: wrap the diffusion model that feeds the sampler(s) in a compile or cache node.

Modes: ``none | compile | cache-adaptive | cache-periodic | cache-auto | auto``.

Which node, in order of preference (the first one the endpoint's ``object_info`` has):

=================  =================================================  ==========================
mode               Pruna (pack ``ComfyUI_pruna``)                     core ComfyUI fallback
=================  =================================================  ==========================
compile            ``PrunaCompileModel(compiler="torch_compile")``    ``TorchCompileModel(inductor)``
cache-adaptive     ``CacheModelAdaptive(threshold .01, skip 4)``      ``EasyCache``, then ``LazyCache``
cache-periodic     ``CacheModelPeriodic(interval 2, start 2)``        ``EasyCache``, then ``LazyCache``
cache-auto         ``CacheModelAuto(speed_factor .5)``                ``EasyCache``, then ``LazyCache``
=================  =================================================  ==========================

Core ComfyUI has no periodic or target-speed cacher: those modes fall back to EasyCache's adaptive
reuse, and the plan's ``reason`` says so. Pruna's cache nodes run with ``compiler="none"`` here so that
a cache mode only caches (Pruna's own default adds torch.compile, which needs ComfyUI started with
``--disable-cuda-malloc``); pass ``options={"compiler": "torch_compile"}`` to combine them. Pruna's
caching and its ``x_fast`` compiler need ``pruna_pro`` on the ComfyUI host; the open-source ``pruna``
package only compiles. The schema cannot tell the two apart, so a cache node on a host without
pruna_pro fails at run time with "requires pruna_pro".

``auto`` picks per flow: nothing for few-step flows (turbo, lightning, LCM, hyper: <= 10 steps, where
skipping steps costs quality and a compile's warm-up is not paid back) and for families Pruna and the
core cachers do not target (Stable Cascade, DeepFloyd); otherwise caching (Pruna auto caching for the
Stable Diffusion UNet families and Flux, which Pruna's nodes are made for; else EasyCache, else
LazyCache), and compilation when no cacher is installed.

Where the node goes: on every MODEL link that feeds a sampler or guider (a node whose outputs include
LATENT or GUIDER), after loaders, LoRAs and model patches (FreeU, PAG, ModelSampling*...). Caching
and compilation then wrap the final, fully patched model: patches registered on the ModelPatcher are
kept by the clone that the cache/compile nodes make, and the cache sees the same function the sampler
calls. One accelerator node per distinct model source: a base and a refiner model get one each, a
hires-fix pass that reuses the base model shares it. Schedulers (``BasicScheduler``...) keep reading
the unwrapped model; they only need its sampling parameters.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field

from ...flow_library.model import Family
from ..errors import ConfigError, GuardError
from .core import Graph, Schema, bundled_schema, is_link, iter_links, link_type, new_node_id, output_types

log = logging.getLogger(__name__)

AccelMode = Literal["none", "compile", "cache-adaptive", "cache-periodic", "cache-auto", "auto"]
ACCEL_MODES: tuple[str, ...] = get_args(AccelMode)

PRUNA_PACK = "ComfyUI_pruna"
PRUNA_NODES: dict[str, tuple[str, dict[str, Any]]] = {
    "compile": ("PrunaCompileModel", {"compiler": "torch_compile"}),
    "cache-adaptive": ("CacheModelAdaptive", {"threshold": 0.01, "max_skip_steps": 4, "cache_mode": "default",
                                              "compiler": "none"}),
    "cache-periodic": ("CacheModelPeriodic", {"cache_interval": 2, "start_step": 2, "cache_mode": "default",
                                              "compiler": "none"}),
    "cache-auto": ("CacheModelAuto", {"speed_factor": 0.5, "cache_mode": "default", "compiler": "none"}),
}
_CORE_CACHE = {"reuse_threshold": 0.2, "start_percent": 0.15, "end_percent": 0.95, "verbose": False}
CORE_NODES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "compile": [("TorchCompileModel", {"backend": "inductor"})],
    "cache-adaptive": [("EasyCache", dict(_CORE_CACHE)), ("LazyCache", dict(_CORE_CACHE))],
    "cache-periodic": [("EasyCache", dict(_CORE_CACHE)), ("LazyCache", dict(_CORE_CACHE))],
    "cache-auto": [("EasyCache", dict(_CORE_CACHE)), ("LazyCache", dict(_CORE_CACHE))],
}
ACCEL_CLASSES = frozenset([c for c, _ in PRUNA_NODES.values()] + [c for v in CORE_NODES.values() for c, _ in v])

FEW_STEPS = 10
NO_AUTO_FAMILIES = {Family.CASCADE, Family.DEEPFLOYD, Family.EXTERNAL}
# Pruna's ComfyUI nodes are made and benchmarked for Stable Diffusion UNets and Flux; `auto` uses them
# only there (an explicit mode still inserts them on any family).
PRUNA_FAMILIES = {Family.SD15, Family.SD21, Family.SDXL, Family.SDXL_REFINER, Family.SSD1B, Family.PLAYGROUND,
                  Family.FLUX}
_SINK_OUTPUTS = {"LATENT", "GUIDER"}


class AccelPlan(BaseModel):
    """What an acceleration request resolves to on a given endpoint."""

    mode: str = Field(description="The mode that was asked for.")
    resolved: str = Field(description="The concrete mode applied: none, compile, cache-adaptive, ...")
    node_class: str | None = Field(None, description="The node class inserted, or None.")
    provider: Literal["pruna", "core"] | None = None
    inputs: dict[str, Any] = Field(default_factory=dict, description="Node inputs besides the model link.")
    reason: str = ""


def _available(schema: Schema, cls: str) -> bool:
    return cls in schema


def _install_hint(mode: str) -> str:
    core = " / ".join(c for c, _ in CORE_NODES[mode])
    return (f"install Pruna's nodes on the ComfyUI host (git clone https://github.com/PrunaAI/ComfyUI_pruna into "
            f"custom_nodes, pip install pruna{'_pro' if mode.startswith('cache') else ''}, restart ComfyUI), "
            f"or update ComfyUI to a version with {core}; or use --accelerate none")


def _choose(mode: str, schema: Schema, *, pruna: bool = True) -> tuple[str, dict[str, Any],
                                                                       Literal["pruna", "core"]] | None:
    cls, inputs = PRUNA_NODES[mode]
    if pruna and _available(schema, cls):
        return cls, dict(inputs), "pruna"
    for cls, inputs in CORE_NODES[mode]:
        if _available(schema, cls):
            return cls, dict(inputs), "core"
    return None


def flow_steps(graph: Graph) -> int | None:
    """The largest sampler step count in the graph (KSampler, KSamplerAdvanced, BasicScheduler...)."""
    steps = [v for node in graph.values() for k, v in node.get("inputs", {}).items()
             if k == "steps" and isinstance(v, int) and not isinstance(v, bool)]
    return max(steps) if steps else None


def plan_acceleration(graph: Graph, mode: str, *, schema: Schema | None, family: Family | str | None = None,
                      steps: int | None = None, options: dict[str, Any] | None = None) -> AccelPlan:
    """Resolve ``mode`` against the endpoint's node schema (``object_info``); raise when it cannot be met."""
    if mode not in ACCEL_MODES:
        raise GuardError(f"unknown acceleration mode {mode!r}", hint=f"use one of: {', '.join(ACCEL_MODES)}")
    schema = schema if schema is not None else bundled_schema()
    if mode == "none":
        return AccelPlan(mode=mode, resolved="none", reason="no acceleration asked for")
    if mode == "auto":
        return _plan_auto(graph, schema, family, steps, options)
    choice = _choose(mode, schema)
    if choice is None:
        wanted = [PRUNA_NODES[mode][0]] + [c for c, _ in CORE_NODES[mode]]
        raise ConfigError(f"--accelerate {mode}: the ComfyUI endpoint has none of the nodes {', '.join(wanted)}",
                          hint=_install_hint(mode))
    cls, inputs, provider = choice
    reason = f"{cls} from {'Pruna' if provider == 'pruna' else 'core ComfyUI'}"
    if provider == "core" and mode in ("cache-periodic", "cache-auto"):
        reason += f" (core ComfyUI has no {mode.split('-')[1]} cacher; {cls} reuses steps adaptively)"
    inputs = _with_options(cls, inputs, options, schema)
    return AccelPlan(mode=mode, resolved=mode, node_class=cls, provider=provider, inputs=inputs, reason=reason)


def _plan_auto(graph: Graph, schema: Schema, family: Family | str | None, steps: int | None,
               options: dict[str, Any] | None) -> AccelPlan:
    steps = steps if steps is not None else flow_steps(graph)
    fam = Family(family) if family is not None and family in Family._value2member_map_ else None
    if fam in NO_AUTO_FAMILIES:
        return AccelPlan(mode="auto", resolved="none", reason=f"no accelerator targets the {fam} family")
    if steps is not None and steps <= FEW_STEPS:
        return AccelPlan(mode="auto", resolved="none",
                         reason=f"few-step flow ({steps} steps): caching would skip too much, compiling does not pay")
    if not _model_sources(graph, schema):
        return AccelPlan(mode="auto", resolved="none", reason="the graph has no diffusion model feeding a sampler")
    for mode in ("cache-auto", "compile"):
        choice = _choose(mode, schema, pruna=fam is None or fam in PRUNA_FAMILIES)
        if choice is not None:
            cls, inputs, provider = choice
            return AccelPlan(mode="auto", resolved=mode, node_class=cls, provider=provider,
                             inputs=_with_options(cls, inputs, options, schema),
                             reason=f"{steps or '?'}-step {fam or 'unknown-family'} flow: {cls}")
    return AccelPlan(mode="auto", resolved="none", reason="the endpoint has no compile or cache nodes")


def _with_options(cls: str, inputs: dict[str, Any], options: dict[str, Any] | None, schema: Schema) -> dict[str, Any]:
    if not options:
        return inputs
    spec = {**schema.get(cls, {}).get("input", {}).get("required", {}),
            **schema.get(cls, {}).get("input", {}).get("optional", {})}
    out = dict(inputs)
    for key, value in options.items():
        if key not in inputs:
            continue  # options meant for another node class (e.g. Pruna's 'threshold' on EasyCache)
        bounds = spec.get(key, [None, {}])
        meta = bounds[1] if len(bounds) > 1 and isinstance(bounds[1], dict) else {}
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            lo, hi = meta.get("min"), meta.get("max")
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise GuardError(f"{cls}.{key}={value} is outside [{lo}, {hi}]",
                                 hint=f"pick {key} between {lo} and {hi}")
        out[key] = value
    return out


def _model_sources(graph: Graph, schema: Schema) -> dict[tuple[str, int], list[tuple[str, str]]]:
    """MODEL outputs that feed samplers/guiders: (source node, output index) -> [(consumer, input)]."""
    sources: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for consumer, name, link in iter_links(graph):
        if link_type(graph, link, schema) != "MODEL":
            continue
        outs = set(output_types(graph[consumer]["class_type"], schema) or ())
        if not outs & _SINK_OUTPUTS or "MODEL" in outs:
            continue
        sources.setdefault((str(link[0]), link[1]), []).append((consumer, name))
    return sources


def accelerate(graph: Graph, mode: str, *, schema: Schema | None, family: Family | str | None = None,
               steps: int | None = None, options: dict[str, Any] | None = None) -> Graph:
    """Return a copy of ``graph`` with the acceleration node for ``mode`` inserted (see module doc).

    ``schema``: the endpoint's ``object_info`` (None: the bundled stock-ComfyUI schema). Raises
    ConfigError naming what to install when the endpoint has no suitable node, GuardError for an unknown
    mode or out-of-range ``options``. ``auto`` never raises for a missing node: it leaves the graph as is.
    """
    return apply_plan(graph, plan_acceleration(graph, mode, schema=schema, family=family, steps=steps,
                                               options=options), schema=schema)


def apply_plan(graph: Graph, plan: AccelPlan, *, schema: Schema | None) -> Graph:
    out = copy.deepcopy(graph)
    if plan.node_class is None:
        return out
    schema = schema if schema is not None else bundled_schema()
    sources = _model_sources(out, schema)
    if not sources:
        raise GuardError(f"--accelerate {plan.mode}: the graph has no diffusion model feeding a sampler",
                         hint="use --accelerate none for this flow")
    for (src, idx), uses in sorted(sources.items()):
        if out[src]["class_type"] in ACCEL_CLASSES:
            continue  # already accelerated: never wrap twice
        node_id = new_node_id(out)
        out[node_id] = {"class_type": plan.node_class, "inputs": {"model": [src, idx], **plan.inputs},
                        "_meta": {"title": f"{plan.node_class} (comfygen --accelerate {plan.mode})"}}
        for consumer, name in uses:
            out[consumer]["inputs"][name] = [node_id, 0]
    return out


def accel_nodes(graph: Graph) -> list[str]:
    """Ids of acceleration nodes in a graph."""
    return [nid for nid, node in graph.items() if node.get("class_type") in ACCEL_CLASSES]


__all__ = ["ACCEL_MODES", "ACCEL_CLASSES", "AccelPlan", "PRUNA_NODES", "CORE_NODES", "PRUNA_PACK", "accelerate",
           "apply_plan", "plan_acceleration", "flow_steps", "accel_nodes", "is_link"]
