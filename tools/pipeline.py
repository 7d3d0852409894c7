"""Run a flow end to end: render -> guard -> accelerate -> record -> run on ComfyUI -> save PNGs -> record.

Every run is in the store before it is submitted (status ``queued``, with our own ComfyUI prompt id),
so a crash, a kill or a caller that goes away never loses it: :meth:`RunStore.recover_orphans` marks
it interrupted, and :func:`resume_run` finishes it from ComfyUI's history. Failures are recorded
(``failed``, also when ComfyUI no longer knows the prompt; ``interrupted`` when ComfyUI interrupted it
or the deadline passed while it was still on the server; ``cancelled`` when our caller cancelled) and
re-raised. A finished run (succeeded, failed, cancelled) is never changed by resuming it.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import os
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..flow_library.model import Flow, Graph
from ..flow_library.render import render
from .callbacks import notify
from .errors import (Cancelled, ComfyGenError, ComfyUIError, ComfyUIExecutionError, ComfyUIUnavailable,
                     DeadlineExceeded, StoreError)
from .graph.accel import apply_plan, plan_acceleration
from .graph.batch import set_batch
from .graph.guard import guard
from .images import save_png_atomic
from .store import FINISHED, OutputFile, RunRecord, RunStore, RunTimings

if TYPE_CHECKING:
    from .comfy.client import ComfyClient, RunOutput
    from .comfy.pool import EndpointPool
    from .settings import Settings

log = logging.getLogger(__name__)

EventCallback = Callable[[Any], Any]
RecordCallback = Callable[[RunRecord], Any]
T = TypeVar("T")
SEED_RANGE = 2**32  # random seeds stay in 32 bits: portable across ComfyUI front-ends and numpy


def run_params(flow: Flow, *, negative: str | None, width: int | None, height: int | None, batch: int,
               accelerate: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parameters a run is recorded (and reused) under."""
    params: dict[str, Any] = {"negative": negative, "width": width or flow.width, "height": height or flow.height,
                              "batch": batch, "accelerate": accelerate}
    if extra:
        params.update(extra)
    return params


def output_path(settings: Settings, run_id: str, index: int, created: float | None = None) -> Path:
    day = _dt.datetime.fromtimestamp(created or time.time(), tz=_dt.timezone.utc).strftime("%Y-%m-%d")
    return Path(settings.outputs_dir) / day / f"{run_id}_{index:02d}.png"


def _provenance(rec: RunRecord, index: int, endpoint: str | None) -> dict[str, Any]:
    return {"prompt": rec.graph, "comfygen": {
        "version": 1, "run_id": rec.id, "flow_id": rec.flow_id, "prompt": rec.prompt, "negative": rec.negative,
        "seed": rec.seed, "index": index, "params": rec.params, "accelerate": rec.accelerate,
        "graph_hash": rec.graph_hash, "endpoint": endpoint, "comfy_prompt_id": rec.comfy_prompt_id,
        "scores": rec.scores or None}}


async def _save_outputs(rec: RunRecord, out: RunOutput, settings: Settings, output_nodes: Sequence[str], *,
                        durable: bool = True) -> list[OutputFile]:
    images = list(out.images)
    picked = [im for im in images if im.node in output_nodes] if output_nodes else []
    images = picked or [im for im in images if im.type == "output"] or images
    files = []
    for i, im in enumerate(images):
        path = output_path(settings, rec.id, i, rec.created)
        prov = _provenance(rec, i, out.endpoint)
        if durable:  # fsync blocks for milliseconds: keep it off the event loop
            f = await asyncio.to_thread(save_png_atomic, im.data, path, prov, durable=True)
        else:  # sub-millisecond: a thread hop would cost more than it saves
            f = save_png_atomic(im.data, path, prov, durable=False)
        files.append(f.model_copy(update={"node": im.node, "index": i}))
    return files


def _timings(out: Any, rec: RunRecord) -> RunTimings:
    t = out.timings
    return RunTimings(queued=rec.timings.queued, submitted=t.submitted, started=t.started or rec.timings.started,
                      finished=t.finished or time.time(), per_node=dict(t.per_node))


