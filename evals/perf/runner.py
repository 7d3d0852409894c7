"""Run every ``bench_*.py`` in this package and print one table.

Each benchmark runs in its own Python process (isolated memory, a time limit, one crash does not sink
the rest); its ``main(argv)`` dict comes back as JSON. Benchmarks whose source mentions ``--quick`` get it
unless ``--full`` is given.

    python -m comfygen.evals.perf [--only NAME ...] [--full] [--timeout S] [--json OUT] [--markdown OUT]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import platform
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

MARKER = "@@COMFYGEN_BENCH_RESULT@@"
_CHILD = (
    "import json, sys, importlib\n"
    "name = sys.argv[1]\n"
    "m = importlib.import_module(name if '.' in name else 'comfygen.evals.perf.' + name)\n"
    "r = m.main(sys.argv[2:])\n"
    f"print({MARKER!r} + json.dumps(r, default=str))\n"
)


def discover() -> list[str]:
    root = resources.files("comfygen.evals.perf")
    return sorted(p.name[:-3] for p in root.iterdir() if p.name.startswith("bench_") and p.name.endswith(".py"))


def benchmarks(modules: Sequence[str] = ()) -> dict[str, str]:
    """Benchmark name -> module: this package's ``bench_*`` plus ``modules`` given by dotted path (benchmarks that
    live where they may import what ``evals/`` may not, such as the MCP server's ``comfygen.server.bench_mcp``,
    which ``comfygen bench`` adds), each named by its last component."""
    found = {n: n for n in discover()} | {m.rpartition(".")[2]: m for m in modules}
    return dict(sorted(found.items()))


def supports_quick(name: str) -> bool:
    """Whether the benchmark's source mentions ``--quick`` (a dotted name is a module path)."""
    if "." in name:
        import importlib.util

        spec = importlib.util.find_spec(name)
        src = Path(spec.origin).read_text(encoding="utf-8") if spec and spec.origin else ""
    else:
        src = (resources.files("comfygen.evals.perf") / f"{name}.py").read_text(encoding="utf-8")
    return "--quick" in src


def machine() -> dict[str, Any]:
    """What the figures ran on."""
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                            "cpu_count": os.cpu_count()}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), None)
    except OSError:
        info["cpu"] = platform.processor() or None
    try:
        import torch

        info["torch"] = torch.__version__
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001 - torch is optional for this summary
        info["gpu"] = None
    return info


def run_one(name: str, *, quick: bool = True, timeout: float = 600.0, extra: list[str] | None = None,
            module: str | None = None) -> dict[str, Any]:
    """Run one benchmark in its own process; ``module`` (a dotted path) when it is not ``name`` in this package."""
    module = module or name
    argv = (["--quick"] if quick and supports_quick(module) else []) + list(extra or [])
    t0 = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, module, *argv], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    except subprocess.TimeoutExpired:
        return {"name": name, "module": module, "ok": False, "error": f"timed out after {timeout:.0f} s", "argv": argv,
                "wall_s": time.monotonic() - t0, "figures": {}}
    wall = time.monotonic() - t0
    line = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith(MARKER)), None)
    if proc.returncode != 0 or line is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"name": name, "module": module, "ok": False, "error": " | ".join(tail) or f"exit {proc.returncode}",
                "argv": argv,
                "wall_s": wall, "figures": {}}
    figures = json.loads(line[len(MARKER):])
    return {"name": name, "module": module, "ok": True, "argv": argv, "wall_s": wall,
            "figures": figures if isinstance(figures, dict) else {"result": figures}}


