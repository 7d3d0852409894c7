"""``comfygen generate "..."``: the main job.

With a ComfyUI configured (``--endpoint`` or ``COMFYGEN_COMFYUI_URLS``): plan -> run -> score -> save, with a
progress bar. With none: the bundled planner picks the flow and the ready-to-queue ComfyUI API JSON is
written to a file, with why this flow and how to run it. Works on a machine with no GPU and no ComfyUI.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from ...tools.settings import Settings

def _size(size: str | None) -> tuple[int | None, int | None]:
    from ...tools.app.requests import parse_size
    from ...tools.errors import GuardError

    try:
        return parse_size(size)
    except GuardError as e:
        raise typer.BadParameter(f"{e.message}: {e.hint}", param_hint="--size") from None


def _slug(text: str, n: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:n].strip("-") or "image"


def register(app: typer.Typer) -> None:
    @app.command()
    def generate(
        prompt: str = typer.Argument(..., help="What the image should show."),
        flow: str | None = typer.Option(None, "--flow", "-f", help="Flow id (default: the planner's top pick)."),
        endpoint: list[str] = typer.Option([], "--endpoint", "-e", help="ComfyUI URL (repeatable; default: "
                                                                        "$COMFYGEN_COMFYUI_URLS)."),
        negative: str | None = typer.Option(None, help="Negative prompt (default: the flow's own)."),
        seed: int | None = typer.Option(None, min=0, max=2**64 - 1,
                                        help="Seed 0..2^64-1, ComfyUI's range (default: random when running, 0 for "
                                             "the JSON)."),
        size: str | None = typer.Option(None, help="WIDTHxHEIGHT (default: the flow's size)."),
        candidates: int = typer.Option(1, min=1, max=16, help="Images in one batch; the best-scoring is kept."),
        accelerate: str = typer.Option("none", help="none|compile|cache-adaptive|cache-periodic|cache-auto|auto."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Where to write the image (or the API JSON)."),
        as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
        tiny_scorers: bool = typer.Option(False, "--tiny-scorers", hidden=True,
                                          help="Random-weight scorers (smoke tests only)."),
    ) -> None:
        """Pick the right ComfyUI flow for a prompt and run it (or write it out, when no ComfyUI is configured)."""
        from ...tools.app.service import tiny_scorer_factory
        from ...tools.settings import get_settings

        settings = get_settings()
        if endpoint:
            settings = settings.model_copy(update={"comfyui_urls": list(endpoint)})
        width, height = _size(size)
        if settings.comfyui_urls:
            _run(settings, prompt, flow=flow, negative=negative, seed=seed, size=size,
                 candidates=candidates, accelerate=accelerate, out=out, as_json=as_json,
                 scorer_factory=tiny_scorer_factory if tiny_scorers else None)
        else:
            _plan_only(settings, prompt, flow=flow, negative=negative, seed=seed or 0, width=width, height=height,
                       out=out, as_json=as_json)


def _plan_only(settings: Settings, prompt: str, *, flow: str | None, negative: str | None, seed: int, width: int | None,
               height: int | None, out: Path | None, as_json: bool) -> None:
    from rich.console import Console

    from ...flow_library.render import render
    from ...tools.app.service import ComfyGen, check_prompt

    console = Console(stderr=True)
    cg = ComfyGen(settings)
    prompt = check_prompt(prompt)
    with console.status("choosing a flow with the bundled planner...", spinner="dots"):
        suggestion = cg.suggest(prompt, k=5)
        chosen = cg.get_flow(flow) if flow else cg.library.get(suggestion.flows[0].flow_id)
        graph = render(chosen, prompt, negative, seed, width, height)
    pick = next((f for f in suggestion.flows if f.flow_id == chosen.id), None)
    path = out or Path.cwd() / f"comfygen-{chosen.id}-{_slug(prompt)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(graph, indent=1), encoding="utf-8")
    if as_json:
        typer.echo(json.dumps({"path": str(path), "flow_id": chosen.id, "suggestion": suggestion.model_dump(mode="json")},
                              indent=1))
        return
    _explain(console, suggestion, chosen, pick, path, settings)
    typer.echo(str(path))


def _explain(console: Any, suggestion: Any, flow: Any, pick: Any, path: Path, settings: Settings) -> None:
    from rich.panel import Panel
    from rich.table import Table

    cats = ", ".join(f"{c.id} ({c.probability:.2f})" for c in suggestion.categories) or "none detected"
    lines = [f"[bold]prompt[/]      {suggestion.prompt}", f"[bold]categories[/]  {cats}",
             f"[bold]flow[/]        [cyan]{flow.id}[/] - {flow.name}"]
    if pick is not None:
        lines.append(f"[bold]why[/]         {pick.why}")
        score = f"{pick.predicted_score:.3f}" if pick.predicted_score is not None else "n/a"
        scale = " of 1 over the planner's training range" if pick.score_source == "planner" else ""
        lines.append(f"[bold]predicted[/]   {score}{scale} (source: {pick.score_source})")
    else:
        lines.append("[bold]why[/]         chosen with --flow")
    if suggestion.note:
        lines.append(f"[yellow]note[/]        {suggestion.note}")
    models = ", ".join(name for _, name in flow.models.files()) or "none"
    lines.append(f"[bold]needs[/]       {models}")
    console.print(Panel("\n".join(lines), title="comfygen", border_style="cyan", expand=False))
    table = Table(title="other good flows", show_edge=False, header_style="bold")
    for col in ("flow", "predicted (0-1)", "why"):
        table.add_column(col)
    for f in suggestion.flows[:5]:
        if f.flow_id != flow.id:
            table.add_row(f.flow_id, f"{f.predicted_score:.3f}" if f.predicted_score is not None else "-", f.why)
    if table.row_count:
        console.print(table)
    seed = _seed_of(suggestion, flow, path)
    console.print(f"\nNo ComfyUI configured, so nothing ran. The ready-to-queue API JSON is in [bold]{path}[/].\n"
                  "Run it with comfygen (plans, runs, scores, saves the PNG):\n"
                  f"  comfygen run {flow.id} --prompt {json.dumps(suggestion.prompt)} --seed {seed} "
                  "--endpoint http://127.0.0.1:8188\n"
                  "or queue the file on ComfyUI directly:\n"
                  f"  curl -X POST http://127.0.0.1:8188/prompt -H 'Content-Type: application/json' "
                  f"-d \"{{\\\"prompt\\\": $(cat {path.name})}}\"\n"
                  "Set COMFYGEN_COMFYUI_URLS (or pass -e URL) and `comfygen generate` does all of it in one step.")


def _seed_of(suggestion: Any, flow: Any, path: Path) -> int:
    graph = json.loads(path.read_text(encoding="utf-8"))
    for ref in flow.slots.seed[:1]:
        value = graph.get(ref.node, {}).get("inputs", {}).get(ref.input)
        if isinstance(value, int):
            return value
    return 0


def _run(settings: Settings, prompt: str, *, flow: str | None, negative: str | None, seed: int | None, size: str | None,
         candidates: int, accelerate: str, out: Path | None, as_json: bool, scorer_factory: Any) -> None:
    import anyio
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from pydantic import ValidationError

    from ...tools.app.operations import OPERATIONS, Call, render_invalid
    from ...tools.app.requests import FullRangeGenerateRequest
    from ...tools.app.service import ComfyGen

    console = Console(stderr=True)
    op = OPERATIONS["generate"]
    try:
        req = FullRangeGenerateRequest(prompt=prompt, flow_id=flow, negative=negative, seed=seed, size=size,
                                       accelerate=accelerate, candidates=candidates)
    except ValidationError as e:
        raise typer.BadParameter(render_invalid("generate", e)) from None
    req.check()

    async def main() -> Any:
        async with ComfyGen(settings, scorer_factory=scorer_factory) as cg:
            with Progress(TextColumn("[cyan]{task.description}"), BarColumn(), TextColumn("{task.fields[msg]}"),
                          TimeElapsedColumn(), console=console, transient=True) as bar:
                task = bar.add_task("generating", total=None, msg="planning")

                async def report(progress: float, total: float | None, message: str) -> None:
                    bar.update(task, completed=progress, total=total, msg=message)

                return await op.run(cg, req, Call(report=report))

    result = anyio.run(main)
    image = Path(result.image_path) if result.image_path else None
    if out is not None and image is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(image, out)
        image = out
    if as_json:
        typer.echo(result.model_dump_json(indent=1))
        return
    s = result.scores
    score = f"{s.total:.4f}" if s.total is not None else f"not scored ({s.skipped})"
    console.print(f"[bold]flow[/]   [cyan]{result.flow_id}[/] - {result.why_flow}\n"
                  f"[bold]score[/]  {score}\n[bold]run[/]    {result.run_id} ({result.seconds} s on {result.endpoint})")
    typer.echo(str(image) if image else f"run {result.run_id}: {result.status} {result.error or ''}")
