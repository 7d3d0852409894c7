"""Noise search (random / zero-order, Ma et al. 2025) as one operation of the service, for the MCP tool and agents.

The verifiers are the service's scorers; progress reports the best score so far; ``wall_time_s``
bounds the search. The search is a job of the service like a generate run: after ``wait_s`` the call
returns a ``search-...`` id with status "running" and the search goes on; ``get_run`` with that id
waits for it and returns the best image.
"""

from __future__ import annotations

from typing import Any, Literal

from collections.abc import Callable

from ..errors import ComfyGenError, GuardError, ScoringError
from .models import RunOut, SearchOut, SearchStepOut
from .progress import ProgressTracker, ReportFn
from .jobs import record_to_out
from .service import ComfyGen, check_prompt

Algorithm = Literal["random", "zero-order"]


def _verifiers(ensemble: Any) -> Any:
    from ..search.verify import VerifierSet

    scorers = getattr(ensemble, "scorers", None)
    if not scorers:
        raise ScoringError("noise search needs scorers with per-scorer outputs", hint="configure COMFYGEN_SCORERS")
    weights = getattr(ensemble, "weights", None)
    return VerifierSet(list(scorers.values()), method="ensemble", weights=weights)


async def noise_search(cg: ComfyGen, prompt: str, *, flow_id: str | None = None, algorithm: Algorithm = "random",
                       budget: int = 8, width: int | None = None, height: int | None = None, seed: int = 0,
                       negative: str | None = None, wall_time_s: float | None = 45.0,
                       report: ReportFn | None = None, wait_s: float | None = None,
                       cancel_if: Callable[[], bool] | None = None) -> SearchOut:
    from ..search.engine import SearchConfig, SearchProgress
    from ..search.run import run_search

    prompt = check_prompt(prompt)
    if not 2 <= budget <= 64:
        raise GuardError(f"budget={budget} is out of range", hint="search 2..64 candidate noises per call")
    pool = cg.pool
    if flow_id is None:
        await cg.refresh_installed()
    flow, why = cg.pick_flow(prompt, flow_id)
    try:
        verifiers = _verifiers(await cg.scorer())
    except ComfyGenError as e:
        raise ScoringError(f"noise search cannot rank candidates: {e.message}", hint=e.hint) from e
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
                out = tracker.report(p.done, p.budget, f"{p.done}/{p.budget} candidates, best so far #{p.best_id}: "
                                                       f"{detail}")
                if out is not None:
                    await out
            except Exception:  # noqa: BLE001 - a caller that went away must not end the search
                tracker.report = None

    async def search() -> SearchOut:
        result = await run_search(flow, prompt, SearchConfig(**cfg), verifiers=verifiers, pool=pool, store=cg.store,
                                  settings=cg.settings, negative=negative, on_progress=on_progress)
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
                         note=f"stopped: {result.stop_reason}; total is standardized within this search (z-scores), "
                              f"per_scorer are raw; contact sheet {result.contact_sheet}")

    job = cg.jobs.start_search(search(), flow_id=flow.id, why=why, prompt=prompt, tracker=tracker)
    out = await cg.jobs.wait(job, wait_s, cancel_if=cancel_if)
    if isinstance(out, RunOut):  # still searching: hand back the id
        return SearchOut(method=algorithm, flow_id=flow.id, best=out, best_score=tracker.state.best_score,
                         evaluated=history[-1].step if history else 0, history=list(history),
                         note=f"still searching after {wait_s:g} s; call get_run with run_id={job.run_id!r} for the "
                              "best image")
    return out
