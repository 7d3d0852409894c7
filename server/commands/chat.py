"""``comfygen chat "make me an image of..."``: an LLM drives the comfygen MCP server (ComfyGen-IC, within a budget)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def chat(
        request: str = typer.Argument(..., help="What you want, in words."),
        provider: str | None = typer.Option(None, help="anthropic or openai (default: from the API key set)."),
        model: str | None = typer.Option(None, help="Model name (default: a current Claude / GPT model)."),
        base_url: str | None = typer.Option(None, "--base-url", help="OpenAI-compatible server, e.g. "
                                            "http://localhost:11434/v1 (Ollama) or a vLLM URL."),
        budget: int = typer.Option(3, min=1, max=20, help="Most images the model may generate."),
        max_steps: int = typer.Option(16, min=1, max=100, help="Most model turns."),
        out: Path = typer.Option(Path("."), "--out", "-o", help="Folder for the final image and its record."),
        endpoint: list[str] = typer.Option([], "--endpoint", "-e", help="ComfyUI URL (repeatable; default: "
                                                                        "$COMFYGEN_COMFYUI_URLS)."),
    ) -> None:
        """Chat with an LLM that picks, runs and checks ComfyUI flows through the comfygen MCP server."""
        import anyio
        from rich.console import Console

        from ...tools.agent.llm import make_llm
        from ..chat.runner import run_chat

        console = Console(stderr=True)
        llm = make_llm(provider, model=model, base_url=base_url)  # ConfigError -> clean message from main()
        env = {"COMFYGEN_COMFYUI_URLS": ",".join(endpoint)} if endpoint else None
        console.print(f"[dim]model {llm.model}; starting the comfygen MCP server (stdio)...[/]")
        async def main():
            async with llm:  # type: ignore[attr-defined]
                return await run_chat(request, llm, budget=budget, out_dir=out, env=env, console=console,
                                      max_steps=max_steps)

        outcome = anyio.run(main)
        result = outcome.result
        console.print(f"[dim]{result.steps} turns, {result.tool_calls} tool calls, "
                      f"{result.generations} generations[/]")
        if outcome.image:
            typer.echo(f"image: {outcome.image}")
            typer.echo(f"record: {outcome.record}")
        elif result.generations == 0:
            console.print("[yellow]no image was made[/]")
        if result.text:
            typer.echo(result.text)
