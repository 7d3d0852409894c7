"""``comfygen bench``: run every area's benchmark (evals/perf/bench_*.py and the MCP server's
server/bench_mcp.py) and print one table."""

from __future__ import annotations

from pathlib import Path

import typer

SERVER_BENCHMARK = "comfygen.server.bench_mcp"  # measures the MCP server itself, so it lives in server/


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench(only: list[str] = typer.Option([], "--only", help="Benchmark name (repeatable), e.g. scoring."),
              full: bool = typer.Option(False, "--full", help="Full runs instead of --quick ones."),
              timeout: float = typer.Option(600.0, "--timeout", help="Seconds per benchmark."),
              json_out: Path | None = typer.Option(None, "--json", help="Write every figure here."),
              markdown: Path | None = typer.Option(None, "--markdown", help="Write a markdown table here."),
              list_only: bool = typer.Option(False, "--list", help="List the benchmarks and exit.")) -> None:
        """Run the performance benchmarks (each in its own process) and print their figures."""
        from ...evals.perf.runner import main

        argv: list[str] = ["--timeout", str(timeout), "--module", SERVER_BENCHMARK, "--prog", "comfygen bench"]
        if only:
            argv += ["--only", *only]
        if full:
            argv.append("--full")
        if json_out:
            argv += ["--json", str(json_out)]
        if markdown:
            argv += ["--markdown", str(markdown)]
        if list_only:
            argv.append("--list")
        main(argv)
