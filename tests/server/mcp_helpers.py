"""Helpers shared by the server and agent tests (importable: tests/server is put on sys.path by its conftest)."""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

from comfygen.flow_library.library import FlowLibrary
from comfygen.tools.scoring.ensemble import Ensemble
from comfygen.tools.settings import Settings

SMALL = {"size": "64x64"}  # keeps the fake's PNGs small and the tests fast


@functools.cache
def shared_library() -> FlowLibrary:
    """The shipped library, loaded once per test session (it is read-only)."""
    return FlowLibrary.default()


def library_models() -> dict[str, list[str]]:
    """Every model file the flow library names, so every executable flow is runnable on the fake."""
    models: dict[str, set[str]] = {}
    for flow in shared_library():
        for folder, name in flow.models.files():
            models.setdefault(folder, set()).add(name)
    return {k: sorted(v) for k, v in models.items()}


def brightness(im: Any) -> float:
    return sum(im.convert("L").resize((8, 8)).tobytes()) / 64 / 255


class BrightnessScorer:
    name = "brightness"

    def score(self, images: Any, prompts: Any) -> list[float]:
        return [brightness(im) for im in images]


class PixelEnsemble(Ensemble):
    """A scoring double: the mean brightness of each image (deterministic, instant). The real scorers have
    their own tests; here only the server's handling of scores matters. An ``Ensemble`` (reference mean 0,
    spread 1) so that noise search, which ranks by the ensemble, ranks by brightness."""

    def __init__(self) -> None:
        super().__init__({"brightness": BrightnessScorer()}, stats={"brightness": {"mean": 0.0, "std": 1.0}})

    def score(self, images: Any, prompts: Any) -> list[Any]:
        out = []
        for im in images:
            mean = brightness(im)
            out.append(SimpleNamespace(total=mean, raw={"brightness": mean}, z={"brightness": 0.0}))
        return out


def pixel_scorers(settings: Settings) -> PixelEnsemble:
    return PixelEnsemble()
