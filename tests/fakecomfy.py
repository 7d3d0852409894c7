"""A faithful fake ComfyUI: a real aiohttp HTTP + websocket server on 127.0.0.1 for tests.

    async with FakeComfyUI(step_time=0.01) as fake:
        async with ComfyClient(fake.url) as c: ...

    fake = FakeComfyUI().start_in_thread()   # from sync code (CLI, MCP stdio tests)
    ...; fake.stop()

It answers the endpoints of ComfyUI v0.3.64 with the recorded shapes (``../shared/comfyui``),
validates prompts against ``object_info`` with ComfyUI's exact error bodies, runs one prompt at a
time, sends the recorded websocket sequences message for message (status, execution_start,
execution_cached, progress_state, executing, progress + previews, executed, execution_success,
executing null; execution_error; execution_interrupted), caches like ComfyUI's classic cache (only
nodes whose input signature changed since the previous prompt run), and writes real PNGs with the
``prompt`` graph in a tEXt chunk, served by ``/view``. Node values come from a small evaluation
engine (``fakecomfy_engine``) whose executors tests can replace (``executors={"KSampler": fn}``).

``packs=True`` (or a list of pack names) adds the custom node packs the flow library knows (Pruna's
nodes, face restore) to the schema. Validation uses ``comfygen.flow_library.schema.validate_graph``
(``validator="internal"``: the fake's own port of ComfyUI's validator, ``fakecomfy_engine.validate_prompt``).

Failure knobs: ``fail={"execution_error": node_id_or_class, "die_at": node_id_or_class,
"ws_drop_at": node_id_or_class}``, and at run time ``fail_next(path, status=500, times=1)``,
``drop_next(path, times=1, after=False)`` (close the connection without an answer, before or after
handling the request), ``drop_websockets()``, ``await kill()`` (the server dies: port closed),
``await restart()`` (dies and comes back on the same port with an empty queue and history, as a
restarted ComfyUI does) and ``freeze()`` / ``thaw()`` (the process is stopped, as with SIGSTOP: TCP
connections are still accepted but nothing is answered, sent or executed until it is thawed, then
everything that waited goes on).

``FakeComfyUI`` speaks ComfyUI 0.3.64; ``fakecomfy_v038.FakeComfyUI038`` is the same server as
ComfyUI 0.38 behaves (jobs API, 409 on repeated prompt ids, ``missing_node_type``, credential
handshake on reconnect, looped nodes); ``PERSONALITIES`` names both for parametrised tests.
"""

from __future__ import annotations

import asyncio
import heapq
import io
import json
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

from aiohttp import WSMsgType, web
from PIL import Image

import fakecomfy_engine as eng
from fakecomfy_exec import ExecutionMixin

HERE = Path(__file__).resolve().parent
_SHARED = next((p / "shared" for p in HERE.parents if (p / "shared" / "comfyui").is_dir()), HERE.parents[1] / "shared")
_CANDIDATES = [HERE.parent / "flow_library" / "data" / "object_info.json", _SHARED / "comfyui" / "object_info.json"]
_CAPTURES = _SHARED / "comfyui" / "captures"
MODEL_FOLDERS = ["checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision",
                 "style_models", "embeddings", "diffusers", "vae_approx", "controlnet", "gligen", "upscale_models",
                 "custom_nodes", "hypernetworks", "photomaker", "classifiers", "model_patches", "audio_encoders"]
DEFAULT_MODELS = {"checkpoints": ["broken.safetensors", "random_sd15.safetensors"],
                  "loras": ["random_lora_sd15.safetensors"]}
_BASE_INFO: dict[str, Any] | None = None


def recorded_object_info() -> dict[str, Any]:
    """The node schemas a real ComfyUI v0.3.64 served (shared, do not mutate)."""
    global _BASE_INFO
    if _BASE_INFO is None:
        path = next(p for p in _CANDIDATES if p.exists())
        _BASE_INFO = json.loads(path.read_text())
    return _BASE_INFO