def _record_failure(store: RunStore, rec: RunRecord, exc: BaseException) -> None:
    if isinstance(exc, asyncio.CancelledError):
        status, err = "cancelled", Cancelled("the caller cancelled the run", hint="run it again when wanted")
    elif isinstance(exc, DeadlineExceeded) and (exc.details or {}).get("state") == "unknown":
        status, err = "failed", exc  # the server no longer knows the prompt: nothing to resume
    elif isinstance(exc, DeadlineExceeded):
        status, err = "interrupted", exc
        state = (exc.details or {}).get("state")
        if state in ("pending", "running", "done"):
            now = {"pending": "is still queued", "running": "keeps running", "done": "has just finished"}[state]
            exc.hint = f"It {now} on the ComfyUI server: finish it with `comfygen runs show {rec.id} --resume`."
    elif isinstance(exc, Cancelled):
        status, err = "interrupted", exc
    else:
        status, err = "failed", exc
    if isinstance(exc, ComfyUIExecutionError) and "pruna_pro" in str(exc) and not exc.hint:
        exc.hint = ("Pruna's caching nodes need pruna_pro on the ComfyUI host: install it, or use "
                    "--accelerate compile / a core cacher")
    try:
        store.fail(rec.id, err, status=status)  # type: ignore[arg-type]
    except StoreError:
        log.exception("could not record the failure of run %s", rec.id)


async def _follow(coro: Awaitable[T], rec: RunRecord, store: RunStore) -> T:
    try:
        return await coro
    except BaseException as exc:
        _record_failure(store, rec, exc)
        raise


async def run_flow(flow: Flow, prompt: str, *, negative: str | None = None, seed: int | None = None,
                   width: int | None = None, height: int | None = None, batch: int = 1, accelerate: str = "none",
                   pool: EndpointPool, store: RunStore, settings: Settings, on_event: EventCallback | None = None,
                   rewrite: Callable[[Graph], Graph] | None = None, on_record: RecordCallback | None = None,
                   accel_options: dict[str, Any] | None = None, deadline_s: float | None = None,
                   extra_params: dict[str, Any] | None = None, seeds: list[int] | None = None,
                   durable: bool = True) -> RunRecord:
    """Run ``flow`` for ``prompt`` on the pool and return the finished run record.

    ``rewrite`` (noise search) changes the rendered graph before the guard; ``on_record`` is called
    with the new record right after it is stored; ``on_event`` gets every ComfyUI event (sync or async
    callables). ``extra_params`` are recorded with the run and take part in reuse lookups.
    ``durable=False`` skips the fsyncs of image files (still atomic against crashes of this process,
    not against power loss); they cost ~5 ms each on a network block device.
    """
    seed = secrets.randbelow(SEED_RANGE) if seed is None else seed
    graph = render(flow, prompt, negative, seed, width, height, batch)
    if batch > 1 and not flow.slots.batch:
        graph = set_batch(graph, flow, batch)
    if rewrite is not None:
        graph = rewrite(graph)
    # Packs the flow declares are allowed for it (library and imported flows say what they need).
    packs = [r.name for r in flow.requires if r.kind == "node_pack"]
    guard(graph, settings, allowed_packs=packs, schema=(await pool.object_info()) if packs else None)
    if accelerate != "none":
        schema = await pool.object_info()
        plan = plan_acceleration(graph, accelerate, schema=schema, family=flow.family, options=accel_options)
        graph = apply_plan(graph, plan, schema=schema)
        log.info("acceleration %s: %s", accelerate, plan.reason)
    params = run_params(flow, negative=negative, width=width, height=height, batch=batch, accelerate=accelerate,
                        extra=extra_params)
    prompt_id = str(uuid.uuid4())
    only_url = pool.urls[0] if len(getattr(pool, "urls", [])) == 1 else None
    rec = store.create(prompt=prompt, flow_id=flow.id, graph=graph, negative=negative, seed=seed, seeds=seeds,
                       params=params, accelerate=accelerate, endpoint=only_url, comfy_prompt_id=prompt_id)
    await notify(on_record, rec, what="on_record callback")

    def dispatched(url: str, pid: str) -> None:
        # "running" = handed to a ComfyUI server (it may still wait in that server's queue).
        store.mark_running(rec.id, endpoint=url, comfy_prompt_id=pid)

    async def execute() -> RunRecord:
        # Events are only asked for when someone listens: following them costs the client extra queue lookups.
        forward = (lambda event: notify(on_event, event, what="on_event callback")) if on_event is not None else None
        out = await pool.run(graph, required_models=flow.models.files(), on_event=forward,
                             deadline_s=deadline_s or settings.run_deadline_s, prompt_id=prompt_id,
                             on_dispatch=dispatched)
        files = await _save_outputs(rec, out, settings, flow.slots.output, durable=durable)
        timings = _timings(out, rec)
        timings.saved = time.time()
        return store.finish(rec.id, outputs=files, timings=timings, endpoint=out.endpoint)

    return await _follow(execute(), rec, store)


