"""``comfygen search``: inference-time noise search (random or zero-order) on one flow."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ...tools.app.requests import parse_size
from ...tools.errors import ConfigError, GuardError
from ...tools.settings import Settings, get_settings

if TYPE_CHECKING:
    from ...tools.scoring.ensemble import Ensemble

console = Console(stderr=True)


def _names(values: list[str] | None) -> list[str]:
    return [n.strip() for v in (values or []) for n in v.split(",") if n.strip()]


def _weights(values: list[str] | None) -> dict[str, float]:
    out = {}
    for item in _names(values):
        name, _, w = item.partition("=")
        try:
            out[name] = float(w)
        except ValueError:
            raise GuardError(f"--weight {item!r} is not NAME=NUMBER", hint="e.g. --weight imagereward=2") from None
    return out


def search_cmd(
    prompt: str = typer.Option(..., "--prompt", "-p", help="What to generate."),
    flow_id: str = typer.Option(..., "--flow", "-f", help="Flow id (see `comfygen flows list`)."),
    algorithm: str = typer.Option("random", "--algorithm", "-a", help="random | zero-order"),
    candidates: int = typer.Option(16, "--candidates", "-n", help="Budget: images generated in total."),
    rounds: int | None = typer.Option(None, "--rounds", help="Zero-order rounds (default: until the budget is used)."),
    neighbours: int = typer.Option(4, "--neighbours", help="Zero-order neighbours per round."),
    lam: float = typer.Option(0.9, "--lambda", help="Zero-order: cosine similarity of a neighbour to its pivot."),
    batch: int | None = typer.Option(None, "--batch", "-b", help="Candidates per ComfyUI prompt (default: by "
                                     "family and size)."),
    verifiers: list[str] | None = typer.Option(None, "--verifiers", "-v", help="Scorers, comma-separated or "
                                               "repeated (default: the configured ensemble)."),
    aggregation: str = typer.Option("ensemble", "--aggregation", help="ensemble (the scoring ensemble's total) | "
                                     "mean_rank (its mean rank over the candidates)"),
    weight: list[str] | None = typer.Option(None, "--weight", help="Verifier weight, NAME=W (repeatable)."),
    size: str | None = typer.Option(None, "--size", help="WIDTHxHEIGHT (default: the flow's)."),
    steps: int | None = typer.Option(None, "--steps", help="Override the sampler's step count."),
    seed: int = typer.Option(0, "--seed", help="Base seed; every candidate's seeds derive from it."),
    noise_nodes: str = typer.Option("auto", "--noise-nodes", help="Zero-order: core (SD1.x/SD2.x/SDXL core nodes) | "
                                    "pack (comfygen_noise node, any family) | auto"),
    top_k: int = typer.Option(4, "--top-k", help="Images in the contact sheet."),
    wall_time: float | None = typer.Option(None, "--wall-time", help="Stop after this many seconds."),
    patience: int | None = typer.Option(None, "--patience", help="Stop after this many batches/rounds without "
                                        "a new best."),
    negative: str | None = typer.Option(None, "--negative", help="Negative prompt (default: the flow's)."),
    endpoint: list[str] | None = typer.Option(None, "--endpoint", "-e", help="ComfyUI URL (repeatable; default: "
                                              "COMFYGEN_COMFYUI_URLS)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Folder for the contact sheet and summary.json."),
    tiny_verifiers: bool = typer.Option(False, "--tiny-verifiers", help="Random-weight tiny scorers (smoke "
                                        "tests; scores mean nothing)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Search the initial noise for the best image by the verifiers (Ma et al. 2025), batched.

    The verifiers are a scoring ensemble (the configured one, or ``--verifiers``), ranked as ``comfygen score``
    ranks; the search itself is the service's (``search_flow``), as the MCP tool and the eval harness run it."""
    from ...tools.app.noise_search import search_ensemble, search_flow
    from ...tools.app.service import ComfyGen
    from ...tools.search.engine import SearchConfig, SearchProgress

    settings = get_settings()
    if algorithm not in ("random", "zero-order"):
        raise GuardError(f"unknown algorithm {algorithm!r}", hint="use --algorithm random or --algorithm zero-order")
    if noise_nodes not in ("auto", "core", "pack"):
        raise GuardError(f"unknown --noise-nodes {noise_nodes!r}", hint="use auto, core or pack")
    if aggregation not in ("ensemble", "mean_rank"):
        raise GuardError(f"unknown aggregation {aggregation!r}", hint="use ensemble or mean_rank")
    urls = [u for u in (endpoint or []) if u] or list(settings.comfyui_urls)
    if not urls:
        raise ConfigError("no ComfyUI server configured",
                          hint="pass --endpoint http://127.0.0.1:8188 or set COMFYGEN_COMFYUI_URLS")
    settings = settings.model_copy(update={"comfyui_urls": urls})
    width, height = parse_size(size, what="--size")
    cfg_args: dict[str, Any] = dict(algorithm=algorithm, candidates=candidates, rounds=rounds, neighbours=neighbours,
                                    lam=lam, batch=batch, seed=seed, top_k=top_k, wall_time_s=wall_time,
                                    patience=patience, noise_nodes=noise_nodes)
    if width:
        cfg_args.update(width=width, height=height)
    config = SearchConfig(**cfg_args)
    names = _names(verifiers) or list(settings.scorers)
    weights = _weights(weight)

    def ensemble(s: Settings) -> Ensemble:
        from ...tools.scoring.ensemble import Ensemble

        return Ensemble.from_settings(s, names, tiny=tiny_verifiers, weights=weights).load()

    async def go() -> Any:
        async with ComfyGen(settings, scorer_factory=ensemble) as cg:
            flow = cg.library.get(flow_id)
            console.print(f"loading verifiers: {', '.join(names)}")
            await search_ensemble(cg)
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=console, transient=False) as bar:
                task = bar.add_task(f"{algorithm} search", total=candidates)

                def on_progress(p: SearchProgress) -> None:
                    best = ", ".join(f"{k} {v:.3f}" for k, v in p.best_raw.items())
                    bar.update(task, completed=p.done, description=f"round {p.round} best #{p.best_id}: {best}")

                return await search_flow(cg, flow, prompt, config, aggregation=aggregation,  # type: ignore[arg-type]
                                         negative=negative, steps=steps, out_dir=out, on_progress=on_progress)

    result = asyncio.run(go())
    if as_json:
        typer.echo(json.dumps(result.model_dump(mode="json"), indent=1))
        return
    best = result.best
    console.print(f"[bold]{len(result.candidates)} candidates[/] in {result.elapsed_s:.1f} s "
                  f"(generation {result.generate_s:.1f} s, scoring {result.score_s:.1f} s), stop: {result.stop_reason}")
    if best is not None:
        console.print(f"best: candidate {best.id} ({best.noise.label()}), scores {best.raw}")
        console.print(f"image: {best.image}")
    console.print(f"contact sheet: {result.contact_sheet}\nsummary: {result.summary_path}")