class FakeComfyUI(ExecutionMixin):
    def __init__(self, object_info: dict[str, Any] | None = None, models: dict[str, list[str]] | None = None,
                 step_time: float = 0.0, steps: int | None = None,
                 executors: dict[str, Callable[..., Any]] | None = None, fail: dict[str, Any] | None = None, *,
                 node_time: float = 0.0, previews: bool = False, host: str = "127.0.0.1", port: int = 0,
                 workdir: str | Path | None = None, packs: bool | list[str] = False,
                 validator: str = "flow_library"):
        self.models = {f: [] for f in MODEL_FOLDERS} | dict(DEFAULT_MODELS if models is None else models)
        self._base_info = object_info if object_info is not None else recorded_object_info()
        if packs:  # custom node packs the flow library knows (Pruna, face restore, ...)
            from comfygen.flow_library.schema import NodeSchema

            self._base_info = NodeSchema(self._base_info).with_packs(None if packs is True else list(packs)).info
        self.validator = validator
        self.step_time, self.steps, self.node_time, self.previews = step_time, steps, node_time, previews
        self.executors: dict[str, Callable[..., Any]] = {**eng.DEFAULT_EXECUTORS, **(executors or {})}
        self.fail: dict[str, Any] = dict(fail or {})
        self.host, self._port = host, port
        self._tmp = tempfile.TemporaryDirectory(prefix="fakecomfy-") if workdir is None else None
        root = Path(workdir) if workdir is not None else Path(self._tmp.name)  # type: ignore[union-attr]
        self.dirs = {t: root / t for t in ("output", "temp", "input")}
        for d in self.dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        self.url = ""
        self.number = 0
        self.pending: list[list[Any]] = []  # heap of [number, id, prompt, extra, outputs]
        self.running: list[Any] | None = None
        self.history: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.executed: list[tuple[str, str]] = []  # (prompt_id, node_id) in run order
        self.interrupts: list[Any] = []
        self._sockets: dict[str, list[tuple[web.WebSocketResponse, dict[str, Any]]]] = {}
        self._cache: dict[str, tuple[str, tuple, Any]] = {}
        self._interrupt: str | None = None
        self._interrupted_evt: asyncio.Event | None = None
        self._http_fail: list[list[Any]] = []  # [path, status, times]
        self._drops: list[list[Any]] = []  # [path, times, after]
        self._counters: dict[tuple[str, str], int] = {}
        self._info: dict[str, Any] = {}
        self._info_bytes = b""
        self._rebuild_info()
        self._runner: web.AppRunner | None = None
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.alive = False
        self._awake = asyncio.Event()  # cleared while frozen
        self._awake.set()

    # ------------------------------------------------------------------ config
    def set_models(self, models: dict[str, list[str]]) -> None:
        self.models.update(models)
        self._rebuild_info()

    def _rebuild_info(self) -> None:
        info = dict(self._base_info)
        for cls, schema in self._base_info.items():
            req = {**(schema.get("input", {}).get("required") or {}), **(schema.get("input", {}).get("optional") or {})}
            hits = [(n, eng.MODEL_INPUT_BY_CLASS.get((cls, n)) or eng.MODEL_INPUTS.get(n)) for n in req]
            hits = [(n, f) for n, f in hits if f and isinstance(req[n][0], (list, str)) and req[n][0] != "STRING"]
            if not hits:
                continue
            new = json.loads(json.dumps(schema))
            for cat in ("required", "optional"):
                for n, folder in hits:
                    spec = (new["input"].get(cat) or {}).get(n)
                    if spec is not None:
                        if spec[0] == "COMBO":
                            spec[1]["options"] = list(self.models.get(folder, []))
                        elif isinstance(spec[0], list):
                            spec[0] = list(self.models.get(folder, []))
            info[cls] = new
        if "LoadImage" in info:  # ComfyUI lists the input folder live
            new = json.loads(json.dumps(info["LoadImage"]))
            files = sorted(p.name for p in self.dirs["input"].iterdir() if p.is_file())
            new["input"]["required"]["image"][0] = files
            info["LoadImage"] = new
        self._info = info
        self._info_bytes = b""  # serialised on first GET /object_info

    def fail_next(self, path: str, status: int = 500, times: int = 1) -> None:
        self._http_fail.append([path, status, times])

    def drop_next(self, path: str, times: int = 1, after: bool = False) -> None:
        self._drops.append([path, times, after])

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> FakeComfyUI:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> FakeComfyUI:
        app = web.Application(middlewares=[self._middleware], client_max_size=200 * 2**20)
        routes = [("GET", "/ws", self._ws), ("GET", "/system_stats", self._system_stats), ("GET", "/queue", self._q),
                  ("POST", "/queue", self._q_post), ("GET", "/prompt", self._prompt_get),
                  ("POST", "/prompt", self._prompt_post), ("GET", "/history", self._history),
                  ("GET", "/history/{pid}", self._history_one), ("POST", "/history", self._history_post),
                  ("POST", "/interrupt", self._interrupt_post), ("GET", "/object_info", self._object_info),
                  ("GET", "/object_info/{cls}", self._object_info_one), ("GET", "/models", self._models),
                  ("GET", "/models/{folder}", self._models_one), ("GET", "/view", self._view),
                  ("POST", "/upload/image", self._upload), ("POST", "/free", self._empty),
                  ("GET", "/features", self._features), ("GET", "/embeddings", self._embeddings),
                  ("GET", "/extensions", self._extensions)]
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
            app.router.add_route(method, "/api" + path, handler)
        for method, path, handler in self._more_routes():
            app.router.add_route(method, path, handler)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port)
        await site.start()
        self._port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://{self.host}:{self._port}"
        self._wake = asyncio.Event()
        self._interrupted_evt = asyncio.Event()
        self._worker = asyncio.create_task(self._work())
        self._loop = asyncio.get_running_loop()
        self.alive = True
        return self

    async def kill(self) -> None:
        """The server dies: websockets close, the port stops answering, the running prompt is lost."""
        if not self.alive:
            return
        self.alive = False
        await self._close_sockets()
        if self._worker is not None and self._worker is not asyncio.current_task():
            self._worker.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def restart(self) -> None:
        """Die and start again on the same port: queue, history, cache and sockets are gone."""
        await self.kill()
        self.pending, self.running, self.history, self._cache = [], None, {}, {}
        await self.start()

    def freeze(self) -> None:
        """Stop answering anything (SIGSTOP): connections are accepted, requests and messages wait."""
        self._call_soon(self._awake.clear)

    def thaw(self) -> None:
        self._call_soon(self._awake.set)

    def _call_soon(self, fn: Callable[[], Any]) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if self._loop is None or running is self._loop:
            fn()
        else:
            self._loop.call_soon_threadsafe(fn)

    def _more_routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        """Routes a newer personality adds (full paths, registered as they are)."""
        return []

    async def close(self) -> None:
        await self.kill()
        if self._tmp is not None:
            self._tmp.cleanup()

    def start_in_thread(self) -> FakeComfyUI:
        ready = threading.Event()
        errors: list[BaseException] = []

        def target() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=target, name="fake-comfyui", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def call(self, coro: Any, timeout: float = 10) -> Any:
        """Run a coroutine of this fake on its own loop (for thread mode), e.g. ``fake.call(fake.kill())``."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            if self._loop.is_running():
                self.call(self.close())
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def drop_websockets(self) -> None:
        """Close every websocket connection (the server stays up; clients should reconnect)."""
        assert self._loop is not None
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            asyncio.ensure_future(self._close_sockets())
        else:
            self.call(self._close_sockets())

    async def _close_sockets(self) -> None:
        for conns in list(self._sockets.values()):
            for ws, _ in list(conns):
                await ws.close()
        self._sockets.clear()

    # ------------------------------------------------------------------ HTTP plumbing
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        path = request.path[4:] if request.path.startswith("/api/") else request.path
        await self._awake.wait()
        self.requests.append((request.method, path))
        for rule in self._http_fail:
            if rule[2] > 0 and path == rule[0]:
                rule[2] -= 1
                return web.Response(status=rule[1], text="500 Internal Server Error\n\nServer got itself in trouble")
        drop = next((r for r in self._drops if r[1] > 0 and path == r[0]), None)
        if drop is not None:
            drop[1] -= 1
            if drop[2]:
                await handler(request)
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=200)
        return await handler(request)

    async def _empty(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    def _capture(self, name: str, default: Any) -> Any:
        """A recorded answer of the real ComfyUI: the shared captures, else the copy a checkout carries
        (``tests/data/comfyui``: the small ones the double answers with), else ``default``."""
        for p in (_CAPTURES / name, HERE / "data" / "comfyui" / name):
            if p.exists():
                return json.loads(p.read_text())
        return default

    async def _system_stats(self, request: web.Request) -> web.Response:
        stats = self._capture("system_stats.json", {"system": {"comfyui_version": "0.3.64"}, "devices": []})
        stats["system"]["argv"] = ["main.py", "--cpu", "--listen", self.host, "--port", str(self._port)]
        return web.json_response(stats)

    async def _features(self, request: web.Request) -> web.Response:
        return web.json_response({"supports_preview_metadata": True, "max_upload_size": 104857600})

    async def _embeddings(self, request: web.Request) -> web.Response:
        return web.json_response(self.models.get("embeddings", []))

    async def _extensions(self, request: web.Request) -> web.Response:
        return web.json_response(self._capture("extensions.json", []))

    async def _object_info(self, request: web.Request) -> web.Response:
        if not self._info_bytes:
            self._info_bytes = json.dumps(self._info).encode()
        return web.Response(body=self._info_bytes, content_type="application/json")

    async def _object_info_one(self, request: web.Request) -> web.Response:
        cls = request.match_info["cls"]
        return web.json_response({cls: self._info[cls]} if cls in self._info else {})

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(list(self.models))

    async def _models_one(self, request: web.Request) -> web.Response:
        folder = request.match_info["folder"]
        if folder not in self.models:
            return web.Response(status=404)
        return web.json_response(list(self.models[folder]))

    def _remaining(self) -> int:
        return len(self.pending) + (1 if self.running is not None else 0)

    async def _q(self, request: web.Request) -> web.Response:
        return web.json_response({"queue_running": [self.running] if self.running else [],
                                  "queue_pending": list(self.pending)})

    async def _q_post(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("clear"):
            self.pending = []
        for pid in body.get("delete", []) or []:
            self.pending = [p for p in self.pending if p[1] != pid]
        heapq.heapify(self.pending)
        await self._broadcast_status()
        return web.Response(status=200)

    async def _prompt_get(self, request: web.Request) -> web.Response:
        return web.json_response({"exec_info": {"queue_remaining": self._remaining()}})

    async def _prompt_post(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=500, text="500 Internal Server Error\n\nServer got itself in trouble")
        return await self._queue_prompt(body)

    async def _queue_prompt(self, body: dict[str, Any]) -> web.Response:
        number = body.get("number", self.number)
        self.number += 1
        if body.get("front"):
            number = -number
        if "prompt" not in body:
            err = {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided",
                   "extra_info": {}}
            return web.json_response({"error": err, "node_errors": {}}, status=400)
        prompt = body["prompt"]
        ok, error, outputs, node_errors = self._validate(prompt)
        if not ok:
            return web.json_response({"error": error, "node_errors": node_errors}, status=400)
        pid = str(body.get("prompt_id") or __import__("uuid").uuid4())
        extra = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra["client_id"] = body["client_id"]
        heapq.heappush(self.pending, [number, pid, prompt, extra, outputs])
        await self._broadcast_status()
        assert self._wake is not None
        self._wake.set()
        return web.json_response({"prompt_id": pid, "number": number, "node_errors": node_errors})

    def _validate(self, prompt: Any) -> tuple[bool, dict | None, list[str], dict[str, Any]]:
        """ComfyUI's validation, by the flow library's validator (the fake's own as a fallback)."""
        if self.validator == "internal":
            return eng.validate_prompt(prompt, self._info)
        from comfygen.flow_library.schema import NodeSchema, validate_graph

        rep = validate_graph(prompt, NodeSchema(self._info), check_model_files=True, check_v3_combos=False)
        return rep.error is None, rep.error, list(rep.good_outputs), rep.node_errors

    async def _history(self, request: web.Request) -> web.Response:
        items = list(self.history.items())
        if "max_items" in request.query:
            items = items[-int(request.query["max_items"]):]
        return web.json_response(dict(items))

    async def _history_one(self, request: web.Request) -> web.Response:
        pid = request.match_info["pid"]
        return web.json_response({pid: self.history[pid]} if pid in self.history else {})

    async def _history_post(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("clear"):
            self.history.clear()
        for pid in body.get("delete", []) or []:
            self.history.pop(pid, None)
        return web.Response(status=200)

    async def _interrupt_post(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        self.interrupts.append(body)
        target = body.get("prompt_id") if isinstance(body, dict) else None
        if self.running is not None and (target is None or target == self.running[1]):
            self._interrupt = self.running[1]
            assert self._interrupted_evt is not None
            self._interrupted_evt.set()
        return web.Response(status=200)

    async def _view(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        name, sub, typ = q.get("filename", ""), q.get("subfolder", ""), q.get("type", "output")
        if typ not in self.dirs or ".." in Path(name).parts or ".." in Path(sub).parts or name.startswith("/"):
            return web.Response(status=400)
        path = self.dirs[typ] / sub / name
        if not path.is_file():
            return web.Response(status=404)
        if "preview" in q:
            fmt = q["preview"].split(";")[0] or "webp"
            buf = io.BytesIO()
            Image.open(path).convert("RGB").save(buf, format=fmt.upper())
            return web.Response(body=buf.getvalue(), content_type=f"image/{fmt}")
        return web.Response(body=path.read_bytes(), content_type="image/png")

    async def _upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        image = form.get("image")
        if image is None or not hasattr(image, "file"):
            return web.Response(status=400)
        sub = str(form.get("subfolder", ""))
        typ = str(form.get("type", "input")) if form.get("type") in self.dirs else "input"
        target = self.dirs[typ] / sub
        target.mkdir(parents=True, exist_ok=True)
        name = Path(image.filename).name
        if (target / name).exists() and str(form.get("overwrite", "")).lower() not in ("true", "1"):
            stem, suffix, i = Path(name).stem, Path(name).suffix, 1
            while (target / f"{stem} ({i}){suffix}").exists():
                i += 1
            name = f"{stem} ({i}){suffix}"
        (target / name).write_bytes(image.file.read())
        self._rebuild_info()
        return web.json_response({"name": name, "subfolder": sub, "type": typ})

    # ------------------------------------------------------------------ websocket
    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        sid = request.query.get("clientId") or __import__("uuid").uuid4().hex
        flags: dict[str, Any] = {}
        self._sockets.setdefault(sid, []).append((ws, flags))
        try:
            await ws.send_json({"type": "status", "data": {"status": {"exec_info": {
                "queue_remaining": self._remaining()}}, "sid": sid}})
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    try:
                        data = json.loads(msg.data)
                    except ValueError:
                        continue
                    if data.get("type") == "feature_flags":
                        flags.update(data.get("data") or {})
                        await ws.send_json({"type": "feature_flags", "data": {
                            "supports_preview_metadata": True, "max_upload_size": 104857600}})
        finally:
            conns = self._sockets.get(sid, [])
            self._sockets[sid] = [c for c in conns if c[0] is not ws]
        return ws

    async def _send(self, sid: str | None, msg: dict[str, Any]) -> None:
        await self._awake.wait()
        targets = self._sockets.get(sid, []) if sid is not None else [c for cs in self._sockets.values() for c in cs]
        for ws, _ in list(targets):
            try:
                await ws.send_json(msg)
            except (ConnectionError, RuntimeError):
                pass

    async def _send_bytes(self, sid: str, data_for: Callable[[dict[str, Any]], bytes]) -> None:
        await self._awake.wait()
        for ws, flags in list(self._sockets.get(sid, [])):
            data = data_for(flags)
            if not data:
                continue
            try:
                await ws.send_bytes(data)
            except (ConnectionError, RuntimeError):
                pass

    async def _broadcast_status(self) -> None:
        await self._send(None, {"type": "status", "data": {"status": {"exec_info": {
            "queue_remaining": self._remaining()}}}})


def personalities() -> dict[str, type]:
    """The ComfyUI versions the test double can be: ``{"0.3.64": FakeComfyUI, "0.38": FakeComfyUI038}``."""
    from fakecomfy_v038 import FakeComfyUI038

    return {"0.3.64": FakeComfyUI, "0.38": FakeComfyUI038}
