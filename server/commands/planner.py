"""``comfygen planner train | eval | cv | predict`` and ``comfygen plan "prompt"``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ...tools.errors import PlannerError
from ...tools.settings import get_settings

planner_app = typer.Typer(help="Train, evaluate and query the flow planner (ComfyGen-FT).", no_args_is_help=True)
console = Console()
logger = logging.getLogger(__name__)


def _load(planner_dir: Path | None):  # noqa: ANN202 - typed in tools
    from ...tools.planner import Planner

    return Planner.load(planner_dir or get_settings().planner_dir)


@planner_app.command("train")
def train(
    triplets: list[Path] = typer.Option(..., "--triplets", help="CSV with columns prompt_id,prompt,flow,score; "
                                        "repeat for several sources (each file one source; the first sets the units)."),
    out: Path = typer.Option(..., "--out", help="Directory to write the planner artifact to."),
    members: int = typer.Option(3, help="Ensemble members = folds used to choose the switching threshold."),
    epochs: float = typer.Option(3.0, help="Passes over the training prompts per member."),
    seed: int = typer.Option(0, help="Random seed."),
    score_column: str = typer.Option("score", help="Column holding the score."),
    half: bool = typer.Option(False, help="Store weights as float16 (half the size)."),
    time_budget: float = typer.Option(480.0, help="Seconds for training; on a slow machine members take fewer "
                                                  "steps to stay within it (0: no limit)."),
) -> None:
    """Learn a planner from TRAIN.csv and the bundled MiniLM only (no other data, no warm start)."""
    from ...tools.planner import PlannerTrainConfig, load_triplets, train_planner
    from ...tools.planner.net import TrainParams

    tables = []
    for path in triplets:
        t = load_triplets(path, score_column=score_column)
        console.print(f"{path.name}: {len(t)} prompts, {len(t.flows)} flows, {int(t.mask.sum())} scored pairs")
        tables.append((_unique_name(path, [n for n, _ in tables]), t))
    cfg = PlannerTrainConfig(members=members, seed=seed, half=half, params=TrainParams(epochs=epochs),
                             time_budget_s=time_budget or None)
    data = tables[0][1] if len(tables) == 1 else tables
    config = train_planner(data, out, cfg, source=", ".join(str(p) for p in triplets),
                           on_progress=lambda m: console.print(m))
    tau = "never switches" if config.tau is None else f"switches when the predicted advantage > {config.tau:.4f}"
    console.print(f"best single flow (training data): {config.best_single}; {tau}")


def _unique_name(path: Path, taken: list[str]) -> str:
    name, k = path.stem, 2
    while name in taken:
        name, k = f"{path.stem}-{k}", k + 1
    return name


@planner_app.command("eval")
def evaluate(
    planner: Path | None = typer.Option(None, "--planner", help="Planner artifact directory (default: the bundled "
                                        "planner)."),
    triplets: Path = typer.Option(..., "--triplets", help="CSV with columns prompt_id,prompt,flow,score."),
    source: str | None = typer.Option(None, "--source", help="Map TEST's model names as this rating source spells "
                                      "them onto the rated flows (genai, evalmi, aigiqa20k, agiqa, tifa)."),
    score_column: str = typer.Option("score", help="Column holding the score."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the report as JSON here."),
) -> None:
    """Mean score of the flow each strategy picks on TEST's prompts. Last line:
    ``planner=<mean> best_single=<mean> oracle=<mean>``."""
    from ...tools.planner import Planner, evaluate_planner, load_triplets
    from ...tools.planner.data import table_from_rows
    from ...tools.planner.sources import get_source, map_models

    table = load_triplets(triplets, score_column=score_column)
    if source is not None:
        table = table_from_rows(map_models(table.to_rows(), get_source(source)))
    report = evaluate_planner(Planner.load(planner), table)
    if json_out:
        json_out.write_text(json.dumps(report.model_dump(), indent=1))
    for line in report.lines():
        typer.echo(line)


@planner_app.command("cv")
def cross_validate(
    triplets: Path = typer.Option(..., "--triplets", help="CSV with columns prompt_id,prompt,flow,score."),
    folds: int = typer.Option(5, help="Folds (grouped by prompt)."),
    seed: int = typer.Option(0, help="Fold assignment and training seed."),
    members: int = typer.Option(3, help="Ensemble members per trained planner."),
    epochs: float = typer.Option(3.0, help="Passes over the training prompts per member."),
    score_column: str = typer.Option("score", help="Column holding the score."),
    reference_column: str | None = typer.Option(None, "--reference-column", help="Also run the per-label reference "
                                                "on the same folds: the best flow per value of this column (e.g. "
                                                "task, skills), chosen on the training folds."),
    eval_flows: str | None = typer.Option(None, "--eval-flows", help="Comma-separated flows to choose among on the "
                                          "held-out folds (training still uses every flow of the file)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the per-fold reports here."),
) -> None:
    """K-fold cross-validation of the planner against the best single flow (mean ± sd over folds)."""
    from ...tools.planner import PlannerTrainConfig, load_triplets
    from ...tools.planner.cv import cross_validate as run_cv
    from ...tools.planner.net import TrainParams
    from ...tools.planner.reference import read_labels

    cfg = PlannerTrainConfig(members=members, seed=seed, params=TrainParams(epochs=epochs))
    table = load_triplets(triplets, score_column=score_column)
    labels = read_labels(triplets, reference_column) if reference_column else None
    chosen = [f.strip() for f in eval_flows.split(",") if f.strip()] if eval_flows else None
    report = run_cv(table, folds, seed, cfg, on_progress=lambda m: console.print(m), labels=labels,
                    label_column=reference_column, eval_flows=chosen)
    if json_out:
        json_out.write_text(json.dumps({"summary": report.summary(), **report.model_dump()}, indent=1))
    for line in report.lines():
        typer.echo(line)


def _print_ranking(prompt: str, planner_dir: Path | None, k: int, target_score: float | None,
                   as_json: bool) -> None:
    from ...flow_library.library import FlowLibrary
    from ...tools.planner.coverage import FlowPrediction

    planner = _load(planner_dir)
    settings = get_settings()
    library = FlowLibrary.default(settings.user_flows_dir)
    own = not any(f in library for f in planner.flows)  # a planner trained on flows of its own naming
    if own:
        preds = [FlowPrediction(p.flow_id, p.score, float("nan"), "rated", p.flow_id,
                                "a flow of the planner's training data (not in the flow library)")
                 for p in planner.predict(prompt, k=k, target_score=target_score)]
    else:
        preds = planner.rank_prompt(prompt, library, k=k, target_score=target_score)
    cats: list[tuple[str, float]] = []
    try:
        from ...tools.categorize import CategoryClassifier

        cats = CategoryClassifier.load().predict(prompt)
    except Exception as e:  # categories are informative only; the ranking stands without them
        logger.warning("category classifier unavailable: %s", e)
    if as_json:
        typer.echo(json.dumps({"prompt": prompt, "categories": [{"id": c, "prob": round(p, 3)} for c, p in cats],
                               "flows": [{"flow_id": p.flow_id, "score": None if p.provenance == "none" else
                                          round(p.score, 4), "sd": None if p.provenance == "none" or p.sd != p.sd
                                          else round(p.sd, 4),
                                          "normalized": None if p.provenance == "none" else
                                          round(planner.normalized(p.score), 4),
                                          "provenance": p.provenance, "from": p.anchor, "note": p.note}
                                         for p in preds]}, indent=1))
        return
    console.print("categories: " + (", ".join(f"{c} ({p:.2f})" for c, p in cats) or "none detected"))
    table = Table("#", "flow", "predicted", "± sd", "provenance", "from")
    for i, p in enumerate(preds, 1):
        known = p.provenance != "none"
        table.add_row(str(i), p.flow_id, f"{p.score:+.3f}" if known else "-",
                      f"{p.sd:.3f}" if known and p.sd == p.sd else "-", p.provenance, p.anchor or "")
    console.print(table)
    if own:
        console.print(f"none of this planner's flows is in the flow library: its own flows, in its training units; "
                      f"best single flow of its training data: {planner.best_single}")
        return
    cov = planner.coverage(library)
    unknown = sum(r.kind == "none" for r in cov.rules.values())
    zero = "0 = SDXL 1.0 base" if "rated-sdxl-base" in planner.config.quality else "in the training file's units"
    console.print(f"joint quality scale ({zero}); {unknown} of {len(cov.rules)} executable flows have no rated "
                  "relative and come last")


@planner_app.command("predict")
def predict(
    prompt: str = typer.Argument(..., help="The image prompt."),
    planner: Path | None = typer.Option(None, "--planner", help="Planner directory (default: bundled)."),
    k: int = typer.Option(5, "-k", help="How many flows to list."),
    target_score: float | None = typer.Option(None, "--target-score", help="Normalised target score in [0, 1]."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Ranked flows for a prompt, with detected categories and predicted scores."""
    _print_ranking(prompt, planner, k, target_score, as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(planner_app, name="planner")
    app.command("plan")(predict)  # `comfygen plan` is `comfygen planner predict`, one level up


__all__ = ["register", "PlannerError"]
