"""Run jobs: a generate call starts a job that outlives the call if it must, and get_run picks it up again.

Why: MCP clients give up on a tool call after a fixed time (often 60 s) while a ComfyUI run can take
minutes. A job waits ``wait_s`` for the run; after that the call returns the run id and status
"running", and the job keeps going (saving images, scoring, recording). ``get_run`` waits on the
same job, or resumes a run left "running" in the store by an earlier server process. Cancelling the
call that waits cancels the job, and the ComfyUI client interrupts the prompt: nothing is orphaned.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...flow_library.model import Flow
from .models import MAX_SAFE_SEED, CandidateOut, RunOut, ScoresOut
from .progress import ProgressTracker, ReportFn

if TYPE_CHECKING:
    from .service import ComfyGen

logger = logging.getLogger(__name__)

DEFAULT_WAIT_S = 45.0  # below the common 60 s client timeout, so a long run returns its id instead of being cut off


@dataclass(eq=False)
class Job:
    flow_id: str
    why: str | None
    prompt: str
    tracker: ProgressTracker
    task: asyncio.Task[RunOut] | None = None
    run_id: str | None = None
    created: asyncio.Event = field(default_factory=asyncio.Event)

    def set_record(self, record: Any) -> None:
        self.run_id = str(record.id)
        self.created.set()


class RunJobs:
    def __init__(self, service: "ComfyGen"):
        self.service = service
        self.by_id: dict[str, Job] = {}
        self.active: set[Job] = set()

    # ------------------------------------------------------------------ starting
    def start(self, flow: Flow, why: str | None, prompt: str, *, pool: Any, tracker: ProgressTracker,
              **params: Any) -> Job:
        job = Job(flow_id=flow.id, why=why, prompt=prompt, tracker=tracker)
        job.task = asyncio.get_running_loop().create_task(self._run(job, flow, pool, params))
        self._track(job)
        return job

    def _track(self, job: Job) -> None:
        self.active.add(job)
        assert job.task is not None
        job.task.add_done_callback(lambda _t: self._finished(job))

    def _finished(self, job: Job) -> None:
        self.active.discard(job)
        if job.run_id:
            self.by_id[job.run_id] = job
        job.created.set()

    async def _run(self, job: Job, flow: Flow, pool: Any, params: dict[str, Any]) -> RunOut:
        from ..pipeline import run_flow

        svc = self.service
        kwargs: dict[str, Any] = dict(negative=params.get("negative"), seed=params.get("seed"),
                                      width=params.get("width"), height=params.get("height"),
                                      batch=params.get("candidates", 1), accelerate=params.get("accelerate", "none"),
                                      pool=pool, store=svc.store, settings=svc.settings, on_event=job.tracker)
        record = await run_flow(flow, job.prompt, on_record=lambda rec: self._created(job, rec), **kwargs)
        self._created(job, record)
        return await self._finish(job, record)

    def _created(self, job: Job, record: Any) -> None:
        job.set_record(record)
        self.by_id[job.run_id] = job  # type: ignore[index]

    async def _finish(self, job: Job, record: Any) -> RunOut:
        """Score a finished record's images, store the scores, feed the score table, return the result."""
        svc = self.service
        paths = [Path(o.path) for o in record.outputs]
        if record.status != "succeeded" or not paths:
            return record_to_out(record, why_flow=job.why)
        await job.tracker.note("scoring")
        results, skipped = await svc.score_images(paths, job.prompt)
        totals: list[float | None] = [None] * len(paths)
        best = 0
        if results:
            totals = [float(r.total) for r in results]
            best = max(range(len(totals)), key=lambda i: totals[i])  # type: ignore[arg-type, return-value]
            raw = {k: float(v) for k, v in results[best].raw.items()}
            breakdown = {"best": best, "totals": totals, "raw": [dict(r.raw) for r in results]}
            svc.store.set_scores(record.id, raw, totals[best], breakdown=breakdown)
            svc.observe(record.flow_id, job.prompt, float(totals[best]))  # type: ignore[arg-type]
            record = svc.store.get(record.id)
        await job.tracker.note("done", best_score=totals[best])
        return record_to_out(record, why_flow=job.why, totals=totals, best=best, skipped=skipped)

    # ------------------------------------------------------------------ waiting
    async def wait(self, job: Job, wait_s: float | None) -> RunOut:
        assert job.task is not None
        try:
            if wait_s is None:
                return await asyncio.shield(job.task)
            try:
                return await asyncio.wait_for(asyncio.shield(job.task), timeout=max(wait_s, 0.0))
            except TimeoutError:
                pass
            if job.run_id is None:  # no id to hand back yet: wait until the record exists (or the run ends)
                await job.created.wait()
                if job.task.done():
                    return job.task.result()
            return self._running(job)
        except asyncio.CancelledError:
            job.task.cancel()  # the ComfyUI client interrupts the prompt and dequeues it
            raise

    def _running(self, job: Job) -> RunOut:
        return RunOut(run_id=job.run_id or "", status="running", prompt=job.prompt, flow_id=job.flow_id,
                      why_flow=job.why, progress=job.tracker.state.describe(),
                      next_step=f"the run continues on the server; call get_run with run_id={job.run_id!r} to wait "
                                "for it and get the image")

    async def get(self, run_id: str, *, wait_s: float | None, report: ReportFn | None) -> RunOut:
        svc = self.service
        job = self.by_id.get(run_id)
        if job is None:
            record = svc.record(run_id)
            if not record.resumable or not svc.has_pool:
                return self._stored(record)
            job = self._resume(record)
        assert job.task is not None
        if job.task.done():
            if job.task.cancelled() or job.task.exception() is not None:
                return self._stored(svc.record(run_id))
            return job.task.result()
        job.tracker.report = report
        try:
            return await self.wait(job, wait_s)
        finally:
            job.tracker.report = None

    def _stored(self, record: Any) -> RunOut:
        return record_to_out(record, **stored_scores(record))

    def _resume(self, record: Any) -> Job:
        """A run an earlier server left running: wait for it on ComfyUI and finish it here."""
        from ..pipeline import resume_run

        svc = self.service
        job = Job(flow_id=record.flow_id, why=None, prompt=record.prompt, tracker=ProgressTracker())
        job.set_record(record)

        async def run() -> RunOut:
            rec = await resume_run(record.id, pool=svc.pool, store=svc.store, settings=svc.settings,
                                   on_event=job.tracker)
            return await self._finish(job, rec)

        job.task = asyncio.get_running_loop().create_task(run())
        self.by_id[record.id] = job
        self._track(job)
        return job

    async def close(self) -> None:
        """Cancel what is still running (interrupting ComfyUI) when the server shuts down."""
        tasks = [j.task for j in self.active if j.task is not None and not j.task.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def stored_scores(record: Any) -> dict[str, Any]:
    """totals/best as recorded by a finished job (``score_breakdown``), for ``record_to_out``."""
    n = len(record.outputs)
    breakdown = record.score_breakdown or {}
    totals = breakdown.get("totals")
    best = breakdown.get("best", 0)
    if not (isinstance(totals, list) and len(totals) == n):
        totals = [None] * n
        if n and record.score_total is not None:
            totals[0] = record.score_total
    return {"totals": totals, "best": best if isinstance(best, int) else 0}


def record_to_out(record: Any, *, why_flow: str | None = None, totals: list[float | None] | None = None,
                  best: int = 0, skipped: str | None = None) -> RunOut:
    outputs = list(getattr(record, "outputs", []) or [])
    totals = totals if totals is not None and len(totals) == len(outputs) else [None] * len(outputs)
    best = best if 0 <= best < len(outputs) else 0
    raw = {k: round(float(v), 5) for k, v in (record.scores or {}).items() if isinstance(v, int | float)}
    total = totals[best] if outputs else None
    scores = ScoresOut(total=round(total, 5) if total is not None else None, per_scorer=raw,
                       skipped=skipped if total is None else None)
    if total is None and skipped is None and outputs and record.status == "succeeded":
        scores.skipped = "not scored yet"
    t = record.timings
    start = t.submitted or t.queued
    seconds = round(t.finished - start, 3) if t.finished and start else None
    params = record.params or {}
    error = None
    if record.error is not None:
        error = record.error.message + (f" (what to do: {record.error.hint})" if record.error.hint else "")
    out = outputs[best] if outputs else None
    return RunOut(
        run_id=str(record.id), status=record.status, prompt=record.prompt, flow_id=record.flow_id, why_flow=why_flow,
        seed=record.seed, seed_text=str(record.seed) if record.seed is not None and record.seed > MAX_SAFE_SEED else None,
        width=params.get("width"), height=params.get("height"), endpoint=record.endpoint,
        image_path=str(out.path) if out else None, image_uri=f"run://{record.id}" if out else None, scores=scores,
        candidates=[CandidateOut(index=i, path=str(o.path), total=None if t is None else round(t, 5))
                    for i, (o, t) in enumerate(zip(outputs, totals))] if len(outputs) > 1 else [],
        seconds=seconds, error=error)


__all__ = ["DEFAULT_WAIT_S", "Job", "RunJobs", "record_to_out", "stored_scores"]
