"""``comfygen run``, ``comfygen runs …`` and ``comfygen comfyui …``: run a flow, inspect runs and servers."""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from ...tools.app.requests import parse_size
from ...tools.errors import ConfigError
from ...tools.settings import get_settings
from ...tools.store import FINISHED, RunRecord, RunStore

if TYPE_CHECKING:
    from ...tools.comfy.pool import EndpointPool

console = Console()
runs_app = typer.Typer(help="Inspect recorded runs.", no_args_is_help=True)
comfyui_app = typer.Typer(help="Inspect the configured ComfyUI servers.", no_args_is_help=True)

ENDPOINT_HELP = "ComfyUI URL (repeat for several; default: COMFYGEN_COMFYUI_URLS)."


def _endpoints(endpoint: list[str] | None) -> list[str]:
    urls = [u for u in (endpoint or []) if u] or list(get_settings().comfyui_urls)
    if not urls:
        raise ConfigError("no ComfyUI server configured",
                          hint="pass --endpoint http://127.0.0.1:8188 or set COMFYGEN_COMFYUI_URLS "
                               "(comma-separated, one per GPU or host)")
    return urls


def _pool(urls: list[str]) -> EndpointPool:
    from ...tools.comfy.pool import EndpointPool

    return EndpointPool.from_settings(get_settings(), urls)


def _store() -> RunStore:
    return RunStore.from_settings(get_settings())


class _LiveProgress:
    """Turns ComfyUI events into a rich progress bar: sampler steps, the node running, queue position."""

    def __init__(self, progress: Progress, graph_classes: dict[str, str]):
        self.progress = progress
        self.classes = graph_classes
        self.task = progress.add_task("submitting", total=None)

    def __call__(self, event: Any) -> None:
        kind = getattr(event, "kind", "")
        if kind == "queued":
            self.progress.update(self.task, description=f"queued (position {event.position})")
        elif kind == "started":
            self.progress.update(self.task, description="started")
        elif kind == "node_started":
            cls = event.class_type or self.classes.get(event.node, "")
            self.progress.update(self.task, description=f"node {event.node} {cls}", total=None, completed=0)
        elif kind == "progress":
            cls = self.classes.get(event.node, "")
            self.progress.update(self.task, description=f"node {event.node} {cls}", total=event.max,
                                 completed=event.value)
        elif kind == "cached":
            self.progress.update(self.task, description=f"{len(event.nodes)} nodes cached")
        elif kind == "finished":
            self.progress.update(self.task, description="saving", total=1, completed=1)


def run_command(
    flow_id: str = typer.Argument(..., help="Flow id (see `comfygen flows list`)."),
    prompt: str = typer.Option(..., "--prompt", "-p", help="What to draw."),
    negative: str | None = typer.Option(None, "--negative", "-n", help="Negative prompt (default: the flow's own)."),
    seed: int | None = typer.Option(None, "--seed", "-s", help="Seed (default: random, recorded)."),
    size: str | None = typer.Option(None, "--size", help="WIDTHxHEIGHT (default: the flow's size)."),
    batch: int = typer.Option(1, "--batch", "-b", min=1, help="Images in one ComfyUI prompt."),
    accelerate: str = typer.Option("none", "--accelerate", "-a",
                                   help="none | compile | cache-adaptive | cache-periodic | cache-auto | auto"),
    endpoint: list[str] | None = typer.Option(None, "--endpoint", "-e", help=ENDPOINT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the run record as JSON."),
) -> None:
    """Run a flow on ComfyUI with a live progress bar; save the image(s) and record the run."""
    from ...flow_library.library import FlowLibrary
    from ...tools.pipeline import run_flow

    settings = get_settings()
    width, height = parse_size(size, what="--size")
    urls = _endpoints(endpoint)
    flow = FlowLibrary.default(settings.user_flows_dir).get(flow_id)
    classes = {nid: n.get("class_type", "") for nid, n in flow.graph.items()}

    async def go() -> RunRecord:
        with _store() as store:
            store.recover_orphans()
            async with _pool(urls) as pool:
                columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TimeElapsedColumn()]
                with Progress(*columns, console=Console(stderr=True), transient=True,
                              disable=as_json) as progress:
                    live = _LiveProgress(progress, classes)
                    return await run_flow(flow, prompt, negative=negative, seed=seed, width=width, height=height,
                                          batch=batch, accelerate=accelerate, pool=pool, store=store,
                                          settings=settings, on_event=live)

    rec = asyncio.run(go())
    if as_json:
        typer.echo(rec.model_dump_json(indent=2, exclude={"graph"}))
        return
    dur = rec.timings.duration_s
    console.print(f"[bold green]run[/] {rec.id}  flow {rec.flow_id}  seed {rec.seed}"
                  + (f"  {dur:.2f}s" if dur is not None else "") + f"  on {rec.endpoint}")
    for out in rec.outputs:
        console.print(f"  {out.path}  ({out.width}x{out.height}, {out.size // 1024} KiB)")


