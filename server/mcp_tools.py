"""The MCP tools: typed inputs with descriptions for an LLM, pydantic outputs, thin glue over ``ComfyGen``.

Every comfygen error becomes a tool error the model can act on (what was wrong, what to change, the
ComfyUI URL tried); anything unexpected is logged and reported as a tool error too, so the server
never dies on a tool call.
"""

from __future__ import annotations

import base64
import functools
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ImageContent, TextContent, ToolAnnotations
from pydantic import Field

from ..tools.app.models import (
    MAX_SAFE_SEED, CategoriesOut, FlowOut, RunOut, ScoresOut, ScoreTableOut, StatusOut, SuggestOut,
)
from ..tools.app.jobs import DEFAULT_WAIT_S
from ..tools.app.service import ComfyGen
from ..tools.errors import ComfyGenError, ComfyUIError, GuardError
from .mcp_sampling import SampledChoice, llm_choice, sample_choice

try:
    from mcp.shared.direct_dispatcher import DIRECT_TRANSPORT_KIND as IN_PROCESS
except ImportError:  # pragma: no cover - other SDK versions
    IN_PROCESS = "direct"

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
RUNS = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
SIZE_RE = re.compile(r"^\s*(\d{2,5})\s*[xX×]\s*(\d{2,5})\s*$")

Prompt = Annotated[str, Field(description="What the image should show, in plain words (the text-to-image prompt).",
                              min_length=1, max_length=4000)]


def format_error(e: ComfyGenError) -> str:
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