def _client_for(url: str, settings: Settings) -> ComfyClient:
    from .comfy.client import ComfyClient

    # ComfyUI sends a prompt's progress only to the client that submitted it: a resuming client hears
    # nothing on its websocket and learns the end from /history, so it checks that every second.
    return ComfyClient(url, connect_timeout=settings.connect_timeout_s, read_timeout=settings.read_timeout_s,
                       idle_check_s=1.0)


async def _locate(rec: RunRecord, urls: Sequence[str], settings: Settings) -> tuple[str | None, list[str], list[str]]:
    """Where ``rec``'s prompt is: (url or None, urls that answered without knowing it, urls that did not answer).

    An endpoint that does not know the prompt is asked a second time after a short pause, as the client
    does while following a run, before it counts as not knowing it.
    """
    pid = str(rec.comfy_prompt_id)
    unknown: list[str] = []
    down: list[str] = []
    for url in urls:
        try:
            async with _client_for(url, settings) as client:
                for look in range(2):
                    state, _ = await client.prompt_state(pid)
                    if state != "unknown":
                        return url, unknown, down
                    if look == 0:
                        await asyncio.sleep(client.poll_interval_s)
                unknown.append(url)
        except ComfyUIError as e:
            log.info("resume %s: %s unreachable (%s)", rec.id, url, e)
            down.append(url)
    return None, unknown, down


def _again(rec: RunRecord) -> str:
    return f"run it again (flow {rec.flow_id}" + ("" if rec.seed is None else f", seed {rec.seed}") + ")"


def _owner_alive(rec: RunRecord, store: RunStore) -> bool:
    """The run's process is another live process on this host."""
    from .files import pid_alive

    return rec.host == store.host and rec.pid is not None and rec.pid != os.getpid() and pid_alive(rec.pid)


async def resume_run(run: RunRecord | str, *, pool: EndpointPool | None = None, store: RunStore, settings: Settings,
                     on_event: EventCallback | None = None, deadline_s: float | None = None) -> RunRecord:
    """Finish a run whose caller went away (or whose process died) from ComfyUI's side.

    Asks the recorded endpoint (then the pool's others) whether it still knows the prompt, follows it
    there, saves its images and records it. A finished run (succeeded, failed, cancelled) is returned as
    it is. A prompt no endpoint knows any more (server restarted, deleted from its queue, never
    submitted) is recorded ``failed`` with that reason and raised; when the recorded endpoint does not
    answer, nothing is recorded and :class:`ComfyUIUnavailable` is raised (it may still hold the prompt).
    """
    rec = store.get(run if isinstance(run, str) else run.id)
    if rec.status in FINISHED:
        return rec
    if rec.status == "queued" and _owner_alive(rec, store):
        return rec  # another live process is handing it to ComfyUI right now
    if not rec.comfy_prompt_id or rec.status == "queued":
        err = ComfyUIError(f"run {rec.id} was never submitted to ComfyUI: there is nothing to resume",
                           hint=_again(rec))
        store.fail(rec.id, err, status="failed")
        raise err
    others = list(getattr(pool, "urls", None) or settings.comfyui_urls)
    urls = list(dict.fromkeys(([rec.endpoint] if rec.endpoint else []) + others))
    url, unknown, down = await _locate(rec, urls, settings)
    if url is None:
        if down and (rec.endpoint in down or not unknown):
            raise ComfyUIUnavailable(
                f"cannot resume run {rec.id}: {', '.join(down)} did not answer (it may still hold prompt "
                f"{rec.comfy_prompt_id})", url=down[0], hint="start the server again, then resume")
        where = ", ".join(unknown) or "no endpoint"
        err = ComfyUIError(
            f"prompt {rec.comfy_prompt_id} of run {rec.id} is gone: {where} does not know it (not queued, not "
            "running, not in its history); the server restarted, the prompt was deleted from its queue, or it "
            "was never submitted", details={"prompt_id": rec.comfy_prompt_id, "endpoints": unknown},
            hint=_again(rec))
        store.fail(rec.id, err, status="failed")
        raise err
    store.mark_running(rec.id, endpoint=url)

    async def execute() -> RunRecord:
        async with _client_for(url, settings) as client:
            out = await client.wait(str(rec.comfy_prompt_id), on_event=on_event,
                                    deadline_s=deadline_s or settings.run_deadline_s)
        files = await _save_outputs(rec, out, settings, ())
        timings = _timings(out, rec)
        timings.saved = time.time()
        return store.finish(rec.id, outputs=files, timings=timings, endpoint=out.endpoint or url)

    return await _follow(execute(), rec, store)


