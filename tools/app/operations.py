"""The registry of comfygen's operations: each one defined once, as a typed request, a handler and a typed result.

``OPERATIONS`` is what every surface serves. ``server/mcp_tools.py`` turns each into an MCP tool (the
SDK's ``Tool.from_function`` pattern, one layer down), ``tools/agent/toolbox.py`` into the in-process
agent's tool box (the eval harness's ComfyGen-IC agent sees what an MCP client sees), and the CLI calls
:func:`invoke` for the commands that are these operations. A surface adds only what is its own: how
progress is shown, whether a cancelled call was a cancel, how a preview image travels.

    request model (requests.py)  ->  check()  ->  handler(cg, request, call)  ->  result model (models.py)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import ComfyGenError, ComfyUIError, GuardError
from .client_choice import ClientChoice, apply_choice
from .jobs import CancelCheck
from .models import (
    CategoriesOut, FlowOut, FlowRow, FlowsOut, RunOut, RunsOut, ScoresOut, ScoreTableOut, SearchOut, StatusOut, SuggestOut,
)
from .progress import ReportFn
from .requests import (
    FlowRequest, GenerateRequest, GetRunRequest, ListFlowsRequest, ListRunsRequest, NoArgs, Request, ScoreRequest,
    ScoreTableRequest, SearchRequest, SuggestRequest, parse_size,
)
from .service import ComfyGen

logger = logging.getLogger(__name__)

Req = TypeVar("Req", bound=Request)
Res = TypeVar("Res", bound=BaseModel)


@dataclass(frozen=True)
class Hints:
    """What a call does to the world (MCP tool annotations; also useful to any other surface)."""

    read_only: bool
    open_world: bool
    idempotent: bool | None = None
    destructive: bool | None = None


TOOL_SURFACES = frozenset({"mcp", "agent", "cli"})
CLI_ONLY = frozenset({"cli"})  # what the CLI does beyond the tools an LLM gets (browsing the library, the run log)

READ = Hints(read_only=True, open_world=False, idempotent=True, destructive=False)
RUNS = Hints(read_only=False, open_world=True, idempotent=False, destructive=False)


@dataclass
class Call:
    """What the surface knows about one call: where progress goes, whether a cancel was asked for, and, for
    ``suggest_flows(mode="llm")``, what the caller's own model answered (None: it could not be asked)."""

    report: ReportFn | None = None
    cancel_if: CancelCheck | None = None
    client_choice: ClientChoice | None = None


@dataclass(frozen=True)
class Operation(Generic[Req, Res]):
    name: str
    title: str
    description: str
    request: type[Req]
    result: type[Res]
    handler: Callable[[ComfyGen, Req, Call], Awaitable[Res]]
    hints: Hints = READ
    image: Callable[[Res], str | None] | None = None  # the image a result previews, if any
    asks_client_model: bool = False  # suggest_flows(mode="llm"): the surface may ask the caller's model first
    surfaces: frozenset[str] = TOOL_SURFACES  # where it is served: "mcp", "agent" (the tool boxes), "cli"

    def parse(self, arguments: dict[str, Any] | None) -> Req:
        """The request from raw arguments, validated and checked (``ValidationError`` or ``GuardError``)."""
        req = self.request.model_validate(arguments or {})
        req.check()
        return req

    async def run(self, cg: ComfyGen, req: Req, call: Call | None = None) -> Res:
        return await self.handler(cg, req, call or Call())


# ---------------------------------------------------------------- handlers
async def _list_categories(cg: ComfyGen, _req: NoArgs, _call: Call) -> CategoriesOut:
    return cg.list_categories()


async def _score_table(cg: ComfyGen, req: ScoreTableRequest, _call: Call) -> ScoreTableOut:
    return cg.score_table(req.categories, req.top_k)


async def _suggest(cg: ComfyGen, req: SuggestRequest, call: Call) -> SuggestOut:
    await cg.refresh_installed()
    # the planner and classifier run a small network: keep the event loop free for other sessions
    out = await asyncio.to_thread(cg.suggest, req.prompt, k=req.k, target_score=req.target_score)
    if req.mode == "llm":
        return apply_choice(cg, out, call.client_choice, req.k)
    return out


async def _get_flow(cg: ComfyGen, req: FlowRequest, _call: Call) -> FlowOut:
    return cg.flow_out(cg.get_flow(req.flow_id), include_graph=req.include_graph)


