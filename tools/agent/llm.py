"""A small tool-calling interface and two adapters: Anthropic's Messages API and OpenAI-compatible Chat Completions.

The agent loop speaks one neutral message format; each adapter translates it for its SDK. The
OpenAI adapter works with any OpenAI-compatible server (vLLM, Ollama, LM Studio) via ``base_url``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ..errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_ANTHROPIC_MODEL = "claude-sonnet-4-6"
DEFAULT_OPENAI_MODEL = "gpt-5.5"


@dataclass
class ToolSpec:
    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class ToolResult:
    call_id: str
    name: str
    text: str
    is_error: bool = False
    images: list[tuple[str, str]] = field(default_factory=list)  # (mime, base64)
    structured: dict[str, Any] | None = None


@dataclass
class Message:
    role: Literal["user", "assistant", "tool"]
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    results: list[ToolResult] = field(default_factory=list)


@dataclass
class Reply:
    text: str
    tool_calls: list[ToolCall]
    stop_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)


class LLM(Protocol):
    model: str

    async def step(self, system: str, messages: list[Message], tools: list[ToolSpec]) -> Reply: ...


class _SDKClient:
    """An adapter owning one SDK client: an async context manager that closes it."""

    client: Any

    async def aclose(self) -> None:
        await self.client.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AnthropicLLM(_SDKClient):
    """Claude through the ``anthropic`` SDK (``ANTHROPIC_API_KEY``; ``base_url`` for proxies and tests)."""

    def __init__(self, model: str | None = None, *, api_key: str | None = None, base_url: str | None = None,
                 max_tokens: int = 1024, images: bool = True, client: Any = None):
        from anthropic import AsyncAnthropic

        self.model = model or DEFAULT_ANTHROPIC_MODEL
        self.max_tokens = max_tokens
        self.images = images
        self.client = client or AsyncAnthropic(api_key=api_key, base_url=base_url, max_retries=1)

    def _messages(self, messages: list[Message]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for m in messages:
            if m.role == "user":
                out.append({"role": "user", "content": m.text})
            elif m.role == "assistant":
                blocks: list[dict[str, Any]] = [{"type": "text", "text": m.text}] if m.text else []
                blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in m.tool_calls]
                out.append({"role": "assistant", "content": blocks or [{"type": "text", "text": "(no text)"}]})
            else:
                results = []
                for r in m.results:
                    content: list[dict[str, Any]] = [{"type": "text", "text": r.text or "(empty)"}]
                    if self.images:
                        content += [{"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}
                                    for mime, data in r.images]
                    results.append({"type": "tool_result", "tool_use_id": r.call_id, "content": content,
                                    "is_error": r.is_error})
                out.append({"role": "user", "content": results})
        return out

    async def step(self, system: str, messages: list[Message], tools: list[ToolSpec]) -> Reply:
        resp = await self.client.messages.create(
            model=self.model, max_tokens=self.max_tokens, system=system, messages=self._messages(messages),
            tools=[{"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in tools])
        text = "".join(b.text for b in resp.content if b.type == "text")
        calls = [ToolCall(id=b.id, name=b.name, arguments=dict(b.input or {})) for b in resp.content
                 if b.type == "tool_use"]
        usage = {"input": resp.usage.input_tokens, "output": resp.usage.output_tokens} if resp.usage else {}
        return Reply(text=text, tool_calls=calls, stop_reason=resp.stop_reason, usage=usage)


class OpenAILLM(_SDKClient):
    """Any OpenAI-compatible chat model through the ``openai`` SDK (OpenAI, vLLM, Ollama, LM Studio...)."""

    def __init__(self, model: str | None = None, *, api_key: str | None = None, base_url: str | None = None,
                 max_tokens: int = 1024, client: Any = None):
        from openai import AsyncOpenAI

        self.model = model or DEFAULT_OPENAI_MODEL
        self.max_tokens = max_tokens
        # Local servers (Ollama, vLLM) take any key; the SDK insists on one.
        key = api_key or os.environ.get("OPENAI_API_KEY") or ("unused" if base_url else None)
        self.client = client or AsyncOpenAI(api_key=key, base_url=base_url, max_retries=1)

    def _messages(self, system: str, messages: list[Message]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{"role": "system", "content": system}]
        for m in messages:
            if m.role == "user":
                out.append({"role": "user", "content": m.text})
            elif m.role == "assistant":
                msg: dict[str, Any] = {"role": "assistant", "content": m.text or None}
                if m.tool_calls:
                    msg["tool_calls"] = [{"id": c.id, "type": "function",
                                          "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                                         for c in m.tool_calls]
                out.append(msg)
            else:
                out += [{"role": "tool", "tool_call_id": r.call_id,
                         "content": ("ERROR: " if r.is_error else "") + (r.text or "(empty)")} for r in m.results]
        return out

    async def step(self, system: str, messages: list[Message], tools: list[ToolSpec]) -> Reply:
        resp = await self.client.chat.completions.create(
            model=self.model, max_tokens=self.max_tokens, messages=self._messages(system, messages),
            tools=[{"type": "function", "function": {"name": t.name, "description": t.description,
                                                     "parameters": t.input_schema}} for t in tools])
        choice = resp.choices[0]
        calls = []
        for c in choice.message.tool_calls or []:
            try:
                args = json.loads(c.function.arguments or "{}")
            except json.JSONDecodeError:
                args = {"_unparsed": c.function.arguments}
            calls.append(ToolCall(id=c.id, name=c.function.name, arguments=args if isinstance(args, dict) else {}))
        usage = {"input": resp.usage.prompt_tokens, "output": resp.usage.completion_tokens} if resp.usage else {}
        return Reply(text=choice.message.content or "", tool_calls=calls, stop_reason=choice.finish_reason, usage=usage)


NO_KEY_MESSAGE = (
    "no LLM is configured: set ANTHROPIC_API_KEY (Claude), or OPENAI_API_KEY, or point --base-url / OPENAI_BASE_URL "
    "at an OpenAI-compatible server (vLLM, Ollama: http://localhost:11434/v1)")
NO_KEY_HINT = ("without an LLM, `comfygen generate \"...\"` uses the bundled planner to pick the flow (the fast path), "
               "and runs it when a ComfyUI is configured")


def make_llm(provider: str | None = None, *, model: str | None = None, base_url: str | None = None,
             api_key: str | None = None) -> LLM:
    """Pick an adapter from the flags and the usual environment variables; a clear error when none is set."""
    base_url = base_url or os.environ.get("OPENAI_BASE_URL") if provider != "anthropic" else base_url
    if provider is None:
        if os.environ.get("ANTHROPIC_API_KEY") and not base_url:
            provider = "anthropic"
        elif os.environ.get("OPENAI_API_KEY") or base_url:
            provider = "openai"
        else:
            raise ConfigError(NO_KEY_MESSAGE, hint=NO_KEY_HINT)
    if provider == "anthropic":
        key = api_key or os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise ConfigError("ANTHROPIC_API_KEY is not set", hint=NO_KEY_HINT)
        return AnthropicLLM(model, api_key=key, base_url=base_url or os.environ.get("ANTHROPIC_BASE_URL"))
    if provider == "openai":
        if not (api_key or os.environ.get("OPENAI_API_KEY") or base_url):
            raise ConfigError("OPENAI_API_KEY is not set (and no --base-url for a local server)", hint=NO_KEY_HINT)
        return OpenAILLM(model, api_key=api_key, base_url=base_url)
    raise ConfigError(f"unknown provider {provider!r}", hint="use anthropic or openai")
