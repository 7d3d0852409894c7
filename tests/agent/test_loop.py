"""The ComfyGen-IC loop driving the MCP server (in memory) through the real SDKs and the fake LLM servers."""

from __future__ import annotations

import pytest
from fakecomfy import FakeComfyUI
from llmfake import Action, FakeLLM, ICPolicy
from mcp import Client
from mcp_helpers import library_models, pixel_scorers, shared_library

from comfygen.server.app import build_server
from comfygen.server.chat.toolbox import MCPToolBox
from comfygen.tools.agent.llm import AnthropicLLM, OpenAILLM
from comfygen.tools.agent.loop import run_ic
from comfygen.tools.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
async def server(tmp_path):
    async with FakeComfyUI(models=library_models()) as fake:
        yield build_server(Settings(home=tmp_path, comfyui_urls=[fake.url]), scorer_factory=pixel_scorers,
                           library=shared_library())


GOOD = ["sd15-base", "sdxl-base", "sd15-dreamshaper"]  # flows whose files the fake's node schema lists


def small(policy):
    """Make the policy's generate calls small (64x64, flows the fake can validate) so the fake answers fast."""
    def wrapped(turns, tools):
        action = policy(turns, tools)
        made = sum(1 for t in turns if t.role == "assistant" for c in t.tool_calls if c["name"] == "generate")
        return Action(action.text, [(n, {**a, "size": "64x64", "flow_id": GOOD[made % 3]} if n == "generate" else a)
                                    for n, a in action.tool_calls])
    return wrapped


@pytest.mark.parametrize("api", ["anthropic", "openai"])
async def test_the_loop_suggests_generates_and_answers_with_the_best_run(server, api):
    events = []
    async with FakeLLM(small(ICPolicy(tries=2))) as fake:
        llm = (AnthropicLLM("m", api_key="k", base_url=fake.anthropic_url) if api == "anthropic"
               else OpenAILLM("m", api_key="k", base_url=fake.openai_url))
        async with llm, Client(server) as client:
            result = await run_ic(llm, MCPToolBox(client), "a red fox in the snow", budget=3,
                                  on_event=events.append)
    assert [e.call.name for e in events if e.kind == "tool_call"] == ["suggest_flows", "generate", "generate"]
    assert result.generations == 2 and len(result.runs) == 2 and result.stopped == "answered"
    best = result.best
    assert best["status"] == "succeeded"
    assert best["scores"]["total"] == max(r["scores"]["total"] for r in result.runs)
    assert f"run {result.runs[-1]['run_id']}" in result.text
    assert any(e.kind == "progress" for e in events)
    tools_offered = {t["name"] if api == "anthropic" else t["function"]["name"] for t in fake.requests[0][1]["tools"]}
    assert {"suggest_flows", "generate", "get_score_table"} <= tools_offered


async def test_the_budget_stops_extra_generations(server):
    def greedy(turns, tools):
        n = sum(1 for t in turns if t.role == "tool")
        if n < 4:
            return Action("", [("generate", {"prompt": "a cat", "flow_id": "sd15-base", "size": "64x64"})])
        return Action("done")

    async with FakeLLM(greedy) as fake, OpenAILLM("m", api_key="k", base_url=fake.openai_url) as llm, \
            Client(server) as client:
        result = await run_ic(llm, MCPToolBox(client), "a cat", budget=2)
    assert result.generations == 2 and result.tool_calls == 4
    last_tool_messages = [m for m in fake.requests[-1][1]["messages"] if m["role"] == "tool"]
    assert "budget of 2 generations is used up" in last_tool_messages[-1]["content"]


async def test_tool_errors_reach_the_model(server):
    def wrong(turns, tools):
        if not any(t.role == "tool" for t in turns):
            return Action("", [("generate", {"prompt": "a cat", "flow_id": "no-such-flow"})])
        return Action(turns[-1].text)

    async with FakeLLM(wrong) as fake, AnthropicLLM("m", api_key="k", base_url=fake.anthropic_url) as llm, \
            Client(server) as client:
        result = await run_ic(llm, MCPToolBox(client), "a cat")
    assert "unknown flow 'no-such-flow'" in result.text and result.best is None
