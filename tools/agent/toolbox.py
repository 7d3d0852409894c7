"""``LocalToolBox``: the agent's tools over an in-process ``ComfyGen``, without MCP (the eval harness uses it).

The tools mirror the MCP server's (same names, arguments and results), so a model behaves the same
whether it drives ``comfygen serve`` or runs inside an eval.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from ..errors import ComfyGenError, GuardError
from .llm import ToolResult, ToolSpec
from ..app.models import MAX_SAFE_SEED
from ..app.jobs import DEFAULT_WAIT_S
from ..app.service import ComfyGen

logger = logging.getLogger(__name__)


class _ScoreTableArgs(BaseModel):
    categories: list[str] | None = Field(None, description="Category ids from list_categories; empty for all.")
    top_k: int = Field(5, ge=1, le=50, description="Best flows to show per category.")


class _SuggestArgs(BaseModel):
    prompt: str = Field(description="The text-to-image prompt.", min_length=1, max_length=4000)
    k: int = Field(5, ge=1, le=20, description="How many flows to return, best first.")
    target_score: float | None = Field(None, ge=0, le=1, description="Optional quality target in [0, 1].")


class _FlowArgs(BaseModel):
    flow_id: str = Field(description="A flow id from suggest_flows or get_score_table.", min_length=1)
    include_graph: bool = Field(False, description="Include the full ComfyUI API graph (large).")


class _GenerateArgs(BaseModel):
    prompt: str = Field(description="What the image should show.", min_length=1, max_length=4000)
    flow_id: str | None = Field(None, description="Flow to run; empty: the planner's top pick.")
    negative: str | None = Field(None, description="Negative prompt; empty keeps the flow's own.")
    seed: int | None = Field(None, ge=0, le=MAX_SAFE_SEED, description="Seed 0..2^53-1; empty for random.")
    size: str | None = Field(None, description="WIDTHxHEIGHT, multiples of 8; empty for the flow's size.")
    accelerate: Literal["none", "compile", "cache-adaptive", "cache-periodic", "cache-auto", "auto"] = "none"
    candidates: int = Field(1, ge=1, le=16, description="Images in one batch; the best-scoring is returned.")
    wait_s: float = Field(DEFAULT_WAIT_S, ge=0, le=3600, description="Seconds to wait before returning a run id.")


class _RunArgs(BaseModel):
    run_id: str = Field(description="The run id that generate returned.", min_length=1)
    wait_s: float = Field(DEFAULT_WAIT_S, ge=0, le=3600, description="Seconds to wait if the run is still going.")


class _ScoreArgs(BaseModel):
    run_id: str | None = Field(None, description="A run id from generate.")
    path: str | None = Field(None, description="Or: an image file.")
    prompt: str | None = Field(None, description="Prompt to score against; defaults to the run's prompt.")


class _NoArgs(BaseModel):
    pass


TOOLS: dict[str, tuple[type[BaseModel], str]] = {
    "list_categories": (_NoArgs, "The prompt categories the score table is organised by."),
    "get_score_table": (_ScoreTableArgs, "The best flows per prompt category with their mean quality scores."),
    "suggest_flows": (_SuggestArgs, "Rank flows for a prompt: detected categories, best flows, predicted scores."),
    "get_flow": (_FlowArgs, "A flow's models, sampler, steps, size, tags and requirements."),
    "generate": (_GenerateArgs, "Run a flow for the prompt, score the images, return the best with its scores."),
    "get_run": (_RunArgs, "A run's status, scores and image; waits for a run that is still going."),
    "score_image": (_ScoreArgs, "Quality scores of an image for a prompt (higher is better)."),
    "comfyui_status": (_NoArgs, "The ComfyUI servers: health, queue, and which flows can run on them."),
}


class LocalToolBox:
    """The agent's ToolBox over ``cg`` (an entered ``ComfyGen``)."""

    def __init__(self, cg: ComfyGen, *, images: bool = True):
        self.cg = cg
        self.images = images

    async def list_tools(self) -> list[ToolSpec]:
        return [ToolSpec(name=name, description=desc, input_schema=model.model_json_schema())
                for name, (model, desc) in TOOLS.items()]

    async def call(self, name: str, arguments: dict[str, Any],
                   on_progress: Callable[[float, float | None, str | None], Awaitable[None]] | None = None
                   ) -> ToolResult:
        if name not in TOOLS:
            return ToolResult(call_id="", name=name, is_error=True,
                              text=f"unknown tool {name!r}; tools: {', '.join(TOOLS)}")
        try:
            args = TOOLS[name][0].model_validate(arguments or {})
            out = await self._dispatch(name, args, on_progress)
        except ValidationError as e:
            return ToolResult(call_id="", name=name, is_error=True, text=f"invalid arguments for {name}: {e}")
        except ComfyGenError as e:
            text = e.message + (f"\nWhat to do: {e.hint}" if e.hint else "")
            return ToolResult(call_id="", name=name, is_error=True, text=text)
        data = out.model_dump(mode="json")
        result = ToolResult(call_id="", name=name, text=json.dumps(data), structured=data)
        if self.images and name in ("generate", "get_run") and data.get("image_path"):
            try:
                from ..images import thumbnail

                thumb, mime = thumbnail(data["image_path"])
                result.images.append((mime, base64.b64encode(thumb).decode()))
            except (OSError, ValueError) as e:
                logger.warning("no thumbnail: %s", e)
        return result

    async def _dispatch(self, name: str, a: Any, on_progress: Any) -> BaseModel:
        cg = self.cg
        if name == "list_categories":
            return cg.list_categories()
        if name == "get_score_table":
            return cg.score_table(a.categories, a.top_k)
        if name == "suggest_flows":
            await cg.refresh_installed()
            return cg.suggest(a.prompt, k=a.k, target_score=a.target_score)
        if name == "get_flow":
            return cg.flow_out(cg.get_flow(a.flow_id), include_graph=a.include_graph)
        if name == "generate":
            width, height = _size(a.size)
            return await cg.generate(a.prompt, flow_id=a.flow_id or None, negative=a.negative, seed=a.seed,
                                     width=width, height=height, accelerate=a.accelerate, candidates=a.candidates,
                                     wait_s=a.wait_s, report=on_progress)
        if name == "get_run":
            return await cg.get_run(a.run_id, wait_s=a.wait_s, report=on_progress)
        if name == "score_image":
            return await _score(cg, a)
        return await cg.status()


def _size(size: str | None) -> tuple[int | None, int | None]:
    if not size:
        return None, None
    parts = size.lower().replace("×", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise GuardError(f"size {size!r} is not WIDTHxHEIGHT", hint="write it like 1024x768")
    return int(parts[0]), int(parts[1])


async def _score(cg: ComfyGen, a: _ScoreArgs) -> BaseModel:
    if bool(a.run_id) == bool(a.path):
        raise GuardError("give exactly one of run_id or path", hint="pass the run_id that generate returned")
    path, prompt = a.path, a.prompt
    if a.run_id:
        record = cg.record(a.run_id)
        if not record.outputs:
            raise GuardError(f"run {a.run_id} has no image (status {record.status})", hint="wait with get_run")
        path, prompt = record.outputs[0].path, prompt or record.prompt
    if not prompt:
        raise GuardError("prompt is required when scoring a path", hint="pass the prompt the image was made for")
    return await cg.score_path(str(path), prompt)
