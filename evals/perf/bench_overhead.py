"""Overhead of a comfygen run on top of ComfyUI's own time.

Three measurements per iteration, on a trivial graph (``EmptyImage`` -> ``SaveImage``, 64x64, a
different colour each time so ComfyUI's cache never short-cuts it):

- ``raw``: ComfyUI's own time as a bare client sees it: ``POST /prompt`` until ``executing`` with
  ``node: null`` on an already open websocket (no image download).
- ``client``: :meth:`ComfyClient.run`: submit, follow the websocket, fetch the image bytes (``/view``).
- ``pipeline``: :func:`run_flow`: render, guard, record the run (SQLite), run through the endpoint
  pool, fetch the image, write the PNG atomically with provenance (fsync of file and folder), record
  the finished run. ``pipeline_no_fsync``: the same with ``durable=False`` (interleaved runs).

``added_p50_ms`` = pipeline p50 - raw p50: what comfygen adds to a bare POST-and-wait (its client
included). The target is <= 10 ms. ``own_code`` runs :func:`run_flow` against a stub pool that answers
at once: comfygen's own work without any network (with and without the PNG fsync). Against the fake ComfyUI (a zero-compute test double started in a subprocess) the "raw"
part is the fake's own protocol time; set ``COMFYUI_URL`` (or ``--url``) to measure a real ComfyUI.

    python -m comfygen.evals.perf.bench_overhead [--n 200] [--url http://127.0.0.1:8188]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from .fake_comfyui import start_fake, stop_fake
COMMAND = "python -m comfygen.evals.perf.bench_overhead"


def trivial_flow() -> Any:
    from comfygen.flow_library.model import Flow, SlotRef, Slots

    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
             "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "comfygen/bench"}}}
    return Flow(id="bench-trivial", name="trivial", family="sd15", width=64, height=64, graph=graph,
                slots=Slots(seed=[SlotRef(node="1", input="color")], output=["2"]))


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def _summary(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(ms), 2), "p95_ms": round(_pct(ms, 0.95), 2),
            "mean_ms": round(statistics.fmean(ms), 2), "n": len(ms)}


class _RawClient:
    """ComfyUI's own time as a bare client sees it: POST /prompt, wait for ``executing: null``."""

    def __init__(self, url: str):
        self.url = url
        self.client_id = uuid.uuid4().hex

    async def __aenter__(self) -> "_RawClient":
        import httpx
        import websockets

        self.http = httpx.AsyncClient(base_url=self.url, timeout=30)
        self.ws = await websockets.connect("ws" + self.url[4:] + f"/ws?clientId={self.client_id}", max_size=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()
        await self.http.aclose()

    async def run(self, graph: dict[str, Any]) -> None:
        pid = str(uuid.uuid4())
        r = await self.http.post("/prompt", json={"prompt": graph, "client_id": self.client_id, "prompt_id": pid})
        r.raise_for_status()
        while True:
            msg = await self.ws.recv()
            if isinstance(msg, bytes):
                continue
            m = json.loads(msg)
            d = m.get("data") or {}
            if m.get("type") == "executing" and d.get("node") is None and d.get("prompt_id") == pid:
                return


async def _bench(url: str, n: int, warmup: int, home: Path) -> dict[str, Any]:
    """The four methods take turns (round robin), so they all see the same machine load."""
    from comfygen.flow_library.render import render
    from comfygen.tools.comfy.client import ComfyClient
    from comfygen.tools.comfy.pool import EndpointPool
    from comfygen.tools.pipeline import run_flow
    from comfygen.tools.settings import Settings
    from comfygen.tools.store import RunStore

    flow = trivial_flow()
    settings = Settings(home=home, comfyui_urls=[url])
    base = int(time.time() * 1000) % 1_000_000 * 10  # fresh colours per invocation: no cache hits on a real server
    methods = ("raw", "client", "pipeline", "pipeline_no_fsync")
    ms: dict[str, list[float]] = {m: [] for m in methods}
    pre_ms, post_ms = [], []
    with RunStore.from_settings(settings) as store:
        async with _RawClient(url) as raw, ComfyClient(url) as client, EndpointPool([url]) as pool:
            for i in range(n + warmup):
                for j in range(len(methods)):
                    method = methods[(i + j) % len(methods)]
                    colour = (base + i * len(methods) + j) % 0xFFFFFF
                    t0 = time.perf_counter()
                    if method == "raw":
                        await raw.run(render(flow, "", seed=colour))
                    elif method == "client":
                        out = await client.run(render(flow, "", seed=colour))
                        assert out.images and out.images[0].data
                    else:
                        rec = await run_flow(flow, "", seed=colour, pool=pool, store=store, settings=settings,
                                             durable=method == "pipeline")
                        assert rec.status == "succeeded" and Path(rec.outputs[0].path).is_file()
                    dt = (time.perf_counter() - t0) * 1000
                    if i < warmup:
                        continue
                    ms[method].append(dt)
                    if method == "pipeline":
                        t = rec.timings
                        pre_ms.append(((t.submitted or t.queued) - t.queued) * 1000)
                        post_ms.append(((t.saved or t.finished) - t.finished) * 1000)
        runs = store.count()
    figures: dict[str, Any] = {"endpoint": url, "n": n, **{m: _summary(v) for m, v in ms.items()},
                               "pipeline_pre_submit": _summary(pre_ms), "pipeline_fetch_save_record": _summary(post_ms),
                               "runs_recorded": runs}
    figures["added_p50_ms"] = round(figures["pipeline"]["p50_ms"] - figures["raw"]["p50_ms"], 2)
    figures["added_no_fsync_p50_ms"] = round(figures["pipeline_no_fsync"]["p50_ms"] - figures["raw"]["p50_ms"], 2)
    figures["added_over_client_p50_ms"] = round(figures["pipeline_no_fsync"]["p50_ms"] - figures["client"]["p50_ms"],
                                                2)
    return figures


class _StubPool:
    """An endpoint pool that answers at once with a fixed PNG: isolates comfygen's own work."""

    def __init__(self, png: bytes):
        self.urls = ["http://stub"]
        self.png = png

    async def run(self, graph: dict[str, Any], *, prompt_id: str | None = None, on_dispatch: Any = None,
                  **_: Any) -> Any:
        from comfygen.tools.comfy.client import OutputImage, RunOutput, Timings

        if on_dispatch is not None:
            on_dispatch(self.urls[0], prompt_id)
        now = time.time()
        return RunOutput(prompt_id=prompt_id or "", endpoint=self.urls[0],
                         images=[OutputImage(node="2", filename="x.png", data=self.png)],
                         timings=Timings(submitted=now, started=now, finished=now))


async def _own_code(n: int, home: Path) -> dict[str, Any]:
    """run_flow against a stub pool: render, guard, 3 SQLite writes, PNG chunks + atomic write."""
    import io

    from PIL import Image

    from comfygen.tools.pipeline import run_flow
    from comfygen.tools.settings import Settings
    from comfygen.tools.store import RunStore

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 20, 30)).save(buf, "PNG")
    pool, flow, settings = _StubPool(buf.getvalue()), trivial_flow(), Settings(home=home / "stub")
    out: dict[bool, list[float]] = {True: [], False: []}
    with RunStore.from_settings(settings) as store:
        for i in range(2 * n):
            durable = i % 2 == 0
            t0 = time.perf_counter()
            await run_flow(flow, "", seed=i, pool=pool, store=store, settings=settings, durable=durable)
            out[durable].append((time.perf_counter() - t0) * 1000)
    return {"own_code": _summary(out[False]), "own_code_with_fsync": _summary(out[True])}


