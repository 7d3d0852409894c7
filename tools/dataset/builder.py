"""Dataset builder: prompts x flows -> run -> score -> (prompt, flow, score) triplets.

Resumable by construction. Every finished triplet is appended (one JSON line, flushed and fsynced) to
``<out>/triplets.jsonl`` before the next job starts; a torn last line from a killed process is ignored on
reload. Generations live in the run store: on restart, a job whose run already succeeded is found with
``RunStore.find_existing`` and only scored (or reused as is), never generated again.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Literal

from pydantic import BaseModel, Field

from ..errors import ComfyGenError

logger = logging.getLogger(__name__)

Plan = Literal["grid", "random"]
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


def plan_items(prompts: list[tuple[str, str, list[str]]], flows: list[str], *, plan: Plan = "grid",
               per_prompt: int | None = None, seeds: int = 1, seed: int = 0) -> list[BuildItem]:
    """Jobs for (prompt_id, text, categories) x flows: every flow (grid) or ``per_prompt`` random flows."""
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


def ensemble_score_fn(store: Any, ensemble: Any) -> ScoreFn:
    """Score a finished run with an :class:`Ensemble` (mean over its images); writes scores to the store."""
    import asyncio

    from ..scoring.runs import score_run

    async def score(record: Any) -> tuple[float, dict[str, float]]:
        results = await asyncio.to_thread(score_run, store, record.id, ensemble)
        total = sum(r.total for r in results) / len(results)
        raw = {k: sum(r.raw[k] for r in results) / len(results) for k in results[0].raw}
        return float(total), raw

    return score


async def build(items: Iterable[BuildItem], out: Path, *, library: Any, pool: Any, store: Any, settings: Any,
                score: ScoreFn, width: int | None = None, height: int | None = None,
                on_progress: Callable[[int, int, Triplet | None], None] | None = None) -> list[Triplet]:
    """Run every job not yet in ``<out>/triplets.jsonl``; returns all triplets (old and new)."""
    from ..pipeline import run_flow, run_params

    items = list(items)
    log = ProgressLog(out)
    done = {t.key: t for t in log.load()}
    (out / SPEC).write_text(json.dumps({"jobs": len(items), "flows": sorted({i.flow_id for i in items}),
                                        "prompts": len({i.prompt_id for i in items})}, indent=1))
    todo = [i for i in items if i.key not in done]
    total, finished = len(items), len(items) - len(todo)
    if on_progress:
        on_progress(finished, total, None)
    for item in todo:
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
        t = Triplet(prompt_id=item.prompt_id, prompt=item.prompt, flow=flow.id, score=total_score, seed=item.seed,
                    categories=item.categories, scores=raw, run_id=record.id, reused=reused)
        log.append(t)
        done[t.key] = t
        finished += 1
        if on_progress:
            on_progress(finished, total, t)
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