async def _generate(cg: ComfyGen, req: GenerateRequest, call: Call) -> RunOut:
    width, height = parse_size(req.size)
    return await cg.generate(req.prompt, flow_id=req.flow_id or None, negative=req.negative, seed=req.seed,
                             width=width, height=height, accelerate=req.accelerate, candidates=req.candidates,
                             wait_s=req.wait_s, report=call.report, cancel_if=call.cancel_if)


async def _score_image(cg: ComfyGen, req: ScoreRequest, _call: Call) -> ScoresOut:
    path, prompt = req.path, req.prompt
    if req.run_id:
        record = cg.record(req.run_id)
        if not record.outputs:
            raise GuardError(f"run {req.run_id} has no image (status {record.status})",
                             hint="wait for it with get_run first")
        path, prompt = str(record.outputs[0].path), prompt or record.prompt
    assert path is not None and prompt is not None  # ScoreRequest.check
    return await cg.score_path(path, prompt)


async def _status(cg: ComfyGen, _req: NoArgs, _call: Call) -> StatusOut:
    return await cg.status()


async def _get_run(cg: ComfyGen, req: GetRunRequest, call: Call) -> RunOut:
    return await cg.get_run(req.run_id, wait_s=req.wait_s, report=call.report, cancel_if=call.cancel_if)


async def _noise_search(cg: ComfyGen, req: SearchRequest, call: Call) -> SearchOut:
    from .noise_search import noise_search

    width, height = parse_size(req.size)
    return await noise_search(cg, req.prompt, flow_id=req.flow_id or None, algorithm=req.algorithm,
                              budget=req.budget, width=width, height=height, seed=req.seed, negative=req.negative,
                              wall_time_s=req.wall_time_s, report=call.report, wait_s=req.wait_s,
                              cancel_if=call.cancel_if)


async def _list_flows(cg: ComfyGen, req: ListFlowsRequest, _call: Call) -> FlowsOut:
    cats = cg.check_categories(req.categories) if req.categories else []
    flows = cg.library.filter(family=req.family, tag=req.tag)
    if req.base_only:
        flows = [f for f in flows if f.provenance.kind != "variant"]
    scores: dict[str, float] = {}
    if cats:
        ranked = cg.table.top_k(cats, k=len(cg.library), flows=[f.id for f in flows])
        scores = {r.flow_id: r.score for r in ranked}
        order = {fid: i for i, fid in enumerate(scores)}
        flows.sort(key=lambda f: (order.get(f.id, len(order)), f.id))
    return FlowsOut(categories=cats, flows=[
        FlowRow(id=f.id, family=f.family.value, name=f.name, tags=list(f.tags), steps=f.steps, cfg=f.cfg,
                provenance=f.provenance.kind, parent=f.provenance.parent, score=scores.get(f.id),
                measured=(f.id in scores) if cats else None) for f in flows])


async def _list_runs(cg: ComfyGen, req: ListRunsRequest, _call: Call) -> RunsOut:
    recs = cg.store.list(flow_id=req.flow_id, status=req.status, prompt_contains=req.prompt_contains, limit=req.limit)
    return RunsOut(runs=[r.model_copy(update={"graph": {}}) for r in recs])


def _run_image(out: RunOut) -> str | None:
    return out.image_path


def _search_image(out: SearchOut) -> str | None:
    return out.best.image_path


