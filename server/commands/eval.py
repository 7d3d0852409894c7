"""``comfygen eval …``: run evaluation configs, build reports, look at prompt sets, check GenEval's rules."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ...tools.settings import get_settings

eval_app = typer.Typer(help="Evaluate strategies (fixed flows, planner, agent, noise search) on benchmark prompts.",
                       no_args_is_help=True)
console = Console()


@eval_app.command("run")
def run(config: Path = typer.Option(..., "--config", "-c", help="Eval config YAML (see evals/configs/)."),
        out: Path | None = typer.Option(None, "--out", help="Run directory (default: $COMFYGEN_HOME/evals/<name>)."),
        data_dir: Path | None = typer.Option(None, "--data-dir", help="Folder with prompts/ (benchmark files)."),
        comfyui: list[str] = typer.Option([], "--comfyui", help="ComfyUI URL (repeatable); overrides the config."),
        ) -> None:
    """Run (or resume) an evaluation; images already in the run store are reused, not regenerated."""
    import asyncio

    from ...evals.runner import load_config, run_eval

    cfg = load_config(config)
    if data_dir is not None:
        cfg.data_dir = str(data_dir)
    if comfyui:
        cfg.comfyui_urls = list(comfyui)
    seen = {"n": 0}

    def progress(s) -> None:  # one line per generated (or failed) image; scored updates stay quiet
        if s.scores or s.geneval_correct is not None:
            return
        seen["n"] += 1
        state = "[red]failed[/]" if s.error else ("reused" if s.reused else "ok")
        secs = "" if s.gpu_seconds is None else f" {s.gpu_seconds:.1f}s"
        console.print(f"[dim]{seen['n']:>4}[/] {s.strategy[:18]:<18} {s.prompt_id[:14]:<14} {s.seed:<10} "
                      f"{(s.flow_id or '-')[:18]:<18} {state}{secs}" + (f" [red]{s.error[:80]}[/]" if s.error else ""),
                      highlight=False)

    run_dir = asyncio.run(run_eval(cfg, settings=get_settings(), out_dir=out, on_sample=progress))
    _print_summary(run_dir)
    console.print(f"report: {run_dir / 'report.html'}")


@eval_app.command("plan")
def plan(config: Path = typer.Option(..., "--config", "-c", help="Eval config YAML."),
         out: Path | None = typer.Option(None, "--out", help="Run directory (default: $COMFYGEN_HOME/evals/<name>)."),
         data_dir: Path | None = typer.Option(None, "--data-dir", help="Folder with prompts/ (benchmark files)."),
         as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Dry run: images per strategy, done already, reusable from the run store, and still to generate."""
    from ...evals.runner import load_config, plan_eval

    cfg = load_config(config)
    if data_dir is not None:
        cfg.data_dir = str(data_dir)
    res = plan_eval(cfg, settings=get_settings(), out_dir=out)
    if as_json:
        typer.echo(json.dumps(res, indent=2))
        return
    t = Table(title=f"{res['name']}: {res['prompts']} prompts × {res['seeds_per_prompt']} seed(s) -> {res['run_dir']}")
    t.add_column("strategy", min_width=18, overflow="fold")
    for col in ("kind", "images", "done", "in store", "to generate", "runs/image", "errors"):
        t.add_column(col, justify="right")
    for r in res["strategies"]:
        t.add_row(r["strategy"], r["kind"], str(r["images"]), str(r["done"]), str(r["in_store"]),
                  str(r["to_generate"]), str(r["runs_per_image"]), str(r["errors"]))
    console.print(t)


@eval_app.command("report")
def report(run_dir: Path = typer.Argument(..., help="A run directory made by `comfygen eval run`."),
           n_boot: int = typer.Option(2000, "--n-boot", help="Bootstrap resamples for the CIs."),
           grid: int = typer.Option(24, "--grid", help="Prompts shown in the image grid.")) -> None:
    """Recompute every number of a run and write report.html, results.json and the CSV tables."""
    from ...evals.report import build_report

    path = build_report(run_dir, n_boot=n_boot, max_grid_prompts=grid)
    _print_summary(run_dir)
    console.print(f"report: {path}")


