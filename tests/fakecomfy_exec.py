"""The fake ComfyUI's execution side: one prompt at a time, ComfyUI's websocket sequence, cache, PNGs.

Part of the test double in ``fakecomfy.py`` (``FakeComfyUI`` mixes this in).
"""

from __future__ import annotations

import asyncio
import heapq
import io
import json
import random
import string
import time
import traceback
from typing import Any

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

import fakecomfy_engine as eng


def _now_ms() -> int:
    return int(time.time() * 1000)


class ExecutionMixin:
    """Needs: pending, running, history, executed, fail, steps, step_time, node_time, previews, executors,
    dirs, _info, _cache, _interrupt, _wake, _counters, _sockets, _send, _send_bytes, _broadcast_status,
    _close_sockets, kill."""

    _info: dict[str, Any]

    # ------------------------------------------------------------------ execution
    async def _work(self) -> None:
        assert self._wake is not None
        while True:
            if not self.pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            item = heapq.heappop(self.pending)
            self.running = item
            try:
                await self._execute(*item)
            finally:
                self.running = None
                self._interrupt = None
                assert self._interrupted_evt is not None
                self._interrupted_evt.clear()

    def _matches(self, key: str, nid: str, cls: str) -> bool:
        v = self.fail.get(key)
        return v is not None and str(v) in (nid, cls)

    async def _execute(self, number: Any, pid: str, prompt: dict[str, Any], extra: dict[str, Any],
                       outputs: list[str]) -> None:
        sid = extra.get("client_id")
        exec_sid = sid if sid is not None else "\0nobody"

        async def send(kind: str, data: dict[str, Any]) -> None:
            await self._send(exec_sid, {"type": kind, "data": data})

        messages: list[list[Any]] = []

        async def send_hist(kind: str, data: dict[str, Any]) -> None:
            messages.append([kind, data])
            await send(kind, data)

        await self._broadcast_status()
        await send_hist("execution_start", {"prompt_id": pid, "timestamp": _now_ms()})
        order = eng.execution_order(prompt, outputs)
        memo: dict[str, str] = {}
        sigs = {n: eng.signature(prompt, n, memo) for n in order}
        cached = [n for n in order if n in self._cache and self._cache[n][0] == sigs[n]]
        await send_hist("execution_cached", {"nodes": cached, "prompt_id": pid, "timestamp": _now_ms()})
        values: dict[str, tuple] = {n: self._cache[n][1] for n in cached}
        ui_out: dict[str, Any] = {n: self._cache[n][2] for n in cached if self._cache[n][2] is not None}
        new_cache = {n: self._cache[n] for n in cached}
        executed: list[str] = []
        pstate: dict[str, Any] = {}
        status = ("success", True)
        for nid in order:
            cls = prompt[nid]["class_type"]
            if nid in cached:
                if nid in ui_out and self._info[cls].get("output_node"):
                    await send("executed", {"node": nid, "display_node": nid, "output": ui_out[nid], "prompt_id": pid})
                continue
            if self._interrupt == pid:
                await self._interrupted(pid, nid, cls, executed, send_hist)
                status = ("error", False)
                break
            pstate[nid] = {"value": 0.0, "max": 1.0, "state": "running", "node_id": nid, "prompt_id": pid,
                           "display_node_id": nid, "parent_node_id": None, "real_node_id": nid}
            await self._send(sid, {"type": "progress_state", "data": {"prompt_id": pid, "nodes": dict(pstate)}})
            await send("executing", {"node": nid, "display_node": nid, "prompt_id": pid})
            if self._matches("die_at", nid, cls):
                asyncio.ensure_future(self.kill())
                await asyncio.sleep(3600)
            if self._matches("ws_drop_at", nid, cls):
                self.fail.pop("ws_drop_at")
                await self._close_sockets()
            inputs = {k: (values[str(v[0])][v[1]] if eng._is_link(v) else v)
                      for k, v in prompt[nid].get("inputs", {}).items()}
            try:
                steps = eng.sampler_steps(cls, inputs)
                if steps and self.steps is not None:  # the override applies to samplers only
                    steps = self.steps
                if await self._steps(pid, nid, cls, steps, sid):
                    await self._interrupted(pid, nid, cls, executed, send_hist)
                    status = ("error", False)
                    break
                if self.node_time:
                    await self._pause(self.node_time)
                if self._matches("execution_error", nid, cls):
                    raise eng.ExecutionFailure("fake failure injected by the test", "RuntimeError")
                result, ui = await self._call(nid, cls, inputs, pid, prompt, extra)
                for _ in range(self._iterations(nid, cls) - 1):  # a looped node: one executed per iteration
                    if ui is not None:
                        ui_out[nid] = _merge_ui(ui_out.get(nid), ui)
                        await send("executed", {"node": nid, "display_node": nid, "output": ui, "prompt_id": pid})
                    result, ui = await self._call(nid, cls, inputs, pid, prompt, extra)
            except Exception as exc:  # noqa: BLE001 - reported like ComfyUI does
                etype = getattr(exc, "exception_type", None) or (
                    type(exc).__qualname__ if type(exc).__module__ == "builtins"
                    else f"{type(exc).__module__}.{type(exc).__qualname__}")
                await send_hist("execution_error", {
                    "prompt_id": pid, "node_id": nid, "node_type": cls, "executed": list(executed),
                    "exception_message": str(exc), "exception_type": etype,
                    "traceback": traceback.format_tb(exc.__traceback__),
                    "current_inputs": {k: [repr(v)[:80]] for k, v in prompt[nid].get("inputs", {}).items()},
                    "current_outputs": list(order), "timestamp": _now_ms()})
                status = ("error", False)
                break
            values[nid] = result
            new_cache[nid] = (sigs[nid], result, ui)
            executed.append(nid)
            self.executed.append((pid, nid))
            pstate[nid] = {**pstate[nid], "value": 1.0, "state": "finished"}
            for _ in range(2):
                await self._send(sid, {"type": "progress_state", "data": {"prompt_id": pid, "nodes": dict(pstate)}})
            if ui is not None:
                ui_out[nid] = _merge_ui(ui_out.get(nid), ui)
                await send("executed", {"node": nid, "display_node": nid, "output": ui, "prompt_id": pid})
        self._cache = new_cache
        if status[0] == "success":
            await send_hist("execution_success", {"prompt_id": pid, "timestamp": _now_ms()})
        self.history[pid] = {
            "prompt": [number, pid, prompt, extra, outputs],
            "outputs": {n: ui_out[n] for n in order if n in ui_out} if status[0] == "success" else {},
            "status": {"status_str": status[0], "completed": status[1], "messages": messages},
            "meta": {n: {"node_id": n, "display_node": n, "parent_node": None, "real_node_id": n}
                     for n in order if n in ui_out} if status[0] == "success" else {}}
        self.running = None
        await self._broadcast_status()
        await send("executing", {"node": None, "prompt_id": pid})

    def _iterations(self, nid: str, cls: str) -> int:
        """How often a node runs in one prompt (1; a newer personality loops nodes)."""
        return 1

    async def _interrupted(self, pid: str, nid: str, cls: str, executed: list[str], send_hist: Any) -> None:
        await send_hist("execution_interrupted", {"prompt_id": pid, "node_id": nid, "node_type": cls,
                                                  "executed": list(executed), "timestamp": _now_ms()})

    async def _pause(self, seconds: float) -> None:
        """Sleep, cut short by an interrupt (the step still ends without its progress message, as in ComfyUI)."""
        await self._awake.wait()  # a frozen server executes nothing
        if not seconds:
            await asyncio.sleep(0)
            return
        assert self._interrupted_evt is not None
        try:
            await asyncio.wait_for(self._interrupted_evt.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _steps(self, pid: str, nid: str, cls: str, steps: int, sid: str | None) -> bool:
        """Sampler steps with progress (+ previews); True when interrupted."""
        for i in range(1, steps + 1):
            await self._pause(self.step_time)
            if self._interrupt == pid:
                return True
            preview = self._preview_jpeg(i) if self.previews and sid is not None else None
            meta = {"node_id": nid, "prompt_id": pid, "display_node_id": nid, "parent_node_id": None,
                    "real_node_id": nid}
            if preview is not None:
                await self._send_bytes(sid, lambda f: eng_preview(preview, meta) if f.get(
                    "supports_preview_metadata") else b"")
            await self._send(sid, {"type": "progress", "data": {"value": i, "max": steps, "prompt_id": pid,
                                                                "node": nid}})
            if preview is not None:
                await self._send_bytes(sid, lambda f: b"" if f.get("supports_preview_metadata")
                                       else eng_preview(preview, None))
        return False

    @staticmethod
    def _preview_jpeg(step: int) -> bytes:
        buf = io.BytesIO()
        Image.new("RGB", (8, 8), (step * 20 % 256, 64, 128)).save(buf, format="JPEG")
        return buf.getvalue()

    async def _call(self, nid: str, cls: str, inputs: dict[str, Any], pid: str, prompt: dict[str, Any],
                    extra: dict[str, Any]) -> tuple[tuple, Any]:
        ctx = eng.NodeContext(nid, cls, pid, prompt, self._info[cls], self.dirs["output"], self.dirs["temp"],
                              self.dirs["input"], extra={"extra_data": extra})
        fn = self.executors.get(cls)
        if fn is None and cls in ("SaveImage", "PreviewImage"):
            fn = self._save_image
        res = fn(inputs, ctx) if fn is not None else eng.default_output(cls, inputs, self._info[cls])
        if asyncio.iscoroutine(res):
            res = await res
        if isinstance(res, dict) and ("ui" in res or "result" in res):
            return tuple(res.get("result") or ()), res.get("ui")
        if not isinstance(res, tuple):
            res = (res,)
        return res, None

    def _save_image(self, inputs: dict[str, Any], ctx: eng.NodeContext) -> dict[str, Any]:
        images = np.asarray(inputs["images"])
        if ctx.class_type == "PreviewImage":
            typ, prefix = "temp", "ComfyUI_temp_" + "".join(random.choices(string.ascii_lowercase, k=5))
        else:
            typ, prefix = "output", str(inputs.get("filename_prefix", "ComfyUI"))
        sub, _, base = prefix.rpartition("/")
        folder = self.dirs[typ] / sub
        folder.mkdir(parents=True, exist_ok=True)
        key = (typ + "/" + sub, base)
        if key not in self._counters:
            nums = [int(p.name[len(base) + 1:len(base) + 6]) for p in folder.glob(f"{base}_?????_.png")
                    if p.name[len(base) + 1:len(base) + 6].isdigit()]
            self._counters[key] = max(nums, default=0) + 1
        results = []
        for img in images:
            meta = PngInfo()
            meta.add_text("prompt", json.dumps(ctx.graph))
            for k, v in (ctx.extra.get("extra_data", {}).get("extra_pnginfo") or {}).items():
                meta.add_text(k, json.dumps(v))
            name = f"{base}_{self._counters[key]:05}_.png"
            self._counters[key] += 1
            pixels = (np.clip(np.nan_to_num(img), 0, 1) * 255.0).round().astype(np.uint8)
            Image.fromarray(pixels).save(folder / name, pnginfo=meta, compress_level=1 if typ == "temp" else 4)
            results.append({"filename": name, "subfolder": sub, "type": typ})
        return {"ui": {"images": results}, "result": ()}


def eng_preview(jpeg: bytes, meta: dict[str, Any] | None) -> bytes:
    """A binary preview frame (event 4 with metadata, else legacy event 1)."""
    import struct

    if meta is not None:
        m = json.dumps({**meta, "image_type": "image/jpeg"}).encode()
        return struct.pack(">II", 4, len(m)) + m + jpeg
    return struct.pack(">II", 1, 1) + jpeg


def _merge_ui(prev: Any, ui: dict[str, Any]) -> dict[str, Any]:
    """History keeps every iteration's UI output of a looped node: list values are concatenated."""
    if not isinstance(prev, dict):
        return ui
    return {**prev, **{k: (prev[k] + v if isinstance(prev.get(k), list) and isinstance(v, list) else v)
                       for k, v in ui.items()}}