def tool_errors(fn: F) -> F:
    """Turn comfygen errors into tool errors, and crashes into a logged, generic tool error."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except ToolError:
            raise
        except ComfyGenError as e:
            raise ToolError(format_error(e)) from e
        except (ValueError, KeyError, OSError) as e:
            logger.exception("tool %s failed", fn.__name__)
            raise ToolError(f"{type(e).__name__}: {e}") from e

    return wrapper  # type: ignore[return-value]


def service(ctx: Context) -> ComfyGen:
    return ctx.request_context.lifespan_context


def cancel_requested(ctx: Context) -> Callable[[], bool]:
    """Whether the client cancelled this call (``notifications/cancelled``), as opposed to going away.

    A cancelled call cancels its run (ComfyUI interrupts it); a call whose session closed, or whose
    HTTP stream dropped, leaves the run going, for ``get_run`` in a later session. When the SDK does
    not say, runs are kept: losing GPU work is the worse mistake.
    """
    try:
        outbound = getattr(ctx.request_context.session, "_request_outbound")
        event, kind = outbound.cancel_requested, outbound.transport.kind
    except (AttributeError, ValueError):
        logger.debug("this MCP SDK does not expose cancel_requested: runs outlive cancelled calls")
        return lambda: False
    if kind == IN_PROCESS:  # an in-process caller: its task's cancellation is the caller's own doing
        return lambda: True
    return event.is_set


def reporter(ctx: Context) -> Callable[[float, float | None, str], Awaitable[None]]:
    async def report(progress: float, total: float | None, message: str) -> None:
        await ctx.report_progress(progress, total, message)

    return report


def parse_size(size: str | None) -> tuple[int | None, int | None]:
    if size is None or not size.strip():
        return None, None
    m = SIZE_RE.match(size)
    if not m:
        raise GuardError(f"size {size!r} is not WIDTHxHEIGHT", hint="write it like 1024x768, or leave it empty for the "
                                                                     "flow's own size")
    return int(m.group(1)), int(m.group(2))


def with_image(out: RunOut, *, max_side: int = 512, max_bytes: int = 300_000) -> CallToolResult:
    """A tool result with the structured run, its JSON as text, and a small thumbnail of the best image."""
    content: list[Any] = [TextContent(text=out.model_dump_json(exclude_none=True))]
    if out.image_path:
        try:
            from ..tools.images import thumbnail

            data, mime = thumbnail(out.image_path, max_side=max_side, max_bytes=max_bytes)
            content.append(ImageContent(data=base64.b64encode(data).decode(), mime_type=mime))
        except (OSError, ValueError, ComfyGenError) as e:
            logger.warning("no thumbnail for %s: %s", out.image_path, e)
    return CallToolResult(content=content, structured_content=out.model_dump(mode="json"))


def register_tools(mcp: MCPServer) -> None:
    @mcp.tool(title="List prompt categories", annotations=READ_ONLY)
    @tool_errors
    async def list_categories(ctx: Context) -> CategoriesOut:
        """The prompt categories (people, anime, food, ...) that the score table is organised by."""
        return service(ctx).list_categories()

    @mcp.tool(title="Score table", annotations=READ_ONLY)
    @tool_errors
    async def get_score_table(
        ctx: Context,
        categories: Annotated[list[str] | None, Field(
            description="Category ids from list_categories; empty for all categories.", max_length=30)] = None,
        top_k: Annotated[int, Field(description="Best flows to show per category.", ge=1, le=50)] = 5,
    ) -> ScoreTableOut:
        """The best flows per prompt category with their mean quality scores: the context for choosing a flow
        yourself (ComfyGen-IC). Pick the categories that match the prompt, then pass a flow_id to generate."""
        return service(ctx).score_table(categories, top_k)

    @mcp.tool(title="Suggest flows for a prompt", annotations=READ_ONLY)
    @tool_errors
    async def suggest_flows(
        ctx: Context,
        prompt: Prompt,
        sampled: Annotated[SampledChoice, sample_choice],
        k: Annotated[int, Field(description="How many flows to return, best first.", ge=1, le=20)] = 5,
        target_score: Annotated[float | None, Field(
            description="Optional quality target in [0, 1]: prefer cheaper flows predicted to reach it.",
            ge=0.0, le=1.0)] = None,
        mode: Annotated[Literal["planner", "llm"], Field(
            description="'planner': the bundled planner ranks flows (fast). 'llm': your own model chooses from the "
                        "score table via MCP sampling, if this client supports sampling.")] = "planner",
    ) -> SuggestOut:
        """Rank flows for a prompt: detected categories, the best flows with predicted scores and why. The fast
        path: call generate with the first flow_id (or without flow_id to use the top pick)."""
        cg = service(ctx)
        await cg.refresh_installed()
        # the planner and classifier run a small transformer: keep the event loop free for other sessions
        out = await anyio.to_thread.run_sync(lambda: cg.suggest(prompt, k=k, target_score=target_score))
        if mode == "llm":
            return llm_choice(cg, out, sampled, k)
        return out

    @mcp.tool(title="Describe a flow", annotations=READ_ONLY)
    @tool_errors
    async def get_flow(
        ctx: Context,
        flow_id: Annotated[str, Field(description="A flow id from suggest_flows or get_score_table.",
                                      min_length=1, max_length=200)],
        include_graph: Annotated[bool, Field(description="Include the full ComfyUI API graph (large).")] = False,
    ) -> FlowOut:
        """A flow's models, sampler, steps, size, tags and requirements (and optionally its ComfyUI graph)."""
        cg = service(ctx)
        return cg.flow_out(cg.get_flow(flow_id), include_graph=include_graph)

    @mcp.tool(title="Generate an image", annotations=RUNS)
    @tool_errors
    async def generate(
        ctx: Context,
        prompt: Prompt,
        flow_id: Annotated[str | None, Field(
            description="Flow to run; empty: the planner's top pick for this prompt.", max_length=200)] = None,
        negative: Annotated[str | None, Field(description="Negative prompt; empty keeps the flow's own.",
                                              max_length=4000)] = None,
        seed: Annotated[int | None, Field(description="Seed for reproducibility, an integer 0..9007199254740991 "
                                                      "(2^53-1, exact in every JSON client); empty for random.",
                                          ge=0, le=MAX_SAFE_SEED)] = None,
        size: Annotated[str | None, Field(description="WIDTHxHEIGHT, multiples of 8, e.g. 1024x768; empty for "
                                                      "the flow's own size.", max_length=20)] = None,
        accelerate: Annotated[Literal["none", "compile", "cache-adaptive", "cache-periodic", "cache-auto", "auto"],
                              Field(description="Speed-up rewrite (Pruna or core ComfyUI nodes).")] = "none",
        candidates: Annotated[int, Field(description="Images to make in one batch; the best-scoring is returned.",
                                         ge=1, le=16)] = 1,
        wait_s: Annotated[float, Field(description="Seconds to wait before returning the run id of a run that is "
                                                   "still going (then call get_run).", ge=0, le=3600)] = DEFAULT_WAIT_S,
    ) -> Annotated[CallToolResult, RunOut]:
        """Run a flow on ComfyUI for the prompt, score the images and return the best one: a small preview image,
        its scores, the run id and the full-resolution path (also readable as run://<run_id>). A run still going
        after wait_s returns its run_id with status "running"; it goes on even if this session ends (only
        cancelling this call cancels it): get_run finishes it, in this session or a later one."""
        width, height = parse_size(size)
        out = await service(ctx).generate(prompt, flow_id=flow_id or None, negative=negative, seed=seed, width=width,
                                          height=height, accelerate=accelerate, candidates=candidates,
                                          wait_s=wait_s, report=reporter(ctx), cancel_if=cancel_requested(ctx))
        return with_image(out)

    @mcp.tool(title="Score an image", annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True,
                                                                  open_world_hint=False))
    @tool_errors
    async def score_image(
        ctx: Context,
        run_id: Annotated[str | None, Field(description="A run id from generate.", max_length=100)] = None,
        path: Annotated[str | None, Field(description="Or: an image file on the server's disk.",
                                          max_length=4096)] = None,
        prompt: Annotated[str | None, Field(description="Prompt to score against; defaults to the run's prompt.",
                                            max_length=4000)] = None,
    ) -> ScoresOut:
        """Quality scores of an image for a prompt (the ensemble of reward models: higher is better)."""
        cg = service(ctx)
        if bool(run_id) == bool(path):
            raise GuardError("give exactly one of run_id or path", hint="pass the run_id that generate returned")
        if run_id:
            record = cg.record(run_id)
            if not record.outputs:
                raise GuardError(f"run {run_id} has no image (status {record.status})",
                                 hint="wait for it with get_run first")
            path = str(record.outputs[0].path)
            prompt = prompt or record.prompt
        if not prompt:
            raise GuardError("prompt is required when scoring a path", hint="pass the prompt the image was made for")
        return await cg.score_path(path, prompt)  # type: ignore[arg-type]

    @mcp.tool(title="ComfyUI status", annotations=ToolAnnotations(read_only_hint=True, open_world_hint=True))
    @tool_errors
    async def comfyui_status(ctx: Context) -> StatusOut:
        """The configured ComfyUI servers: health, queue, installed models, and which flows can run on them."""
        return await service(ctx).status()

    @mcp.tool(title="Get (or wait for) a run", annotations=ToolAnnotations(read_only_hint=True, open_world_hint=True))
    @tool_errors
    async def get_run(
        ctx: Context,
        run_id: Annotated[str, Field(description="The run id that generate (or noise_search) returned.",
                                     min_length=1, max_length=100)],
        wait_s: Annotated[float, Field(description="Seconds to wait if the run is still going.",
                                       ge=0, le=3600)] = DEFAULT_WAIT_S,
    ) -> Annotated[CallToolResult, RunOut]:
        """A run's status, scores and image. For a run that was still going when generate returned, this waits for
        it (up to wait_s) and returns the image when it is done."""
        return with_image(await service(ctx).get_run(run_id, wait_s=wait_s, report=reporter(ctx),
                                                     cancel_if=cancel_requested(ctx)))

    register_search(mcp)