def _print(figures: dict[str, Any], command: str) -> None:
    print(f"comfygen overhead against {figures['kind']} ComfyUI at {figures['endpoint']} (n={figures['n']})")
    for key in ("raw", "client", "pipeline", "pipeline_no_fsync", "pipeline_pre_submit",
                "pipeline_fetch_save_record", "own_code", "own_code_with_fsync"):
        s = figures[key]
        print(f"  {key:26s} p50 {s['p50_ms']:8.2f} ms   p95 {s['p95_ms']:8.2f} ms")
    print(f"  added by comfygen (pipeline - raw) p50: {figures['added_p50_ms']:.2f} ms (goal <= 10 ms)")
    print(f"  added without fsync of the PNG (durable=False) p50: {figures['added_no_fsync_p50_ms']:.2f} ms")
    print(f"  added over the bare client (pipeline_no_fsync - client) p50: "
          f"{figures['added_over_client_p50_ms']:.2f} ms")
    print(f"reproduce: {command}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="measured iterations per method")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="50 iterations (what `comfygen bench` runs)")
    ap.add_argument("--full", action="store_true", help="the default 200 iterations")
    ap.add_argument("--url", default=os.environ.get("COMFYUI_URL"), help="real ComfyUI (default: $COMFYUI_URL, "
                                                                         "else a fake one in a subprocess)")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.warmup = 50, 5
    proc = None
    url = args.url
    if not url:
        proc, url = start_fake()
    try:
        with tempfile.TemporaryDirectory(prefix="comfygen-bench-") as home:
            figures = asyncio.run(_bench(url.rstrip("/"), args.n, args.warmup, Path(home)))
            figures.update(asyncio.run(_own_code(args.n, Path(home))))
    finally:
        if proc is not None:
            stop_fake(proc)
    figures["kind"] = "real" if args.url else "fake (zero-compute)"
    command = COMMAND + (" --quick" if args.quick else f" --n {args.n}" if args.n != 200 else "") \
        + (f" --url {args.url}" if args.url else "")
    figures["command"] = command
    _print(figures, command)
    return figures


if __name__ == "__main__":  # pragma: no cover
    main()
