"""Searches end to end against the fake ComfyUI whose executors compute ComfyUI's real noise math."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch
from search_helpers import CKPT, OnePool, TargetScorer, sd15_flow, verifiers

from comfygen.tools.search.engine import SearchConfig
from comfygen.tools.search.initial_noise import NoiseSpec, discrete_sigma_max, eps_start_scale, latent_shape, realise
from comfygen.tools.search.flow_search import run_search
from comfygen.tools.settings import Settings
from comfygen.tools.store import RunStore
from fakecomfy import FakeComfyUI
from fakecomfy_noise import NoiseExecutors

pytestmark = pytest.mark.anyio

SIZE = 64
SHAPE = latent_shape(SIZE, SIZE)
K = eps_start_scale(discrete_sigma_max())


def target_field(seed: int = 7) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(SIZE // 8, SIZE // 8, 3, generator=g).numpy()


async def _search(tmp_path, cfg: SearchConfig, scorer: TargetScorer, **kw):
    ex = NoiseExecutors()
    settings = Settings(home=tmp_path / "home")
    store = RunStore(settings.store_path)
    async with FakeComfyUI(models={"checkpoints": [CKPT]}, executors=ex.executors()) as fake:
        async with OnePool(fake.url) as pool:
            res = await run_search(sd15_flow(SIZE), "a red fox", cfg, verifiers=verifiers(scorer), pool=pool,
                                   store=store, settings=settings, **kw)
    return res, ex, store


def _check_starts(res, ex: NoiseExecutors, store: RunStore) -> int:
    """Every candidate started from K * realise(its noise): the latent the algorithm meant."""
    by_pid = {s.prompt_id: s.x_t for s in ex.starts}
    checked = 0
    for c in res.candidates:
        rec = store.get(c.run_id)
        index = next(o.index for o in rec.outputs if o.path == c.image)
        got = torch.from_numpy(by_pid[rec.comfy_prompt_id][index])
        want = K * realise(c.noise, SHAPE)[0]
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-4), c.noise.label()
        checked += 1
    return checked


async def test_random_search_finds_the_known_optimum_in_batches(tmp_path):
    scorer = TargetScorer(target_field())
    cfg = SearchConfig(algorithm="random", candidates=12, batch=5, seed=3, top_k=4)
    res, ex, store = await _search(tmp_path, cfg, scorer)
    assert len(res.candidates) == 12 and res.stop_reason == "budget"
    assert [len(r.generated) for r in res.rounds] == [5, 5, 2]
    assert len(res.run_ids) == 3 and scorer.calls == [5, 5, 2]  # three prompts, scored in batches
    # the optimum, computed independently from the recorded seeds, is the search's best
    expected = [scorer.expected(c.noise, SHAPE) for c in res.candidates]
    for c, e in zip(res.candidates, expected):
        assert c.raw["target"] == pytest.approx(e, abs=1e-3)
    assert res.best.id == int(np.argmax(expected))
    assert res.top_k[0] == res.best.id and len(res.top_k) == 4
    assert _check_starts(res, ex, store) == 12
    # each candidate is a plain seeded draw: (batch seed, batch index)
    assert all(c.noise.is_plain for c in res.candidates)
    assert {c.noise.terms[0].index for c in res.candidates} == set(range(5))
    # outputs: contact sheet + summary, scores in the store
    assert res.contact_sheet and res.summary_path
    rec = store.get(res.best.run_id)
    assert rec.score_total is not None and rec.scoring.scored_by == "noise_search" and rec.scoring.search_id
    assert rec.scoring.method == "ensemble" and rec.scoring.total == res.best.total
    assert rec.scoring.image(rec.scoring.best).candidate == res.best.id
    assert rec.params["noise_search"]["mode"] == "seeded"


async def test_zero_order_improves_and_candidates_start_from_exact_neighbours(tmp_path):
    scorer = TargetScorer(target_field())
    cfg = SearchConfig(algorithm="zero-order", candidates=21, neighbours=4, lam=0.9, rounds=5, batch=3, seed=1)
    res, ex, store = await _search(tmp_path, cfg, scorer)
    assert len(res.candidates) == 21  # 1 pivot + 5 rounds x 4 neighbours when every round accepts
    expected = [scorer.expected(c.noise, SHAPE) for c in res.candidates]
    for c, e in zip(res.candidates, expected):  # rounds of 5 split into prompts of 3 + 2: scores stay aligned
        assert c.raw["target"] == pytest.approx(e, abs=1e-3)
    assert res.best.id == int(np.argmax(expected))
    assert _check_starts(res, ex, store) == 21
    assert res.mode == "latent"
    # pivots are never re-generated: every noise was generated once
    assert len({c.noise.key() for c in res.candidates}) == len(res.candidates)
    # accepted rounds move to a strictly better pivot; the search beat its first pivot
    for r in res.rounds:
        if r.accepted is not None:
            assert res.candidates[r.accepted].raw["target"] > res.candidates[r.pivot].raw["target"]
            assert res.candidates[r.accepted].parent == r.pivot
    first_pivot = res.candidates[res.rounds[0].pivot]
    assert res.best.raw["target"] > first_pivot.raw["target"] + 0.1


async def test_zero_order_rejects_round_and_draws_fresh_pivot(tmp_path):
    """A verifier that always prefers the pivot: every round is rejected, a fresh pivot each time."""

    class PivotLover:
        name = "pivot"

        def __init__(self):
            self.n = 0

        def score(self, images, prompts):
            # the first image of every round's batch is its (new) pivot
            out = [1.0 if i == 0 else 0.0 for i in range(len(images))]
            return torch.tensor(out)

    cfg = SearchConfig(algorithm="zero-order", candidates=10, neighbours=4, lam=0.95, rounds=2, batch=8, seed=2)
    ex = NoiseExecutors()
    settings = Settings(home=tmp_path / "h")
    store = RunStore(settings.store_path)
    async with FakeComfyUI(models={"checkpoints": [CKPT]}, executors=ex.executors()) as fake:
        async with OnePool(fake.url) as pool:
            res = await run_search(sd15_flow(SIZE), "x", cfg, verifiers=verifiers(PivotLover()), pool=pool,
                                   store=store, settings=settings)
    assert [r.accepted for r in res.rounds] == [None, None]
    pivots = [c for c in res.candidates if c.role == "pivot"]
    assert len(pivots) == 2 and pivots[0].noise != pivots[1].noise
    assert len(res.candidates) == 10


async def test_wall_time_cancels_the_running_prompt(tmp_path):
    scorer = TargetScorer(target_field())
    cfg = SearchConfig(algorithm="random", candidates=40, batch=2, seed=0, wall_time_s=1.5)
    ex = NoiseExecutors()
    settings = Settings(home=tmp_path / "h")
    store = RunStore(settings.store_path)
    # a prompt takes >= 0.8 s of sampler steps and the next one starts as soon as one returns, so a
    # prompt is running when the wall time is up
    async with FakeComfyUI(models={"checkpoints": [CKPT]}, executors=ex.executors(), step_time=0.2) as fake:
        async with OnePool(fake.url) as pool:
            res = await run_search(sd15_flow(SIZE, steps=4), "x", cfg, verifiers=verifiers(scorer), pool=pool,
                                   store=store, settings=settings)
            await asyncio.sleep(0.1)
            assert fake.interrupts  # the prompt running at the deadline was interrupted on the server
            interrupted = [h for h in fake.history.values() if h["status"]["status_str"] == "error"]
            assert interrupted and not fake.pending and fake.running is None
    assert res.stop_reason == "wall_time"
    assert store.list(status="cancelled") or store.list(status="interrupted")
    assert len(res.candidates) < 40
    assert res.best is not None or not res.candidates


async def test_cancelling_the_search_stops_the_comfyui_work(tmp_path):
    scorer = TargetScorer(target_field())
    cfg = SearchConfig(algorithm="zero-order", candidates=40, neighbours=4, batch=4, seed=0)
    settings = Settings(home=tmp_path / "h")
    store = RunStore(settings.store_path)
    async with FakeComfyUI(models={"checkpoints": [CKPT]}, executors=NoiseExecutors().executors(),
                           step_time=0.05) as fake:
        async with OnePool(fake.url) as pool:
            task = asyncio.create_task(run_search(sd15_flow(SIZE), "x", cfg, verifiers=verifiers(scorer),
                                                  pool=pool, store=store, settings=settings))
            await asyncio.sleep(0.5)
            busy = fake.running is not None or bool(fake.pending)  # or between batches, scoring
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.1)
            assert not fake.pending and fake.running is None  # nothing left working on the server
            assert fake.interrupts or not busy  # what was running was interrupted
    assert store.list(status="cancelled")


async def test_patience_stops_early_and_progress_reports_best(tmp_path):
    scorer = TargetScorer(target_field())
    seen = []
    cfg = SearchConfig(algorithm="random", candidates=64, batch=4, seed=5, patience=2)
    res, _, _ = await _search(tmp_path, cfg, scorer, on_progress=seen.append)
    assert res.stop_reason == "patience" and len(res.candidates) < 64
    assert seen and seen[-1].best_id == res.best.id and seen[-1].done == len(res.candidates)
    assert all(a.done < b.done for a, b in zip(seen, seen[1:]))


@pytest.mark.parametrize("algorithm", ["random", "zero-order"])
async def test_winner_regenerates_alone_from_the_same_noise_with_more_steps(tmp_path, algorithm):
    from comfygen.tools.search.flow_search import regenerate

    scorer = TargetScorer(target_field())
    cfg = SearchConfig(algorithm=algorithm, candidates=6, neighbours=3, batch=6, seed=11)
    ex = NoiseExecutors()
    settings = Settings(home=tmp_path / "h")
    store = RunStore(settings.store_path)
    flow = sd15_flow(SIZE)
    async with FakeComfyUI(models={"checkpoints": [CKPT]}, executors=ex.executors()) as fake:
        async with OnePool(fake.url) as pool:
            res = await run_search(flow, "x", cfg, verifiers=verifiers(scorer), pool=pool, store=store,
                                   settings=settings)
            best = res.best
            rec = await regenerate(flow, "x", best.noise, mode=res.mode, pool=pool, store=store, settings=settings,
                                   steps=9)
    assert len(rec.outputs) == 1 and rec.params["noise_search"]["steps"] == 9
    sampler = next(n for n in rec.graph.values() if n["class_type"].startswith("KSampler"))
    assert sampler["inputs"]["steps"] == 9
    start = ex.starts[-1]
    assert start.prompt_id == rec.comfy_prompt_id and start.x_t.shape[0] == 1
    assert torch.allclose(torch.from_numpy(start.x_t[0]), K * realise(best.noise, SHAPE)[0], rtol=1e-5, atol=1e-4)


async def test_big_latent_batches_are_split_to_keep_graphs_small(tmp_path, monkeypatch):
    import comfygen.tools.search.generate as generate
    from comfygen.flow_library.render import render
    from comfygen.tools.search.graphs import latent_graph

    specs = [NoiseSpec.seeded(3, k) for k in range(4)]
    base = render(sd15_flow(SIZE), "x")
    assert generate.latent_nodes(specs) >= len(latent_graph(base, specs, "sd15")) - len(base)
    monkeypatch.setattr(generate, "MAX_LATENT_NODES", 40)
    scorer = TargetScorer(target_field())
    cfg = SearchConfig(algorithm="zero-order", candidates=9, neighbours=4, rounds=2, batch=8, seed=1)
    res, ex, store = await _search(tmp_path, cfg, scorer)
    assert len(res.candidates) == 9 and len(res.run_ids) > 2  # rounds were split into several prompts
    assert _check_starts(res, ex, store) == 9