# -- runs ---------------------------------------------------------------------------------------------------


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return _dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


@runs_app.command("list")
def runs_list(
    flow: str | None = typer.Option(None, "--flow", help="Only runs of this flow."),
    status: str | None = typer.Option(None, "--status", help="queued|running|succeeded|failed|interrupted|cancelled"),
    contains: str | None = typer.Option(None, "--prompt", help="Only prompts containing this text."),
    limit: int = typer.Option(20, "--limit", "-l", min=1),
    as_json: bool = typer.Option(False, "--json", help="JSON lines, one run each (without graphs)."),
) -> None:
    """Recent runs, newest first."""
    import anyio

    from ...tools.app.operations import invoke
    from ...tools.app.service import ComfyGen

    args = {"flow_id": flow, "status": status, "prompt_contains": contains, "limit": limit}
    recs = anyio.run(invoke, ComfyGen(get_settings()), "list_runs", args).runs
    if as_json:
        for r in recs:
            typer.echo(r.model_dump_json(exclude={"graph"}))
        return
    if not recs:
        console.print("no runs recorded yet: try `comfygen run FLOW_ID --prompt ...`")
        return
    table = Table("created", "status", "flow", "seed", "score", "images", "prompt")
    table.columns.insert(0, Column("id", no_wrap=True))
    for r in recs:
        table.add_row(r.id, _when(r.created), r.status, r.flow_id, str(r.seed),
                      "-" if r.score_total is None else f"{r.score_total:.3f}", str(len(r.outputs)),
                      (r.prompt[:50] + "…") if len(r.prompt) > 50 else r.prompt)
    (console if console.is_terminal else Console(width=160)).print(table)


@runs_app.command("show")
def runs_show(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix of at least 6 characters)."),
    as_json: bool = typer.Option(False, "--json", help="The full record as JSON (graph included)."),
    resume: bool = typer.Option(False, "--resume", help="Finish an interrupted run from ComfyUI's history."),
    endpoint: list[str] | None = typer.Option(None, "--endpoint", "-e", help=ENDPOINT_HELP),
) -> None:
    """One run: parameters, timings, outputs, scores, error."""
    with _store() as store:
        rec = store.get(run_id)
        if resume and rec.status in FINISHED:
            console.print(f"run {rec.id} is {rec.status}: there is nothing to resume", soft_wrap=True)
        elif resume:
            from ...tools.pipeline import resume_run

            urls = [u for u in (endpoint or [])] or ([rec.endpoint] if rec.endpoint else _endpoints(None))

            async def go() -> RunRecord:
                async with _pool(urls) as pool:
                    return await resume_run(rec, pool=pool, store=store, settings=get_settings())

            rec = asyncio.run(go())
    if as_json:
        typer.echo(rec.model_dump_json(indent=2))
        return
    t = rec.timings
    table = Table(show_header=False, box=None)
    rows: list[tuple[str, Any]] = [
        ("id", rec.id), ("status", rec.status), ("flow", rec.flow_id), ("prompt", rec.prompt),
        ("negative", rec.negative), ("seed", rec.seed), ("params", json.dumps(rec.params)),
        ("accelerate", rec.accelerate), ("endpoint", rec.endpoint), ("comfy prompt id", rec.comfy_prompt_id),
        ("graph hash", rec.graph_hash[:16]), ("created", _when(rec.created)), ("started", _when(t.started)),
        ("finished", _when(t.finished)),
        ("duration", "-" if t.duration_s is None else f"{t.duration_s:.2f}s"),
        ("slowest nodes", ", ".join(f"{n} {s:.2f}s" for n, s in sorted(t.per_node.items(), key=lambda x: -x[1])[:3])),
    ]
    if rec.scores:
        rows.append(("scores", ", ".join(f"{k} {v:.3f}" for k, v in rec.scores.items())
                     + ("" if rec.score_total is None else f"  (total {rec.score_total:.3f})")))
    for out in rec.outputs:
        rows.append((f"image {out.index}", f"{out.path} ({out.width}x{out.height}, sha256 {out.sha256[:12]})"))
    if rec.error:
        rows.append(("error", f"{rec.error.type}: {rec.error.message}"))
        if rec.error.hint:
            rows.append(("hint", rec.error.hint))
        if rec.resumable:
            rows.append(("resume", f"comfygen runs show {rec.id} --resume"))
    for k, v in rows:
        table.add_row(f"[bold]{k}[/]", "-" if v is None or v == "" else str(v))
    console.print(table)


