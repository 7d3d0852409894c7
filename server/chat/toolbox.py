"""The agent loop's ToolBox over an MCP client session: the LLM calls this server's tools through MCP."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from mcp import Client, StdioServerParameters
from mcp.types import ImageContent, TextContent

from ...tools.agent.llm import ToolResult, ToolSpec


def server_params(env: dict[str, str] | None = None) -> StdioServerParameters:
    """How ``comfygen chat`` starts the server: ``python -m comfygen.server`` (stdio) with this environment."""
    return StdioServerParameters(command=sys.executable, args=["-m", "comfygen.server"],
                                 env={**os.environ, **(env or {})})


class MCPToolBox:
    def __init__(self, client: Client):
        self.client = client

    async def list_tools(self) -> list[ToolSpec]:
        listed = await self.client.list_tools()
        return [ToolSpec(name=t.name, description=t.description or "", input_schema=t.input_schema)
                for t in listed.tools]

    async def call(self, name: str, arguments: dict[str, Any],
                   on_progress: Callable[[float, float | None, str | None], Awaitable[None]] | None = None
                   ) -> ToolResult:
        res = await self.client.call_tool(name, arguments, progress_callback=on_progress)
        texts, images = [], []
        for block in res.content:
            if isinstance(block, TextContent):
                texts.append(block.text)
            elif isinstance(block, ImageContent):
                images.append((block.mime_type, block.data))
        structured = res.structured_content
        if structured is None and len(texts) == 1:
            try:
                parsed = json.loads(texts[0])
                structured = parsed if isinstance(parsed, dict) else None
            except json.JSONDecodeError:
                structured = None
        return ToolResult(call_id="", name=name, text="\n".join(texts), is_error=bool(res.is_error), images=images,
                          structured=structured)

    async def read(self, uri: str) -> list[Any]:
        return list((await self.client.read_resource(uri)).contents)
