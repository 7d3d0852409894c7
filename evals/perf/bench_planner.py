"""Planner prediction latency: one prompt at a time, as the MCP server's fast path calls it.

Loads a planner (the bundled one by default), warms it up, then times ``Planner.predict(prompt, k=5)`` on
distinct prompts (GenAI-Bench-style texts built in), reporting wall-clock p50 / p90 / max in milliseconds, the
CPU time per call (all threads; on a busy shared machine it shows what the call costs when it is not waiting
for a core), the load time, the thread count and the 1-minute load average. The goal is p50 <= 3 ms on a 2-core CPU
(served by ONNX Runtime; ``COMFYGEN_PLANNER_BACKEND=torch`` times the torch path). Every prompt is new to the
process, so the runtime's per-prompt cache does not answer.

    python -m comfygen.evals.perf.bench_planner [--planner DIR] [--n 200] [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

COMMAND = "python -m comfygen.evals.perf.bench_planner"
SUBJECTS = ["a baker", "two cats", "a red vintage car", "an astronaut", "a lighthouse", "three wooden chairs",
            "a dragon", "a bowl of ramen", "a robot", "an old map", "a teapot", "a ballerina", "a fox"]
PLACES = ["on a snowy mountain", "in a neon-lit alley at night", "next to a blue door", "under a cherry tree",
          "inside a cozy library", "on the surface of the moon", "without any people around", "in watercolor style"]


def prompts(n: int) -> list[str]:
    return [f"{SUBJECTS[i % len(SUBJECTS)]} {PLACES[(i // len(SUBJECTS)) % len(PLACES)]}, take {i}" for i in range(n)]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--planner", type=Path, default=None, help="Planner directory (default: bundled).")
    ap.add_argument("--n", type=int, default=200, help="Timed predictions.")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the process (the target machine has 2 cores; predict itself runs one prompt on one thread).")
    ap.add_argument("--quick", action="store_true", help="50 predictions.")
    args = ap.parse_args(argv)
    from comfygen.tools.planner import Planner
    from comfygen.tools.planner.planner import use_onnx

    if not use_onnx():  # the torch path (COMFYGEN_PLANNER_BACKEND=torch); the ONNX path runs one thread per call
        import torch

        torch.set_num_threads(args.threads)
    n = 50 if args.quick else args.n
    t0 = time.perf_counter()
    planner = Planner.load(args.planner)
    planner.predict("warm-up prompt", k=5)
    load_s = time.perf_counter() - t0
    for p in prompts(5):
        planner.predict(f"warm-up: {p}", k=5)
    times, cpu = [], []
    for p in prompts(n):
        t, c = time.perf_counter(), time.process_time()
        planner.predict(p, k=5)
        times.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    times.sort()
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    out = {"benchmark": "planner_predict", "backend": "torch" if planner._torch else "onnx", "n": n,
           "threads": args.threads, "members": planner.config.members,
           "flows": len(planner.flows), "load_s": round(load_s, 2), "p50_ms": round(statistics.median(times), 2),
           "p90_ms": round(times[int(0.9 * (n - 1))], 2), "max_ms": round(times[-1], 2),
           "cpu_p50_ms": round(statistics.median(cpu), 2),
           "goal_p50_ms": 3.0, "cpu_count": os.cpu_count(), "load_avg_1m": load_avg,
           "planner": str(planner.path), "command": f"{COMMAND} --n {n} --threads {args.threads}"
                                                    + (f" --planner {args.planner}" if args.planner else "")}
    print(f"planner predict (k=5, {out['members']} ensemble members, {out['flows']} flows, {args.threads} threads): "
          f"p50 {out['p50_ms']} ms, p90 {out['p90_ms']} ms, max {out['max_ms']} ms over {n} prompts "
          f"(CPU time p50 {out['cpu_p50_ms']} ms, all threads); "
          f"load + first call {out['load_s']} s; 1-min load average {load_avg}")
    print(f"reproduce: {out['command']}")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
