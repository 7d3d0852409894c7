"""Random and zero-order noise search (Ma et al. 2025), batched through ComfyUI, verified in batches.

* Random search: N candidates ``draw(S_j, k)``, ``S_j = derive_seed(seed, "random", j)`` for batch ``j``
  and ``k`` its position in that batch; best by the verifiers over all N.
* Zero-order: a pivot noise ``x`` and K neighbours at cosine ``lam`` with the pivot's norm; the best
  neighbour becomes the pivot when it beats the pivot (compared within the round: pivot + neighbours),
  otherwise a fresh pivot ``draw(derive_seed(seed, "pivot", r), 0)``. The pivot is never re-generated
  once scored. Final ranking over every candidate seen, each counted once.

Generation of batch j+1 overlaps the scoring of batch j (random search). Budgets: candidates, rounds,
wall time (the running ComfyUI prompt is cancelled, which interrupts it on the server), optional early
stop after ``patience`` batches/rounds without a new best.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..callbacks import notify
from .generate import Generated, Mode
from .initial_noise import NoiseSpec, NoiseTerm, derive_seed, latent_shape, neighbour
from .verifiers import VerifierSet

log = logging.getLogger(__name__)

GenerateFn = Callable[[Sequence[NoiseSpec], Mode], Awaitable[list[Generated]]]


class SearchConfig(BaseModel):
    algorithm: Literal["random", "zero-order"] = "random"
    candidates: int = Field(16, ge=1, le=4096, description="Budget: images generated in total.")
    rounds: int | None = Field(None, ge=1, description="Zero-order rounds (default: until the budget is used).")
    neighbours: int = Field(4, ge=1, le=64, description="Zero-order neighbours per round.")
    lam: float = Field(0.9, ge=0.0, le=1.0, description="Cosine similarity of a neighbour to its pivot.")
    batch: int | None = Field(None, ge=1, le=64, description="Candidates per ComfyUI prompt (None: a default "
                              "for the flow's family and size).")
    seed: int = Field(0, ge=0, description="Base seed every candidate's seeds derive from.")
    wall_time_s: float | None = Field(None, gt=0, description="Stop after this long (running prompt cancelled).")
    patience: int | None = Field(None, ge=1, description="Stop after this many batches/rounds without a new best.")
    top_k: int = Field(4, ge=1, le=64)
    noise_nodes: Literal["auto", "core", "pack"] = Field(
        "auto", description="Zero-order: realise neighbours with core nodes (SD1.x/SD2.x/SDXL) or the comfygen_noise "
                            "node pack (any family); auto picks core where it is exact.")
    width: int = 512
    height: int = 512
    latent_channels: int = Field(4, ge=1, description="Latent channels of the flow's model (16 for SD3 / Flux).")


class Candidate(BaseModel):
    id: int
    round: int = Field(description="Batch (random search) or round (zero-order) that generated it.")
    role: Literal["random", "pivot", "neighbour"]
    noise: NoiseSpec
    parent: int | None = Field(None, description="The pivot a neighbour was drawn around.")
    run_id: str | None = None
    image: str | None = Field(None, description="PNG path.")
    raw: dict[str, float] = Field(default_factory=dict, description="Verifier -> raw score.")
    total: float | None = Field(None, description="The verifiers' ranking number (higher is better): the scoring "
                                "ensemble's total, or the negated mean rank over all candidates.")
    rank: int | None = Field(None, description="1 = best over all candidates.")


class RoundInfo(BaseModel):
    round: int
    pivot: int | None = None
    generated: list[int] = Field(default_factory=list)
    accepted: int | None = Field(None, description="Neighbour that became the next pivot.")
    best_so_far: int | None = None


class SearchProgress(BaseModel):
    done: int
    budget: int
    round: int
    best_id: int | None
    best_raw: dict[str, float] = Field(default_factory=dict)
    best_total: float | None = Field(None, description="The best candidate's total, as the verifiers rank it.")
    elapsed_s: float


class SearchResult(BaseModel):
    algorithm: str
    prompt: str
    config: SearchConfig
    candidates: list[Candidate]
    best: Candidate | None
    top_k: list[int] = Field(default_factory=list, description="Candidate ids, best first.")
    rounds: list[RoundInfo] = Field(default_factory=list)
    run_ids: list[str] = Field(default_factory=list)
    stop_reason: str = "budget"
    elapsed_s: float = 0.0
    generate_s: float = 0.0
    score_s: float = 0.0
    verifiers: list[str] = Field(default_factory=list)
    aggregation: str = "ensemble"
    mode: str = "seeded"
    contact_sheet: str | None = None
    summary_path: str | None = None


class _State:
    def __init__(self, cfg: SearchConfig, prompt: str, verifiers: VerifierSet, generate: GenerateFn,
                 on_progress: Callable[[SearchProgress], Any] | None):
        self.cfg, self.prompt, self.verifiers, self.generate = cfg, prompt, verifiers, generate
        self.on_progress = on_progress
        self.cands: list[Candidate] = []
        self.t0 = time.monotonic()
        self.gen_s = self.score_s = 0.0
        self.best_id: int | None = None
        self._last_best: int | None = None
        self.stale = 0
        self.stop_reason = "budget"
        self.runs: list[str] = []

    def remaining_time(self) -> float | None:
        if self.cfg.wall_time_s is None:
            return None
        return self.cfg.wall_time_s - (time.monotonic() - self.t0)

    async def run_batch(self, specs: list[NoiseSpec], mode: Mode) -> list[Generated] | None:
        left = self.remaining_time()
        if left is not None and left <= 0:
            self.stop_reason = "wall_time"
            return None
        t = time.monotonic()
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancellation that arrives as the
            # generation finishes, and the search then runs on after the caller cancelled it
            async with asyncio.timeout(left):
                gens = await self.generate(specs, mode)
        except TimeoutError:
            self.stop_reason = "wall_time"
            return None
        finally:
            self.gen_s += time.monotonic() - t
        for g in gens:
            if g.run_id and g.run_id not in self.runs:
                self.runs.append(g.run_id)
        return gens

    async def score(self, gens: list[Generated]) -> list[dict[str, float]]:
        t = time.monotonic()
        raws = await asyncio.to_thread(self.verifiers.score, [g.image for g in gens], self.prompt)
        self.score_s += time.monotonic() - t
        return raws

    def add(self, gens: list[Generated], raws: list[dict[str, float]], rnd: int, roles: list[str],
            parents: list[int | None]) -> list[Candidate]:
        new = []
        for g, raw, role, parent in zip(gens, raws, roles, parents):
            c = Candidate(id=len(self.cands), round=rnd, role=role, noise=g.noise, parent=parent, run_id=g.run_id,
                          image=g.path, raw=raw)  # type: ignore[arg-type]
            self.cands.append(c)
            new.append(c)
        self.rank()
        return new

    def rank(self) -> None:
        scored = [c for c in self.cands if c.raw]
        if not scored:
            return
        totals = self.verifiers.totals([c.raw for c in scored])
        for c, t in zip(scored, totals):
            c.total = t
        order = sorted(scored, key=lambda c: (-(c.total or 0.0), c.id))
        for r, c in enumerate(order, start=1):
            c.rank = r
        self.best_id = order[0].id

    def end_round(self) -> None:
        """Count batches/rounds without a new best (for ``patience``)."""
        if self.best_id != self._last_best:
            self._last_best, self.stale = self.best_id, 0
        else:
            self.stale += 1

    def patience_hit(self) -> bool:
        if self.cfg.patience is not None and self.stale >= self.cfg.patience:
            self.stop_reason = "patience"
            return True
        return False

    async def progress(self, rnd: int) -> None:
        best = self.cands[self.best_id] if self.best_id is not None else None
        await notify(self.on_progress, SearchProgress(
            done=len(self.cands), budget=self.cfg.candidates, round=rnd, best_id=self.best_id,
            best_raw=dict(best.raw) if best else {}, best_total=best.total if best else None,
            elapsed_s=time.monotonic() - self.t0))

    def result(self, mode: Mode, rounds: list[RoundInfo]) -> SearchResult:
        self.rank()
        order = sorted([c for c in self.cands if c.rank], key=lambda c: c.rank or 0)
        return SearchResult(
            algorithm=self.cfg.algorithm, prompt=self.prompt, config=self.cfg, candidates=self.cands,
            best=order[0] if order else None, top_k=[c.id for c in order[: self.cfg.top_k]], rounds=rounds,
            run_ids=self.runs, stop_reason=self.stop_reason, elapsed_s=time.monotonic() - self.t0,
            generate_s=self.gen_s, score_s=self.score_s, verifiers=self.verifiers.names,
            aggregation=self.verifiers.method, mode=mode)


def random_specs(cfg: SearchConfig) -> list[list[NoiseSpec]]:
    """The candidates of a random search, as the batches they are generated in."""
    batches = []
    left, j = cfg.candidates, 0
    while left > 0:
        n = min(cfg.batch or 1, left)
        seed = derive_seed(cfg.seed, "random", j)
        batches.append([NoiseSpec.seeded(seed, k) for k in range(n)])
        left -= n
        j += 1
    return batches


async def random_search(prompt: str, *, generate: GenerateFn, verifiers: VerifierSet, config: SearchConfig,
                        on_progress: Callable[[SearchProgress], Any] | None = None) -> SearchResult:
    """Best of N seeded noises. The next batch is submitted as soon as one comes back, so ComfyUI never
    waits for the verifiers: scoring batch j overlaps generating batch j+1."""
    st = _State(config, prompt, verifiers, generate, on_progress)
    rounds: list[RoundInfo] = []
    batches = random_specs(config)
    next_gen: asyncio.Task | None = None
    try:
        if batches:
            next_gen = asyncio.create_task(st.run_batch(batches[0], "seeded"))
        for j in range(len(batches)):
            assert next_gen is not None
            gens = await next_gen
            next_gen = None
            if gens is None:  # wall time
                break
            if j + 1 < len(batches) and not st.patience_hit():
                next_gen = asyncio.create_task(st.run_batch(batches[j + 1], "seeded"))
            raws = await st.score(gens)
            new = st.add(gens, raws, j, ["random"] * len(gens), [None] * len(gens))
            rounds.append(RoundInfo(round=j, generated=[c.id for c in new], best_so_far=st.best_id))
            st.end_round()
            await st.progress(j)
            if next_gen is not None and st.patience_hit():
                next_gen.cancel()  # interrupts the prompt on the server
                with contextlib.suppress(asyncio.CancelledError):
                    await next_gen
                next_gen = None
            if next_gen is None:
                break
    finally:
        if next_gen is not None and not next_gen.done():
            next_gen.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await next_gen
    return st.result("seeded", rounds)


async def zero_order_search(prompt: str, *, generate: GenerateFn, verifiers: VerifierSet, config: SearchConfig,
                            on_progress: Callable[[SearchProgress], Any] | None = None) -> SearchResult:
    """Zero-order search around a pivot noise; neighbours are exact combinations of recorded draws."""
    cfg = config
    shape = latent_shape(cfg.width, cfg.height, cfg.latent_channels)
    st = _State(cfg, prompt, verifiers, generate, on_progress)
    rounds: list[RoundInfo] = []
    pivot_spec = NoiseSpec.seeded(derive_seed(cfg.seed, "pivot", 0), 0)
    pivot: Candidate | None = None
    max_rounds = cfg.rounds if cfg.rounds is not None else math.ceil(cfg.candidates / cfg.neighbours) + 1
    for r in range(max_rounds):
        budget = cfg.candidates - len(st.cands)
        if budget <= 0 or (r > 0 and st.patience_hit()):
            break
        dir_seed = derive_seed(cfg.seed, "dir", r)
        n_nb = min(cfg.neighbours, budget - (0 if pivot else 1))
        if n_nb <= 0:
            break
        nbs = [neighbour(pivot_spec, NoiseTerm(seed=dir_seed, index=k), cfg.lam, shape) for k in range(n_nb)]
        specs = ([] if pivot else [pivot_spec]) + nbs
        roles = ([] if pivot else ["pivot"]) + ["neighbour"] * n_nb
        gens: list[Generated] = []
        raws: list[dict[str, float]] = []
        stopped = False
        step = cfg.batch or 1
        scoring: asyncio.Task | None = None
        try:
            for start in range(0, len(specs), step):
                got = await st.run_batch(specs[start:start + step], "latent")
                if scoring is not None:  # the previous chunk was scored while this one generated
                    raws += await scoring
                    scoring = None
                if got is None:
                    stopped = True
                    break
                gens += got
                scoring = asyncio.create_task(st.score(got))
            if scoring is not None:
                raws += await scoring
                scoring = None
        finally:
            if scoring is not None:
                scoring.cancel()
        if not gens:
            break
        new_pivot = pivot is None
        if new_pivot:
            pivot = st.add(gens[:1], raws[:1], r, ["pivot"], [None])[0]
            gens, raws, roles = gens[1:], raws[1:], roles[1:]
        new = st.add(gens, raws, r, roles, [pivot.id] * len(gens))
        info = RoundInfo(round=r, pivot=pivot.id, generated=([pivot.id] if new_pivot else []) + [c.id for c in new])
        # acceptance, within the round's set (pivot + its neighbours), as the seed extension ranks it
        local = [pivot] + new
        totals = verifiers.totals([c.raw for c in local])
        best_local = max(range(len(local)), key=lambda i: (totals[i], -i))
        if new and best_local != 0:
            pivot = local[best_local]
            pivot_spec = pivot.noise
            info.accepted = pivot.id
        else:
            pivot = None
            pivot_spec = NoiseSpec.seeded(derive_seed(cfg.seed, "pivot", r + 1), 0)
        info.best_so_far = st.best_id
        rounds.append(info)
        st.end_round()
        await st.progress(r)
        if stopped:
            break
    return st.result("latent", rounds)


async def search(prompt: str, *, generate: GenerateFn, verifiers: VerifierSet, config: SearchConfig,
                 on_progress: Callable[[SearchProgress], Any] | None = None) -> SearchResult:
    fn = random_search if config.algorithm == "random" else zero_order_search
    return await fn(prompt, generate=generate, verifiers=verifiers, config=config, on_progress=on_progress)