def flatten(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(d, dict):
        out: list[tuple[str, Any]] = []
        for k, v in d.items():
            out += flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(d, list) and d and all(isinstance(x, (int, float)) for x in d) and len(d) > 6:
        return [(prefix, f"[{len(d)} values]")]
    return [(prefix, d)]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    s = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
    return s if len(s) <= 80 else s[:77] + "..."


def rows(results: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    out = []
    for r in results:
        if not r["ok"]:
            out.append((r["name"], "ERROR", r["error"]))
            continue
        for k, v in flatten(r["figures"]):
            out.append((r["name"], k, _fmt(v)))
    return out


def _dotted(result: dict[str, Any]) -> str:
    module = result.get("module") or result["name"]
    return module if "." in module else f"comfygen.evals.perf.{module}"


def markdown(results: list[dict[str, Any]], info: dict[str, Any], command: str, note: str | None = None) -> str:
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# Performance", "",
             "Latest figures of every benchmark in `evals/perf/` (each module prints its own figures and the command",
             "that reproduces it; `comfygen bench` runs them all). Figures depend on the machine below; benchmarks",
             "against the fake ComfyUI measure comfygen's own overhead, not image generation.", "",
             f"Run {when} with `{command}`.", "",
             f"Machine: {info.get('cpu') or '?'} ({info.get('cpu_count')} logical CPUs), GPU: {info.get('gpu') or 'none'}, "
             f"Python {info.get('python')}, torch {info.get('torch', '?')}, {info.get('platform')}.", ""]
    if note:
        lines += [note, ""]
    lines += ["| benchmark | args | wall s | status |", "|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['name']} | {' '.join(r['argv']) or '-'} | {r['wall_s']:.1f} | "
                     f"{'ok' if r['ok'] else 'error: ' + r['error'].replace('|', '/')[:120]} |")
    for r in results:
        lines += ["", f"## {r['name']}", "",
                  f"`python -m {_dotted(r)} {' '.join(r['argv'])}`".replace(" `", "`"), ""]
        if not r["ok"]:
            lines.append(f"Failed: {r['error']}")
            continue
        lines += ["| figure | value |", "|---|---|"]
        for _, k, v in rows([r]):
            lines.append(f"| {k} | {v.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def run_all(only: list[str] | None = None, *, quick: bool = True, timeout: float = 600.0,
            modules: Sequence[str] = ()) -> dict[str, Any]:
    found = benchmarks(modules)
    names = list(found)
    if only:
        unknown = sorted(set(only) - set(names) - {n.removeprefix("bench_") for n in names})
        if unknown:
            raise SystemExit(f"unknown benchmarks {unknown}; available: {names}")
        names = [n for n in names if n in only or n.removeprefix("bench_") in only]
    results = []
    for n in names:
        log.info("running %s", n)
        results.append(run_one(n, quick=quick, timeout=timeout, module=found[n]))
    return {"machine": machine(), "quick": quick, "results": results}


def print_table(report: dict[str, Any]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table

        t = Table(title="comfygen benchmarks" + (" (quick)" if report["quick"] else ""))
        for col in ("benchmark", "figure", "value"):
            t.add_column(col, overflow="fold")
        for r in rows(report["results"]):
            t.add_row(*r)
        Console().print(t)
    except ImportError:  # pragma: no cover
        for r in rows(report["results"]):
            print(" | ".join(r))
    m = report["machine"]
    print(f"machine: {m.get('cpu')} ×{m.get('cpu_count')}, GPU {m.get('gpu') or 'none'}, torch {m.get('torch')}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m comfygen.evals.perf", description="Run all comfygen benchmarks.")
    ap.add_argument("--only", nargs="*", default=None, help="benchmark names (bench_x or x)")
    ap.add_argument("--full", action="store_true", help="do not pass --quick")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per benchmark")
    ap.add_argument("--json", default=None, help="write every figure here")
    ap.add_argument("--markdown", default=None, help="write a markdown table here")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    ap.add_argument("--note", default=None, help="a line for the markdown file (e.g. how loaded the machine was)")
    ap.add_argument("--module", action="append", default=[], metavar="DOTTED",
                    help="also run this benchmark module (repeatable), e.g. comfygen.server.bench_mcp")
    ap.add_argument("--prog", default="python -m comfygen.evals.perf", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    found = benchmarks(args.module)
    if args.list:
        for n, module in found.items():
            print(n + ("  (--quick)" if supports_quick(module) else ""))
        return {"benchmarks": list(found)}
    report = run_all(args.only, quick=not args.full, timeout=args.timeout, modules=args.module)
    print_table(report)
    cmd = args.prog + (" --full" if args.full else "") + (f" --only {' '.join(args.only)}" if args.only else "")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    if args.markdown:
        Path(args.markdown).write_text(markdown(report["results"], report["machine"], cmd, args.note), encoding="utf-8")
    print(f"reproduce: {cmd}")
    return report
