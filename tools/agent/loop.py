"""The ComfyGen-IC loop: an LLM reads categories and the score table, picks a flow, runs it, looks at the score,
and tries again within a budget of generations.

The loop only needs a ``ToolBox`` (list tools, call one). ``comfygen chat`` gives it the MCP server's
tools over stdio; the eval harness gives it ``toolbox.LocalToolBox``, the same tools over an in-process ``ComfyGen``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..callbacks import call as call_back
from .llm import LLM, Message, ToolCall, ToolResult, ToolSpec

logger = logging.getLogger(__name__)

RUN_TOOLS = ("generate", "noise_search")
IC_TOOLS = ("list_categories", "get_score_table", "suggest_flows", "get_flow", "generate", "get_run", "score_image",
            "comfyui_status", "noise_search")

SYSTEM = """You make images with comfygen, which runs ComfyUI workflows ("flows") and scores the results with
reward models (higher is better). Work like ComfyGen-IC:
1. Find the prompt's categories and good flows for them: call suggest_flows with the user's prompt (or read
   get_score_table for the categories and choose yourself: prefer flows strong on all of the prompt's categories).
2. Call generate with the prompt and your chosen flow_id. If it says status "running", call get_run with its run_id.
3. Judge the result by its score and the preview. If it is weak or misses part of the request, try another flow
   or seed. You may call generate at most {budget} times in total.
4. Finish with a short answer: the best run id, the flow and why, and its score. Do not call tools after that.
Write prompts for generate as a text-to-image prompt (what is visible), keeping the user's intent."""

EventFn = Callable[["AgentEvent"], Awaitable[None] | None]


class ToolBox(Protocol):
    async def list_tools(self) -> list[ToolSpec]: ...

    async def call(self, name: str, arguments: dict[str, Any],
                   on_progress: Callable[[float, float | None, str | None], Awaitable[None]] | None = None
                   ) -> ToolResult: ...


@dataclass
class AgentEvent:
    kind: str  # "text" | "tool_call" | "tool_result" | "progress" | "final" | "budget"
    text: str = ""
    call: ToolCall | None = None
    result: ToolResult | None = None
    progress: tuple[float, float | None] | None = None


@dataclass
class AgentResult:
    text: str
    best: dict[str, Any] | None = None  # structured RunOut of the best run
    runs: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: int = 0
    generations: int = 0
    steps: int = 0
    stopped: str = "answered"  # answered | max_steps
    usage: dict[str, int] = field(default_factory=dict)


def _better(a: dict[str, Any] | None, b: dict[str, Any]) -> bool:
    """Is run b better than run a (scored beats unscored, higher total beats lower, finished beats running)."""
    if b.get("status") != "succeeded":
        return a is None
    if a is None or a.get("status") != "succeeded":
        return True
    sa, sb = (a.get("scores") or {}).get("total"), (b.get("scores") or {}).get("total")
    if sb is None:
        return False
    return sa is None or sb > sa


async def _emit(on_event: EventFn | None, event: AgentEvent) -> None:
    if on_event is not None:
        await call_back(on_event, event)  # the caller's own hook: what it raises is the caller's to see


async def run_ic(llm: LLM, toolbox: ToolBox, request: str, *, budget: int = 3, max_steps: int = 16,
                 on_event: EventFn | None = None, tools: tuple[str, ...] = IC_TOOLS) -> AgentResult:
    """Run the loop for one request; returns the model's answer and the best run it made."""
    specs = [t for t in await toolbox.list_tools() if t.name in tools]
    system = SYSTEM.format(budget=budget)
    messages = [Message(role="user", text=request)]
    result = AgentResult(text="")
    for step in range(max_steps):
        result.steps = step + 1
        reply = await llm.step(system, messages, specs)
        for k, v in reply.usage.items():
            result.usage[k] = result.usage.get(k, 0) + v
        messages.append(Message(role="assistant", text=reply.text, tool_calls=reply.tool_calls))
        if reply.text:
            await _emit(on_event, AgentEvent("text", text=reply.text))
        if not reply.tool_calls:
            result.text = reply.text
            await _emit(on_event, AgentEvent("final", text=reply.text))
            return result
        results = []
        for call in reply.tool_calls:
            results.append(await _call_tool(toolbox, call, result, budget, on_event))
        messages.append(Message(role="tool", results=results))
    result.stopped = "max_steps"
    result.text = "stopped after the step limit"
    return result


async def _call_tool(toolbox: ToolBox, call: ToolCall, result: AgentResult, budget: int,
                     on_event: EventFn | None) -> ToolResult:
    await _emit(on_event, AgentEvent("tool_call", call=call))
    result.tool_calls += 1
    if call.name in RUN_TOOLS and result.generations >= budget:
        res = ToolResult(call_id=call.id, name=call.name, is_error=True,
                         text=f"budget of {budget} generations is used up: answer with the best run so far")
        await _emit(on_event, AgentEvent("budget", text=res.text, call=call))
        return res
    if call.name in RUN_TOOLS:
        result.generations += 1

    async def progress(p: float, total: float | None, message: str | None) -> None:
        await _emit(on_event, AgentEvent("progress", text=message or "", call=call, progress=(p, total)))

    try:
        res = await toolbox.call(call.name, call.arguments, on_progress=progress)
    except Exception as e:  # a broken transport is reported to the model, which can stop or retry
        logger.exception("tool %s failed", call.name)
        res = ToolResult(call_id=call.id, name=call.name, text=f"{type(e).__name__}: {e}", is_error=True)
    res.call_id = call.id
    run = _run_of(res)
    if run is not None:
        result.runs.append(run)
        if _better(result.best, run):
            result.best = run
    await _emit(on_event, AgentEvent("tool_result", call=call, result=res))
    return res


def _run_of(res: ToolResult) -> dict[str, Any] | None:
    s = res.structured
    if res.is_error or not isinstance(s, dict):
        return None
    if "run_id" in s and "status" in s:
        return s
    best = s.get("best")
    return best if isinstance(best, dict) and "run_id" in best else None

