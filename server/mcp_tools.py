"""The MCP tools, generated from the operation registry (``tools/app/operations.py``).

Each operation becomes one tool: its request model's fields are the tool's parameters (same
descriptions, limits and defaults as the in-process agent sees), its result model the tool's output
schema. What is MCP's own lives here: the request context (progress notifications, whether a
cancelled call was a ``notifications/cancelled``), asking the client's model through sampling, the
preview image as an ``ImageContent`` block, and turning comfygen errors into tool errors the model can
act on. Anything unexpected is logged and reported as a tool error too, so the server never dies on a
tool call.
"""

from __future__ import annotations

import base64
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, get_type_hints

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ImageContent, TextContent, ToolAnnotations
from pydantic import BaseModel, ValidationError

from ..tools.app.client_choice import ClientChoice
from ..tools.app.operations import Call, Hints, Operation, render_error, render_invalid, served_on
from ..tools.app.service import ComfyGen
from ..tools.errors import ComfyGenError
from .mcp_sampling import SampledChoice, sample_choice

try:
    from mcp.shared.direct_dispatcher import DIRECT_TRANSPORT_KIND as IN_PROCESS
except ImportError:  # pragma: no cover - other SDK versions
    IN_PROCESS = "direct"

logger = logging.getLogger(__name__)


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


def annotations(h: Hints) -> ToolAnnotations:
    return ToolAnnotations(read_only_hint=h.read_only, destructive_hint=h.destructive, idempotent_hint=h.idempotent,
                           open_world_hint=h.open_world)


def with_image(out: BaseModel, image_path: str | None, *, max_side: int = 512,
               max_bytes: int = 300_000) -> CallToolResult:
    """A tool result with the structured result, its JSON as text, and a small thumbnail of the image it names."""
    content: list[Any] = [TextContent(text=out.model_dump_json(exclude_none=True))]
    if image_path:
        try:
            from ..tools.images import thumbnail

            data, mime = thumbnail(image_path, max_side=max_side, max_bytes=max_bytes)
            content.append(ImageContent(data=base64.b64encode(data).decode(), mime_type=mime))
        except (OSError, ValueError, ComfyGenError) as e:
            logger.warning("no thumbnail for %s: %s", image_path, e)
    return CallToolResult(content=content, structured_content=out.model_dump(mode="json"))


def _client_choice(sampled: SampledChoice) -> ClientChoice | None:
    if sampled is None:
        return None
    content: Any = sampled.content
    text = getattr(content, "text", "") if not isinstance(content, list) else " ".join(
        getattr(c, "text", "") for c in content)
    return ClientChoice(text=text or "", model=sampled.model)


def tool_function(op: Operation[Any, Any]) -> Callable[..., Awaitable[Any]]:
    """An async function whose signature is the operation's request fields (plus the MCP context), for the SDK's
    ``Tool.from_function`` to read: the schema an MCP client sees is the request model's."""

    async def tool(ctx: Context, sampled: SampledChoice = None, **arguments: Any) -> Any:
        try:
            req = op.parse(arguments)
            call = Call(report=reporter(ctx), cancel_if=cancel_requested(ctx),
                        client_choice=_client_choice(sampled))
            out = await op.run(service(ctx), req, call)
        except ToolError:
            raise
        except ComfyGenError as e:
            raise ToolError(render_error(e)) from e
        except ValidationError as e:
            raise ToolError(render_invalid(op.name, e)) from e
        except (ValueError, KeyError, OSError) as e:
            logger.exception("tool %s failed", op.name)
            raise ToolError(f"{type(e).__name__}: {e}") from e
        return with_image(out, op.image(out)) if op.image else out

    hints = get_type_hints(op.request, include_extras=True)
    params = [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)]
    if op.asks_client_model:
        params.append(inspect.Parameter("sampled", inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=Annotated[SampledChoice, sample_choice]))
    for name, info in op.request.model_fields.items():
        default = inspect.Parameter.empty if info.is_required() else info.default
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hints[name]))
    returns: Any = Annotated[CallToolResult, op.result] if op.image else op.result
    tool.__signature__ = inspect.Signature(params, return_annotation=returns)  # type: ignore[attr-defined]
    tool.__annotations__ = {p.name: p.annotation for p in params} | {"return": returns}
    tool.__name__ = tool.__qualname__ = op.name
    tool.__doc__ = op.description
    return tool


def register_tools(mcp: MCPServer) -> None:
    """Every operation of the registry as an MCP tool."""
    for op in served_on("mcp"):
        mcp.add_tool(tool_function(op), name=op.name, title=op.title, description=op.description,
                     annotations=annotations(op.hints))


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
