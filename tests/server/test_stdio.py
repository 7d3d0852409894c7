"""The server launched exactly as the README's Claude Desktop snippet says, driven by the real MCP client over stdio."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from fakecomfy import FakeComfyUI
from mcp import Client, StdioServerParameters
from mcp.types import ImageContent
from mcp_helpers import library_models

README = Path(__file__).resolve().parents[2] / "README.md"


def claude_desktop_snippet() -> dict:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Claude Desktop"):]
    block = re.search(r"```json\n(.*?)\n```", section, re.S)
    assert block, "the README has no JSON snippet under '### Claude Desktop'"
    return json.loads(block.group(1))["mcpServers"]["comfygen"]


ARGS = {
    "list_categories": {},
    "get_score_table": {"categories": ["portrait"], "top_k": 3},
    "suggest_flows": {"prompt": "a portrait of an old sailor", "k": 3},
    "get_flow": {"flow_id": "sd15-base"},
    "generate": {"prompt": "a portrait of an old sailor", "flow_id": "sd15-base", "size": "64x64"},
    "comfyui_status": {},
    "noise_search": {"prompt": "a red apple", "flow_id": "sd15-base", "size": "64x64", "budget": 2},
}


@pytest.fixture
def fake():
    fake = FakeComfyUI(models=library_models()).start_in_thread()
    yield fake
    fake.stop()


@pytest.mark.anyio
async def test_claude_desktop_config_starts_the_server_and_every_tool_works(fake, tmp_path):
    cfg = claude_desktop_snippet()
    command = shutil.which(cfg["command"])
    assert command, f"{cfg['command']} is not on PATH (pip install -e .)"
    env = {**os.environ, **cfg.get("env", {}), "COMFYGEN_COMFYUI_URLS": fake.url, "COMFYGEN_HOME": str(tmp_path),
           "COMFYGEN_SCORERS": "aesthetic", "COMFYGEN_TINY_SCORERS": "1"}  # random-weight scorers: no downloads
    async with Client(StdioServerParameters(command=command, args=cfg["args"], env=env)) as c:
        tools = {t.name for t in (await c.list_tools()).tools}
        results = {}
        for name in tools:
            args = dict(ARGS.get(name, {}))
            if name in ("score_image", "get_run"):
                continue
            results[name] = await c.call_tool(name, args)
        run_id = results["generate"].structured_content["run_id"]
        results["get_run"] = await c.call_tool("get_run", {"run_id": run_id})
        results["score_image"] = await c.call_tool("score_image", {"run_id": run_id})
    assert tools == set(results)
    for name, r in results.items():
        assert not r.is_error, f"{name}: {r.content[0].text}"
    gen = results["generate"].structured_content
    assert gen["status"] == "succeeded" and Path(gen["image_path"]).is_file()
    assert any(isinstance(b, ImageContent) for b in results["generate"].content)
    assert isinstance(gen["scores"]["total"], float) and "aesthetic" in gen["scores"]["per_scorer"]
    assert results["noise_search"].structured_content["evaluated"] == 2
