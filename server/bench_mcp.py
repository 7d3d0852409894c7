"""MCP server latency and concurrency (a benchmark of ``comfygen bench``; it lives in ``server/`` because it
builds the server in process, which ``evals/`` may not import).

- Tool-call latency p50/p95 for ``list_categories``, ``get_flow`` and ``suggest_flows``: in memory (the SDK's
  in-process client: the server's own cost) and over stdio (``python -m comfygen.server`` as a subprocess,
  as Claude Desktop runs it).
- 20 concurrent ``generate`` calls over streamable HTTP (``comfygen serve --transport http`` in its own
  process; 20 client sessions at once, then 20 calls on one session) against the zero-compute fake ComfyUI
  (tests/fakecomfy.py, in its own process; needs a source checkout, see ``evals/perf/fake_comfyui.py``): errors, wall time, throughput,
  per-call p50/p95. Scoring is off by default (``--score tiny`` adds the random-weight tiny
  ensemble), so the figure is the server + pipeline + ComfyUI-protocol cost.

    python -m comfygen.server.bench_mcp [--n 200] [--concurrent 20] [--score off|tiny] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

COMMAND = "python -m comfygen.server.bench_mcp"
CALLS = {"list_categories": {}, "get_flow": {"flow_id": "sdxl-base"},
         "suggest_flows": {"prompt": "a portrait of an old sailor, oil painting", "k": 5}}


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def _summary(ms: list[float]) -> dict[str, float]:
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 3), "p95_ms": round(_pct(ms, 0.95), 3),
            "mean_ms": round(statistics.fmean(ms), 3)}


async def _latencies(client: Any, n: int, warmup: int) -> dict[str, dict[str, float]]:
    out = {}
    for name, args in CALLS.items():
        for _ in range(warmup):
            r = await client.call_tool(name, args)
            if r.is_error:
                raise RuntimeError(f"{name} failed: {r.content[0].text}")
        ms = []
        for i in range(n):
            # a new prompt each call: the planner runtime caches per-prompt outputs
            call = {**args, "prompt": f"{args['prompt']}, take {i}"} if "prompt" in args else args
            t = time.perf_counter()
            await client.call_tool(name, call)
            ms.append((time.perf_counter() - t) * 1000)
        out[name] = _summary(ms)
    return out


async def in_memory(home: Path, n: int, warmup: int) -> dict[str, Any]:
    from mcp import Client

    from ..tools.settings import Settings
    from .app import build_server

    async with Client(build_server(Settings(home=home))) as c:
        return await _latencies(c, n, warmup)


async def over_stdio(home: Path, n: int, warmup: int) -> dict[str, Any]:
    from mcp import Client, StdioServerParameters

    env = {**os.environ, "COMFYGEN_HOME": str(home), "COMFYGEN_COMFYUI_URLS": ""}
    t = time.perf_counter()
    async with Client(StdioServerParameters(command=sys.executable, args=["-m", "comfygen.server"], env=env)) as c:
        started = time.perf_counter() - t
        out = await _latencies(c, n, warmup)
    out["startup_s"] = round(started, 3)  # type: ignore[assignment]
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_http_server(home: Path, comfy_url: str, score: str) -> tuple[subprocess.Popen[bytes], str]:
    """``comfygen serve --transport http`` in its own process, as a user would run it; returns (process, url)."""
    port = _free_port()
    env = {**os.environ, "COMFYGEN_HOME": str(home), "COMFYGEN_COMFYUI_URLS": comfy_url,
           "COMFYGEN_SCORERS": "aesthetic,clipscore" if score == "tiny" else "",
           "COMFYGEN_TINY_SCORERS": "1" if score == "tiny" else "0"}
    proc = subprocess.Popen([sys.executable, "-c", "from comfygen.server.cli import main; main()", "serve",
                             "--transport", "http", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"http://127.0.0.1:{port}/mcp"
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the HTTP server did not start")


async def concurrent_generate(url: str, k: int, score: str) -> dict[str, Any]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    # One HTTP connection pool for all sessions: a fresh httpx client costs ~0.15 s of CPU (TLS context setup)
    # in this one benchmark process; separate real clients pay that in their own processes, not the server's.
    http = httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=300))
    args = {"flow_id": "sd15-base", "size": "64x64"}
    async with Client(url) as warm:  # the first run loads the library, the store (and the scorers)
        await warm.call_tool("generate", {"prompt": "warm up", **args})

    async def one(i: int) -> tuple[float, bool, str]:
        t = time.perf_counter()
        async with Client(streamable_http_client(url, http_client=http)) as c:
            r = await c.call_tool("generate", {"prompt": f"a lighthouse, variation {i}", "seed": i, **args})
        ok = not r.is_error and (r.structured_content or {}).get("status") == "succeeded"
        return (time.perf_counter() - t) * 1000, ok, "" if ok else r.content[0].text[:200]

    t0 = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(k)))
    wall = time.perf_counter() - t0
    async with Client(url) as c:  # the same calls on one session: session setup excluded
        t1 = time.perf_counter()
        same = await asyncio.gather(*(c.call_tool("generate", {"prompt": f"a boat {i}", "seed": i, **args})
                                      for i in range(k)))
        wall_one = time.perf_counter() - t1
    await http.aclose()
    errors = [e for _, ok, e in results if not ok] + [r.content[0].text[:200] for r in same if r.is_error]
    return {"calls": k, "errors": len(errors), "error_examples": errors[:3], "wall_s": round(wall, 3),
            "throughput_per_s": round(k / wall, 2), **_summary([ms for ms, _, _ in results]),
            "one_session_wall_s": round(wall_one, 3), "one_session_throughput_per_s": round(k / wall_one, 2),
            "scoring": score}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="MCP tool latency (in memory, stdio) and concurrent generate over HTTP")
    ap.add_argument("--n", type=int, default=200, help="calls per tool and transport")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--concurrent", type=int, default=20, help="simultaneous generate calls over HTTP")
    ap.add_argument("--score", choices=["off", "tiny"], default="off")
    ap.add_argument("--quick", action="store_true", help="n=40")
    args = ap.parse_args(argv)
    n = 40 if args.quick else args.n
    from ..evals.perf.fake_comfyui import start_fake, stop_fake

    result: dict[str, Any] = {"n": n}
    with tempfile.TemporaryDirectory(prefix="bench-mcp-") as tmp:
        root = Path(tmp)
        result["in_memory"] = asyncio.run(in_memory(root / "mem", n, args.warmup))
        result["stdio"] = asyncio.run(over_stdio(root / "stdio", n, args.warmup))
        from ..flow_library.library import FlowLibrary

        models: dict[str, set[str]] = {}
        for flow in FlowLibrary.default():
            for folder, name in flow.models.files():
                models.setdefault(folder, set()).add(name)
        proc, comfy_url = start_fake(models={k: sorted(v) for k, v in models.items()})
        server, url = start_http_server(root / "http", comfy_url, args.score)
        try:
            result["http_concurrent_generate"] = asyncio.run(concurrent_generate(url, args.concurrent, args.score))
        finally:
            server.terminate()
            server.wait(10)
            stop_fake(proc)
    result["command"] = COMMAND + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    _print(result)
    return result


def _print(r: dict[str, Any]) -> None:
    print(f"MCP tool-call latency (n={r['n']} per cell)")
    print(f"{'tool':<18}{'in-memory p50':>15}{'p95':>10}{'stdio p50':>12}{'p95':>10}")
    for name in CALLS:
        m, s = r["in_memory"][name], r["stdio"][name]
        print(f"{name:<18}{m['p50_ms']:>12.2f} ms{m['p95_ms']:>7.2f} ms{s['p50_ms']:>9.2f} ms{s['p95_ms']:>7.2f} ms")
    print(f"stdio server start to first answer: {r['stdio']['startup_s']} s")
    h = r["http_concurrent_generate"]
    print(f"{h['calls']} concurrent generate calls over HTTP, one session each (fake ComfyUI, scoring "
          f"{h['scoring']}): {h['errors']} errors, {h['wall_s']} s wall, {h['throughput_per_s']} calls/s, "
          f"p50 {h['p50_ms']:.0f} ms, p95 {h['p95_ms']:.0f} ms; on one session: {h['one_session_wall_s']} s wall, "
          f"{h['one_session_throughput_per_s']} calls/s")
    print(f"command: {r['command']}")


if __name__ == "__main__":  # pragma: no cover
    main()
