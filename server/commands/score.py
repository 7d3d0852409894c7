"""``comfygen score`` (score images with the reward-model ensemble) and ``comfygen scorers list|check|calibrate|stats``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ...tools.errors import ScoringError

console = Console()


def _names(scorers: str | None) -> list[str] | None:
    return [s.strip() for s in scorers.split(",") if s.strip()] if scorers else None


def _weights(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ScoringError(f"bad --weight {item!r}", hint="use NAME=NUMBER, e.g. --weight clipscore=0.5") from None
    return out


def register(app: typer.Typer) -> None:
    @app.command()
    def score(
        images: list[Path] = typer.Argument(None, help="Image files to score.", show_default=False),
        prompt: str | None = typer.Option(None, "--prompt", "-p", help="The prompt the images were made from."),
        scorers: str | None = typer.Option(None, help="Comma-separated scorers (default: $COMFYGEN_SCORERS)."),
        weight: list[str] = typer.Option([], "--weight", "-w", help="Ensemble weight NAME=NUMBER (repeatable)."),
        run: str | None = typer.Option(None, "--run", help="Score a stored run (all its images) and save the scores."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
        tiny: bool = typer.Option(False, "--tiny", help="Tiny random-weight models (plumbing checks; scores are meaningless)."),
        device: str | None = typer.Option(None, help="cpu, cuda, cuda:1... (default: $COMFYGEN_SCORER_DEVICE)."),
    ) -> None:
        """Score images with the ensemble: per-scorer raw and standardized scores, total and mean rank."""
        from ...tools.scoring.ensemble import Ensemble
        from ...tools.scoring.registry import build_scorers
        from ...tools.scoring.stored_runs import load_images
        from ...tools.settings import get_settings

        settings = get_settings()
        from ...tools.scoring.config import load_config

        weights = {**(load_config().ensemble_weights or {}), **_weights(weight)}
        ens = Ensemble(build_scorers(_names(scorers), settings, tiny=tiny, device=device), weights=weights,
                       settings=settings)
        if run:
            from ...tools.scoring.stored_runs import score_run
            from ...tools.store import RunStore

            with RunStore.from_settings(settings) as store:
                rec = store.get(run)
                results = score_run(store, rec.id, ens)
            labels = [o.path for o in rec.outputs]
        else:
            if not images or prompt is None:
                raise ScoringError("nothing to score", hint="pass IMAGE... --prompt '...', or --run RUN_ID")
            results = ens.score(load_images(images), prompt)
            labels = [str(p) for p in images]
        if as_json:
            typer.echo(json.dumps([{"image": lab, **r.model_dump()} for lab, r in zip(labels, results, strict=True)],
                                  indent=2))
            return
        table = Table("image", "total", "mean rank", *ens.names, title="scores (raw / z)" + (" [tiny models]" if tiny else ""))
        for lab, r in zip(labels, results, strict=True):
            table.add_row(Path(lab).name, f"{r.total:+.3f}", f"{r.mean_rank:.2f}",
                          *[f"{r.raw[n]:.4g} / {r.z[n]:+.2f}" for n in ens.names])
        console.print(table)

    scorers_app = typer.Typer(help="Reward models: what is configured, what loads, calibration.", no_args_is_help=True)
    app.add_typer(scorers_app, name="scorers")

    def _status_table(check: bool, tiny: bool, as_json: bool) -> None:
        from ...tools.scoring.registry import scorer_statuses

        rows = scorer_statuses(check=check, tiny=tiny)
        if as_json:
            typer.echo(json.dumps([r.model_dump() for r in rows], indent=2))
            return
        table = Table("scorer", "configured", "device", *(("loadable", "params") if check else ()), "description / error")
        for r in rows:
            extra = (("yes" if r.loadable else "NO", f"{r.params:,}" if r.params else "-") if check else ())
            table.add_row(r.name, "yes" if r.configured else "-", r.device, *extra, r.error or r.description)
        console.print(table)

    @scorers_app.command("list")
    def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """List the scorers, which are in the configured ensemble, and the device they would use."""
        _status_table(False, False, as_json)

    @scorers_app.command()
    def check(
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
        tiny: bool = typer.Option(False, "--tiny", help="Check the tiny random-weight builds instead."),
    ) -> None:
        """Try to load every scorer: weights found? model built? on which device?"""
        _status_table(True, tiny, as_json)

    @scorers_app.command()
    def stats(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """Show the reference statistics used to standardize each scorer, with their source."""
        from ...tools.scoring.ensemble import load_reference_stats, stats_table

        rows = stats_table(load_reference_stats())
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        table = Table("scorer", "mean", "std", "n", "source")
        for r in rows:
            table.add_row(str(r["scorer"]), f"{r['mean']:.4g}", f"{r['std']:.4g}", str(r["n"] or "-"), str(r["source"]))
        console.print(table)

    @scorers_app.command()
    def calibrate(
        images: list[Path] = typer.Argument(None, help="Your images (dozens or more).", show_default=False),
        prompt: list[str] = typer.Option([], "--prompt", "-p",
                                         help="One prompt for all images, or one per image (repeat in order)."),
        from_store: bool = typer.Option(False, "--from-store", help="Use the raw scores of every scored run in the store."),
        scorers: str | None = typer.Option(None, help="Comma-separated scorers (default: $COMFYGEN_SCORERS)."),
        tiny: bool = typer.Option(False, "--tiny", help="Tiny random-weight models (plumbing checks only)."),
    ) -> None:
        """Recompute the reference statistics on your own images and save them under $COMFYGEN_HOME."""
        from ...tools.scoring.ensemble import calibrate_stats, user_stats_path
        from ...tools.scoring.stored_runs import load_images
        from ...tools.scoring.registry import build_scorers
        from ...tools.settings import get_settings

        settings = get_settings()
        if from_store:
            from ...tools.scoring.stored_runs import stored_raw_scores
            from ...tools.store import RunStore

            with RunStore.from_settings(settings) as store:
                raw = stored_raw_scores(store)
            result = calibrate_stats([], raw=raw, settings=settings, source="calibrated on scored runs of the run store")
        else:
            if not images or not prompt:
                raise ScoringError("nothing to calibrate on", hint="pass IMAGE... --prompt '...', or --from-store")
            if len(prompt) not in (1, len(images)):
                raise ScoringError(f"{len(images)} images but {len(prompt)} prompts", hint="give 1 prompt or one per image")
            prompts = prompt * len(images) if len(prompt) == 1 else prompt
            result = calibrate_stats(build_scorers(_names(scorers), settings, tiny=tiny), load_images(images), prompts,
                                     settings=settings)
        for n, s in result.scorers.items():
            console.print(f"{n}: mean {s.mean:.4g}  std {s.std:.4g}  (n={s.n})")
        console.print(f"saved to {user_stats_path(settings)}")
