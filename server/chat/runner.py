"""Run one chat: start the server over stdio, let the LLM drive it (ComfyGen-IC), show what happens, save the image."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.client.stdio import stdio_client
from mcp.types import BlobResourceContents, TextResourceContents
from rich.console import Console

from ...tools.agent.llm import LLM
from ...tools.settings import get_settings
from ...tools.agent.loop import AgentEvent, AgentResult, run_ic
from .toolbox import MCPToolBox, server_params


def _quiet_client(transport: Any) -> Client:
    """An MCP client over the server's stdio; the server's own log goes to a file, not the terminal."""
    return Client(transport, read_timeout_seconds=3600)


@dataclass
class ChatOutcome:
    result: AgentResult
    image: Path | None = None
    record: Path | None = None


def _args(arguments: dict[str, Any]) -> str:
    parts = []
    for k, v in arguments.items():
        text = json.dumps(v, ensure_ascii=False)
        parts.append(f"{k}={text if len(text) <= 60 else text[:57] + '...'}")
    return ", ".join(parts)


class Printer:
    """Streams the loop to the terminal: the model's text, tool calls, progress, results."""

    def __init__(self, console: Console):
        self.console = console
        self._last_progress = ""

    def __call__(self, ev: AgentEvent) -> None:
        c = self.console
        if ev.kind == "text":
            c.print(f"[bold]model:[/] {ev.text}")
        elif ev.kind == "tool_call" and ev.call:
            c.print(f"[cyan]-> {ev.call.name}[/]({_args(ev.call.arguments)})")
        elif ev.kind == "progress" and ev.text and ev.text != self._last_progress:
            self._last_progress = ev.text
            c.print(f"   [dim]{ev.text}[/]")
        elif ev.kind == "tool_result" and ev.result:
            c.print(f"[green]<- {ev.result.name}[/]: {self._summary(ev.result)}" if not ev.result.is_error
                    else f"[red]<- {ev.result.name} error[/]: {ev.result.text[:400]}")
        elif ev.kind == "budget":
            c.print(f"[yellow]budget:[/] {ev.text}")

    @staticmethod
    def _summary(res: Any) -> str:
        s = res.structured or {}
        if "run_id" in s:
            total = (s.get("scores") or {}).get("total")
            skipped = (s.get("scores") or {}).get("skipped")
            score = f"score {total:.4f}" if isinstance(total, int | float) else f"not scored ({skipped})"
            return f"run {s['run_id']} {s.get('status')}, flow {s.get('flow_id')}, {score}"
        if "flows" in s:
            return "flows: " + ", ".join(f"{f['flow_id']} ({f.get('predicted_score')})" for f in s["flows"][:5])
        return res.text[:200].replace("\n", " ")


async def save_run(client: Client, run_id: str, out_dir: Path) -> tuple[Path | None, Path | None]:
    """Write the run's full-resolution PNG and its record (JSON) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    image = record = None
    for block in (await client.read_resource(f"run://{run_id}")).contents:
        if isinstance(block, BlobResourceContents):
            image = out_dir / f"comfygen-{run_id}.png"
            image.write_bytes(base64.b64decode(block.blob))
    for block in (await client.read_resource(f"run://{run_id}/record")).contents:
        if isinstance(block, TextResourceContents):
            record = out_dir / f"comfygen-{run_id}.json"
            record.write_text(block.text, encoding="utf-8")
    return image, record


async def run_chat(request: str, llm: LLM, *, budget: int = 3, out_dir: Path = Path("."),
                   env: dict[str, str] | None = None, console: Console | None = None,
                   max_steps: int = 16) -> ChatOutcome:
    console = console or Console()
    log_path = get_settings().home / "logs" / "chat-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a", encoding="utf-8") as errlog:
        async with _quiet_client(stdio_client(server_params(env), errlog=errlog)) as client:
            result = await run_ic(llm, MCPToolBox(client), request, budget=budget, max_steps=max_steps,
                                  on_event=Printer(console))
            outcome = ChatOutcome(result=result)
            best = result.best
            if best and best.get("status") == "succeeded" and best.get("run_id"):
                outcome.image, outcome.record = await save_run(client, best["run_id"], out_dir)
    return outcome
