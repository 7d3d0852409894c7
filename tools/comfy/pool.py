"""Several ComfyUI servers behind one ``run()``: how comfygen scales past one GPU.

ComfyUI runs one prompt at a time per process, and one process drives one GPU. To use more GPUs
(or more machines), start one ComfyUI per GPU and list them all::

    # one machine, two GPUs
    CUDA_VISIBLE_DEVICES=0 python main.py --listen 127.0.0.1 --port 8188 &
    CUDA_VISIBLE_DEVICES=1 python main.py --listen 127.0.0.1 --port 8189 &
    export COMFYGEN_COMFYUI_URLS=http://127.0.0.1:8188,http://127.0.0.1:8189   # add other hosts likewise

:class:`EndpointPool` then sends each run to the least-loaded healthy endpoint that has the flow's
model files (``required_models`` as ``(folder, file)`` pairs, matched against each server's
``/models/<folder>`` lists, cached and refreshed when a file seems missing). Load is the runs this
process has in flight there plus the server's own queue as last seen. Concurrent ``run()`` calls
(e.g. ``asyncio.gather`` over a batch of prompts) spread over all endpoints, so N servers give
close to N times the images per second. An endpoint that stops answering is marked unhealthy and
its runs, queued or mid-run, are submitted again on another healthy endpoint with the same
prompt id; a background health check brings it back when it answers again. Endpoints need not be
identical: a server without a flow's checkpoint is simply never chosen for that flow.

A hung server (the process alive but not answering, e.g. stopped with SIGSTOP or stuck in a driver
call) accepts TCP connections and never replies, so the client's own timeouts would take minutes to
give up. The health check asks ``/queue`` with a short timeout (``health_timeout_s``) every
``health_interval_s`` and looks once more at once when it fails; two failures in a row mark the
endpoint down, and the runs waiting on it fail over at that moment. Their prompts are remembered
as left behind there: as soon as the server answers again they are cancelled on it (jobs API, or
queue delete + interrupt), so a server that wakes up does not run the same GPU work a second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from ..callbacks import call
from ..errors import Cancelled, ComfyUIError, ComfyUIUnavailable, ComfyUIValidationError, DeadlineExceeded
from .client import ComfyClient, EventCallback, RunOutput

__all__ = ["EndpointPool", "EndpointStatus", "NoEndpoint", "NoHealthyEndpoint"]

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)


class NoEndpoint(ComfyUIError):
    """No endpoint can run the graph (none has the required model files, or all are down)."""


class NoHealthyEndpoint(NoEndpoint, ComfyUIUnavailable):
    """Every endpoint is down (or died during this run)."""


class EndpointStatus(BaseModel):
    url: str
    healthy: bool
    queue_running: int = 0
    queue_pending: int = 0
    in_flight: int = Field(0, description="Runs this process has on the endpoint now")
    models: dict[str, list[str]] = Field(default_factory=dict, description="Model files per folder (cached)")
    version: str | None = Field(None, description="ComfyUI version the server reports")
    jobs_api: bool | None = Field(None, description="Whether the server offers /api/jobs")
    error: str | None = None


class _Endpoint:
    def __init__(self, url: str, client: ComfyClient):
        self.url = url
        self.client = client
        self.healthy = True
        self.error: str | None = None
        self.in_flight = 0
        self.remote_queue = 0
        self.models: dict[str, set[str]] = {}
        self.models_at: dict[str, float] = {}
        self.fetching: dict[str, asyncio.Future[None]] = {}
        self.checked = 0.0
        self.down = asyncio.Event()  # set while the endpoint is marked unhealthy: its runs fail over
        self.left_behind: set[str] = set()  # prompts resubmitted elsewhere, to cancel here once it answers

    def mark(self, healthy: bool, error: str | None = None) -> None:
        self.healthy, self.error = healthy, error
        if healthy:
            self.down.clear()
        else:
            self.down.set()

    @property
    def load(self) -> int:
        return self.in_flight + self.remote_queue


class EndpointPool:
    """Dispatch runs over several ComfyUI endpoints (see the module docstring)."""

    def __init__(self, urls: Sequence[str], *, health_interval_s: float = 5.0, health_timeout_s: float = 3.0,
                 models_ttl_s: float = 300.0, max_resubmits: int = 3, **client_kwargs: Any):
        if not urls:
            raise ComfyUIError("no ComfyUI endpoint configured", hint="Set COMFYGEN_COMFYUI_URLS or pass --endpoint.")
        seen = list(dict.fromkeys(u.rstrip("/") for u in urls))
        self._eps = [_Endpoint(u, ComfyClient(u, **client_kwargs)) for u in seen]
        self.health_interval_s = health_interval_s
        self.health_timeout_s = health_timeout_s
        self.models_ttl_s = models_ttl_s
        self.max_resubmits = max_resubmits
        self._health_task: asyncio.Task[None] | None = None
        self._rr = 0

    @classmethod
    def from_settings(cls, settings: Settings, urls: Sequence[str] | None = None, **kwargs: Any) -> EndpointPool:
        """A pool over ``urls`` (default: the configured ComfyUI servers) with the configured HTTP timeouts."""
        return cls(list(settings.comfyui_urls if urls is None else urls), connect_timeout=settings.connect_timeout_s,
                   read_timeout=settings.read_timeout_s, **kwargs)

    @property
    def urls(self) -> list[str]:
        return [e.url for e in self._eps]

    def client(self, url: str) -> ComfyClient:
        return self._ep(url).client

    def _ep(self, url: str) -> _Endpoint:
        for e in self._eps:
            if e.url == url.rstrip("/"):
                return e
        raise KeyError(url)

    async def __aenter__(self) -> EndpointPool:
        for e in self._eps:
            await e.client.open()
        await asyncio.gather(*(self.check(e) for e in self._eps), return_exceptions=True)
        if self.health_interval_s > 0:
            self._health_task = asyncio.create_task(self._health_loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(BaseException):
                await self._health_task
            self._health_task = None
        await asyncio.gather(*(e.client.close() for e in self._eps), return_exceptions=True)

    # ------------------------------------------------------------------ health and models
    async def _probe(self, ep: _Endpoint) -> str | None:
        """Ask ``/queue`` (also refreshes the server's queue length); the error, or None when it answered."""
        try:
            q = await ep.client._json("GET", "/queue", retry=False, timeout=self.health_timeout_s)
            ep.remote_queue = len(q.get("queue_running", [])) + len(q.get("queue_pending", []))
            return None
        except ComfyUIError as exc:
            return exc.message
        finally:
            ep.checked = time.monotonic()

    async def check(self, ep: _Endpoint, *, confirm: bool = False) -> bool:
        """One health check: ``/queue`` answers within ``health_timeout_s``.

        ``confirm=True`` (the periodic check of a healthy endpoint) asks once more at once before marking
        it down, so one slow answer does not move its runs elsewhere.
        """
        error = await self._probe(ep)
        if error is not None and confirm:
            log.info("endpoint %s failed a health check (%s); checking again", ep.url, error)
            error = await self._probe(ep)
            if error is not None:
                log.warning("endpoint %s is not answering (%s): its runs fail over", ep.url, error)
        ep.mark(error is None, error)
        if ep.healthy and ep.left_behind:
            await self._cancel_left_behind(ep)
        return ep.healthy

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.health_interval_s)
            await asyncio.gather(*(self.check(e, confirm=e.healthy) for e in self._eps), return_exceptions=True)

    async def _cancel_left_behind(self, ep: _Endpoint) -> None:
        """Cancel prompts that were resubmitted elsewhere on the endpoint they left (it answers again)."""
        saved = ep.client.retries
        ep.client.retries = 0
        try:
            for pid in sorted(ep.left_behind):
                try:
                    await asyncio.wait_for(ep.client.cancel_prompt(pid), timeout=self.health_timeout_s)
                except (ComfyUIError, TimeoutError) as exc:
                    log.info("could not yet cancel left-behind prompt %s on %s: %s", pid, ep.url, exc)
                    return
                log.info("cancelled prompt %s on %s: it was resubmitted elsewhere", pid, ep.url)
                ep.left_behind.discard(pid)
        finally:
            ep.client.retries = saved

    async def _has_models(self, ep: _Endpoint, required: Sequence[tuple[str, str]], refresh: bool) -> bool:
        folders = sorted({f for f, _ in required})
        now = time.monotonic()
        stale = [f for f in folders if refresh or f not in ep.models or now - ep.models_at[f] > self.models_ttl_s]
        if stale:
            await asyncio.gather(*(self._fetch_models(ep, f) for f in stale))
        return all(file in ep.models.get(folder, set()) for folder, file in required)

    async def _fetch_models(self, ep: _Endpoint, folder: str) -> None:
        """Refresh one model list; concurrent callers share one request (single flight)."""
        task = ep.fetching.get(folder)
        if task is None:
            async def fetch() -> None:
                try:
                    ep.models[folder] = set(await ep.client.models(folder))
                    ep.models_at[folder] = time.monotonic()
                finally:
                    ep.fetching.pop(folder, None)

            task = ep.fetching[folder] = asyncio.ensure_future(fetch())
        await asyncio.shield(task)

    async def _candidates(self, required: Sequence[tuple[str, str]], exclude: set[str]) -> list[_Endpoint]:
        eps = [e for e in self._eps if e.url not in exclude]
        if not any(e.healthy for e in eps):  # everything looks down: check again before giving up
            await asyncio.gather(*(self.check(e) for e in eps), return_exceptions=True)
        healthy = [e for e in eps if e.healthy]
        if not healthy:
            detail = "; ".join(f"{e.url}: {e.error}" for e in eps) or "all endpoints failed during this run"
            raise NoHealthyEndpoint(f"no healthy ComfyUI endpoint ({detail})",
                             hint="Start the servers or fix COMFYGEN_COMFYUI_URLS.")
        if not required:
            return healthy
        out: list[_Endpoint] = []
        for refresh in (False, True):
            results = await asyncio.gather(*(self._has_models(e, required, refresh) for e in healthy),
                                           return_exceptions=True)
            for e, res in zip(healthy, results):
                if isinstance(res, ComfyUIError):  # could not even list its models: it is down
                    e.mark(False, res.message)
            out = [e for e, ok in zip(healthy, results) if ok is True]
            if out:
                return out
            healthy = [e for e in healthy if e.healthy]
            if not healthy:
                detail = "; ".join(f"{e.url}: {e.error}" for e in eps)
                raise NoHealthyEndpoint(f"no healthy ComfyUI endpoint ({detail})",
                                        hint="Start the servers or fix COMFYGEN_COMFYUI_URLS.")
        missing = sorted(f"{folder}/{file}" for folder, file in required
                         if not any(file in e.models.get(folder, set()) for e in healthy))
        raise NoEndpoint(f"no endpoint has the model files this flow needs: {', '.join(missing) or required}",
                         hint="Install the files into the server's models folders (or pick a flow whose models are "
                              "installed: see `comfygen comfyui models`).",
                         details={"missing": missing})

    def _pick(self, eps: list[_Endpoint]) -> _Endpoint:
        self._rr += 1
        order = sorted(range(len(eps)), key=lambda i: (eps[i].load, (i - self._rr) % len(eps)))
        return eps[order[0]]

    # ------------------------------------------------------------------ run
    async def run(self, graph: dict[str, Any], *, required_models: Iterable[tuple[str, str]] = (),
                  on_event: EventCallback | None = None, deadline_s: float | None = None,
                  prompt_id: str | None = None, previews: bool = False,
                  on_dispatch: Callable[[str, str], Any] | None = None) -> RunOutput:
        """Run ``graph`` on the best endpoint; resubmitted elsewhere if that endpoint dies.

        ``on_dispatch(url, prompt_id)`` (sync or async) is called each time the run is sent to an
        endpoint, before it finishes (to record where a run lives, e.g. for resuming it later).
        """
        required = [(str(f), str(n)) for f, n in required_models]
        pid = prompt_id or str(uuid.uuid4())
        failed: set[str] = set()
        loop = asyncio.get_running_loop()
        end = None if deadline_s is None else loop.time() + deadline_s
        last: Exception | None = None
        for _ in range(self.max_resubmits + 1):
            try:
                ep = self._pick(await self._candidates(required, failed))
            except NoEndpoint as exc:
                if isinstance(exc, NoHealthyEndpoint) and isinstance(last, ComfyUIUnavailable):
                    raise NoHealthyEndpoint(f"{last.message}; no other healthy endpoint to run it on", url=last.url,
                                            hint=last.hint, details={"prompt_id": pid}) from last
                if last is not None:
                    raise exc from last
                raise
            ep.in_flight += 1
            try:
                if on_dispatch is not None:
                    await call(on_dispatch, ep.url, pid)
                remaining = None if end is None else max(end - loop.time(), 0.001)
                return await self._run_on(ep, graph, pid, on_event=on_event, deadline_s=remaining,
                                          previews=previews)
            except ComfyUIUnavailable as exc:
                others = len(self._eps) - len(failed) > 1
                log.warning("endpoint %s failed during prompt %s%s: %s", ep.url, pid,
                            "; resubmitting elsewhere" if others else "", exc)
                ep.mark(False, exc.message)
                ep.left_behind.add(pid)
                failed.add(ep.url)
                last = exc
            except (ComfyUIValidationError, DeadlineExceeded, Cancelled):
                raise
            finally:
                ep.in_flight -= 1
        assert last is not None
        raise last

    async def _run_on(self, ep: _Endpoint, graph: dict[str, Any], pid: str, **kw: Any) -> RunOutput:
        """``ep.client.run`` that gives up as soon as the health check marks the endpoint down."""
        task = asyncio.ensure_future(ep.client.run(graph, prompt_id=pid, **kw))
        down = asyncio.ensure_future(ep.down.wait())
        try:
            await asyncio.wait({task, down}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise
        finally:
            down.cancel()
        if task.done():
            return task.result()
        ep.client.abandon(pid)  # the server does not answer: cancel it there later, not now
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise ComfyUIUnavailable(f"ComfyUI at {ep.url} stopped answering (health check: {ep.error})", url=ep.url,
                                 hint="The server process may be hung (stopped, stuck in a driver call): restart it.")

    async def wait(self, url: str, prompt_id: str, **kw: Any) -> RunOutput:
        """Resume a run on the endpoint it was sent to (see ``on_dispatch``)."""
        return await self.client(url).wait(prompt_id, **kw)

    async def object_info(self, url: str | None = None, refresh: bool = False) -> dict[str, Any]:
        """Node schemas of ``url`` (default: the first healthy endpoint)."""
        if url is None:
            eps = await self._candidates((), set())
            url = eps[0].url
        return await self.client(url).object_info(refresh=refresh)

    async def installed(self, url: str | None = None, folders: Iterable[str] | None = None) -> dict[str, list[str]]:
        if url is None:
            url = (await self._candidates((), set()))[0].url
        return await self.client(url).installed(folders)

    async def status(self, *, folders: Iterable[str] = ("checkpoints", "loras")) -> list[EndpointStatus]:
        """Health, queue lengths and model lists of every endpoint (checked now)."""
        async def one(ep: _Endpoint) -> EndpointStatus:
            try:
                q = await ep.client.queue()
                models = await ep.client.installed(folders)
                try:
                    info = await ep.client.server_info()
                except ComfyUIError:  # what it is matters less than whether it answers
                    info = None
                ep.mark(True)
                for f, files in models.items():
                    ep.models[f] = set(files)
                    ep.models_at[f] = time.monotonic()
                ep.remote_queue = len(q["queue_running"]) + len(q["queue_pending"])
                return EndpointStatus(url=ep.url, healthy=True, queue_running=len(q["queue_running"]),
                                      queue_pending=len(q["queue_pending"]), in_flight=ep.in_flight, models=models,
                                      version=info and info.version, jobs_api=info and info.jobs_api)
            except ComfyUIError as exc:
                ep.mark(False, exc.message)
                return EndpointStatus(url=ep.url, healthy=False, in_flight=ep.in_flight, error=exc.message)

        return list(await asyncio.gather(*(one(e) for e in self._eps)))