def install_nodes_cmd(
    path: Path = typer.Option(..., "--path", help="The ComfyUI folder (the one holding main.py and custom_nodes/)."),
) -> None:
    """Install comfygen's node pack (ComfyGenNoise) into a ComfyUI; restart ComfyUI afterwards.

    Needed only for zero-order noise search on SD3 / Flux / Playground flows; everything else runs on
    core nodes."""
    from ...tools.search.nodepack import install_nodes

    target = install_nodes(path)
    console.print(f"installed {target}\nrestart ComfyUI to load it (node: ComfyGenNoise)")


def check_noise_cmd(
    flow_id: str = typer.Option("sd15-base", "--flow", "-f", help="An SD1.x / SD2.x / SDXL flow the server can run."),
    endpoint: str = typer.Option(..., "--endpoint", "-e", help="ComfyUI URL."),
    size: str = typer.Option("64x64", "--size", help="WIDTHxHEIGHT of the probe latents."),
) -> None:
    """Check that this ComfyUI starts samplers from exactly the noises noise search means.

    Runs the search graphs stopped at step 0 (nothing is denoised) and compares the saved starting
    latents with our own computation: seeded batches, core-node neighbours and, when installed, the
    ComfyGenNoise pack."""
    from ...flow_library.library import FlowLibrary
    from ...tools.comfy.client import ComfyClient
    from ...tools.search.initial_noise import NoiseSpec, NoiseTerm, latent_shape, neighbour
    from ...tools.search.probe import probe_noises

    settings = get_settings()
    flow = FlowLibrary.default(settings.user_flows_dir).get(flow_id)
    width, height = parse_size(size, what="--size")
    assert width and height
    shape = latent_shape(width, height)
    pivot = NoiseSpec.seeded(101, 0)
    nbs = [neighbour(pivot, NoiseTerm(seed=202, index=k), 0.9, shape) for k in range(3)]

    async def go() -> list[Any]:
        out = []
        async with ComfyClient(endpoint, read_timeout=settings.read_timeout_s) as client:
            info = await client.object_info()
            modes = ["seeded", "latent"] + (["pack"] if "ComfyGenNoise" in info else [])
            for mode in modes:
                specs = [NoiseSpec.seeded(77, k) for k in range(4)] if mode == "seeded" else [pivot] + nbs
                out.append(await probe_noises(client, flow, specs, mode, width=width, height=height))  # type: ignore[arg-type]
        return out

    worst = 0.0
    for rep in asyncio.run(go()):
        worst = max(worst, rep.max_rel_err)
        console.print(f"{rep.mode:7s} {rep.candidates} candidates {rep.shape}: max relative error {rep.max_rel_err:.2e}, "
                      f"min cosine {rep.cosine_min:.9f}")
    if worst > 1e-4:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("search")(search_cmd)
    # `comfygen comfyui install-nodes`: joins the `comfyui` group when another module registered it
    group = next((g.typer_instance for g in app.registered_groups if g.name == "comfyui"), None)
    if group is None:
        group = typer.Typer(help="Inspect and prepare ComfyUI servers.", no_args_is_help=True)
        app.add_typer(group, name="comfyui")
    group.command("install-nodes")(install_nodes_cmd)
    group.command("check-noise")(check_noise_cmd)
