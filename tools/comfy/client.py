"""Async client for one ComfyUI server: submit a graph, follow it live, fetch its images.

    async with ComfyClient("http://127.0.0.1:8188") as c:
        out = await c.run(graph, on_event=print, deadline_s=600)
        out.images[0].data  # PNG bytes

Protocol (as ComfyUI 0.3.64 and 0.36+ speak it): the client opens ``/ws?clientId=X`` *before* it
posts ``/prompt {"prompt", "client_id": X, "prompt_id"}`` with its own prompt id (a canonical
lowercase UUID, which newer servers require), so no message is missed and a failed POST can be
retried without duplicates (the id is looked up first; a newer server's 409 "prompt_id already
exists" to a resubmission means it was accepted). The run ends at ``executing`` with ``node: null``.
Outputs come from the ``executed`` messages, accumulated per node (a looped node sends several), or
from ``/history/{id}`` when the socket dropped, and bytes from ``/view``. What the server offers (the
jobs API, its version and feature flags) is detected, see :mod:`.remote`; a newer server's
``credential_key`` (first ``status`` message) is answered with ``credential_auth`` on reconnect.

Robustness: every HTTP call has connect/read timeouts and retries with exponential backoff on
connection errors and 5xx answers; a dropped websocket is reconnected in the background while the
run is followed by polling so it is never orphaned; a prompt the server no longer knows (restart,
deleted from its queue) raises :class:`PromptVanished` within one idle check and a quick recheck;
``deadline_s`` raises :class:`DeadlineExceeded` and leaves the prompt running (``wait(prompt_id)``
resumes it); cancelling the awaiting task interrupts that prompt (only it) and deletes it from the
queue (one jobs-API call where the server has it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import websockets
from ..callbacks import notify
from ..errors import Cancelled, ComfyUIError, ComfyUIUnavailable
from . import events as ev
from .error_messages import execution_error, validation_error
from .remote import PromptVanished, RemoteMixin, ServerInfo, canonical_prompt_id
from .results import OutputImage, RunOutput, Timings, _RunState

__all__ = ["ComfyClient", "RunOutput", "OutputImage", "Timings", "EventCallback", "PromptVanished", "ServerInfo",
           "canonical_prompt_id"]

log = logging.getLogger(__name__)

EventCallback = Callable[[ev.Event], Any]
_RETRY_STATUS = {500, 502, 503, 504}


class _Dropped:
    """Marker put into a run's queue when the websocket connection is lost."""


class _Reconnected:
    """Marker put into a run's queue when the websocket connection is back."""


def _ws_url(base: str, client_id: str) -> str:
    if base.startswith("https://"):
        return "wss://" + base[len("https://"):] + f"/ws?clientId={client_id}"
    return "ws://" + base.split("://", 1)[-1] + f"/ws?clientId={client_id}"


