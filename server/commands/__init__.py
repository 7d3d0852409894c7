"""CLI command modules, one per area. Each exposes ``register(app: typer.Typer) -> None``."""

from __future__ import annotations

import importlib

import typer

# Order is the order of `comfygen --help`.
MODULES = [
    "generate",
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


def register_all(app: typer.Typer) -> None:
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}").register(app)
