"""Strategies that do more than one plain run per prompt: planner + noise search, and the ComfyGen-IC agent.

Both report the image they settle on and, as cost, the ComfyUI seconds of *every* run they made for it,
so their GPU seconds per image are comparable with a single run's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..tools.errors import ComfyGenError
from .metrics import Sample
from .prompts import Prompt
from .samples import error_sample, gpu_seconds
from .strategies import Strategy

if TYPE_CHECKING:
    from ..tools.app.service import ComfyGen
    from ..tools.comfy.pool import EndpointPool
    from ..tools.scoring.ensemble import Ensemble
    from ..tools.settings import Settings
    from ..tools.store import RunStore

log = logging.getLogger(__name__)


def _seconds(store: RunStore, run_ids: Sequence[str]) -> float | None:
    total, found = 0.0, False
    for rid in dict.fromkeys(run_ids):
        try:
            rec = store.get(rid)
        except ComfyGenError:
            continue
        g = gpu_seconds(rec)
        if g is not None:
            total += g * max(1, len(rec.outputs))
            found = True
    return total if found else None


async def produce(cfg: Any, items: Sequence[tuple[Strategy, Prompt, int]], *, settings: Settings, pool: EndpointPool,
                  store: RunStore, write: Callable[[Sample], None]) -> None:
    import asyncio

    sem = asyncio.Semaphore(max(1, cfg.concurrency or 2))

    async def one(st: Strategy, p: Prompt, seed: int) -> None:
        async with sem:
            try:
                if st.kind == "planner_search":
                    s = await _planner_search(cfg, st, p, seed, settings=settings, pool=pool, store=store)
                else:
                    s = await _agent(cfg, st, p, seed, settings=settings, pool=pool, store=store)
            except ComfyGenError as e:
                log.warning("%s failed on %s: %s", st.name, p.id, e)
                s = error_sample(st.name, p, seed, e)
            write(s)

    await asyncio.gather(*(one(st, p, seed) for st, p, seed in items))


async def _planner_search(cfg: Any, st: Strategy, p: Prompt, seed: int, *, settings: Settings, pool: EndpointPool,
                          store: RunStore) -> Sample:
    from ..tools.app.noise_search import search_flow
    from ..tools.search.engine import SearchConfig

    spec = st.spec.search
    assert spec is not None
    choice = st.choose(p)
    size = {k: v for k, v in (("width", cfg.width), ("height", cfg.height)) if v}
    scfg = SearchConfig(algorithm="random" if spec.mode == "random" else "zero-order", candidates=spec.candidates,
                        neighbours=max(1, spec.candidates // max(1, spec.steps)), seed=seed, **size)
    res = await search_flow(_search_service(cfg, st, settings=settings, pool=pool, store=store), choice.flow,
                            p.text, scfg, negative=cfg.negative)
    if res.best is None or not res.best.image:
        raise ComfyGenError(f"noise search produced no image for {p.id}", hint="check the ComfyUI logs")
    return Sample(strategy=st.name, prompt_id=p.id, prompt=p.text, category=p.category, seed=seed,
                  flow_id=choice.flow.id, run_id=res.best.run_id, image=res.best.image,
                  gpu_seconds=_seconds(store, res.run_ids),
                  note=f"{choice.note}; {res.algorithm} search, best of {len(res.candidates)}")


def _search_service(cfg: Any, st: Strategy, *, settings: Settings, pool: EndpointPool, store: RunStore) -> ComfyGen:
    """The service a strategy's searches run on: the harness's pool and store, and an ensemble of the
    strategy's verifiers (loaded once, on the first search, then shared by every prompt's search)."""
    from ..tools.app.service import ComfyGen

    cg: ComfyGen | None = getattr(st, "_search_service", None)
    if cg is None:
        names, tiny = list(st.spec.search.verifiers if st.spec.search else []), bool(cfg.tiny_scorers)

        def ensemble(s: Settings) -> Ensemble:
            from ..tools.scoring.ensemble import Ensemble

            return Ensemble.from_settings(s, names, tiny=tiny).load()

        cg = ComfyGen(settings, pool=pool, store=store, scorer_factory=ensemble)
        st._search_service = cg  # type: ignore[attr-defined]
    return cg


async def _agent(cfg: Any, st: Strategy, p: Prompt, seed: int, *, settings: Settings, pool: EndpointPool,
                 store: RunStore) -> Sample:
    from ..tools.agent.llm import make_llm
    from ..tools.agent.loop import run_ic
    from ..tools.agent.toolbox import LocalToolBox
    from ..tools.app.service import ComfyGen

    spec = st.spec.agent
    assert spec is not None
    llm = make_llm(spec.provider, model=spec.model, base_url=spec.base_url)
    request = (f"Make this image: {p.text}\nUse seed {seed} for every generate call "
               f"(the evaluation compares methods on the same seeds).")
    async with ComfyGen(settings, pool=pool, store=store) as cg:
        result = await run_ic(llm, LocalToolBox(cg), request, budget=spec.max_attempts)
    best = result.best or {}
    run_id = best.get("run_id")
    if not run_id:
        raise ComfyGenError(f"the agent made no successful run for {p.id}: {result.text[:200]}",
                            hint="check the LLM credentials and the ComfyUI endpoint")
    rec = store.get(run_id)
    run_ids = [r.get("run_id") for r in result.runs if r.get("run_id")]
    flows_tried = list(dict.fromkeys(r.get("flow_id") for r in result.runs if r.get("flow_id")))
    return Sample(strategy=st.name, prompt_id=p.id, prompt=p.text, category=p.category, seed=seed,
                  note=f"agent: {result.generations} generation(s), flows tried: {', '.join(flows_tried) or '?'}",
                  flow_id=rec.flow_id, run_id=rec.id, image=rec.outputs[0].path if rec.outputs else None,
                  gpu_seconds=_seconds(store, run_ids or [run_id]),
                  error=None if rec.outputs else "the agent's best run has no image")
