"""Run jobs: a generate call starts a job that outlives the call if it must, and get_run picks it up again.

Why: MCP clients give up on a tool call after a fixed time (often 60 s) while a ComfyUI run can take
minutes. A job waits ``wait_s`` for the run; after that the call returns the run id and status
"running", and the job keeps going (saving images, scoring, recording). ``get_run`` waits on the
same job, or resumes a run left "running" in the store by an earlier server process.

A job belongs to the service, not to the call or the session that started it:

- Only an explicit cancel cancels it (``cancel_if`` says whether the call's cancellation was one, e.g.
  the client's ``notifications/cancelled``; without it every cancellation counts, as for Ctrl-C on the
  CLI), and then the ComfyUI client interrupts the prompt and dequeues it.
- A caller that merely goes away (a closed MCP session, a dropped HTTP stream) leaves the job running.
- A server that stops with jobs in flight leaves them to ComfyUI (``RunJobs.detach``): their records stay
  "running" and the next ``get_run``, in any later process, resumes them from ComfyUI's history.
- Noise searches are jobs too (``start(kind="search")``), with a ``search-`` id that ``get_run`` waits on.

The runner knows the store and nothing of the service: a job runs the body it is started with.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import StoreError
from ..store import RunRecord, RunStore
from .models import MAX_SAFE_SEED, CandidateOut, RunOut, ScoresOut, SearchOut
from .progress import ProgressTracker, ReportFn

logger = logging.getLogger(__name__)

DEFAULT_WAIT_S = 45.0  # below the common 60 s client timeout, so a long run returns its id instead of being cut off
SEARCH_PREFIX = "search-"
WATCH_EVERY_S = 0.5  # how often a run driven by another live process is looked up in the store
CancelCheck = Callable[[], bool]


@dataclass(eq=False)
class Job:
    flow_id: str
    why: str | None
    prompt: str
    tracker: ProgressTracker
    task: asyncio.Task[Any] | None = None
    run_id: str | None = None
    created: asyncio.Event = field(default_factory=asyncio.Event)
    kind: str = "run"  # or "search"

    def set_record(self, record: RunRecord) -> None:
        self.run_id = str(record.id)
        self.created.set()


JobBody = Callable[["Job"], Awaitable[Any]]
Resume = Callable[[RunRecord, "Job"], Awaitable[RunOut]]


class RunJobs:
    """The jobs of one service: started, awaited, handed back as "running", picked up again, detached.

    It knows the run store (to look records up) and nothing of its owner: what a job does is the
    ``body`` it is started with, and how a stored run is finished is the ``resume`` that ``get`` is given.
    """

    def __init__(self, store: Callable[[], RunStore]):
        self._store = store
        self.by_id: dict[str, Job] = {}
        self.active: set[Job] = set()
        self.detached: list[Job] = []

    # ------------------------------------------------------------------ starting
    def start(self, body: JobBody, *, flow_id: str, why: str | None, prompt: str, tracker: ProgressTracker,
              kind: str = "run") -> Job:
        """Run ``body(job)`` as a job. A run's id comes with its record (``record_created``); a noise search's
        ``search-...`` id is known at once, and ``get_run`` waits on it."""
        job = Job(flow_id=flow_id, why=why, prompt=prompt, tracker=tracker, kind=kind)
        if kind == "search":
            job.run_id = f"{SEARCH_PREFIX}{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(4)}"
            job.created.set()
            self.by_id[job.run_id] = job
        job.task = asyncio.get_running_loop().create_task(body(job))
        self._track(job)
        return job

    def record_created(self, job: Job, record: RunRecord) -> None:
        """The job's run has a record: its id is what callers get back from now on."""
        job.set_record(record)
        self.by_id[job.run_id] = job  # type: ignore[index]

    def _track(self, job: Job) -> None:
        self.active.add(job)
        assert job.task is not None
        job.task.add_done_callback(lambda _t: self._finished(job))

    def _finished(self, job: Job) -> None:
        self.active.discard(job)
        if job.run_id:
            self.by_id[job.run_id] = job
        job.created.set()

    # ------------------------------------------------------------------ waiting
    async def wait(self, job: Job, wait_s: float | None, *, cancel_if: CancelCheck | None = None
                   ) -> RunOut | SearchOut:
        """The job's result, or after ``wait_s`` a "running" reply with its id (the job goes on).

        When the waiting call is cancelled, the job is cancelled only if ``cancel_if`` is None or says
        the cancellation was asked for; otherwise the caller just went away and the job continues.
        """
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
            job.tracker.report = None  # this call returns: stop notifying it
            return self._running(job)
        except asyncio.CancelledError:
            job.tracker.report = None
            me = asyncio.current_task()
            if job.task.done() and me is not None and not me.cancelling():
                return self._result(job)  # the job was cancelled by another call; this one is not
            if cancel_if is None or cancel_if():
                job.task.cancel()  # the ComfyUI client interrupts the prompt and dequeues it
            else:
                logger.info("the caller of %s went away; it goes on (get_run finishes it)", job.run_id or "a run")
            raise

    def _running(self, job: Job) -> RunOut:
        out = RunOut(run_id=job.run_id or "", status="running", prompt=job.prompt, flow_id=job.flow_id)
        if job.kind == "run" and job.run_id:
            try:
                out = record_to_out(self._store().get(job.run_id))
            except Exception:  # noqa: BLE001 - the reply must not fail on a store hiccup
                logger.debug("no record for %s yet", job.run_id, exc_info=True)
        what = "search" if job.kind == "search" else "run"
        return out.model_copy(update={
            "status": "running", "why_flow": job.why, "progress": job.tracker.state.describe(),
            "scores": ScoresOut(), "error": None,
            "next_step": f"the {what} continues on the server, also if this session ends; call get_run with "
                         f"run_id={job.run_id!r} to wait for it and get the image"})

    async def get(self, run_id: str, *, wait_s: float | None, report: ReportFn | None,
                  cancel_if: CancelCheck | None = None, resume: Resume | None = None) -> RunOut:
        """A run's reply: its job's (waiting up to ``wait_s``), or its stored record's. A run an earlier process
        left resumable is finished by ``resume`` (None: no ComfyUI to resume it on, the record is returned)."""
        job = self.by_id.get(run_id)
        if job is None:
            if run_id.startswith(SEARCH_PREFIX):
                from ..errors import StoreError

                raise StoreError(f"unknown noise search {run_id!r}: it ended with the server process that ran it",
                                 hint="its finished candidates are in the run store (`comfygen runs list`); "
                                      "run noise_search again for a full result")
            record = lookup(self._store(), run_id)
            if record.status in ("queued", "running") and driven_elsewhere(record, self._store()):
                return await self._watch(record.id, wait_s, resume)
            if not record.resumable or resume is None:
                return self._stored(record)
            job = self._resume(record, resume)
        assert job.task is not None
        if job.task.done():
            return self._result(job)
        job.tracker.report = report
        try:
            return self._as_run(job, await self.wait(job, wait_s, cancel_if=cancel_if))
        finally:
            job.tracker.report = None

    def _result(self, job: Job) -> RunOut:
        assert job.task is not None
        if job.kind == "search":
            if job.task.cancelled():
                from ..errors import Cancelled

                raise Cancelled(f"noise search {job.run_id} was cancelled", hint="run noise_search again")
            return self._as_run(job, job.task.result())  # a failed search raises its error here
        if job.task.cancelled() or job.task.exception() is not None:
            return self._stored(lookup(self._store(), job.run_id))  # type: ignore[arg-type]
        return job.task.result()

    @staticmethod
    def _as_run(job: Job, out: RunOut | SearchOut) -> RunOut:
        """A search's result as get_run's reply: the best image's run, with what the search did."""
        if isinstance(out, RunOut):
            return out
        return out.best.model_copy(update={"note": out.note, "why_flow": out.best.why_flow or job.why})

    async def _watch(self, run_id: str, wait_s: float | None, resume: Resume | None) -> RunOut:
        """A run that another live process drives: follow its record instead of running it a second time."""
        deadline = None if wait_s is None else time.monotonic() + wait_s
        while True:
            record = lookup(self._store(), run_id)
            if record.status not in ("queued", "running"):
                return self._stored(record)
            if not driven_elsewhere(record, self._store()):  # that process died meanwhile: take it over
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                return await self.get(run_id, wait_s=left, report=None, resume=resume)
            if deadline is not None and time.monotonic() >= deadline:
                return self._stored(record).model_copy(update={
                    "next_step": f"another comfygen process (pid {record.pid}) is running it; call get_run with "
                                 f"run_id={run_id!r} again"})
            await asyncio.sleep(WATCH_EVERY_S)

    def _stored(self, record: RunRecord) -> RunOut:
        return record_to_out(record, **stored_scores(record))

    def _resume(self, record: RunRecord, resume: Resume) -> Job:
        """A run an earlier server left running: a job that ``resume`` finishes here."""
        job = Job(flow_id=record.flow_id, why=None, prompt=record.prompt, tracker=ProgressTracker())
        job.set_record(record)
        job.task = asyncio.get_running_loop().create_task(resume(record, job))
        self.by_id[record.id] = job
        self._track(job)
        return job

    async def close(self) -> None:
        """Cancel what is still running (interrupting ComfyUI): the CLI's way of ending."""
        tasks = [j.task for j in self.active if j.task is not None and not j.task.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def detach(self) -> list[Job]:
        """Leave the jobs in flight to ComfyUI (the server's way of ending): nothing is cancelled, their records
        stay "running", and a later ``get_run`` (in this process or another) finishes them. Returns them."""
        self.detached = [j for j in self.active if j.task is not None and not j.task.done()]
        for j in self.detached:
            j.tracker.report = None
            logger.warning("%s %s continues on ComfyUI after the server stops; get_run finishes it",
                           j.kind, j.run_id or "(not yet recorded)")
        return self.detached


def lookup(store: RunStore, run_id: str) -> RunRecord:
    """The stored record of ``run_id``; a ``StoreError`` that says what to pass when there is none."""
    try:
        return store.get(run_id)
    except KeyError:
        raise StoreError(f"unknown run {run_id!r}", hint="pass a run_id that generate returned") from None


def driven_elsewhere(record: RunRecord, store: RunStore) -> bool:
    """Whether a live process other than this one drives the run (same host, its pid still exists)."""
    from ..files import pid_alive

    return (record.pid is not None and record.pid != os.getpid() and record.host == getattr(store, "host", None)
            and pid_alive(record.pid))


def stored_scores(record: RunRecord) -> dict[str, Any]:
    """totals/best/skipped as the record's typed scores say, for ``record_to_out``."""
    scoring = record.scoring
    if scoring is None:
        return {"totals": [None] * len(record.outputs), "best": 0, "skipped": None}
    return {"totals": scoring.totals(len(record.outputs)), "best": scoring.best or 0, "skipped": scoring.skipped}


def record_to_out(record: RunRecord, *, why_flow: str | None = None, totals: list[float | None] | None = None,
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
        seed=record.seed, seed_text=None if record.seed is None or record.seed <= MAX_SAFE_SEED else str(record.seed),
        width=params.get("width"), height=params.get("height"), endpoint=record.endpoint,
        image_path=str(out.path) if out else None, image_uri=f"run://{record.id}" if out else None, scores=scores,
        candidates=[CandidateOut(index=i, path=str(o.path), total=None if t is None else round(t, 5))
                    for i, (o, t) in enumerate(zip(outputs, totals))] if len(outputs) > 1 else [],
        seconds=seconds, error=error)


__all__ = ["DEFAULT_WAIT_S", "SEARCH_PREFIX", "Job", "RunJobs", "driven_elsewhere", "lookup", "record_to_out",
           "stored_scores"]
