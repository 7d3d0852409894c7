"""The Anthropic and OpenAI adapters, through the real SDKs, against the fake LLM servers on localhost."""

from __future__ import annotations

import pytest
from llmfake import Action, FakeLLM

from comfygen.tools.agent.llm import AnthropicLLM, Message, OpenAILLM, ToolCall, ToolResult, ToolSpec, make_llm
from comfygen.tools.errors import ConfigError

pytestmark = pytest.mark.anyio

SPEC = ToolSpec(name="suggest_flows", description="Rank flows.",
                input_schema={"type": "object", "properties": {"prompt": {"type": "string"}}, "required": ["prompt"]})


def scripted(turns, tools):
    if not any(t.role == "tool" for t in turns):
        return Action("thinking", [("suggest_flows", {"prompt": turns[0].text})])
    return Action(f"saw: {turns[-1].text} (error={turns[-1].is_error})")


@pytest.fixture
async def fake():
    async with FakeLLM(scripted) as f:
        yield f


def conversation(first):
    call = first.tool_calls[0]
    return [Message("user", text="a fox"), Message("assistant", text=first.text, tool_calls=first.tool_calls),
            Message("tool", results=[ToolResult(call_id=call.id, name=call.name, text='{"flows": []}',
                                                images=[("image/png", "iVBORw0KGgo=")])])]


async def test_anthropic_adapter_round_trips_tool_calls_and_results(fake):
    async with AnthropicLLM("claude-test", api_key="k", base_url=fake.anthropic_url) as llm:
        first = await llm.step("sys", [Message("user", text="a fox")], [SPEC])
        assert first.text == "thinking" and first.stop_reason == "tool_use"
        assert first.tool_calls[0].name == "suggest_flows" and first.tool_calls[0].arguments == {"prompt": "a fox"}
        second = await llm.step("sys", conversation(first), [SPEC])
    assert second.tool_calls == [] and second.text == 'saw: {"flows": []} (error=False)'
    api, body = fake.requests[-1]
    assert api == "anthropic" and body["system"] == "sys" and body["tools"][0]["input_schema"] == SPEC.input_schema
    result_block = body["messages"][-1]["content"][0]
    assert result_block["type"] == "tool_result" and result_block["content"][1]["type"] == "image"


async def test_openai_adapter_round_trips_tool_calls_and_results(fake):
    async with OpenAILLM("gpt-test", api_key="k", base_url=fake.openai_url) as llm:
        first = await llm.step("sys", [Message("user", text="a fox")], [SPEC])
        assert first.tool_calls[0].name == "suggest_flows" and first.tool_calls[0].arguments == {"prompt": "a fox"}
        second = await llm.step("sys", conversation(first), [SPEC])
    assert second.text.startswith("saw: ") and second.stop_reason == "stop"
    api, body = fake.requests[-1]
    assert api == "openai" and body["messages"][0] == {"role": "system", "content": "sys"}
    assert body["tools"][0]["function"]["parameters"] == SPEC.input_schema
    assert body["messages"][-1]["role"] == "tool" and body["messages"][-1]["tool_call_id"] == first.tool_calls[0].id


async def test_openai_adapter_needs_no_key_for_a_local_server(fake, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    async with OpenAILLM("qwen", base_url=fake.openai_url) as llm:  # like Ollama / vLLM
        reply = await llm.step("sys", [Message("user", text="a fox")], [SPEC])
    assert reply.tool_calls[0].arguments == {"prompt": "a fox"}


def test_make_llm_without_keys_says_what_to_set_and_points_at_the_fast_path(monkeypatch):
    for var in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError) as e:
        make_llm()
    assert "ANTHROPIC_API_KEY" in e.value.message and "OPENAI_API_KEY" in e.value.message
    assert "comfygen generate" in e.value.hint


def test_make_llm_picks_the_provider_from_the_environment(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "a")
    assert isinstance(make_llm(), AnthropicLLM)
    assert isinstance(make_llm(base_url="http://localhost:11434/v1", model="qwen"), OpenAILLM)
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    monkeypatch.setenv("OPENAI_API_KEY", "o")
    assert isinstance(make_llm(), OpenAILLM)


def test_tool_call_dataclass_is_plain():
    assert ToolCall("1", "x", {}).arguments == {}