def refuse_unknown_arguments(mcp: MCPServer) -> None:
    """Make every tool refuse arguments it does not take (the SDK drops them silently): a misspelt ``seeds`` or
    ``steps`` would otherwise run with defaults the model did not ask for. The schemas say so too
    (``additionalProperties: false``)."""
    from pydantic import model_validator
    from pydantic_core import PydanticCustomError

    for tool in mcp._tool_manager.list_tools():  # noqa: SLF001 - the SDK has no public hook for this
        base = tool.fn_metadata.arg_model
        names = {f.alias or n for n, f in base.model_fields.items()} | set(base.model_fields)
        takes = ", ".join(sorted({f.alias or n for n, f in base.model_fields.items()})) or "no arguments"

        def check(cls: Any, data: Any, *, _names: set[str] = names, _tool: str = tool.name, _takes: str = takes) -> Any:
            if isinstance(data, dict):
                unknown = sorted(str(k) for k in data if k not in _names)
                if unknown:
                    raise PydanticCustomError("unknown_argument", "unknown argument(s) {unknown}: {tool} takes {takes}",
                                              {"unknown": ", ".join(unknown), "tool": _tool, "takes": _takes})
            return data

        strict = type(base.__name__, (base,), {"__module__": base.__module__,
                                               "_refuse_unknown": model_validator(mode="before")(classmethod(check))})
        tool.fn_metadata.arg_model = strict
        tool.parameters = {**tool.parameters, "additionalProperties": False}


def register_search(mcp: MCPServer) -> None:
    """``noise_search``, when the noise-search module is installed in this tree."""
    try:
        from .mcp_search import register
    except ImportError as e:  # pragma: no cover - depends on the search module
        logger.info("noise_search not available: %s", e)
        return
    register(mcp)
