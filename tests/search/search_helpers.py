"""Shared pieces for the search tests: a small SD1.5 flow, a one-endpoint pool, a target scorer."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

import fakecomfy_engine as eng
from comfygen.flow_library.model import Flow
from comfygen.tools.scoring.ensemble import Ensemble
from comfygen.tools.search.initial_noise import NoiseSpec, realise
from comfygen.tools.search.verifiers import VerifierSet

REPO = Path(__file__).resolve().parents[2]
CKPT = "v1-5-pruned-emaonly.safetensors"


def sd15_flow(size: int = 64, steps: int = 4) -> Flow:
    data = json.loads((REPO / "flow_library" / "flows" / "base" / "sd15-base.json").read_text())
    flow = Flow.model_validate(data)
    graph = flow.graph
    graph["5"]["inputs"]["steps"] = steps
    return flow.model_copy(update={"width": size, "height": size, "graph": graph})


class OnePool:
    """The pool interface run_flow needs, over one ComfyClient (keeps tests independent of pool policy)."""

    def __init__(self, url: str):
        from comfygen.tools.comfy.client import ComfyClient

        self.urls = [url]
        self.client = ComfyClient(url)

    async def __aenter__(self) -> "OnePool":
        await self.client.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()

    async def run(self, graph: dict[str, Any], *, required_models: Any = (), on_event: Any = None,
                  deadline_s: float | None = None, prompt_id: str | None = None, **_: Any) -> Any:
        return await self.client.run(graph, prompt_id=prompt_id, on_event=on_event, deadline_s=deadline_s)

    async def object_info(self, url: str | None = None) -> dict[str, Any]:
        return await self.client.object_info()


def fake_pixels(noise: torch.Tensor) -> np.ndarray:
    """What the fake ComfyUI (with NoiseExecutors) writes for a candidate whose unit noise is ``noise``."""
    img = eng.latent_to_image(noise.numpy())[0]
    return np.asarray(Image.fromarray((np.clip(img, 0, 1) * 255.0).round().astype(np.uint8)), dtype=np.float32)


class TargetScorer:
    """Deterministic verifier: cosine between an image's 8x8-block colours (back in logit space) and a
    target field. Its optimum is the candidate whose image is closest in direction to the target."""

    name = "target"

    def __init__(self, target: np.ndarray):
        self.target = target.astype(np.float64).ravel()
        self.calls: list[int] = []

    @staticmethod
    def field(pixels: np.ndarray) -> np.ndarray:
        h, w, _ = pixels.shape
        blocks = pixels.reshape(h // 8, 8, w // 8, 8, 3).mean(axis=(1, 3)) / 255.0
        blocks = np.clip(blocks, 1e-3, 1 - 1e-3)
        return (np.log(blocks / (1 - blocks)) / 2.0).astype(np.float64)

    def score_pixels(self, pixels: np.ndarray) -> float:
        f = self.field(pixels).ravel()
        return float(f @ self.target / (np.linalg.norm(f) * np.linalg.norm(self.target) + 1e-12))

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> torch.Tensor:
        self.calls.append(len(images))
        return torch.tensor([self.score_pixels(np.asarray(im.convert("RGB"), dtype=np.float32)) for im in images])

    def expected(self, spec: NoiseSpec, shape: Sequence[int]) -> float:
        return self.score_pixels(fake_pixels(realise(spec, shape)))


def verifiers(*scorers: Any, **kw: Any) -> VerifierSet:
    """A search's verifiers over test scorers: an ensemble that gives each of them reference mean 0 and
    spread 1, so a candidate's total is its (weighted mean) raw score."""
    stats = {s.name: {"mean": 0.0, "std": 1.0} for s in scorers}
    return VerifierSet(Ensemble(list(scorers), stats=stats), **kw)


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
