"""Evaluation samples made from what a run left in the store (or from the error that stopped it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .metrics import Sample
from .prompts import Prompt

if TYPE_CHECKING:
    from ..tools.store import RunRecord


def gpu_seconds(record: RunRecord) -> float | None:
    """ComfyUI execution time per image, from the run store timings (queue wait excluded when known)."""
    t = record.timings
    start = t.started or t.queued
    if start is None or t.finished is None:
        return None
    return max(0.0, t.finished - start) / max(1, len(record.outputs))


def sample_from_record(strategy: str, prompt: Prompt, seed: int, record: RunRecord, *, reused: bool,
                       note: str = "") -> Sample:
    return Sample(strategy=strategy, prompt_id=prompt.id, prompt=prompt.text, category=prompt.category, seed=seed,
                  flow_id=record.flow_id, run_id=record.id,
                  image=record.outputs[0].path if record.outputs else None, gpu_seconds=gpu_seconds(record),
                  reused=reused, note=note, error=None if record.outputs else "run produced no image")


def error_sample(strategy: str, prompt: Prompt, seed: int, err: BaseException, flow_id: str | None = None) -> Sample:
    msg = getattr(err, "message", None) or str(err) or type(err).__name__
    return Sample(strategy=strategy, prompt_id=prompt.id, prompt=prompt.text, category=prompt.category, seed=seed,
                  flow_id=flow_id, error=f"{type(err).__name__}: {msg}"[:500])
