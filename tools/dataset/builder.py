"""Dataset builder: prompts x flows -> run -> score -> (prompt, flow, score) triplets.

Resumable by construction. Every finished triplet is appended (one JSON line, flushed and fsynced) to
``<out>/triplets.jsonl`` before the next job starts; a torn last line from a killed process is ignored on
reload. Generations live in the run store: on restart, a job whose run already succeeded is found with
``RunStore.find_existing`` and only scored (or reused as is), never generated again.

Plans: ``grid`` and ``random`` are fixed job lists (:func:`plan_items`, :func:`build`); ``halving``
(:func:`build_halving`) decides its next jobs from the scores so far, per category (see ``halving.py``).
Its decisions are recomputed from the log on every step, so a restarted build takes the same ones.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Literal

from pydantic import BaseModel, Field

from ..errors import ComfyGenError
from .halving import DEFAULT_ETA, DEFAULT_N0, max_prompts_per_flow, successive_halving

if TYPE_CHECKING:
    from ...flow_library.library import FlowLibrary
    from ..comfy.pool import EndpointPool
    from ..scoring.ensemble import Ensemble
    from ..settings import Settings
    from ..store import RunStore

logger = logging.getLogger(__name__)

Plan = Literal["grid", "random", "halving"]
Prompt = tuple[str, str, list[str]]  # (prompt_id, text, categories)
UNCATEGORIZED = "(uncategorized)"
TRIPLETS = "triplets.jsonl"
SPEC = "spec.json"


class BuildItem(BaseModel):
    prompt_id: str
    prompt: str
    flow_id: str
    seed: int
    categories: list[str] = Field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.prompt_id}\x1f{self.flow_id}\x1f{self.seed}"


class Triplet(BaseModel):
    prompt_id: str
    prompt: str
    flow: str
    score: float
    seed: int
    categories: list[str] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict, description="Per-scorer raw scores.")
    run_id: str
    reused: bool = False
    created: float = Field(default_factory=time.time)

    @property
    def key(self) -> str:
        return f"{self.prompt_id}\x1f{self.flow}\x1f{self.seed}"


def plan_items(prompts: list[Prompt], flows: list[str], *, plan: Plan = "grid",
               per_prompt: int | None = None, seeds: int = 1, seed: int = 0) -> list[BuildItem]:
    """Jobs for (prompt_id, text, categories) x flows: every flow (grid) or ``per_prompt`` random flows."""
    if plan not in ("grid", "random"):
        raise ValueError(f"plan_items makes grid or random plans, not {plan!r} (halving: build_halving)")
    rng = random.Random(seed)
    items = []
    for pid, text, cats in prompts:
        chosen = list(flows) if plan == "grid" else rng.sample(list(flows), min(per_prompt or 1, len(flows)))
        for flow in chosen:
            for s in range(seeds):
                items.append(BuildItem(prompt_id=pid, prompt=text, flow_id=flow, seed=seed * 1000 + s,
                                       categories=cats))
    return items


class ProgressLog:
    """Append-only JSONL of finished triplets."""

    def __init__(self, out: Path):
        self.path = out / TRIPLETS
        out.mkdir(parents=True, exist_ok=True)

    def load(self) -> list[Triplet]:
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(Triplet.model_validate_json(line))
            except ValueError:
                logger.warning("skipping a torn or invalid line in %s", self.path)
        return out

    def append(self, t: Triplet) -> None:
        data = t.model_dump_json() + "\n"
        with self.path.open("a", encoding="utf-8") as fh:
            if fh.tell() > 0 and not self.path.read_bytes().endswith(b"\n"):
                fh.write("\n")  # a killed writer left a partial line: start a fresh one
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


ScoreFn = Callable[[Any], Awaitable[tuple[float, dict[str, float]]]]


def ensemble_score_fn(store: RunStore, ensemble: Ensemble) -> ScoreFn:
    """Score a finished run with an :class:`Ensemble` (mean over its images); writes scores to the store."""
    import asyncio

    from ..scoring.stored_runs import score_run

    async def score(record: Any) -> tuple[float, dict[str, float]]:
        results = await asyncio.to_thread(score_run, store, record.id, ensemble)
        total = sum(r.total for r in results) / len(results)
        raw = {k: sum(r.raw[k] for r in results) / len(results) for k in results[0].raw}
        return float(total), raw

    return score


async def _run_job(item: BuildItem, *, library: FlowLibrary, pool: EndpointPool, store: RunStore, settings: Settings,
                   score: ScoreFn,
                   width: int | None, height: int | None) -> Triplet:
    """Generate (or find in the run store) and score one job."""
    from ..pipeline import run_flow, run_params

    flow = library.get(item.flow_id)
    params = run_params(flow, negative=None, width=width, height=height, batch=1, accelerate="none")
    record = store.find_existing(flow.id, item.prompt, item.seed, params)
    reused = record is not None
    if record is None:
        record = await run_flow(flow, item.prompt, seed=item.seed, width=width, height=height, pool=pool,
                                store=store, settings=settings)
    if record.status != "succeeded":
        raise ComfyGenError(f"run {record.id} of {flow.id} ended {record.status}",
                            hint="check `comfygen runs show`; restart the build to retry")
    if reused and record.score_total is not None and record.scores:
        total_score, raw = float(record.score_total), dict(record.scores)
    else:
        total_score, raw = await score(record)
    return Triplet(prompt_id=item.prompt_id, prompt=item.prompt, flow=flow.id, score=total_score, seed=item.seed,
                   categories=item.categories, scores=raw, run_id=record.id, reused=reused)


async def build(items: Iterable[BuildItem], out: Path, *, library: FlowLibrary, pool: EndpointPool, store: RunStore,
                settings: Settings,
                score: ScoreFn, width: int | None = None, height: int | None = None,
                on_progress: Callable[[int, int, Triplet | None], None] | None = None) -> list[Triplet]:
    """Run every job not yet in ``<out>/triplets.jsonl``; returns all triplets (old and new)."""
    items = list(items)
    log = ProgressLog(out)
    done = {t.key: t for t in log.load()}
    (out / SPEC).write_text(json.dumps({"jobs": len(items), "flows": sorted({i.flow_id for i in items}),
                                        "prompts": len({i.prompt_id for i in items})}, indent=1))
    todo = [i for i in items if i.key not in done]
    total, finished = len(items), len(items) - len(todo)
    if on_progress:
        on_progress(finished, total, None)
    run = _logged_runner(log, done, library=library, pool=pool, store=store, settings=settings, score=score,
                         width=width, height=height)
    for item in todo:
        t = await run(item)
        finished += 1
        if on_progress:
            on_progress(finished, total, t)
    return list(done.values())


def _logged_runner(log: ProgressLog, done: dict[str, Triplet], **job_kwargs: Any) -> Callable[[BuildItem], Any]:
    """Run one job, append its triplet to the log (the resume point), and remember it."""

    async def run(item: BuildItem) -> Triplet:
        t = await _run_job(item, **job_kwargs)
        log.append(t)
        done[t.key] = t
        return t

    return run


def halving_groups(prompts: list[Prompt], seed: int = 0) -> dict[str, list[str]]:
    """Prompt ids per category, every category in one shared random order (so categories share cells)."""
    order = [pid for pid, _, _ in prompts]
    random.Random(seed).shuffle(order)
    cats = {pid: c or [UNCATEGORIZED] for pid, _, c in prompts}
    groups: dict[str, list[str]] = {}
    for pid in order:
        for c in cats[pid]:
            groups.setdefault(c, []).append(pid)
    return groups


def halving_max_runs(prompts: list[Prompt], flows: list[str], *, n0: int = DEFAULT_N0, eta: int = DEFAULT_ETA,
                     seeds: int = 1, seed: int = 0) -> int:
    """Most jobs the halving plan can run (what the progress bar counts to); the grid's count at most."""
    reach: dict[str, int] = {}  # per prompt: how many flows can reach it, summed over its categories
    for pids in halving_groups(prompts, seed).values():
        per_flow = max_prompts_per_flow(len(pids), len(flows), n0=n0, eta=eta)
        for pos, pid in enumerate(pids):
            reach[pid] = reach.get(pid, 0) + sum(r > pos for r in per_flow)
    return seeds * sum(min(len(flows), r) for r in reach.values())


