"""The in-process ToolBox (what the eval harness runs the loop with) mirrors the MCP tools."""

from __future__ import annotations

import pytest
from fakecomfy import FakeComfyUI
from llmfake import Action, FakeLLM, ICPolicy
from mcp import Client
from mcp_helpers import library_models, pixel_scorers, shared_library

from comfygen.server.app import build_server
from comfygen.tools.agent.llm import OpenAILLM
from comfygen.tools.agent.loop import run_ic
from comfygen.tools.agent.toolbox import LocalToolBox
from comfygen.tools.app.operations import served_on
from comfygen.tools.app.service import ComfyGen
from comfygen.tools.settings import Settings

pytestmark = pytest.mark.anyio


def _shape(schema: dict) -> dict:
    """What a caller can send: each property with its type, limits, default and description; what is required."""
    return {"properties": schema.get("properties", {}), "required": sorted(schema.get("required", [])),
            "defs": schema.get("$defs", {})}


async def test_local_tools_are_the_mcp_tools(tmp_path):
    settings = Settings(home=tmp_path)
    async with ComfyGen(settings, library=shared_library()) as cg, \
            Client(build_server(settings, library=shared_library())) as client:
        local = {t.name: t for t in await LocalToolBox(cg).list_tools()}
        remote = {t.name: t for t in (await client.list_tools()).tools}
    assert set(local) == set(remote) == {op.name for op in served_on("mcp")} == {op.name for op in served_on("agent")}
    for name, tool in remote.items():
        assert _shape(local[name].input_schema) == _shape(tool.input_schema), name
        assert local[name].description == tool.description, name
    assert remote["generate"].input_schema["properties"]["candidates"]["maximum"] == 16
    assert remote["noise_search"].input_schema["properties"]["budget"]["minimum"] == 2


async def test_both_surfaces_refuse_the_same_arguments(tmp_path):
    settings = Settings(home=tmp_path)
    async with ComfyGen(settings, library=shared_library()) as cg, \
            Client(build_server(settings, library=shared_library())) as client:
        box = LocalToolBox(cg)
        for name, args in [("generate", {"prompt": "a fox", "seeds": 3}), ("score_image", {"run_id": "x", "path": "y"}),
                           ("generate", {"prompt": "a fox", "size": "big"}), ("get_score_table", {"top_k": 99})]:
            local = await box.call(name, args)
            remote = await client.call_tool(name, args)
            assert local.is_error and remote.is_error, (name, args)
        unknown = await box.call("generate", {"prompt": "a fox", "seeds": 3})
        sized = await box.call("generate", {"prompt": "a fox", "size": "big"})
    assert "seeds" in unknown.text
    assert "WIDTHxHEIGHT" in sized.text and "What to do" in sized.text


async def test_the_loop_runs_in_process(tmp_path):
    def policy(turns, tools):
        a = ICPolicy()(turns, tools)
        return Action(a.text, [(n, {**x, "size": "64x64", "flow_id": "sd15-base"} if n == "generate" else x)
                               for n, x in a.tool_calls])

    async with FakeComfyUI(models=library_models()) as fake:
        settings = Settings(home=tmp_path, comfyui_urls=[fake.url])
        async with ComfyGen(settings, scorer_factory=pixel_scorers, library=shared_library()) as cg, \
                FakeLLM(policy) as llm_server, OpenAILLM("m", api_key="k", base_url=llm_server.openai_url) as llm:
            result = await run_ic(llm, LocalToolBox(cg), "a fox", budget=2)
            bad = await LocalToolBox(cg).call("generate", {"prompt": ""})
    assert result.best and result.best["status"] == "succeeded" and result.best["scores"]["total"] is not None
    assert bad.is_error and "prompt" in bad.text
