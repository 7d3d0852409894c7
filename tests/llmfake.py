"""An LLM test double that speaks the real HTTP APIs: Anthropic Messages (``POST /v1/messages``) and OpenAI Chat
Completions (``POST /v1/chat/completions``), both with tool calls, on localhost.

The real ``anthropic`` and ``openai`` SDKs talk to it (``base_url=fake.anthropic_url`` / ``fake.openai_url``), so
their request building and response parsing are exercised. What the "model" does is a policy: a function from the
conversation (neutral form: a list of turns) to the next action. The default, :class:`ICPolicy`, behaves like a
model following ComfyGen-IC: suggest_flows -> generate (top flow) -> get_run while running -> a final answer.

    fake = FakeLLM().start_in_thread()
    ... AsyncAnthropic(api_key="x", base_url=fake.anthropic_url) ...
    fake.stop()
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Turn:
    """One turn as the policy sees it, whichever API it came from."""

    role: str  # user | assistant | tool
    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # {id, name, arguments}
    tool_name: str | None = None  # for role == tool (when known)
    is_error: bool = False


@dataclass
class Action:
    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (name, arguments)


Policy = Callable[[list[Turn], list[str]], Action]  # (conversation, tool names offered) -> action


def _json_in(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
        return data if isinstance(data, dict) else {}
    except (json.JSONDecodeError, TypeError):
        start, end = text.find("{"), text.rfind("}")
        if start >= 0 and end > start:
            try:
                data = json.loads(text[start:end + 1])
                return data if isinstance(data, dict) else {}
            except json.JSONDecodeError:
                return {}
        return {}


class ICPolicy:
    """suggest_flows, then generate with the top flow (then the next one, ``tries`` times), get_run while running,
    then answer. Reads the tool results as a model would: from their JSON text."""

    def __init__(self, tries: int = 1, candidates: int = 1):
        self.tries = tries
        self.candidates = candidates

    def __call__(self, turns: list[Turn], tools: list[str]) -> Action:
        request = next(t.text for t in turns if t.role == "user")
        tool_turns = [t for t in turns if t.role == "tool"]
        calls = [c for t in turns if t.role == "assistant" for c in t.tool_calls]
        if not calls:
            return Action("Let me find good flows for this prompt.", [("suggest_flows", {"prompt": request, "k": 3})])
        last_call, last = calls[-1], tool_turns[-1] if tool_turns else Turn("tool")
        data = _json_in(last.text)
        if last.is_error:
            return Action(f"The tool failed: {last.text[:200]}")
        if last_call["name"] == "suggest_flows":
            self.flows = [f["flow_id"] for f in data.get("flows", [])]
            return Action("", [("generate", {"prompt": request, "flow_id": self.flows[0],
                                             "candidates": self.candidates})])
        if last_call["name"] in ("generate", "get_run"):
            if data.get("status") in ("running", "queued"):
                return Action("", [("get_run", {"run_id": data["run_id"], "wait_s": 30})])
            made = sum(1 for c in calls if c["name"] == "generate")
            flows = getattr(self, "flows", [])
            if made < self.tries and made < len(flows):
                return Action("Trying the next flow.", [("generate", {"prompt": request, "flow_id": flows[made]})])
            score = (data.get("scores") or {}).get("total")
            return Action(f"Done: run {data.get('run_id')} with flow {data.get('flow_id')}, score {score}.")
        return Action("Done.")


class FakeLLM:
    def __init__(self, policy: Policy | None = None, *, model: str = "fake-model"):
        self.policy = policy or ICPolicy()
        self.model = model
        self.requests: list[tuple[str, dict[str, Any]]] = []  # (api, body)
        self._ids = itertools.count(1)
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def anthropic_url(self) -> str:
        return self.url

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"

    # ------------------------------------------------------------------ server
    async def start(self) -> FakeLLM:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._anthropic)
        app.router.add_post("/v1/chat/completions", self._openai)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeLLM:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start_in_thread(self) -> FakeLLM:
        ready = threading.Event()

        def target() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self.start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=target, name="fake-llm", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            asyncio.run_coroutine_threadsafe(self.close(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def _id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    # ------------------------------------------------------------------ Anthropic Messages API
    async def _anthropic(self, request: web.Request) -> web.Response:
        if not (request.headers.get("x-api-key") or request.headers.get("authorization", "").startswith("Bearer ")):
            return web.json_response({"type": "error", "error": {"type": "authentication_error",
                                                                 "message": "an API key is required"}},
                                     status=401)
        body = await request.json()
        self.requests.append(("anthropic", body))
        names: dict[str, str] = {}
        turns: list[Turn] = []
        for m in body.get("messages", []):
            content = m["content"]
            if isinstance(content, str):
                turns.append(Turn(m["role"], text=content))
                continue
            if m["role"] == "assistant":
                calls = [{"id": b["id"], "name": b["name"], "arguments": b.get("input", {})}
                         for b in content if b["type"] == "tool_use"]
                names.update({c["id"]: c["name"] for c in calls})
                turns.append(Turn("assistant", text="".join(b.get("text", "") for b in content if b["type"] == "text"),
                                  tool_calls=calls))
                continue
            for b in content:
                if b["type"] == "tool_result":
                    inner = b.get("content", "")
                    text = inner if isinstance(inner, str) else "".join(x.get("text", "") for x in inner
                                                                       if x.get("type") == "text")
                    turns.append(Turn("tool", text=text, tool_name=names.get(b["tool_use_id"]),
                                      is_error=bool(b.get("is_error"))))
                elif b["type"] == "text":
                    turns.append(Turn("user", text=b["text"]))
        action = self.policy(turns, [t["name"] for t in body.get("tools", [])])
        blocks: list[dict[str, Any]] = [{"type": "text", "text": action.text}] if action.text else []
        blocks += [{"type": "tool_use", "id": self._id("toolu_"), "name": n, "input": a} for n, a in action.tool_calls]
        return web.json_response({
            "id": self._id("msg_"), "type": "message", "role": "assistant", "model": body.get("model", self.model),
            "content": blocks, "stop_reason": "tool_use" if action.tool_calls else "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": len(json.dumps(body)) // 4, "output_tokens": 20}})

    # ------------------------------------------------------------------ OpenAI Chat Completions API
    async def _openai(self, request: web.Request) -> web.Response:
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return web.json_response({"error": {"message": "missing bearer token", "type": "invalid_request_error"}},
                                     status=401)
        body = await request.json()
        self.requests.append(("openai", body))
        names: dict[str, str] = {}
        turns: list[Turn] = []
        for m in body.get("messages", []):
            role = m["role"]
            if role == "system":
                continue
            if role == "assistant":
                calls = [{"id": c["id"], "name": c["function"]["name"],
                          "arguments": json.loads(c["function"]["arguments"] or "{}")} for c in m.get("tool_calls") or []]
                names.update({c["id"]: c["name"] for c in calls})
                turns.append(Turn("assistant", text=m.get("content") or "", tool_calls=calls))
            elif role == "tool":
                text = m.get("content") or ""
                turns.append(Turn("tool", text=text, tool_name=names.get(m.get("tool_call_id", "")),
                                  is_error=text.startswith("ERROR: ")))
            else:
                content = m.get("content")
                text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content or [])
                turns.append(Turn("user", text=text))
        action = self.policy(turns, [t["function"]["name"] for t in body.get("tools", [])])
        message: dict[str, Any] = {"role": "assistant", "content": action.text or None}
        if action.tool_calls:
            message["tool_calls"] = [{"id": self._id("call_"), "type": "function",
                                      "function": {"name": n, "arguments": json.dumps(a)}} for n, a in action.tool_calls]
        return web.json_response({
            "id": self._id("chatcmpl-"), "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if action.tool_calls else "stop"}],
            "usage": {"prompt_tokens": len(json.dumps(body)) // 4, "completion_tokens": 20,
                      "total_tokens": len(json.dumps(body)) // 4 + 20}})
