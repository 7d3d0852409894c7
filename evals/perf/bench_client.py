"""Per-run overhead of :class:`ComfyClient`: submit -> image bytes received.

Graph: ``EmptyImage`` (64x64, a new colour every run so ComfyUI's cache never answers) ->
``SaveImage``. Two figures per server:

- ``raw``: a bare protocol client on an already open websocket: ``POST /prompt`` until ``executing``
  with ``node: null``, then one ``GET /view`` (the floor any client pays);
- ``client``: ``ComfyClient.run(graph)``: the same work through our client (own prompt id, typed
  events, timings, outputs, image fetch).

``added_p50_ms = client p50 - raw p50``. The zero-compute fake ComfyUI (tests/fakecomfy.py, needs a
source checkout) runs in its own process; set ``COMFYUI_URL`` or ``--url`` to also measure a real
ComfyUI.

    python -m comfygen.evals.perf.bench_client [--n 200] [--url http://127.0.0.1:8188] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from typing import Any

import httpx
import websockets

from .fake_comfyui import start_fake, stop_fake

COMMAND = "python -m comfygen.evals.perf.bench_client"
def trivial_graph(i: int, prefix: str = "bench_client") -> dict[str, Any]:
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1,
                                                          "color": (i * 7919 + int(time.time())) % 0xFFFFFF}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}}}


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summary(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(ms), 2), "p95_ms": round(pct(ms, 0.95), 2),
            "mean_ms": round(statistics.fmean(ms), 2), "n": len(ms)}


async def raw_runs(url: str, n: int, offset: int) -> list[float]:
    cid = uuid.uuid4().hex
    ws_url = "ws://" + url.split("://", 1)[1] + f"/ws?clientId={cid}"
    out: list[float] = []
    async with httpx.AsyncClient(base_url=url, trust_env=False) as http, \
            websockets.connect(ws_url, max_size=None, proxy=None) as ws:
        for i in range(n):
            pid = str(uuid.uuid4())
            t0 = time.perf_counter()
            r = await http.post("/prompt", json={"prompt": trivial_graph(offset + i, "bench_raw"), "client_id": cid,
                                                 "prompt_id": pid})
            r.raise_for_status()
            image = None
            while True:
                msg = await ws.recv()
                if isinstance(msg, bytes):
                    continue
                m = json.loads(msg)
                d = m.get("data") or {}
                if m["type"] == "executed" and d.get("prompt_id") == pid:
                    image = d["output"]["images"][0]
                if m["type"] == "executing" and d.get("node") is None and d.get("prompt_id") == pid:
                    break
            assert image is not None
            (await http.get("/view", params=image)).raise_for_status()
            out.append((time.perf_counter() - t0) * 1000)
    return out


async def client_runs(url: str, n: int, offset: int) -> list[float]:
    from comfygen.tools.comfy.client import ComfyClient

    out: list[float] = []
    async with ComfyClient(url) as c:
        for i in range(n):
            t0 = time.perf_counter()
            res = await c.run(trivial_graph(offset + i))
            assert res.images and res.images[0].data
            out.append((time.perf_counter() - t0) * 1000)
    return out


async def measure(url: str, n: int, warmup: int) -> dict[str, Any]:
    await raw_runs(url, warmup, 10_000)
    await client_runs(url, warmup, 20_000)
    raw, client = [], []
    for rnd in range(4):  # interleave to share drift fairly
        raw += await raw_runs(url, n // 4, 100_000 * (rnd + 1))
        client += await client_runs(url, n // 4, 100_000 * (rnd + 1) + 50_000)
    r, c = summary(raw), summary(client)
    return {"raw": r, "client": c, "added_p50_ms": round(c["p50_ms"] - r["p50_ms"], 2),
            "added_p95_ms": round(c["p95_ms"] - r["p95_ms"], 2)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="ComfyClient overhead per run (submit -> image bytes)")
    ap.add_argument("--n", type=int, default=200, help="runs per figure")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--url", default=os.environ.get("COMFYUI_URL"), help="also measure this real ComfyUI")
    ap.add_argument("--quick", action="store_true", help="n=40")
    args = ap.parse_args(argv)
    n = 40 if args.quick else args.n
    result: dict[str, Any] = {"n": n}
    proc, url = start_fake()
    try:
        result["fake"] = asyncio.run(measure(url, n, args.warmup))
    finally:
        stop_fake(proc)
    if args.url:
        result["real"] = asyncio.run(measure(args.url.rstrip("/"), n, args.warmup))
        result["real_url"] = args.url
    cmd = COMMAND + " " + " ".join(argv if argv is not None else sys.argv[1:])
    result["command"] = cmd.strip()
    for name in ("fake", "real"):
        if name in result:
            f = result[name]
            print(f"{name:5s} raw p50 {f['raw']['p50_ms']:7.2f} ms p95 {f['raw']['p95_ms']:7.2f} | client p50 "
                  f"{f['client']['p50_ms']:7.2f} ms p95 {f['client']['p95_ms']:7.2f} | added p50 "
                  f"{f['added_p50_ms']:+.2f} ms")
    print("command:", result["command"])
    return result


if __name__ == "__main__":
    main()
