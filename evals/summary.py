"""Every number of an evaluation run, computed from its samples, as JSON and CSV files.

A run directory holds ``run.json`` (the resolved config and run facts) and ``samples.jsonl`` (one
:class:`~comfygen.evals.metrics.Sample` a line). :func:`summarize` turns them into one JSON-able dict;
:func:`write_tables` writes ``results.json`` and one CSV per table.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any


from .geneval import TASKS, geneval_table
from .metrics import Sample, cost, diversity, mean_scores, win_matrix

SAMPLES_FILE = "samples.jsonl"
RUN_FILE = "run.json"
RESULTS_FILE = "results.json"


def load_samples(run_dir: Path) -> list[Sample]:
    path = Path(run_dir) / SAMPLES_FILE
    if not path.exists():
        return []
    out: dict[tuple[str, str, int], Sample] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            s = Sample.model_validate_json(line)
            out[(s.strategy, s.prompt_id, s.seed)] = s  # a later line (rescored, retried) wins
    return list(out.values())


def load_run(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / RUN_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _nan_to_none(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_to_none(v) for v in x]
    return x


def summarize(samples: Sequence[Sample], *, strategies: Sequence[str] | None = None, heldout: str | None = None,
              baseline: str | None = None, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """All tables: win rates (held-out scorer), mean scores (overall and per category), diversity, cost, GenEval."""
    strategies = list(strategies or sorted({s.strategy for s in samples}))
    scorers = sorted({k for s in samples for k in s.scores})
    if heldout is None and scorers:
        heldout = scorers[0]
    ok = [s for s in samples if s.error is None]
    wins = win_matrix(ok, strategies, heldout, n_boot=n_boot, seed=seed) if heldout else []
    cats = sorted({s.category for s in samples})
    per_cat = [m for m in mean_scores(ok, by_category=True) if m.scorer == heldout]
    geneval_rows = [(s.strategy, s.category, s.geneval_correct) for s in ok if s.geneval_correct is not None]
    gtable = geneval_table(geneval_rows) if geneval_rows else {}
    # "Overall" over every scored (strategy, prompt, seed): the strategy fails a prompt it produced nothing for
    failures = {st: sum(1 for s in samples if s.strategy == st and s.error is not None) for st in strategies}
    prompts = sorted({s.prompt_id for s in samples})
    per_prompt: dict[str, set[int]] = {}
    for s in samples:
        per_prompt.setdefault(s.prompt_id, set()).add(s.seed)
    return _nan_to_none({
        "strategies": strategies,
        "heldout_scorer": heldout,
        "baseline": baseline,
        "scorers": scorers,
        "categories": cats,
        "n_prompts": len(prompts),
        "seeds_per_prompt": max((len(v) for v in per_prompt.values()), default=0),
        "n_samples": len(samples),
        "failures": failures,
        "win_rates": [w.model_dump() for w in wins],
        "mean_scores": [m.model_dump() for m in mean_scores(ok)],
        "category_scores": [m.model_dump() for m in per_cat],
        "diversity": [d.model_dump() for d in diversity(ok)],
        "cost": [c.model_dump() for c in cost(samples)],
        "geneval": {"columns": [label for _, label in TASKS] + ["Overall"], "table": gtable,
                    "n": {st: sum(1 for r in geneval_rows if r[0] == st) for st in strategies}} if gtable else None,
    })


def win_lookup(summary: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(w["a"], w["b"]): w for w in summary.get("win_rates", [])}


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        path.write_text("", encoding="utf-8")
        return
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})


def write_tables(run_dir: Path, summary: dict[str, Any], samples: Sequence[Sample]) -> list[Path]:
    run_dir = Path(run_dir)
    (run_dir / RESULTS_FILE).write_text(json.dumps(summary, indent=2, allow_nan=False), encoding="utf-8")
    files = [run_dir / RESULTS_FILE]
    for key in ("win_rates", "mean_scores", "category_scores", "diversity", "cost"):
        _write_csv(run_dir / f"{key}.csv", summary.get(key) or [])
        files.append(run_dir / f"{key}.csv")
    if summary.get("geneval"):
        rows = [{"strategy": st, **row, "images": summary["geneval"]["n"].get(st)}
                for st, row in summary["geneval"]["table"].items()]
        _write_csv(run_dir / "geneval.csv", rows)
        files.append(run_dir / "geneval.csv")
    rows = []
    for s in sorted(samples, key=lambda s: (s.strategy, s.prompt_id, s.seed)):
        d = s.model_dump(exclude={"scores"})
        d.update({f"score.{k}": v for k, v in sorted(s.scores.items())})
        rows.append(d)
    keys = sorted({k for r in rows for k in r}, key=lambda k: (k.startswith("score."), k))
    _write_csv(run_dir / "samples.csv", [{k: r.get(k) for k in keys} for r in rows])
    files.append(run_dir / "samples.csv")
    return files

