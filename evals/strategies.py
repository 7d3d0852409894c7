"""Strategies under comparison: how each one turns a prompt (and a seed) into an image.

Kinds (``kind:`` in a config):

- ``flow``: one flow for every prompt. A monolithic baseline ("single model": any checkpoint's plain flow)
  or a fixed popular flow; the paper's baselines are both of this kind.
- ``flows``: a user-defined list of flows, expanded into one ``flow`` strategy per entry.
- ``planner`` (ComfyGen-FT): the trained planner's top executable flow for the prompt.
- ``planner_search``: the planner's flow plus inference-time noise search (N candidates, best by verifiers);
  with ``flow:`` set, that fixed flow plus noise search instead.
- ``agent`` (ComfyGen-IC): the LLM agent loop choosing, running, scoring and retrying.

Every strategy gets the same prompts and the same seeds; strategies that choose a flow (``flow``, ``planner``)
hand the run to the pipeline, which reuses a stored run of the same (flow, prompt, seed, parameters).
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from ..flow_library.library import FlowLibrary
from ..flow_library.model import Flow
from ..tools.app.ranking import rank_flows
from ..tools.errors import ConfigError, FlowNotFound
from .prompts import Prompt

log = logging.getLogger(__name__)

Kind = Literal["flow", "flows", "planner", "planner_search", "agent"]


class SearchSpec(BaseModel):
    mode: Literal["random", "zero_order"] = Field("random", description="Noise search algorithm.")
    candidates: int = Field(4, ge=1, description="Images generated per prompt (random) or per step budget.")
    steps: int = Field(2, ge=1, description="Zero-order search steps.")
    verifiers: list[str] = Field(default_factory=lambda: ["imagereward"], description="Scorers that pick the best.")


class AgentSpec(BaseModel):
    provider: str = Field("anthropic", description="LLM adapter: anthropic | openai (OpenAI-compatible).")
    model: str | None = Field(None, description="LLM model name (adapter default when None).")
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint URL.")
    max_attempts: int = Field(3, ge=1, description="Runs the agent may make per prompt.")


class StrategySpec(BaseModel):
    """One strategy in an eval config."""

    name: str | None = Field(None, description="Label in tables (default: derived from kind and flow).")
    kind: Kind
    flow: str | None = Field(None, description="Flow id (kind flow; kind planner_search: search on this flow).")
    flows: list[str] = Field(default_factory=list, description="Flow ids (kind flows).")
    planner_dir: str | None = Field(None, description="Planner artifact dir (default: the bundled planner).")
    target_score: float | None = Field(None, description="Planner target score (ComfyGen-FT conditions on it).")
    top_k: int = Field(10, ge=1, description="Planner predictions to consider before giving up.")
    only: list[str] = Field(default_factory=list, description="Planner: choose only among flows matching these "
                            "ids or glob patterns (e.g. 'sdxl-*'), such as the flows your ComfyUI can run.")
    search: SearchSpec | None = None
    agent: AgentSpec | None = None

    @model_validator(mode="after")
    def _fields(self) -> "StrategySpec":
        if self.kind == "flow" and not self.flow:
            raise ValueError("kind 'flow' needs 'flow: <flow id>'")
        if self.kind == "flows" and not self.flows:
            raise ValueError("kind 'flows' needs 'flows: [<flow id>, ...]'")
        if self.kind == "planner_search" and self.search is None:
            self.search = SearchSpec()
        if self.kind == "agent" and self.agent is None:
            self.agent = AgentSpec()
        return self

    def label(self) -> str:
        if self.name:
            return self.name
        return {"flow": self.flow or "flow", "planner": "comfygen-ft", "planner_search": "comfygen-ft+search",
                "agent": "comfygen-ic"}.get(self.kind, self.kind)

    def expand(self) -> list["StrategySpec"]:
        if self.kind != "flows":
            return [self]
        return [StrategySpec(name=f"{self.name}:{f}" if self.name else f, kind="flow", flow=f) for f in self.flows]


@dataclass
class Choice:
    flow: Flow
    note: str = ""


@dataclass
class Strategy:
    """A built strategy. ``choose`` picks a flow for a prompt (every kind picks one first; ``planner_search``
    and ``agent`` then do more than one plain run, see :mod:`comfygen.evals.runner`)."""

    spec: StrategySpec
    library: FlowLibrary
    _planner: Any = None
    _cache: dict[str, Choice] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.label()

    @property
    def kind(self) -> str:
        return self.spec.kind

    def planner(self) -> Any:
        if self._planner is None:
            try:
                from ..tools.planner import Planner
            except ImportError as e:
                raise ConfigError("the planner is not available in this install",
                                  hint="install comfygen with its planner, or drop the planner strategies") from e
            from pathlib import Path

            self._planner = Planner.load(Path(self.spec.planner_dir) if self.spec.planner_dir else None)
        return self._planner

    def choose(self, prompt: Prompt) -> Choice:
        if prompt.id in self._cache:
            return self._cache[prompt.id]
        if self.spec.kind == "flow":
            choice = Choice(_executable(self.library, self.spec.flow or ""), "fixed")
        elif self.spec.kind == "planner_search" and self.spec.flow:
            choice = Choice(_executable(self.library, self.spec.flow), "fixed flow + noise search")
        elif self.spec.kind in ("planner", "planner_search"):
            choice = self._plan(prompt)
        elif self.spec.kind == "agent":
            raise ConfigError("the agent strategy chooses inside its own loop", hint="use runner.produce_agent")
        else:  # pragma: no cover - 'flows' is expanded before building
            raise ConfigError(f"strategy kind {self.spec.kind!r} cannot choose", hint="expand 'flows' first")
        self._cache[prompt.id] = choice
        return choice

    def _plan(self, prompt: Prompt) -> Choice:
        allowed = {f.id for f in self.library if f.executable
                   and (not self.spec.only or any(fnmatch.fnmatchcase(f.id, pat) for pat in self.spec.only))}
        preds = rank_flows(self.planner(), prompt.text, self.library, k=self.spec.top_k,
                           target_score=self.spec.target_score, allowed=allowed)
        if preds:
            score = getattr(preds[0], "score", None)
            return Choice(self.library.get(preds[0].flow_id), "planner's top allowed flow" +
                          (f", predicted {score:.3f}" if isinstance(score, float) else ""))
        raise ConfigError(f"the planner proposed no executable flow among its top {self.spec.top_k} for "
                          f"{prompt.text[:60]!r}", hint="raise top_k, or add the missing flows to the library")


def _executable(library: FlowLibrary, flow_id: str) -> Flow:
    try:
        flow = library.get(flow_id)
    except FlowNotFound as e:
        raise ConfigError(f"strategy flow {flow_id!r} is not in the flow library", hint=e.hint) from e
    if not flow.executable:
        raise ConfigError(f"flow {flow_id!r} is a reference flow and cannot run on ComfyUI",
                          hint="pick an executable flow (`comfygen flows list`)")
    return flow


def build_strategies(specs: list[StrategySpec], library: FlowLibrary) -> list[Strategy]:
    out: list[Strategy] = []
    for spec in specs:
        for s in spec.expand():
            if s.flow and s.kind in ("flow", "planner_search"):
                _executable(library, s.flow)  # fail before any run starts
            out.append(Strategy(s, library))
    names = [s.name for s in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"duplicate strategy names {dupes}", hint="give each strategy a distinct 'name:'")
    return out