# -- many runs ----------------------------------------------------------------------------------------------


@dataclass
class RunRequest:
    """One (flow, prompt, seed) run for :func:`run_many` (not the service's ``tools.app.jobs.Job``, which tracks
    a run started over MCP)."""

    flow: Flow
    prompt: str
    seed: int | None = None
    negative: str | None = None
    width: int | None = None
    height: int | None = None
    batch: int = 1
    accelerate: str = "none"
    rewrite: Callable[[Graph], Graph] | None = None
    extra_params: dict[str, Any] = field(default_factory=dict)
    tag: Any = None  # caller's own bookkeeping, returned untouched


@dataclass
class RunResult:
    request: RunRequest
    record: RunRecord | None = None
    error: BaseException | None = None
    reused: bool = False

    @property
    def ok(self) -> bool:
        return self.record is not None and self.error is None


async def run_many(requests: Iterable[RunRequest], *, pool: EndpointPool, store: RunStore, settings: Settings,
                   concurrency: int | None = None,
                   reuse: bool = False, on_done: Callable[[RunResult], Any] | None = None,
                   on_event: EventCallback | None = None) -> list[RunResult]:
    """Run many requests across the pool, at most ``concurrency`` at once (default: 2 per endpoint).

    Failures do not stop the batch: each :class:`RunResult` holds its record or its error, in request order.
    ``reuse=True`` returns a succeeded run with the same flow, prompt, seed and parameters from the store
    instead of running it again (only for requests with an explicit seed and no rewrite).
    """
    requests = list(requests)
    limit = concurrency or max(1, 2 * len(getattr(pool, "urls", []) or [1]))
    sem = asyncio.Semaphore(limit)
    results: list[RunResult] = [RunResult(request=r) for r in requests]

    async def one(i: int) -> None:
        job, res = requests[i], results[i]
        if reuse and job.seed is not None and job.rewrite is None:
            params = run_params(job.flow, negative=job.negative, width=job.width, height=job.height,
                                batch=job.batch, accelerate=job.accelerate, extra=job.extra_params or None)
            existing = store.find_existing(job.flow.id, job.prompt, job.seed, params)
            if existing is not None:
                res.record, res.reused = existing, True
                await notify(on_done, res, what="on_done callback")
                return
        async with sem:
            try:
                res.record = await run_flow(job.flow, job.prompt, negative=job.negative, seed=job.seed,
                                            width=job.width, height=job.height, batch=job.batch,
                                            accelerate=job.accelerate, pool=pool, store=store, settings=settings,
                                            rewrite=job.rewrite, on_event=on_event,
                                            extra_params=job.extra_params or None)
            except ComfyGenError as e:
                res.error = e
            except Exception as e:  # noqa: BLE001 - one broken run must not sink the batch
                log.exception("run %d (%s) failed", i, job.flow.id)
                res.error = e
        await notify(on_done, res, what="on_done callback")

    await asyncio.gather(*(one(i) for i in range(len(requests))))
    return results