def halving_items(prompts: list[Prompt], flows: list[str], done: dict[str, Triplet], *, n0: int = DEFAULT_N0,
                  eta: int = DEFAULT_ETA, seeds: int = 1, seed: int = 0) -> list[BuildItem]:
    """The jobs the halving plan needs next, given the finished triplets; empty when every category is done.

    A (prompt, flow) cell's score is the mean over its ``seeds`` triplets, known once all of them are done.
    """
    by_id = {pid: (text, cats) for pid, text, cats in prompts}
    seed_values = [seed * 1000 + s for s in range(seeds)]
    known: dict[tuple[str, str], float] = {}
    for pid in by_id:
        for flow in flows:
            ts = [done.get(f"{pid}\x1f{flow}\x1f{sv}") for sv in seed_values]
            if all(ts):
                known[(pid, flow)] = sum(t.score for t in ts if t) / seeds
    items: dict[str, BuildItem] = {}
    for pids in halving_groups(prompts, seed).values():
        for pid, flow in successive_halving(pids, flows, known, n0=n0, eta=eta).pending:
            for sv in seed_values:
                item = BuildItem(prompt_id=pid, prompt=by_id[pid][0], flow_id=flow, seed=sv, categories=by_id[pid][1])
                if item.key not in done:
                    items.setdefault(item.key, item)
    return list(items.values())


