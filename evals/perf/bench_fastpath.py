"""The fast path at the speed of the protocol: four figures, each against a floor measured in the same run.

| row | figure | floor (same run) | goal |
|---|---|---|---|
| suggest_stdio | ``suggest_flows`` over stdio, p50 (a new prompt every call) | a trivial MCP tool over stdio | 5 ms |
| predict | ``Planner.predict`` p50 in process (a new prompt every call) | one plain MiniLM forward (ORT) | 3 ms |
| plan_cold | ``comfygen plan "..."`` as a whole new process, median wall | ``python -c pass`` | 1.0 s |
| server_first_suggest | ``python -m comfygen.server`` start to its first ``suggest_flows`` answer | the same, trivial server | 1.5 s |

Every prompt is new to the process (the runtime caches per-prompt outputs, so repeating one prompt would
time the cache). ``--torch`` adds the torch path's predict p50 for comparison (imports torch at the end).
The machine may be shared: the 1-minute load average is printed before and after (``uptime``), and CPU time
beside wall time (in process for ``predict``, the child process for ``plan_cold``, the server process per call
for ``suggest_stdio``): on a loaded machine wall time is mostly waiting for a core.

    python -m comfygen.evals.perf.bench_fastpath [--n 200] [--runs 7] [--torch] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

COMMAND = "python -m comfygen.evals.perf.bench_fastpath"
GOALS = {"suggest_stdio": 5.0, "predict": 3.0, "plan_cold": 1.0, "server_first_suggest": 1.5}
UNITS = {"suggest_stdio": "ms", "predict": "ms", "plan_cold": "s", "server_first_suggest": "s"}
TRIVIAL_SERVER = (
    "from mcp.server.mcpserver import MCPServer\n"
    "mcp = MCPServer('trivial')\n"
    "@mcp.tool()\n"
    "def echo(text: str) -> str:\n"
    "    return text\n"
    "mcp.run('stdio')\n"
)


def prompts(n: int, tag: str) -> list[str]:
    from .bench_planner import prompts as base

    return [f"{p} ({tag})" for p in base(n)]


def _load() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "COMFYGEN_HOME": str(home), "COMFYGEN_COMFYUI_URLS": ""}


async def _stdio_p50(cmd: list[str], env: dict[str, str], tool: str, args_of: Any, n: int,
                     warmup: int) -> dict[str, Any]:
    """Start a stdio MCP server; (seconds to the first answer, p50 ms of the next n calls)."""
    from mcp import Client, StdioServerParameters

    t = time.perf_counter()
    async with Client(StdioServerParameters(command=cmd[0], args=cmd[1:], env=env)) as c:
        r = await c.call_tool(tool, args_of(-1))
        first_s = time.perf_counter() - t
        if r.is_error:
            raise RuntimeError(f"{tool} failed: {r.content[0].text}")
        for i in range(warmup):
            await c.call_tool(tool, args_of(n + i))
        ms = []
        cpu0 = _children_cpu_s()
        for i in range(n):
            t = time.perf_counter()
            await c.call_tool(tool, args_of(i))
            ms.append((time.perf_counter() - t) * 1000)
        cpu = _children_cpu_s() - cpu0
    if not ms:
        return {"first_answer_s": round(first_s, 3)}
    return {"first_answer_s": round(first_s, 3), "p50_ms": round(statistics.median(ms), 3),
            "p95_ms": round(sorted(ms)[int(0.95 * (len(ms) - 1))], 3),
            "server_cpu_ms_per_call": round(cpu / n * 1000, 3)}


def _children_cpu_s() -> float:
    """User + system seconds of this process's live children (the stdio server), from /proc."""
    total, tick, me = 0.0, os.sysconf("SC_CLK_TCK"), os.getpid()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:  # fields after the name: state, ppid, ...; utime, stime are the 12th and 13th
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def stdio_rows(home: Path, n: int, runs: int) -> dict[str, Any]:
    server = [sys.executable, "-m", "comfygen.server"]
    trivial = [sys.executable, "-c", TRIVIAL_SERVER]
    texts = prompts(n + 10, "stdio")
    suggest = lambda i: {"prompt": texts[i], "k": 5}  # noqa: E731
    echo = lambda i: {"text": f"hello {i}"}  # noqa: E731
    steady = asyncio.run(_stdio_p50(server, _env(home), "suggest_flows", suggest, n, 5))
    floor = asyncio.run(_stdio_p50(trivial, _env(home), "echo", echo, n, 5))
    starts, floor_starts = [], []
    for r in range(runs):  # alternate, so load changes hit both alike
        firsts = {"prompt": f"first prompt of start {r}, a castle at dawn", "k": 5}
        first = asyncio.run(_stdio_p50(server, _env(home), "suggest_flows", lambda i: firsts, 0, 0))
        starts.append(first["first_answer_s"])
        floor_starts.append(asyncio.run(_stdio_p50(trivial, _env(home), "echo", echo, 0, 0))["first_answer_s"])
    return {"suggest_stdio": {"value": steady["p50_ms"], "p95": steady["p95_ms"], "floor": floor["p50_ms"],
                              "server_cpu_ms_per_call": steady["server_cpu_ms_per_call"],
                              "floor_server_cpu_ms_per_call": floor["server_cpu_ms_per_call"],
                              "floor_what": "trivial MCP tool over stdio, p50 ms"},
            "server_first_suggest": {"value": round(statistics.median(starts), 3),
                                     "floor": round(statistics.median(floor_starts), 3),
                                     "floor_what": "trivial MCP server start to first answer, median s",
                                     "runs": runs}}