@runs_app.command("recover")
def runs_recover() -> None:
    """Mark runs left behind by a process that died, and list those that can be resumed.

    Runs it had handed to ComfyUI become ``interrupted`` (resume them: ComfyUI may have finished them);
    runs it had not yet submitted become ``failed`` (nothing can finish them).
    """
    with _store() as store:
        recs = store.recover_orphans()
    resumable = [r for r in recs if r.resumable]
    if not recs:
        console.print("no orphaned runs")
    for r in resumable:
        console.print(f"{r.id} {r.flow_id}: interrupted  resume: comfygen runs show {r.id} --resume", soft_wrap=True)
    lost = len(recs) - len(resumable)
    if lost:
        console.print(f"{lost} run(s) never reached ComfyUI and were marked failed (see `comfygen runs list "
                      "--status failed`)", soft_wrap=True)


# -- comfyui ------------------------------------------------------------------------------------------------


@comfyui_app.command("status")
def comfyui_status(endpoint: list[str] | None = typer.Option(None, "--endpoint", "-e", help=ENDPOINT_HELP),
                   as_json: bool = typer.Option(False, "--json")) -> None:
    """Health, queue length and model counts of each endpoint."""
    urls = _endpoints(endpoint)

    async def go() -> list[Any]:
        async with _pool(urls) as pool:
            return await pool.status()

    statuses = asyncio.run(go())
    if as_json:
        typer.echo(json.dumps([s.model_dump() for s in statuses], indent=2))
        return
    table = Table("endpoint", "healthy", "version", "running", "pending", "models", "error")
    for s in statuses:
        d = s.model_dump()
        models = d.get("models") or {}
        count = ", ".join(f"{k} {len(v)}" for k, v in models.items()) if isinstance(models, dict) else str(models)
        version = (d.get("version") or "-") + (" (jobs API)" if d.get("jobs_api") else "")
        table.add_row(s.url, "yes" if s.healthy else "[red]no[/]", version, str(d.get("queue_running", "-")),
                      str(d.get("queue_pending", "-")), count or "-", d.get("error") or "")
    console.print(table)


@comfyui_app.command("models")
def comfyui_models(folder: list[str] | None = typer.Option(None, "--folder", "-f",
                                                          help="Model folder(s), e.g. checkpoints, loras."),
                   endpoint: list[str] | None = typer.Option(None, "--endpoint", "-e", help=ENDPOINT_HELP),
                   as_json: bool = typer.Option(False, "--json")) -> None:
    """Model files each endpoint has, by folder."""
    urls = _endpoints(endpoint)
    folders = folder or ["checkpoints", "diffusion_models", "loras", "vae", "text_encoders", "upscale_models"]

    async def go() -> dict[str, dict[str, list[str]]]:
        async with _pool(urls) as pool:
            return {u: await pool.installed(u, folders) for u in pool.urls}

    found = asyncio.run(go())
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    for url, by_folder in found.items():
        console.print(f"[bold]{url}[/]")
        for name, files in by_folder.items():
            console.print(f"  {name} ({len(files)}): " + (", ".join(files) if files else "-"))


@comfyui_app.command("queue")
def comfyui_queue(endpoint: list[str] | None = typer.Option(None, "--endpoint", "-e", help=ENDPOINT_HELP),
                  as_json: bool = typer.Option(False, "--json")) -> None:
    """Running and pending prompts on each endpoint."""
    urls = _endpoints(endpoint)

    async def go() -> dict[str, dict[str, Any]]:
        async with _pool(urls) as pool:
            return {u: await pool.client(u).queue() for u in pool.urls}

    queues = asyncio.run(go())
    if as_json:
        typer.echo(json.dumps(queues, indent=2, default=str))
        return
    for url, q in queues.items():
        running = [item[1] for item in q.get("queue_running", [])]
        pending = [item[1] for item in q.get("queue_pending", [])]
        console.print(f"[bold]{url}[/]  running: {', '.join(running) or '-'}  pending: {len(pending)}"
                      + (f" ({', '.join(pending[:5])}{' …' if len(pending) > 5 else ''})" if pending else ""))


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
    app.add_typer(runs_app, name="runs")
    app.add_typer(comfyui_app, name="comfyui")
