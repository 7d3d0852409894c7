"""Noise search end to end on a flow: batches through the run pipeline, records, images, summary."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...flow_library.model import Flow, latent_channels
from ...flow_library.render import render
from ..errors import FlowError, StoreError
from ..run_scores import ImageScore, RunScores
from ..store import RunStore
from .engine import Candidate, SearchConfig, SearchProgress, SearchResult, search
from .generate import ComfyGenerator, Mode, default_batch, rewrite_for
from .graphs import find_noise_sampler, latent_graph, pack_graph
from .nodepack import NODE, PACK
from .initial_noise import NoiseSpec
from .report import write_outputs
from .verifiers import VerifierSet

if TYPE_CHECKING:
    from ..comfy.pool import EndpointPool
    from ..settings import Settings
    from ..store import RunRecord, RunStore

log = logging.getLogger(__name__)


def resolve_config(config: SearchConfig, flow: Flow, settings: Settings | None = None) -> SearchConfig:
    """Fill in size (the flow's) and batch (a default for the family and size)."""
    upd: dict[str, Any] = {}
    fields = config.model_fields_set
    if "width" not in fields:
        upd["width"] = flow.width
    if "height" not in fields:
        upd["height"] = flow.height
    if "latent_channels" not in fields:
        upd["latent_channels"] = latent_channels(flow.family)
    cfg = config.model_copy(update=upd)
    if cfg.batch is None:
        cap = settings.max_batch
        cfg = cfg.model_copy(update={"batch": default_batch(flow.family, cfg.width, cfg.height, max_batch=cap)})
    return cfg


def combine_mode(flow: Flow, config: SearchConfig) -> Mode:
    """How zero-order neighbours (weighted sums of noises) are realised for this flow."""
    if config.noise_nodes == "pack":
        return "pack"
    graph = render(flow, "check", seed=0, width=config.width, height=config.height)
    try:
        latent_graph(graph, [NoiseSpec.seeded(1)], flow.family)
        return "latent"
    except FlowError:
        if config.noise_nodes == "core":
            raise
        return "pack"


def check_flow(flow: Flow, config: SearchConfig) -> Mode:
    """Fail before any generation when the flow cannot carry this search (clear error + hint)."""
    graph = render(flow, "check", seed=0, width=config.width, height=config.height)
    find_noise_sampler(graph)
    if config.algorithm != "zero-order":
        return "latent"
    mode = combine_mode(flow, config)
    if mode == "pack":
        pack_graph(graph, [NoiseSpec.seeded(1)])
    return mode


async def check_pack(pool: EndpointPool, flow: Flow) -> None:
    """The comfygen_noise node must be installed on the server for pack-mode zero-order search."""
    info = await pool.object_info()
    if NODE not in info:
        raise FlowError(
            f"zero-order search on this {flow.family} flow needs the {NODE} node, which the ComfyUI server lacks",
            hint=f"install it with `comfygen comfyui install-nodes --path /path/to/ComfyUI` (writes custom_nodes/{PACK}) "
                 "and restart ComfyUI; or use --algorithm random, which needs core nodes only")


async def run_search(flow: Flow, prompt: str, config: SearchConfig, *, verifiers: VerifierSet, pool: EndpointPool,
                     store: RunStore, settings: Settings, negative: str | None = None, steps: int | None = None,
                     out_dir: Path | str | None = None, on_progress: Callable[[SearchProgress], Any] | None = None,
                     on_event: Any = None) -> SearchResult:
    """Run a random or zero-order search for ``prompt`` on ``flow``; write the contact sheet and summary.

    The engine-level entry: callers pass the verifiers (a view of a scoring ensemble), pool and store.
    The application runs searches through ``comfygen.tools.app.noise_search.search_flow``, which takes
    all three from the service."""
    cfg = resolve_config(config, flow, settings)
    combine = check_flow(flow, cfg)
    if combine == "pack":
        await check_pack(pool, flow)  # the guard always allows comfygen's own pack
    search_id = uuid.uuid4().hex[:12]
    gen = ComfyGenerator(flow, prompt, pool=pool, store=store, settings=settings, negative=negative,
                         width=cfg.width, height=cfg.height, steps=steps, on_event=on_event, search_id=search_id,
                         combine=combine)
    result = await search(prompt, generate=gen, verifiers=verifiers, config=cfg, on_progress=on_progress)
    if cfg.algorithm == "zero-order":
        result.mode = combine
    _record_scores(store, result, search_id)
    out = Path(out_dir) if out_dir is not None else Path(settings.outputs_dir) / "search" / search_id
    return write_outputs(result, out)


def _record_scores(store: RunStore, result: SearchResult, search_id: str) -> None:
    """Each run's candidates (its images, in output order) with their verifier scores and search totals."""
    by_run: dict[str, list[Candidate]] = {}
    for c in result.candidates:
        if c.run_id:
            by_run.setdefault(c.run_id, []).append(c)
    for run_id, cands in by_run.items():
        images = [ImageScore(index=i, path=c.image, total=c.total, raw=c.raw, candidate=c.id, rank=c.rank,
                             noise=c.noise.model_dump(mode="json")) for i, c in enumerate(cands)]
        best = max(images, key=lambda im: im.total if im.total is not None else float("-inf"))
        scores = RunScores(scored_by="noise_search", method=result.aggregation, images=images, best=best.index,
                           search_id=search_id)
        try:
            store.set_scores(run_id, scores)
        except StoreError:
            log.exception("could not record scores of run %s", run_id)


async def regenerate(flow: Flow, prompt: str, noise: NoiseSpec, *, mode: Mode, pool: EndpointPool, store: RunStore,
                     settings: Settings, negative: str | None = None, steps: int | None = None,
                     width: int | None = None, height: int | None = None) -> RunRecord:
    """Generate one candidate again, alone (e.g. with more steps). Returns the run record.

    At the search's size the candidate starts from exactly the same noise. At another size the same
    seeds and coefficients give a new noise of that shape (a noise cannot keep its values across shapes).
    """
    from ..pipeline import run_flow

    rw = rewrite_for([noise], mode, flow.family, steps=steps)
    seeds = sorted({t.seed for t in noise.terms})
    return await run_flow(flow, prompt, negative=negative, seed=seeds[0], width=width, height=height, batch=1,
                          pool=pool, store=store, settings=settings, rewrite=rw, seeds=seeds,
                          extra_params={"noise_search": {"regenerate": noise.model_dump(mode="json"), "mode": mode,
                                                         "steps": steps}})
