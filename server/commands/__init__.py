"""CLI command modules, one per area. Each exposes ``register(app: typer.Typer) -> None``."""

from __future__ import annotations

import importlib

import typer

# Order is the order of `comfygen --help`.
MODULES = [
    "generate",
    "call",
    "chat",
    "serve",
    "flows",
    "score",
    "eval",
    "bench",
    "runs",
    "search",
    "planner",
    "dataset",
]


# Serving commands whose module is the only one they need: the others are not imported for them (start-up time).
FAST_PATH = {"plan": "planner", "serve": "serve", "generate": "generate", "call": "call"}


def register_all(app: typer.Typer, command: str | None = None) -> None:
    """Register every area's commands, or only the module of ``command`` when it is a fast-path command."""
    done: set[str] = app.__dict__.setdefault("_comfygen_registered", set())
    for name in [FAST_PATH[command]] if command in FAST_PATH else MODULES:
        if name not in done:  # main() may run more than once in a process
            done.add(name)
            importlib.import_module(f"{__name__}.{name}").register(app)
