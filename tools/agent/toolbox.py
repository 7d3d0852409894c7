"""``LocalToolBox``: the agent's tools over an in-process ``ComfyGen``, without MCP (the eval harness uses it).

The tools are the operation registry's (``tools/app/operations.py``), the same set, schemas, limits and
error texts that ``comfygen serve`` gives an MCP client, so a model behaves the same whether it drives
the server or runs inside an eval. The caller's model cannot be asked mid-call here, so
``suggest_flows(mode="llm")`` answers with the planner's ranking and a note, as for an MCP client
without sampling.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError

from ..app.operations import Call, render_error, render_invalid, served_on
from ..app.service import ComfyGen
from ..errors import ComfyGenError
from .llm import ToolResult, ToolSpec

logger = logging.getLogger(__name__)


def tool_specs() -> list[ToolSpec]:
    """The registry's operations as tool specs: name, description and the request model's JSON schema."""
    return [ToolSpec(name=op.name, description=op.description, input_schema=op.request.model_json_schema())
            for op in served_on("agent")]


class LocalToolBox:
    """The agent's ToolBox over ``cg`` (an entered ``ComfyGen``)."""

    def __init__(self, cg: ComfyGen, *, images: bool = True):
        self.cg = cg
        self.images = images

    async def list_tools(self) -> list[ToolSpec]:
        return tool_specs()

    async def call(self, name: str, arguments: dict[str, Any],
                   on_progress: Callable[[float, float | None, str | None], Awaitable[None]] | None = None
                   ) -> ToolResult:
        op = next((o for o in served_on("agent") if o.name == name), None)
        if op is None:
            return ToolResult(call_id="", name=name, is_error=True,
                              text=f"unknown tool {name!r}; tools: {', '.join(o.name for o in served_on('agent'))}")
        try:
            out = await op.run(self.cg, op.parse(arguments), Call(report=on_progress))  # type: ignore[arg-type]
        except ValidationError as e:
            return ToolResult(call_id="", name=name, is_error=True, text=render_invalid(name, e))
        except ComfyGenError as e:
            return ToolResult(call_id="", name=name, is_error=True, text=render_error(e))
        data = out.model_dump(mode="json")
        result = ToolResult(call_id="", name=name, text=json.dumps(data), structured=data)
        image = op.image(out) if op.image else None
        if self.images and image:
            try:
                from ..images import thumbnail

                thumb, mime = thumbnail(image)
                result.images.append((mime, base64.b64encode(thumb).decode()))
            except (OSError, ValueError, ComfyGenError) as e:
                logger.warning("no thumbnail: %s", e)
        return result
