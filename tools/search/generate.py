"""Generate candidate images for given noises: one ComfyUI prompt per batch, one run record each."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from PIL import Image

from ...flow_library.model import Family, Flow, Graph
from ..errors import FlowError
from .graphs import find_noise_sampler, latent_graph, pack_graph, seeded_graph
from .initial_noise import NoiseSpec

if TYPE_CHECKING:
    from ..comfy.pool import EndpointPool
    from ..settings import Settings
    from ..store import RunStore

Mode = Literal["seeded", "latent", "pack"]

# Images per ComfyUI prompt at the family's native size; scaled by pixel count for other sizes.
_NATIVE = {Family.SD15: (512 * 512, 8), Family.SD21: (768 * 768, 4), Family.SDXL: (1024 * 1024, 4),
           Family.SSD1B: (1024 * 1024, 4), Family.SDXL_REFINER: (1024 * 1024, 4),
           Family.PLAYGROUND: (1024 * 1024, 4), Family.SD3: (1024 * 1024, 2), Family.FLUX: (1024 * 1024, 2),
           Family.CASCADE: (1024 * 1024, 2), Family.PIXART: (1024 * 1024, 4), Family.QWEN_IMAGE: (1328 * 1328, 1),
           Family.HIDREAM: (1024 * 1024, 1), Family.LUMINA2: (1024 * 1024, 2)}


def default_batch(family: Family | str, width: int, height: int, *, max_batch: int = 64) -> int:
    """A batch size that fills a 24 GB GPU without paging, a heuristic per family and resolution."""
    px, b = _NATIVE.get(Family(family), (1024 * 1024, 2))
    return int(max(1, min(max_batch, 64, round(b * px / max(1, width * height)))))


@dataclass
class Generated:
    noise: NoiseSpec
    image: Image.Image
    path: str | None
    run_id: str | None
    index: int  # position in its run's batch


def plain_groups(specs: Sequence[NoiseSpec]) -> list[tuple[int, list[int]]]:
    """Split plain specs into (seed, contiguous indices) groups, keeping order."""
    groups: list[tuple[int, list[int]]] = []
    for s in specs:
        if not s.is_plain:
            raise ValueError("seeded mode takes single unscaled draws only")
        t = s.terms[0]
        if groups and groups[-1][0] == t.seed and groups[-1][1][-1] + 1 == t.index:
            groups[-1][1].append(t.index)
        else:
            groups.append((t.seed, [t.index]))
    return groups


def rewrite_for(specs: Sequence[NoiseSpec], mode: Mode, family: Family | str, *, steps: int | None = None):
    """The graph rewrite that makes one ComfyUI prompt start its batch items from ``specs``."""
    if mode == "seeded":
        groups = plain_groups(specs)
        if len(groups) != 1:
            raise ValueError("one seeded prompt takes one seed and contiguous batch indices")
        seed, idx = groups[0]

        def rw(g: Graph) -> Graph:
            return seeded_graph(_with_steps(g, steps), seed, idx)
    elif mode == "pack":
        def rw(g: Graph) -> Graph:
            return pack_graph(_with_steps(g, steps), specs)
    else:
        def rw(g: Graph) -> Graph:
            return latent_graph(_with_steps(g, steps), specs, family)
    return rw


def _with_steps(g: Graph, steps: int | None) -> Graph:
    if steps is None:
        return g
    g = copy.deepcopy(g)
    sampler, _ = find_noise_sampler(g)
    node = g[sampler]
    if "steps" in node["inputs"]:
        node["inputs"]["steps"] = steps
    else:
        sig = node["inputs"].get("sigmas")
        if isinstance(sig, list) and "steps" in g[str(sig[0])]["inputs"]:
            g[str(sig[0])]["inputs"]["steps"] = steps
        else:
            raise FlowError("cannot change the step count of this flow's sampler", hint="leave steps unset")
    return g


MAX_LATENT_NODES = 600


def latent_nodes(specs: Sequence[NoiseSpec]) -> int:
    """Nodes :func:`latent_graph` adds for ``specs`` (4 per term, 1 per extra term and candidate, 2 per index)."""
    terms = sum(len(s.terms) for s in specs)
    indices = len({t.index for s in specs for t in s.terms})
    return 4 * terms + terms + len(specs) + 2 * indices + 1


class ComfyGenerator:
    """Runs batches through :func:`comfygen.tools.pipeline.run_flow` (render, guard, record, run, save)."""

    def __init__(self, flow: Flow, prompt: str, *, pool: EndpointPool, store: RunStore, settings: Settings,
                 negative: str | None = None,
                 width: int | None = None, height: int | None = None, steps: int | None = None,
                 on_event: Any = None, search_id: str | None = None, combine: Mode = "latent"):
        self.flow, self.prompt, self.pool, self.store, self.settings = flow, prompt, pool, store, settings
        self.negative, self.width, self.height, self.steps = negative, width, height, steps
        self.on_event, self.search_id = on_event, search_id
        self.combine = combine  # how weighted sums of noises are realised: "latent" (core nodes) or "pack"
        self.runs: list[str] = []

    async def __call__(self, specs: Sequence[NoiseSpec], mode: Mode) -> list[Generated]:
        if mode == "latent":
            mode = self.combine
        if mode == "latent" and len(specs) > 1 and latent_nodes(specs) > MAX_LATENT_NODES:
            # many-term neighbours (long accepted chains): keep each prompt's graph well under the guard's limit
            half = len(specs) // 2
            return await self(specs[:half], mode) + await self(specs[half:], mode)
        return await self._run(specs, mode)

    async def _run(self, specs: Sequence[NoiseSpec], mode: Mode) -> list[Generated]:
        from ..pipeline import run_flow

        rw = rewrite_for(specs, mode, self.flow.family, steps=self.steps)
        seeds = sorted({t.seed for s in specs for t in s.terms})
        extra = {"noise_search": {"id": self.search_id, "mode": mode,
                                  "noises": [s.model_dump(mode="json") for s in specs]}}
        rec = await run_flow(self.flow, self.prompt, negative=self.negative, seed=seeds[0], width=self.width,
                             height=self.height, batch=1, pool=self.pool, store=self.store, settings=self.settings,
                             on_event=self.on_event, rewrite=rw, extra_params=extra, seeds=seeds)
        self.runs.append(rec.id)
        outs = sorted(rec.outputs, key=lambda o: o.index)
        if len(outs) != len(specs):
            raise FlowError(f"run {rec.id} returned {len(outs)} images for {len(specs)} candidates",
                            hint="the flow must save exactly one image per batch item (one output node)")

        def load() -> list[Image.Image]:
            from ..scoring.stored_runs import load_images  # as stored: each verifier converts by its original's rule

            return load_images([o.path for o in outs])

        images = await asyncio.to_thread(load)
        return [Generated(noise=s, image=im, path=o.path, run_id=rec.id, index=i)
                for i, (s, im, o) in enumerate(zip(specs, images, outs))]