async def build_halving(prompts: list[Prompt], flows: list[str], out: Path, *, n0: int = DEFAULT_N0,
                        eta: int = DEFAULT_ETA, seeds: int = 1, seed: int = 0, library: FlowLibrary, pool: EndpointPool,
                        store: RunStore, settings: Settings, score: ScoreFn, width: int | None = None, height: int | None = None,
                        on_progress: Callable[[int, int, Triplet | None], None] | None = None) -> list[Triplet]:
    """Successive halving per category: run a round's jobs, score, keep the better flows, repeat.

    Resumes like :func:`build`: the log's triplets are reused, and the rounds are replayed from them.
    The progress total is the plan's maximum run count; the bar ends full when halving stops earlier.
    """
    flows = list(dict.fromkeys(flows))
    log = ProgressLog(out)
    done = {t.key: t for t in log.load()}
    total = halving_max_runs(prompts, flows, n0=n0, eta=eta, seeds=seeds, seed=seed)
    (out / SPEC).write_text(json.dumps({"plan": "halving", "jobs": total, "flows": sorted(flows),
                                        "prompts": len(prompts), "n0": n0, "eta": eta, "seeds": seeds}, indent=1))
    ids, seed_values = {pid for pid, _, _ in prompts}, {seed * 1000 + s for s in range(seeds)}
    finished = sum(t.prompt_id in ids and t.flow in flows and t.seed in seed_values for t in done.values())
    if on_progress:
        on_progress(finished, total, None)
    run = _logged_runner(log, done, library=library, pool=pool, store=store, settings=settings, score=score,
                         width=width, height=height)
    while todo := halving_items(prompts, flows, done, n0=n0, eta=eta, seeds=seeds, seed=seed):
        for item in todo:
            t = await run(item)
            finished += 1
            if on_progress:
                on_progress(finished, max(total, finished), t)
    if on_progress:
        on_progress(finished, finished, None)
    return list(done.values())


def export(out: Path, dest: Path, fmt: Literal["csv", "jsonl", "parquet"] | None = None) -> int:
    """Write the triplets as CSV (``prompt_id,prompt,flow,score`` first, planner-ready), JSONL or Parquet."""
    rows = [t.model_dump() for t in ProgressLog(out).load()]
    fmt = fmt or dest.suffix.lstrip(".")  # type: ignore[assignment]
    flat = [{"prompt_id": r["prompt_id"], "prompt": r["prompt"], "flow": r["flow"], "score": r["score"],
             "seed": r["seed"], "categories": "|".join(r["categories"]), "run_id": r["run_id"],
             **{f"score_{k}": v for k, v in r["scores"].items()}} for r in rows]
    dest.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        dest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "csv":
        import csv

        cols = list(dict.fromkeys(k for r in flat for k in r))
        with dest.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=cols)
            w.writeheader()
            w.writerows(flat)
    elif fmt == "parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as e:
            raise ComfyGenError("Parquet export needs pyarrow", hint='pip install "comfygen[parquet]"') from e
        pq.write_table(pa.Table.from_pylist(flat), str(dest))
    else:
        raise ComfyGenError(f"unknown export format {fmt!r}", hint="use csv, jsonl or parquet")
    return len(rows)
