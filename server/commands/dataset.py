"""``comfygen dataset build | status | export`` and ``comfygen calibrate``."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ...tools.dataset.halving import DEFAULT_ETA, DEFAULT_N0
from ...tools.errors import ConfigError
from ...tools.settings import get_settings

dataset_app = typer.Typer(help="Build (prompt, flow, score) triplet datasets on your ComfyUI.", no_args_is_help=True)
console = Console()


def _read_prompts(path: Path) -> list[tuple[str, str]]:
    if not path.is_file():
        raise ConfigError(f"prompt file {path} not found", hint="pass a .txt (one prompt per line) or a CSV with a prompt column")
    if path.suffix == ".csv":
        rows = list(csv.DictReader(path.open(encoding="utf-8")))
        return [(r.get("prompt_id") or f"p{i:05d}", r["prompt"]) for i, r in enumerate(rows)]
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return [(f"p{i:05d}", ln) for i, ln in enumerate(lines)]


def _categorize(texts: list[str]) -> list[list[str]]:
    try:
        from ...tools.dataset.table import classifier_categorize

        return classifier_categorize()(texts)
    except Exception as e:  # categories are metadata; a build works without them
        console.print(f"[yellow]categories skipped: {e}")
        return [[] for _ in texts]


def _run_build(items: list, out: Path, tiny_scorers: bool, width: int | None, height: int | None,
               halving: dict | None = None) -> list:
    """Run a fixed job list, or (``halving``: build_halving's plan arguments) the adaptive plan."""
    from ...flow_library.library import FlowLibrary
    from ...tools.comfy.pool import EndpointPool
    from ...tools.dataset.builder import build, build_halving, ensemble_score_fn
    from ...tools.scoring.ensemble import Ensemble
    from ...tools.store import RunStore

    settings = get_settings()
    if not settings.comfyui_urls:
        raise ConfigError("no ComfyUI configured", hint="set COMFYGEN_COMFYUI_URLS=http://127.0.0.1:8188")
    store = RunStore.from_settings(settings)
    ensemble = Ensemble.from_settings(settings, tiny=tiny_scorers)
    library = FlowLibrary.default(settings.user_flows_dir)

    async def go() -> list:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TextColumn("ETA"), TimeRemainingColumn(), console=console) as bar:
            task = bar.add_task("building", total=len(items) or None)

            def progress(done: int, total: int, t: object) -> None:
                bar.update(task, completed=done, total=total)

            common = dict(library=library, store=store, settings=settings, score=ensemble_score_fn(store, ensemble),
                          width=width, height=height, on_progress=progress)
            async with EndpointPool.from_settings(settings) as pool:
                if halving is not None:
                    return await build_halving(**halving, out=out, pool=pool, **common)
                return await build(items, out, pool=pool, **common)

    return asyncio.run(go())