OPERATIONS: dict[str, Operation[Any, Any]] = {op.name: op for op in [
    Operation("list_categories", "List prompt categories",
              "The prompt categories (people, anime, food, ...) that the score table is organised by.",
              NoArgs, CategoriesOut, _list_categories),
    Operation("get_score_table", "Score table",
              "The best flows per prompt category with their mean quality scores: the context for choosing a flow "
              "yourself (ComfyGen-IC). Pick the categories that match the prompt, then pass a flow_id to generate.",
              ScoreTableRequest, ScoreTableOut, _score_table),
    Operation("suggest_flows", "Suggest flows for a prompt",
              "Rank flows for a prompt: detected categories, the best flows with predicted scores and why (at most "
              "two of one model, so the rest are other models to try). The fast path: call generate with the first "
              "flow_id (or without flow_id to use the top pick).",
              SuggestRequest, SuggestOut, _suggest, asks_client_model=True),
    Operation("get_flow", "Describe a flow",
              "A flow's models, sampler, steps, size, tags and requirements (and optionally its ComfyUI graph).",
              FlowRequest, FlowOut, _get_flow),
    Operation("generate", "Generate an image",
              "Run a flow on ComfyUI for the prompt, score the images and return the best one: a small preview "
              "image, its scores, the run id and the full-resolution path (also readable as run://<run_id>). A run "
              "still going after wait_s returns its run_id with status \"running\"; it goes on even if this session "
              "ends (only cancelling this call cancels it): get_run finishes it, in this session or a later one.",
              GenerateRequest, RunOut, _generate, hints=RUNS, image=_run_image),
    Operation("score_image", "Score an image",
              "Quality scores of an image for a prompt (the ensemble of reward models: higher is better).",
              ScoreRequest, ScoresOut, _score_image, hints=Hints(read_only=True, open_world=False, idempotent=True)),
    Operation("comfyui_status", "ComfyUI status",
              "The configured ComfyUI servers: health, queue, installed models, and which flows can run on them.",
              NoArgs, StatusOut, _status, hints=Hints(read_only=True, open_world=True)),
    Operation("get_run", "Get (or wait for) a run",
              "A run's status, scores and image. For a run that was still going when generate returned, this waits "
              "for it (up to wait_s) and returns the image when it is done.",
              GetRunRequest, RunOut, _get_run, hints=Hints(read_only=True, open_world=True), image=_run_image),
    Operation("noise_search", "Search noises for a better image",
              "Generate many candidates from different initial noises, score them all, return the best one "
              "(preview, scores, run id, path). Slower than generate, and better when one image must be as good "
              "as possible. A search still going after wait_s returns a run_id (\"search-...\") with status "
              "\"running\": get_run with it returns the best image when the search ends.",
              SearchRequest, SearchOut, _noise_search, hints=RUNS, image=_search_image),
    Operation("list_flows", "List flows",
              "The flow library, filtered by family, tag or kind; with categories, ranked by the score table "
              "(unmeasured flows last).", ListFlowsRequest, FlowsOut, _list_flows, surfaces=CLI_ONLY),
    Operation("list_runs", "List runs", "Recorded runs, newest first, filtered by flow, status or prompt text "
              "(graphs left out).", ListRunsRequest, RunsOut, _list_runs, surfaces=CLI_ONLY),
]}


def served_on(surface: str) -> list[Operation[Any, Any]]:
    """The operations a surface serves ("mcp", "agent" or "cli"), in registry order."""
    return [op for op in OPERATIONS.values() if surface in op.surfaces]


def operation(name: str) -> Operation[Any, Any]:
    try:
        return OPERATIONS[name]
    except KeyError:
        raise GuardError(f"unknown operation {name!r}", hint=f"use one of {', '.join(OPERATIONS)}") from None


async def invoke(cg: ComfyGen, name: str, arguments: dict[str, Any] | None = None, call: Call | None = None
                 ) -> BaseModel:
    """Run an operation from raw arguments (what the CLI does): arguments that do not fit its request raise a
    ``GuardError`` listing each problem."""
    op = operation(name)
    try:
        req = op.parse(arguments)
    except ValidationError as e:
        raise GuardError(render_invalid(op.name, e), hint=f"`comfygen call --list` shows what {op.name} takes") from None
    return await op.run(cg, req, call)


# ---------------------------------------------------------------- errors, for every surface
def render_error(e: ComfyGenError) -> str:
    """One readable message: what went wrong, ComfyUI's node errors, the URL tried, what to change."""
    lines = [e.message]
    node_errors = (e.details or {}).get("node_errors") or {}
    if any(f"node {node_id}" in e.message for node_id in node_errors):
        node_errors = {}  # the message already lists them
    for node_id, info in list(node_errors.items())[:10]:
        for err in (info or {}).get("errors", [])[:3]:
            detail = err.get("details") or ""
            lines.append(f"  node {node_id} ({info.get('class_type', '?')}): {err.get('type', 'error')}: "
                         f"{err.get('message', '')}{' - ' + detail if detail else ''}")
    if isinstance(e, ComfyUIError) and e.url:
        lines.append(f"ComfyUI URL tried: {e.url}")
    if e.hint:
        lines.append(f"What to do: {e.hint}")
    return "\n".join(lines)


def render_invalid(name: str, e: ValidationError) -> str:
    """Arguments that do not fit the schema, one line each: where, what was wrong."""
    lines = [f"invalid arguments for {name}:"]
    for err in e.errors(include_url=False)[:10]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "(arguments)"
        lines.append(f"  {where}: {err.get('msg', 'invalid')}")
    return "\n".join(lines)


__all__ = ["Call", "Hints", "OPERATIONS", "Operation", "invoke", "operation", "render_error", "render_invalid",
           "served_on"]
