"""The test double as ComfyUI 0.38 behaves (read from its server.py, execution.py, comfy_execution/jobs.py).

    async with FakeComfyUI038(loops={"3": 2}) as fake: ...

Everything of :class:`fakecomfy.FakeComfyUI` (0.3.64) holds, with these differences:

- ``/system_stats``: ``comfyui_version`` 0.38.1, ``os`` is ``sys.platform`` ("linux"), new keys, every device
  with its ``index``; ``/object_info`` entries carry ``is_input_list``, ``has_intermediate_output`` and
  ``search_aliases`` (what tells a client it talks to a newer server);
- ``POST /prompt``: a ``prompt_id`` that is not a canonical lowercase UUID is 400 ``invalid_prompt_id``; a
  repeated one (queued, running or in history) is **409** "prompt_id already exists" (the body's ``error``
  object follows the 400 shape; its ``type`` name is not in the code read, ``prompt_id_exists`` is used);
  validation uses the newer rules (``missing_node_type``, V3 combos, repr in ``value_not_in_list``, cycles)
  through the flow library's validator, which picks them for this schema; ``extra_data.create_time``;
- the **jobs API**: ``GET /api/jobs`` (status filter, sort, limit, offset; ``{jobs, pagination}``),
  ``GET /api/jobs/{id}`` (a job with outputs, ``execution_status`` and ``workflow``; 404 ``Job not found``),
  ``POST /api/jobs/{id}/cancel`` and ``POST /api/jobs/cancel {"job_ids"}`` (``{"cancelled": bool}``;
  malformed ids 400);
- websocket: the first ``status`` message carries a ``credential_key``; while an earlier socket with the
  same clientId is still registered (``drop_websockets()`` leaves the registration, as a half-open
  connection does), a new one must send ``{"type": "credential_auth", "data": {"credential_key"}}`` within
  ``credential_wait_s`` or is closed with 1008 "Invalid client credentials". The server's ``feature_flags``
  answer lists its newer features;
- ``/upload/image`` replies gain an ``asset`` object (id, name, asset_hash, size, mime_type, tags), as with
  assets on (``assets=False`` leaves it out; the hash here is a stand-in, the server's is blake3);
- ``loops={node_id_or_class: n}``: that node runs n times in a prompt, one ``executed`` per iteration
  (each with that iteration's images), and history keeps all of them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
import uuid
from typing import Any, Callable

from aiohttp import WSMsgType, web

from fakecomfy import FakeComfyUI

VERSION = "0.38.1"
SERVER_FEATURES = {"supports_preview_metadata": True, "max_upload_size": 104857600, "extension": {"manager": {}},
                   "node_replacements": True, "assets": False}
_NEWER_FIELDS = {"is_input_list": False, "has_intermediate_output": False, "search_aliases": []}


class FakeComfyUI038(FakeComfyUI):
    def __init__(self, *args: Any, loops: dict[str, int] | None = None, credential_wait_s: float = 5.0,
                 assets: bool = True, **kwargs: Any):
        self.loops = dict(loops or {})
        self.assets = assets
        self.credential_wait_s = credential_wait_s
        self._keys: dict[str, str] = {}  # clientId -> the credential key its socket was given
        self._stale: set[str] = set()  # clientIds whose old socket the server still counts as registered
        self.refused: list[str] = []  # clientIds closed with 1008
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------ schema and stats
    def _rebuild_info(self) -> None:
        super()._rebuild_info()
        self._info = {cls: {**_NEWER_FIELDS, **node} for cls, node in self._info.items()}

    async def _system_stats(self, request: web.Request) -> web.Response:
        resp = await super()._system_stats(request)
        stats = json.loads(resp.body)  # type: ignore[arg-type]
        stats["system"].update({"os": "linux", "comfyui_version": VERSION, "required_frontend_version": "1.30.6",
                                "installed_templates_version": "0.3.10", "required_templates_version": "0.3.10",
                                "comfy_package_versions": {}, "deploy_environment": "local"})
        stats["devices"] = [{**d, "index": d.get("index")} for d in stats.get("devices") or []] or [
            {"name": "cpu", "type": "cpu", "index": None, "vram_total": 0, "vram_free": 0, "torch_vram_total": 0,
             "torch_vram_free": 0}]
        return web.json_response(stats)

    async def _upload(self, request: web.Request) -> web.Response:
        resp = await super()._upload(request)
        if resp.status != 200 or not self.assets:
            return resp
        reply = json.loads(resp.body)  # type: ignore[arg-type]
        path = self.dirs[reply["type"]] / reply["subfolder"] / reply["name"]
        data = path.read_bytes()
        reply["asset"] = {"id": str(uuid.uuid4()), "name": reply["name"],
                          "asset_hash": "blake3:" + hashlib.sha256(data).hexdigest(), "size": len(data),
                          "mime_type": "image/png", "tags": [reply["type"]]}
        return web.json_response(reply)

    async def _features(self, request: web.Request) -> web.Response:
        return web.json_response(SERVER_FEATURES)

    def _iterations(self, nid: str, cls: str) -> int:
        return int(self.loops.get(nid) or self.loops.get(cls) or 1)

    # ------------------------------------------------------------------ POST /prompt
    def _known_ids(self) -> set[str]:
        ids = {p[1] for p in self.pending} | set(self.history)
        if self.running is not None:
            ids.add(self.running[1])
        return ids

    async def _queue_prompt(self, body: dict[str, Any]) -> web.Response:
        pid = body.get("prompt_id")
        if "prompt" in body and pid is not None:
            if not isinstance(pid, str) or not _canonical(pid):
                err = {"type": "invalid_prompt_id", "message": "prompt_id must be a valid UUID",
                       "details": "prompt_id must be a UUID string in canonical lowercase hyphenated form; omit it to "
                                  "let the server generate one", "extra_info": {}}
                return web.json_response({"error": err, "node_errors": {}}, status=400)
            if pid in self._known_ids():
                err = {"type": "prompt_id_exists", "message": "prompt_id already exists",
                       "details": f"prompt_id {pid} already exists", "extra_info": {"prompt_id": pid}}
                return web.json_response({"error": err, "node_errors": {}}, status=409)
        extra = {**(body.get("extra_data") or {}), "create_time": int(time.time() * 1000)}
        return await super()._queue_prompt({**body, "extra_data": extra})

    # ------------------------------------------------------------------ jobs API
    def _more_routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        return [("GET", "/api/jobs", self._jobs), ("GET", "/api/jobs/{job_id}", self._job),
                ("POST", "/api/jobs/cancel", self._jobs_cancel), ("POST", "/api/jobs/{job_id}/cancel", self._job_cancel)]

    def _job_dict(self, pid: str, *, detail: bool) -> dict[str, Any] | None:
        if pid in self.history:
            return _history_job(pid, self.history[pid], detail)
        if self.running is not None and self.running[1] == pid:
            return _queue_job(self.running, "in_progress", detail)
        for item in self.pending:
            if item[1] == pid:
                return _queue_job(item, "pending", detail)
        return None

    async def _jobs(self, request: web.Request) -> web.Response:
        q = request.query
        wanted = [s.strip().lower() for s in q.get("status", "").split(",") if s.strip()] or None
        all_states = ["pending", "in_progress", "completed", "failed", "cancelled"]
        if wanted and any(s not in all_states for s in wanted):
            bad = ", ".join(s for s in wanted if s not in all_states)
            return web.json_response({"error": f"Invalid status value(s): {bad}. Valid values: "
                                               f"{', '.join(all_states)}"}, status=400)
        ids = ([self.running[1]] if self.running else []) + [p[1] for p in sorted(self.pending)] + list(self.history)
        jobs = [j for j in (self._job_dict(i, detail=False) for i in ids) if j and (not wanted or j["status"] in wanted)]
        jobs.sort(key=lambda j: j.get("create_time", 0), reverse=q.get("sort_order", "desc") == "desc")
        try:
            limit = int(q["limit"]) if "limit" in q else None
            offset = max(int(q.get("offset", 0)), 0)
        except ValueError:
            return web.json_response({"error": "limit must be an integer"}, status=400)
        if limit is not None and limit <= 0:
            return web.json_response({"error": "limit must be a positive integer"}, status=400)
        page = jobs[offset:][:limit] if limit is not None else jobs[offset:]
        return web.json_response({"jobs": page, "pagination": {"offset": offset, "limit": limit, "total": len(jobs),
                                                               "has_more": offset + len(page) < len(jobs)}})

    async def _job(self, request: web.Request) -> web.Response:
        job = self._job_dict(request.match_info["job_id"], detail=True)
        if job is None:
            return web.json_response({"error": "Job not found"}, status=404)
        return web.json_response(job)

    async def _cancel(self, pid: str) -> bool:
        if self.running is not None and self.running[1] == pid:
            self._interrupt = pid
            assert self._interrupted_evt is not None
            self._interrupted_evt.set()
            return True
        before = len(self.pending)
        self.pending = [p for p in self.pending if p[1] != pid]
        if len(self.pending) != before:
            import heapq

            heapq.heapify(self.pending)
            await self._broadcast_status()
            return True
        return False

    async def _job_cancel(self, request: web.Request) -> web.Response:
        return web.json_response({"cancelled": await self._cancel(request.match_info["job_id"])})

    async def _jobs_cancel(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "Request body must be valid JSON"}, status=400)
        ids = body.get("job_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            return web.json_response({"error": "job_ids must be a list"}, status=400)
        bad = [i if isinstance(i, str) else repr(i) for i in ids if not (isinstance(i, str) and _canonical(i))]
        if bad:
            return web.json_response({"error": "job_ids contains invalid id(s)", "invalid_ids": bad}, status=400)
        results = [await self._cancel(i) for i in ids]
        return web.json_response({"cancelled": any(results)})

    # ------------------------------------------------------------------ websocket with credentials
    async def _close_sockets(self) -> None:
        self._stale |= {sid for sid, conns in self._sockets.items() if conns}  # still "registered" server-side
        await super()._close_sockets()

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        sid = request.query.get("clientId") or uuid.uuid4().hex
        registered = sid in self._stale or bool(self._sockets.get(sid))
        first: Any = None
        if registered:
            try:
                msg = await ws.receive(timeout=self.credential_wait_s)
                first = json.loads(msg.data) if msg.type == WSMsgType.TEXT else None
            except (asyncio.TimeoutError, ValueError):
                first = None
            given = ((first or {}).get("data") or {}).get("credential_key") if isinstance(first, dict) else None
            if not (isinstance(first, dict) and first.get("type") == "credential_auth" and given == self._keys.get(sid)):
                self.refused.append(sid)
                await ws.close(code=1008, message=b"Invalid client credentials")
                return ws
            self._stale.discard(sid)
            first = None
        key = self._keys[sid] = secrets.token_urlsafe(16)
        flags: dict[str, Any] = {}
        self._sockets.setdefault(sid, []).append((ws, flags))
        try:
            await ws.send_json({"type": "status", "data": {"status": {"exec_info": {
                "queue_remaining": self._remaining()}}, "sid": sid, "credential_key": key}})
            first_message = True
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    continue
                if data.get("type") == "credential_auth":
                    continue  # a key sent when none was asked for is ignored
                if first_message and data.get("type") == "feature_flags":
                    flags.update(data.get("data") or {})
                    await ws.send_json({"type": "feature_flags", "data": SERVER_FEATURES})
                first_message = False
        finally:
            conns = self._sockets.get(sid, [])
            self._sockets[sid] = [c for c in conns if c[0] is not ws]
        return ws


def _canonical(pid: str) -> bool:
    try:
        return str(uuid.UUID(pid)) == pid
    except ValueError:
        return False


def _queue_job(item: list[Any], status: str, detail: bool) -> dict[str, Any]:
    number, pid, prompt, extra, _ = item[:5]
    job = {"id": pid, "status": status, "priority": number, "create_time": extra.get("create_time"),
           "outputs_count": 0, "previewable_outputs_count": 0}
    if detail:
        job["workflow"] = {"prompt": prompt, "extra_data": extra}
    return {k: v for k, v in job.items() if v is not None}


def _history_job(pid: str, entry: dict[str, Any], detail: bool) -> dict[str, Any]:
    number, _, prompt, extra, _ = entry["prompt"][:5]
    status = entry.get("status") or {}
    start = end = error = None
    interrupted = False
    for name, data in status.get("messages") or []:
        if name == "execution_start":
            start = data.get("timestamp")
        elif name in ("execution_success", "execution_error", "execution_interrupted"):
            end = data.get("timestamp")
            error = data if name == "execution_error" else error
            interrupted = interrupted or name == "execution_interrupted"
    state = "completed" if status.get("status_str") != "error" else ("cancelled" if interrupted else "failed")
    outputs = entry.get("outputs") or {}
    count = sum(len(v) for out in outputs.values() if isinstance(out, dict) for v in out.values() if isinstance(v, list))
    job = {"id": pid, "status": state, "priority": number, "create_time": extra.get("create_time"),
           "execution_start_time": start, "execution_end_time": end, "execution_error": error,
           "outputs_count": count, "previewable_outputs_count": count}
    job = {k: v for k, v in job.items() if v is not None}
    if detail:
        job.update({"outputs": outputs, "execution_status": status, "workflow": {"prompt": prompt, "extra_data": extra}})
    return job