def predict_row(n: int) -> dict[str, Any]:
    from ...tools.planner import Planner
    from ...tools.planner.runtime import encoder_graph, runtime_for

    planner = Planner.load()
    planner.predict("warm-up prompt", k=5)
    enc = runtime_for(encoder_graph())
    enc.embeddings(["warm-up prompt"])
    texts = prompts(n, "predict")
    ms, cpu = [], []
    for p in texts:
        t, c = time.perf_counter(), time.process_time()
        planner.predict(p, k=5)
        ms.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    floor = []
    for p in prompts(n, "floor"):
        t = time.perf_counter()
        enc.embeddings([p])
        floor.append((time.perf_counter() - t) * 1000)
    return {"value": round(statistics.median(ms), 3), "cpu_p50": round(statistics.median(cpu), 3),
            "floor": round(statistics.median(floor), 3), "members": planner.config.members,
            "flows": len(planner.flows), "floor_what": "one plain MiniLM forward (ONNX Runtime), p50 ms",
            "backend": "torch" if planner._torch else "onnx"}


def torch_predict(n: int) -> float:
    os.environ["COMFYGEN_PLANNER_BACKEND"] = "torch"
    from ...tools.planner import Planner

    planner = Planner.load()
    planner.predict("warm-up prompt", k=5)
    ms = []
    for p in prompts(n, "torch"):
        t = time.perf_counter()
        planner.predict(p, k=5)
        ms.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(ms), 3)


def _wall(cmd: list[str], env: dict[str, str], cpu: list[float] | None = None) -> float:
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cpu is not None:  # user + system seconds of the process: what it costs when it is not waiting for a core
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall


def plan_cold_row(home: Path, runs: int) -> dict[str, Any]:
    env = _env(home)
    plan, floor, heavy, cpu = [], [], [], []
    for r in range(runs):
        cmd = [sys.executable, "-m", "comfygen.server.cli", "plan", f"a fox in the snow, run {r}"]
        plan.append(_wall(cmd, env, cpu))
        floor.append(_wall([sys.executable, "-c", "pass"], env))
    for _ in range(min(runs, 3)):
        heavy.append(_wall([sys.executable, "-c", "import torch, transformers, peft"], env))
    return {"value": round(statistics.median(plan), 3), "cpu_s": round(statistics.median(cpu), 3),
            "floor": round(statistics.median(floor), 3), "floor_what": "python -c pass, median s", "runs": runs,
            "import_torch_transformers_peft_s": round(statistics.median(heavy), 3)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200, help="timed calls for the p50 rows")
    ap.add_argument("--runs", type=int, default=7, help="fresh processes for the cold-start rows")
    ap.add_argument("--torch", action="store_true", help="also time the torch path's predict (imports torch)")
    ap.add_argument("--quick", action="store_true", help="n=60, runs=5")
    args = ap.parse_args(argv)
    n, runs = (60, 5) if args.quick else (args.n, args.runs)
    out: dict[str, Any] = {"load_avg_1m_before": _load(), "cpu_count": os.cpu_count(), "n": n}
    with tempfile.TemporaryDirectory(prefix="bench-fastpath-") as tmp:
        home = Path(tmp)
        rows = {"predict": predict_row(n), "plan_cold": plan_cold_row(home, runs), **stdio_rows(home, n, runs)}
    if args.torch:
        rows["predict"]["torch_p50"] = torch_predict(max(20, n // 4))
    for name, row in rows.items():
        row["ratio"] = round(row["value"] / row["floor"], 2) if row["floor"] else None
        row["goal"] = GOALS[name]
        row["meets_goal"] = row["value"] <= GOALS[name]
    out["rows"] = rows
    out["load_avg_1m_after"] = _load()
    out["command"] = COMMAND + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    _print(out)
    return out


def _print(out: dict[str, Any]) -> None:
    print(f"fast path (load average {out['load_avg_1m_before']} -> {out['load_avg_1m_after']} "
          f"on {out['cpu_count']} CPUs)")
    print(f"{'row':<22}{'value':>10}{'floor':>10}{'ratio':>8}{'goal':>8}  meets")
    for name, r in out["rows"].items():
        u = UNITS[name]
        cpu = r.get("cpu_p50", r.get("cpu_s", r.get("server_cpu_ms_per_call")))
        print(f"{name:<22}{r['value']:>8.3f}{u:>2}{r['floor']:>8.3f}{u:>2}{r['ratio']:>8}{r['goal']:>6}{u:>2}  "
              f"{r['meets_goal']}   (floor: {r['floor_what']}{'' if cpu is None else f'; CPU time {cpu} {u}'})")
    print(json.dumps(out["rows"]))
    print(f"command: {out['command']}")


if __name__ == "__main__":  # pragma: no cover
    main()