@dataset_app.command("build")
def build_cmd(
    prompts: Path = typer.Option(..., "--prompts", help=".txt (one per line) or CSV with prompt[,prompt_id]."),
    flows: str = typer.Option(..., "--flows", help="Comma-separated flow ids."),
    out: Path = typer.Option(..., "--out", help="Dataset directory (re-run the same command to resume)."),
    plan: str = typer.Option("grid", help="grid (every flow per prompt), random (--per-prompt flows each) or "
                             "halving (successive halving of the flows per category)."),
    per_prompt: int = typer.Option(2, help="Flows per prompt for the random plan."),
    initial_prompts: int = typer.Option(DEFAULT_N0, help="Halving: prompts per flow in a category's first round."),
    eta: int = typer.Option(DEFAULT_ETA, help="Halving: keep 1/eta of the flows and give them eta x the prompts "
                                              "each round."),
    seeds: int = typer.Option(1, help="Seeds per (prompt, flow)."),
    seed: int = typer.Option(0, help="Plan seed."),
    tiny_scorers: bool = typer.Option(False, help="Random-weight tiny scorers (smoke runs only)."),
    width: int | None = typer.Option(None), height: int | None = typer.Option(None),
) -> None:
    """Run and score prompts x flows; resumable after any interruption."""
    from ...tools.dataset.builder import plan_items

    if plan not in ("grid", "random", "halving"):
        raise ConfigError(f"unknown plan {plan!r}", hint="use grid, random or halving")
    if plan == "halving" and (initial_prompts < 1 or eta < 2):
        raise ConfigError("halving needs --initial-prompts >= 1 and --eta >= 2")
    ps = _read_prompts(prompts)
    cats = _categorize([t for _, t in ps])
    rows = [(pid, t, c) for (pid, t), c in zip(ps, cats)]
    flow_ids = [f.strip() for f in flows.split(",") if f.strip()]
    if plan == "halving":
        spec = dict(prompts=rows, flows=flow_ids, n0=initial_prompts, eta=eta, seeds=seeds, seed=seed)
        triplets = _run_build([], out, tiny_scorers, width, height, halving=spec)
    else:
        items = plan_items(rows, flow_ids, plan=plan, per_prompt=per_prompt,  # type: ignore[arg-type]
                           seeds=seeds, seed=seed)
        triplets = _run_build(items, out, tiny_scorers, width, height)
    console.print(f"{len(triplets)} triplets in {out}")


@dataset_app.command("status")
def status_cmd(out: Path = typer.Option(..., "--out", help="Dataset directory.")) -> None:
    """How many jobs are done."""
    from ...tools.dataset.builder import SPEC, ProgressLog

    spec = json.loads((out / SPEC).read_text()) if (out / SPEC).is_file() else {}
    done = ProgressLog(out).load()
    of = f"at most {spec['jobs']} (halving stops early)" if spec.get("plan") == "halving" else spec.get("jobs", "?")
    console.print(f"{len(done)} / {of} jobs done; flows: {', '.join(spec.get('flows', []))}")


@dataset_app.command("export")
def export_cmd(out: Path = typer.Option(..., "--out", help="Dataset directory."),
               to: Path = typer.Option(..., "--to", help="Destination .csv, .jsonl or .parquet.")) -> None:
    """Export triplets (CSV is planner-ready: prompt_id,prompt,flow,score first)."""
    from ...tools.dataset.builder import export

    console.print(f"wrote {export(out, to)} triplets to {to}")


def calibrate(
    prompts: Path = typer.Option(..., "--prompts", help="Prompt pool (.txt or CSV); K per category are used."),
    k: int = typer.Option(2, "-k", help="Prompts per category."),
    flows: str = typer.Option(..., "--flows", help="Comma-separated flow ids to calibrate (runnable on your ComfyUI)."),
    out: Path | None = typer.Option(None, "--out", help="Dataset directory (default: $COMFYGEN_HOME/calibration)."),
    tiny_scorers: bool = typer.Option(False, help="Random-weight tiny scorers (smoke runs only)."),
) -> None:
    """Small build (K prompts per category x your flows), then merge the results into your score table."""
    from ...tools.dataset.builder import plan_items
    from ...tools.dataset.table import add_calibration

    settings = get_settings()
    ps = _read_prompts(prompts)
    cats = _categorize([t for _, t in ps])
    chosen: list[tuple[str, str, list[str]]] = []
    per_cat: dict[str, int] = {}
    for (pid, text), c in zip(ps, cats):
        if any(per_cat.get(x, 0) < k for x in c):
            chosen.append((pid, text, c))
            for x in c:
                per_cat[x] = per_cat.get(x, 0) + 1
    items = plan_items(chosen, [f.strip() for f in flows.split(",") if f.strip()])
    out = out or settings.home / "calibration"
    triplets = _run_build(items, out, tiny_scorers, None, None)
    path = settings.score_table_path
    add_calibration(triplets, path)
    console.print(f"{len(triplets)} scored runs over {len(per_cat)} categories merged into {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(dataset_app, name="dataset")
    app.command("calibrate")(calibrate)