class ComfyClient(RemoteMixin):
    """One ComfyUI endpoint. Use as ``async with``; one client may follow many runs at once."""

    def __init__(self, url: str, *, connect_timeout: float = 5.0, read_timeout: float = 60.0,
                 client_id: str | None = None, retries: int = 4, backoff_s: float = 0.2,
                 poll_interval_s: float = 0.25, idle_check_s: float = 5.0):
        self.url = url.rstrip("/")
        self.client_id = client_id or uuid.uuid4().hex
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retries = retries
        self.backoff_s = backoff_s
        self.poll_interval_s = poll_interval_s
        self.idle_check_s = idle_check_s
        self._http: httpx.AsyncClient | None = None
        self._ws_task: asyncio.Task[None] | None = None
        self._ws_up = asyncio.Event()
        self._ws: Any = None
        self._ws_seen = False
        self._ws_error: str | None = None
        self._ws_tried = asyncio.Event()  # set after a failed connection attempt
        self._watch: dict[str, asyncio.Queue[Any]] = {}
        self._graphs: dict[str, dict[str, Any]] = {}
        self._status_watch: set[str] = set()
        self._object_info: dict[str, Any] | None = None
        self._current: str | None = None  # prompt executing on the server, for legacy previews
        self._closed = False
        self._info: ServerInfo | None = None
        self.server_features: dict[str, Any] = {}  # the server's feature_flags answer on the socket
        self._credential_key: str | None = None  # newer servers: proves a reconnecting socket is ours
        self._abandoned: set[str] = set()  # prompts given up on a hung server: no cancel calls on the way out

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> ComfyClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self._http is None:
            timeout = httpx.Timeout(self.read_timeout, connect=self.connect_timeout)
            self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout, trust_env=False)
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        if self._ws_task is not None:
            self._ws_task.cancel()
            with contextlib.suppress(BaseException):
                await self._ws_task
            self._ws_task = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # ------------------------------------------------------------------ HTTP
    def _unavailable(self, exc: BaseException | str) -> ComfyUIUnavailable:
        u = httpx.URL(self.url)
        port = u.port or (443 if u.scheme == "https" else 80)
        return ComfyUIUnavailable(
            f"ComfyUI at {self.url} is not reachable: {exc}", url=self.url,
            hint=f"Start ComfyUI there (python main.py --listen {u.host} --port {port}) or fix the URL "
                 "(COMFYGEN_COMFYUI_URLS / --endpoint).")

    async def _request(self, method: str, path: str, *, retry: bool = True, **kw: Any) -> httpx.Response:
        if self._http is None:
            await self.open()
        assert self._http is not None
        attempts = self.retries + 1 if retry else 1
        last: BaseException | str = "no attempt"
        for i in range(attempts):
            try:
                resp = await self._http.request(method, path, **kw)
            except (httpx.TransportError, OSError) as exc:  # connect/read errors, timeouts, dropped connections
                last = exc if str(exc) else type(exc).__name__
            else:
                if resp.status_code not in _RETRY_STATUS:
                    return resp
                last = f"HTTP {resp.status_code} on {method} {path}"
                if i == attempts - 1:
                    raise ComfyUIError(f"ComfyUI at {self.url} answered {last}: {resp.text[:300]}", url=self.url,
                                       hint="Look at the ComfyUI server log; retry later.")
            if i < attempts - 1:
                await asyncio.sleep(self.backoff_s * (2 ** i))
        raise self._unavailable(last)

    async def _json(self, method: str, path: str, **kw: Any) -> Any:
        resp = await self._request(method, path, **kw)
        if resp.status_code >= 400:
            raise ComfyUIError(f"ComfyUI at {self.url} answered HTTP {resp.status_code} on {method} {path}",
                               url=self.url, hint="Check the path and parameters; see the server log.")
        if not resp.content:
            return None
        return resp.json()

    # ------------------------------------------------------------------ plain endpoints
    async def system_stats(self) -> dict[str, Any]:
        return await self._json("GET", "/system_stats")

    async def queue(self) -> dict[str, Any]:
        """``{"queue_running": [[number, id, prompt, extra, outputs]], "queue_pending": [...]}`` (pending sorted)."""
        q = await self._json("GET", "/queue")
        q["queue_pending"] = sorted(q.get("queue_pending", []), key=lambda item: item[0])
        return q

    async def queue_position(self, prompt_id: str) -> int | None:
        """0 when running, n when n prompts are ahead of it, ``None`` when not in the queue."""
        q = await self.queue()
        if any(item[1] == prompt_id for item in q.get("queue_running", [])):
            return 0
        for i, item in enumerate(q.get("queue_pending", [])):
            if item[1] == prompt_id:
                return i + len(q.get("queue_running", [])) if q.get("queue_running") else i
        return None

    async def delete_queued(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        if ids:
            await self._request("POST", "/queue", json={"delete": ids})

    async def interrupt(self, prompt_id: str | None) -> None:
        """Interrupt ``prompt_id`` if it is the one running (no-op otherwise). ``None`` interrupts whatever runs."""
        await self._request("POST", "/interrupt", json={"prompt_id": prompt_id} if prompt_id else None)

    async def history(self, prompt_id: str | None = None, *, max_items: int | None = None) -> dict[str, Any]:
        if prompt_id is None:
            params = {"max_items": max_items} if max_items else None
            return await self._json("GET", "/history", params=params) or {}
        return await self._json("GET", f"/history/{prompt_id}") or {}

    async def object_info(self, refresh: bool = False) -> dict[str, Any]:
        """All node schemas of this endpoint, cached by the client (``refresh=True`` after installing nodes or
        models; a pool keeps one client per endpoint, so its cache lives as long as the pool)."""
        if refresh or self._object_info is None:
            self._object_info = await self._json("GET", "/object_info")
        assert self._object_info is not None
        return self._object_info

    async def models(self, folder: str | None = None) -> list[str]:
        """``models()`` -> folder names; ``models("checkpoints")`` -> files ([] for an unknown folder)."""
        if folder is None:
            return list(await self._json("GET", "/models"))
        resp = await self._request("GET", f"/models/{folder}")
        if resp.status_code == 404:
            return []
        if resp.status_code >= 400:
            raise ComfyUIError(f"ComfyUI at {self.url} answered HTTP {resp.status_code} for models/{folder}",
                               url=self.url)
        return list(resp.json())

    async def installed(self, folders: Iterable[str] | None = None) -> dict[str, list[str]]:
        """folder -> files for the given folders (all folders when ``None``)."""
        names = list(folders) if folders is not None else await self.models()
        lists = await asyncio.gather(*(self.models(f) for f in names))
        return dict(zip(names, lists))

    async def upload_image(self, data: bytes, name: str, *, overwrite: bool = True, subfolder: str = "",
                           type: str = "input") -> dict[str, Any]:
        files = {"image": (name, data, "image/png")}
        form = {"overwrite": "true" if overwrite else "false", "type": type, "subfolder": subfolder}
        resp = await self._request("POST", "/upload/image", files=files, data=form)
        if resp.status_code >= 400:
            raise ComfyUIError(f"upload of {name} to {self.url} failed: HTTP {resp.status_code} {resp.text[:200]}",
                               url=self.url, hint="Check the file is a valid image within the server's upload size.")
        return resp.json()

    async def fetch_image(self, ref: OutputImage | dict[str, Any]) -> bytes:
        r = ref.ref() if isinstance(ref, OutputImage) else ref
        params = {"filename": r["filename"], "subfolder": r.get("subfolder", ""), "type": r.get("type", "output")}
        resp = await self._request("GET", "/view", params=params)
        if resp.status_code != 200:
            raise ComfyUIError(f"ComfyUI at {self.url} has no image {params} (HTTP {resp.status_code})", url=self.url,
                               hint="The output may have been deleted from the server's output folder.")
        return resp.content

    # ------------------------------------------------------------------ submit
    async def submit(self, graph: dict[str, Any], *, prompt_id: str | None = None,
                     extra_data: dict[str, Any] | None = None) -> str:
        """Queue ``graph`` under our own prompt id; safe to retry (a posted id is never posted twice)."""
        pid = canonical_prompt_id(prompt_id)
        self._graphs[pid] = graph
        body: dict[str, Any] = {"prompt": graph, "client_id": self.client_id, "prompt_id": pid}
        if extra_data:
            body["extra_data"] = extra_data
        last: BaseException | str = "no attempt"
        for i in range(self.retries + 1):
            if i:
                await asyncio.sleep(self.backoff_s * (2 ** (i - 1)))
                try:
                    if await self._known(pid):
                        return pid
                except ComfyUIUnavailable as exc:
                    last = exc
                    continue
            try:
                resp = await self._request("POST", "/prompt", json=body, retry=False)
            except ComfyUIUnavailable as exc:
                last = exc
                continue
            except ComfyUIError as exc:  # 5xx
                last = exc
                continue
            if resp.status_code == 400:
                raise validation_error(_safe_json(resp), url=self.url)
            if resp.status_code == 409:  # newer servers: "prompt_id already exists" = an earlier POST got through
                log.info("prompt %s was already accepted by %s (409 on resubmission)", pid, self.url)
                return pid
            if resp.status_code >= 400:
                raise ComfyUIError(f"ComfyUI at {self.url} refused the prompt: HTTP {resp.status_code} "
                                   f"{resp.text[:300]}", url=self.url, hint="See the ComfyUI server log.")
            return str(_safe_json(resp).get("prompt_id") or pid)
        if isinstance(last, ComfyUIError):
            raise last
        raise self._unavailable(last)

    async def _known(self, pid: str) -> bool:
        """Did the server already accept ``pid`` (queued, running or finished)?"""
        saved = self.retries
        self.retries = 0  # the caller retries
        try:
            state, _ = await self.prompt_state(pid)
        finally:
            self.retries = saved
        return state != "unknown"

    # ------------------------------------------------------------------ websocket
    async def _ensure_ws(self) -> None:
        if self._ws_task is None or self._ws_task.done():
            self._ws_up.clear()
            self._ws_task = asyncio.create_task(self._ws_loop(), name=f"comfyui-ws {self.url}")
        if self._ws_up.is_set():
            return
        self._ws_tried.clear()
        up = asyncio.ensure_future(self._ws_up.wait())
        tried = asyncio.ensure_future(self._ws_tried.wait())
        try:
            await asyncio.wait({up, tried}, timeout=self.connect_timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            up.cancel()
            tried.cancel()
        if not self._ws_up.is_set():
            log.warning("websocket to %s is not connected (%s); following runs by polling /history",
                        self.url, self._ws_error or f"no answer in {self.connect_timeout:.1f}s")

    async def _ws_loop(self) -> None:
        delay = self.backoff_s
        while not self._closed:
            try:
                async with websockets.connect(_ws_url(self.url, self.client_id), open_timeout=self.connect_timeout,
                                              max_size=None, ping_interval=20, ping_timeout=20,
                                              proxy=None, compression=None) as ws:
                    self._ws = ws
                    if self._credential_key is not None:  # newer servers close a reconnect without it (1008)
                        await ws.send(json.dumps({"type": "credential_auth",
                                                  "data": {"credential_key": self._credential_key}}))
                    await ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
                    reconnect = self._ws_seen and not self._ws_up.is_set()
                    self._ws_seen = True
                    self._ws_up.set()
                    delay = self.backoff_s
                    if reconnect:
                        self._broadcast(_Reconnected())
                    async for frame in ws:
                        self._dispatch(frame)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection refused, dropped, protocol error
                log.debug("websocket %s: %s", self.url, exc)
                self._ws_error = str(exc) or type(exc).__name__
                if getattr(getattr(exc, "rcvd", None), "code", None) == 1008:
                    self._refused(getattr(exc.rcvd, "reason", "") or "1008")  # type: ignore[attr-defined]
            self._ws = None
            self._ws_tried.set()
            if self._ws_up.is_set():
                self._ws_up.clear()
                self._broadcast(_Dropped())
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _refused(self, reason: str) -> None:
        """A newer server closed our reconnect (1008: no or wrong credential key): go on as a new client."""
        self._ws_error = (f"{self.url} refused the websocket reconnect ({reason}); continuing as a new client, "
                          "runs already submitted are followed by polling")
        log.warning("%s", self._ws_error)
        self._credential_key = None
        self.client_id = uuid.uuid4().hex

    def _broadcast(self, marker: object) -> None:
        for q in self._watch.values():
            q.put_nowait(marker)

    def _dispatch(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            preview = ev.parse_binary(frame)
            if preview is None:
                return
            pid = preview.prompt_id or self._current
            if pid in self._watch:
                self._watch[pid].put_nowait(preview)
            return
        try:
            msg = json.loads(frame)
        except json.JSONDecodeError:
            return
        pid = ev.message_prompt_id(msg)
        kind = msg.get("type")
        if kind in ("status", "feature_flags"):
            self._server_message(msg)
        if kind == "execution_start":
            self._current = pid
        if pid is not None and pid in self._watch:
            self._watch[pid].put_nowait(msg)
        elif msg.get("type") == "status":
            for wpid in self._status_watch:  # only runs that report their queue position want these
                if wpid in self._watch:
                    self._watch[wpid].put_nowait(msg)

    def _server_message(self, msg: dict[str, Any]) -> None:
        """Keep what the server says about itself: feature flags, and the credential key of this socket."""
        data = msg.get("data") if isinstance(msg.get("data"), dict) else {}
        if msg.get("type") == "feature_flags":
            self.server_features = dict(data)
            return
        key = data.get("credential_key") or (data.get("status") or {}).get("credential_key")
        if isinstance(key, str) and key:
            self._credential_key = key

    # ------------------------------------------------------------------ run / wait
    async def run(self, graph: dict[str, Any], *, prompt_id: str | None = None, on_event: EventCallback | None = None,
                  deadline_s: float | None = None, previews: bool = False, fetch_images: bool = True) -> RunOutput:
        """Submit ``graph`` and follow it to the end; images are fetched (``OutputImage.data``)."""
        pid = canonical_prompt_id(prompt_id)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._watch[pid] = queue
        try:
            await self._ensure_ws()
            started = time.time()
            try:
                # newer servers preview only when the prompt asks (0.3.64 ignores the key)
                submitted_id = await self.submit(graph, prompt_id=pid,
                                                 extra_data={"preview_method": "auto"} if previews else None)
            except asyncio.CancelledError:  # the POST may have been accepted already
                if pid not in self._abandoned:
                    await asyncio.shield(self._cancel_remote(pid))
                raise
            return await self._follow(submitted_id, queue, on_event=on_event, deadline_s=deadline_s,
                                      previews=previews, fetch_images=fetch_images, submitted=started,
                                      t0=time.monotonic())
        finally:
            self._watch.pop(pid, None)
            self._graphs.pop(pid, None)
            self._abandoned.discard(pid)

    async def wait(self, prompt_id: str, *, on_event: EventCallback | None = None, deadline_s: float | None = None,
                   previews: bool = False, fetch_images: bool = True) -> RunOutput:
        """Follow an already submitted prompt (e.g. after :class:`DeadlineExceeded` or a restart)."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._watch[prompt_id] = queue
        try:
            await self._ensure_ws()
            return await self._follow(prompt_id, queue, on_event=on_event, deadline_s=deadline_s, previews=previews,
                                      fetch_images=fetch_images, submitted=time.time(), t0=time.monotonic(),
                                      check_history_first=True)
        finally:
            self._watch.pop(prompt_id, None)

    async def _follow(self, pid: str, queue: asyncio.Queue[Any], *, on_event: EventCallback | None,
                      deadline_s: float | None, previews: bool, fetch_images: bool, submitted: float, t0: float,
                      check_history_first: bool = False) -> RunOutput:
        state = _RunState(pid, submitted, self._graphs.get(pid, {}))
        if on_event is not None:
            self._status_watch.add(pid)
        try:
            async with asyncio.timeout(deadline_s):
                await self._consume(state, queue, on_event, previews, check_history_first)
                return await self._finish(state, fetch_images)
        except TimeoutError:
            raise await self._deadline_error(pid, deadline_s or 0.0) from None
        except asyncio.CancelledError:
            if pid not in self._abandoned:
                await asyncio.shield(self._cancel_remote(pid))
            raise
        finally:
            self._status_watch.discard(pid)

    def abandon(self, prompt_id: str) -> None:
        """Cancelling the run of ``prompt_id`` now will not call the server (it is not answering)."""
        self._abandoned.add(prompt_id)

    async def _cancel_remote(self, pid: str) -> None:
        """Remove ``pid`` from the queue and interrupt it if it runs; never raises."""
        saved = self.retries
        self.retries = min(self.retries, 1)
        try:
            await asyncio.wait_for(self.cancel_prompt(pid), timeout=self.connect_timeout + 2)
        except Exception as exc:  # best effort: the server may be gone
            log.warning("could not cancel prompt %s on %s: %s", pid, self.url, exc)
        finally:
            self.retries = saved

    async def _emit(self, on_event: EventCallback | None, event: ev.Event) -> None:
        await notify(on_event, event, what=f"on_event callback for {type(event).__name__}")

    async def _consume(self, st: _RunState, queue: asyncio.Queue[Any], on_event: EventCallback | None,
                       previews: bool, check_history_first: bool) -> None:
        if on_event is not None and not check_history_first:
            await self._emit_position(st, on_event)
        if check_history_first and await self._check_server(st):
            return
        while True:
            timeout = self.idle_check_s if self._ws_up.is_set() and not st.absent else self.poll_interval_s
            try:
                async with asyncio.timeout(timeout):  # not wait_for: on 3.11 it can lose a cancellation
                    item = await queue.get()
            except TimeoutError:
                # Nothing heard for a while, or the socket is down: ask the server (raises when it is gone).
                log.debug("prompt %s: nothing on the websocket for %.2fs, asking the server", st.pid, timeout)
                if await self._check_server(st):
                    return
                continue
            if isinstance(item, _Dropped):
                st.lossy = True
                continue
            if isinstance(item, _Reconnected):
                st.lossy = True
                if await self._check_server(st):
                    return
                continue
            if isinstance(item, ev.Preview):
                if previews:
                    await self._emit(on_event, item)
                continue
            if item.get("type") == "status":
                if on_event is not None and st.started is None:
                    await self._emit_position(st, on_event)
                continue
            event = ev.parse_message(item, st.class_types)
            if event is None:
                continue
            now = time.time()
            if isinstance(event, ev.Started):
                st.started = now
            elif isinstance(event, ev.Cached):
                st.cached = event.nodes
            elif isinstance(event, ev.NodeStarted):
                st.node_started(event.node, now)
            elif isinstance(event, ev.NodeOutput):
                st.add_output(event.node, event.output)
            elif isinstance(event, ev.ExecutionFailed):
                raise execution_error(item["data"], url=self.url)
            elif isinstance(event, ev.Interrupted):
                raise Cancelled(f"prompt {st.pid} was interrupted at node {event.node} {event.class_type}",
                                details={"prompt_id": st.pid, "url": self.url},
                                hint="Someone interrupted it on the server (or it was cancelled); run it again.")
            elif isinstance(event, ev.Finished):
                st.node_started(None, now)
                st.finished = now
                await self._emit(on_event, event)
                return
            await self._emit(on_event, event)

    async def _emit_position(self, st: _RunState, on_event: EventCallback) -> None:
        """Emit :class:`Queued` when the prompt's queue position changed (one ``GET /queue``)."""
        with contextlib.suppress(ComfyUIError):
            pos = await self.queue_position(st.pid)
            if pos is not None and st.started is None and pos != st.position:
                st.position = pos
                await self._emit(on_event, ev.Queued(prompt_id=st.pid, position=pos))

    async def _check_server(self, st: _RunState) -> bool:
        """Ask the server about the prompt: True when finished (``st`` filled, or its error raised).

        A prompt the server does not know twice in a row (the second look one poll interval after the
        first) raises :class:`PromptVanished`: nothing will ever arrive for it.
        """
        state, entry = await self.prompt_state(st.pid)
        if state == "done":
            return await self._done_from_history(st, entry)
        if state != "unknown":
            st.absent = 0
            return False
        st.absent += 1
        if st.absent >= 2:
            raise self.vanished(st.pid)
        return False

    async def _done_from_history(self, st: _RunState, entry: dict[str, Any] | None = None) -> bool:
        """If the prompt is finished according to ``/history``, fill ``st`` (or raise its error)."""
        entry = entry or (await self.history(st.pid)).get(st.pid)
        if not entry:
            return False
        status = entry.get("status") or {}
        messages = status.get("messages") or []
        for name, data in messages:
            if name == "execution_start" and st.started is None:
                st.started = data.get("timestamp", 0) / 1000 or None
            elif name == "execution_cached":
                st.cached = [str(n) for n in data.get("nodes", [])]
            elif name == "execution_error":
                raise execution_error(data, url=self.url)
            elif name == "execution_interrupted":
                raise Cancelled(f"prompt {st.pid} was interrupted at node {data.get('node_id')} "
                                f"{data.get('node_type')}", details={"prompt_id": st.pid, "url": self.url},
                                hint="Run it again.")
        if status.get("status_str") == "error" or (status and not status.get("completed", True)):
            raise ComfyUIError(f"prompt {st.pid} failed on {self.url} (status {status.get('status_str')})",
                               url=self.url, hint="See the ComfyUI server log.")
        st.outputs = dict(entry.get("outputs") or {})
        st.finished = st.finished or time.time()
        st.lossy = False
        return True

    async def _finish(self, st: _RunState, fetch_images: bool) -> RunOutput:
        if st.lossy:
            await self._done_from_history(st)
        refs = [(node, img) for node, out in st.outputs.items() for img in (out or {}).get("images", []) or []]
        datas: list[bytes] = [b""] * len(refs)
        if fetch_images and refs:
            datas = list(await asyncio.gather(*(self.fetch_image(img) for _, img in refs)))
        images = [OutputImage(node=str(node), filename=img["filename"], subfolder=img.get("subfolder", ""),
                              type=img.get("type", "output"), data=data) for (node, img), data in zip(refs, datas)]
        return RunOutput(prompt_id=st.pid, endpoint=self.url, images=images, cached_nodes=st.cached,
                         outputs=st.outputs,
                         timings=Timings(submitted=st.submitted, started=st.started, finished=st.finished,
                                         per_node=st.per_node))


def _safe_json(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        return {"error": {"type": "invalid_response", "message": resp.text[:300], "details": "", "extra_info": {}},
                "node_errors": {}}
    return data if isinstance(data, dict) else {}

