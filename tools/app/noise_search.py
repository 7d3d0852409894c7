"""Noise search (random / zero-order, Ma et al. 2025) as an operation of the service.

:func:`search_flow` is the one way to run a noise search: the MCP tool (through :func:`noise_search`),
``comfygen search`` and the eval harness all call it. It ranks candidates by the service's scoring
ensemble (its scorers, weights and reference statistics, as ``generate`` scores an image), generates on
the service's pool and records in its store; callers choose the ensemble by the service they pass.

:func:`noise_search` is the MCP tool's operation: it picks the flow, reports the best score so far, and
runs the search as a job of the service like a generate run: after ``wait_s`` the call returns a
``search-...`` id with status "running" and the search goes on; ``get_run`` with that id waits for it and
returns the best image. ``wall_time_s`` bounds the search.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ...flow_library.model import Flow
from ..callbacks import call
from ..errors import ComfyGenError, GuardError, ScoringError
from .jobs import record_to_out
from .models import RunOut, SearchOut, SearchStepOut
from .progress import ProgressTracker, ReportFn
from .service import ComfyGen, check_prompt

if TYPE_CHECKING:
    from ..scoring.ensemble import Ensemble
    from ..search.engine import SearchConfig, SearchProgress, SearchResult
    from ..search.verifiers import Aggregation

Algorithm = Literal["random", "zero-order"]


async def search_ensemble(cg: ComfyGen) -> Ensemble:
    """The service's scoring ensemble, which ranks the candidates; a clear error when it cannot."""
    from ..scoring.ensemble import Ensemble

    try:
        ensemble = await cg.scorer()
    except ComfyGenError as e:
        raise ScoringError(f"noise search cannot rank candidates: {e.message}", hint=e.hint) from e
    if not isinstance(ensemble, Ensemble):
        raise ScoringError(f"noise search needs a scoring Ensemble, the service has a {type(ensemble).__name__}",
                           hint="build the service with a scorer_factory that returns an Ensemble")
    return ensemble


async def search_flow(cg: ComfyGen, flow: Flow, prompt: str, config: SearchConfig, *,
                      aggregation: Aggregation = "ensemble", negative: str | None = None, steps: int | None = None,
                      out_dir: Path | str | None = None,
                      on_progress: Callable[[SearchProgress], Any] | None = None) -> SearchResult:
    """Search the initial noise of ``flow`` for ``prompt``, ranked by the service's scoring ensemble.

    ``aggregation``: ``ensemble`` ranks by the ensemble's total, ``mean_rank`` by its mean rank over the
    candidates. Writes the contact sheet and ``summary.json`` (to ``out_dir``, default under the outputs)."""
    from ..search.flow_search import run_search
    from ..search.verifiers import VerifierSet

    verifiers = VerifierSet(await search_ensemble(cg), method=aggregation)
    return await run_search(flow, prompt, config, verifiers=verifiers, pool=cg.pool, store=cg.store,
                            settings=cg.settings, negative=negative, steps=steps, out_dir=out_dir,
                            on_progress=on_progress)


async def noise_search(cg: ComfyGen, prompt: str, *, flow_id: str | None = None, algorithm: Algorithm = "random",
                       budget: int = 8, width: int | None = None, height: int | None = None, seed: int = 0,
                       negative: str | None = None, wall_time_s: float | None = 45.0,
                       report: ReportFn | None = None, wait_s: float | None = None,
                       cancel_if: Callable[[], bool] | None = None) -> SearchOut:
    from ..search.engine import SearchConfig

    prompt = check_prompt(prompt)
    if not 2 <= budget <= 64:
        raise GuardError(f"budget={budget} is out of range", hint="search 2..64 candidate noises per call")
    cg.pool  # noqa: B018 - raises ConfigError when no ComfyUI is configured, before anything starts
    if flow_id is None:
        await cg.refresh_installed()
    flow, why = cg.pick_flow(prompt, flow_id)
    await search_ensemble(cg)  # scorers that cannot load fail the call, not the job
    cfg: dict[str, Any] = dict(algorithm=algorithm, candidates=budget, seed=seed, wall_time_s=wall_time_s)
    if width and height:
        cfg.update(width=width, height=height)
    history: list[SearchStepOut] = []
    tracker = ProgressTracker(report)  # the job's reporter: swapped by get_run, dropped when the call returns

    async def on_progress(p: SearchProgress) -> None:
        best = p.best_total
        if best is not None:
            history.append(SearchStepOut(step=p.done, best_score=round(best, 5), best_seed=None))
        tracker.state.stage, tracker.state.best_score = f"{p.done}/{p.budget} candidates", best
        if tracker.report is not None:
            detail = ", ".join(f"{k} {v:.3f}" for k, v in p.best_raw.items())
            try:
                await call(tracker.report, p.done, p.budget,
                           f"{p.done}/{p.budget} candidates, best so far #{p.best_id}: {detail}")
            except Exception:  # noqa: BLE001 - a caller that went away must not end the search
                tracker.report = None

    async def search() -> SearchOut:
        result = await search_flow(cg, flow, prompt, SearchConfig(**cfg), negative=negative, on_progress=on_progress)
        best = result.best
        if best is None or not best.run_id:
            raise ComfyGenError("the search produced no scored candidate", hint="raise wall_time_s or budget")
        run = record_to_out(cg.record(best.run_id), why_flow=why)
        run.image_path = best.image or run.image_path
        run.scores.total = None if best.total is None else round(best.total, 5)
        run.scores.per_scorer = {k: round(float(v), 5) for k, v in best.raw.items()}
        run.scores.skipped = None
        run.seed = best.noise.terms[0].seed if best.noise.terms else run.seed
        return SearchOut(method=result.algorithm, flow_id=flow.id, best=run, best_score=run.scores.total,
                         evaluated=len(result.candidates), history=history,
                         note=f"stopped: {result.stop_reason}; total is the scoring ensemble's (weighted mean of "
                              f"z-scores against reference statistics, as generate reports it), per_scorer are raw; "
                              f"contact sheet {result.contact_sheet}")

    job = cg.jobs.start(lambda _job: search(), flow_id=flow.id, why=why, prompt=prompt, tracker=tracker, kind="search")
    out = await cg.jobs.wait(job, wait_s, cancel_if=cancel_if)
    if isinstance(out, RunOut):  # still searching: hand back the id
        return SearchOut(method=algorithm, flow_id=flow.id, best=out, best_score=tracker.state.best_score,
                         evaluated=history[-1].step if history else 0, history=list(history),
                         note=f"still searching after {wait_s:g} s; call get_run with run_id={job.run_id!r} for the "
                              "best image")
    return out