def _print_summary(run_dir: Path) -> None:
    res = json.loads((Path(run_dir) / "results.json").read_text())
    held = res.get("heldout_scorer")
    means = {(m["strategy"], m["scorer"]): m["mean"] for m in res["mean_scores"]}
    div = {d["strategy"]: d["unique_flows"] for d in res["diversity"]}
    cost = {c["strategy"]: c for c in res["cost"]}
    wins = {(w["a"], w["b"]): w for w in res["win_rates"]}
    base = res.get("baseline")
    gen = (res.get("geneval") or {}).get("table", {})
    t = Table(title=f"{res['n_prompts']} prompts × {res['seeds_per_prompt']} seed(s); mean and win rate by {held}, "
                    f"win rate against {base}; cost in GPU s per image")
    t.add_column("strategy", min_width=18, overflow="fold")
    for col in ("mean", "win", "95% CI", "flows", "s/img", "reused", "failed", "GenEval"):
        t.add_column(col, justify="right", no_wrap=True)
    for st in res["strategies"]:
        w = wins.get((st, base))
        m = means.get((st, held))
        c = cost.get(st, {})
        gps = c.get("gpu_seconds_per_image")
        t.add_row(st, "–" if m is None else f"{m:.4f}", "–" if not w or w["win_rate"] is None else f"{w['win_rate']:.3f}",
                  "–" if not w or w["ci_low"] is None else f"[{w['ci_low']:.2f}, {w['ci_high']:.2f}]",
                  str(div.get(st, 0)), "–" if gps is None else f"{gps:.3f}", str(c.get("reused", 0)),
                  str(res["failures"].get(st, 0)),
                  "–" if st not in gen else f"{gen[st]['Overall']:.3f}")
    console.print(t)


@eval_app.command("prompts")
def prompts(prompt_set: str = typer.Argument(..., help="parti, drawbench, geneval, t2i_compbench, gecko, "
                                                         "imagereward, or a .txt/.csv/.tsv/.jsonl file."),
            n: int | None = typer.Option(None, "--n"), per_category: int | None = typer.Option(None, "--per-category"),
            category: list[str] = typer.Option([], "--category"), seed: int = typer.Option(0, "--seed"),
            data_dir: Path | None = typer.Option(None, "--data-dir"),
            as_json: bool = typer.Option(False, "--json", help="One JSON object a line.")) -> None:
    """Show a prompt set's categories, or a seeded sample of it (--n / --per-category / --category)."""
    from ...evals.prompts import categories, load_set, sample

    ps = load_set(prompt_set, data_dir)
    if n is None and per_category is None and not category:
        t = Table(title=f"{prompt_set}: {len(ps)} prompts")
        t.add_column("category")
        t.add_column("prompts", justify="right")
        for c, k in categories(ps).items():
            t.add_row(c or "(none)", str(k))
        console.print(t)
        return
    picked = sample(ps, n=n, per_category=per_category, categories=category or None, seed=seed)
    for p in picked:
        if as_json:
            typer.echo(p.model_dump_json())
        else:
            typer.echo(f"{p.id}\t{p.category}\t{p.text}")


@eval_app.command("geneval-check")
def geneval_check(data_dir: Path | None = typer.Option(None, "--data-dir"),
                  out: Path | None = typer.Option(None, "--json", help="Write the full result here."),
                  images: Path | None = typer.Option(None, "--images", help="Annotated images, to check the detector."),
                  ) -> None:
    """Agreement of GenEval's rule logic with GenEval's human annotations (see evals/geneval_check.py)."""
    from ...evals.geneval_check import main as check_main

    argv = [] if data_dir is None else ["--data-dir", str(data_dir)]
    argv += [] if out is None else ["--json", str(out)]
    argv += [] if images is None else ["--images", str(images)]
    check_main(argv)


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
