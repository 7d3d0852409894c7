"""Triplet tables: (prompt, flow, score) rows as a prompts x flows matrix with missing cells."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import PlannerError

REQUIRED = ("prompt_id", "prompt", "flow", "score")


@dataclass
class TripletTable:
    """Scores as a dense matrix: ``scores[i, j]`` is prompt i under flow j (NaN where not measured).

    Repeated (prompt, flow) rows are averaged (several seeds or raters of the same pair).
    """

    prompt_ids: list[str]
    prompts: list[str]
    flows: list[str]
    scores: np.ndarray
    counts: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.counts is None:
            self.counts = (~np.isnan(self.scores)).astype(np.int32)

    @property
    def mask(self) -> np.ndarray:
        return ~np.isnan(self.scores)

    def __len__(self) -> int:
        return len(self.prompt_ids)

    def subset(self, rows: np.ndarray | list[int]) -> "TripletTable":
        rows = np.asarray(rows, dtype=int)
        return TripletTable([self.prompt_ids[i] for i in rows], [self.prompts[i] for i in rows], list(self.flows),
                            self.scores[rows].copy(), self.counts[rows].copy())

    def select_flows(self, flows: list[str]) -> "TripletTable":
        """The table with only these flows' columns (in this order)."""
        missing = [f for f in flows if f not in self.flows]
        if missing:
            raise PlannerError(f"flows not in the triplets: {', '.join(missing)}",
                               hint=f"the file's flows: {', '.join(self.flows)}")
        cols = [self.flows.index(f) for f in flows]
        return TripletTable(list(self.prompt_ids), list(self.prompts), list(flows), self.scores[:, cols].copy(),
                            self.counts[:, cols].copy())

    def flow_means(self) -> np.ndarray:
        """Mean score per flow over the prompts where it was measured (NaN for never-measured flows)."""
        with np.errstate(invalid="ignore"):
            return np.nansum(self.scores, 0) / np.maximum(self.mask.sum(0), 1) + np.where(self.mask.any(0), 0, np.nan)

    def flow_order(self, min_fraction: float = 0.2) -> list[int]:
        """Flows ranked by mean score; flows measured on fewer than ``min_fraction`` of the best-covered
        flow's prompts come last (a mean over a handful of prompts is not a reliable 'best single flow')."""
        n = self.mask.sum(0)
        means = np.nan_to_num(self.flow_means(), nan=-np.inf)
        reliable = n >= max(1, min_fraction * n.max())
        return sorted(range(len(self.flows)), key=lambda j: (not reliable[j], -means[j]))

    def to_rows(self) -> list[dict[str, object]]:
        out = []
        for i, pid in enumerate(self.prompt_ids):
            for j, flow in enumerate(self.flows):
                if not math.isnan(self.scores[i, j]):
                    out.append({"prompt_id": pid, "prompt": self.prompts[i], "flow": flow,
                                "score": float(self.scores[i, j])})
        return out


def concat_tables(parts: list[TripletTable]) -> TripletTable:
    """Stack tables with distinct prompt ids over the union of their flows."""
    flows = sorted({f for t in parts for f in t.flows})
    col = {f: j for j, f in enumerate(flows)}
    n = sum(len(t) for t in parts)
    scores = np.full((n, len(flows)), np.nan)
    counts = np.zeros((n, len(flows)), dtype=np.int32)
    ids: list[str] = []
    prompts: list[str] = []
    row = 0
    for t in parts:
        cols = [col[f] for f in t.flows]
        scores[row:row + len(t), cols] = t.scores
        counts[row:row + len(t), cols] = t.counts
        ids += t.prompt_ids
        prompts += t.prompts
        row += len(t)
    if len(set(ids)) != len(ids):
        raise PlannerError("two training files use the same prompt id", hint="prefix prompt ids by source")
    return TripletTable(ids, prompts, flows, scores, counts)


def table_from_rows(rows: list[dict[str, object]], *, score_column: str = "score") -> TripletTable:
    """Build a table from dict rows with ``prompt_id, prompt, flow`` and a score column."""
    pid_index: dict[str, int] = {}
    prompts: list[str] = []
    flow_index: dict[str, int] = {}
    cells: list[tuple[int, int, float]] = []
    for n, row in enumerate(rows):
        try:
            pid, prompt, flow = str(row["prompt_id"]), str(row["prompt"]), str(row["flow"])
            raw = row[score_column]
        except KeyError as e:
            raise PlannerError(f"row {n + 1} lacks column {e.args[0]!r}",
                               hint=f"triplet files need the columns {', '.join(REQUIRED)}") from None
        if raw is None or str(raw).strip() == "":
            continue
        try:
            score = float(raw)  # type: ignore[arg-type]
        except ValueError:
            raise PlannerError(f"row {n + 1}: score {raw!r} is not a number", hint="scores must be numbers") from None
        if not math.isfinite(score):
            continue
        if pid not in pid_index:
            pid_index[pid] = len(prompts)
            prompts.append(prompt)
        if flow not in flow_index:
            flow_index[flow] = len(flow_index)
        cells.append((pid_index[pid], flow_index[flow], score))
    if not cells:
        raise PlannerError("no (prompt, flow, score) rows found", hint=f"the file needs columns {', '.join(REQUIRED)}")
    flows = sorted(flow_index)
    remap = {flow_index[f]: j for j, f in enumerate(flows)}
    total = np.zeros((len(prompts), len(flows)))
    counts = np.zeros((len(prompts), len(flows)), dtype=np.int32)
    for i, j, s in cells:
        total[i, remap[j]] += s
        counts[i, remap[j]] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(counts > 0, total / np.maximum(counts, 1), np.nan)
    return TripletTable(list(pid_index), prompts, flows, scores, counts)


def load_triplets(path: str | Path, *, score_column: str = "score") -> TripletTable:
    """Read a triplet CSV (``prompt_id,prompt,flow,score``; other columns are ignored)."""
    path = Path(path)
    if not path.is_file():
        raise PlannerError(f"triplet file {str(path)!r} not found", hint="pass a CSV with prompt_id,prompt,flow,score")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("prompt_id", "prompt", "flow", score_column) if c not in (reader.fieldnames or [])]
        if missing:
            raise PlannerError(f"{path.name} lacks the columns {missing}",
                               hint=f"the header must include {', '.join(REQUIRED)}")
        return table_from_rows(list(reader), score_column=score_column)


def grouped_folds(n: int, k: int, seed: int = 0) -> list[np.ndarray]:
    """K folds over prompt indices (every prompt's flows stay in one fold)."""
    if k < 2 or k > n:
        raise PlannerError(f"cannot make {k} folds from {n} prompts", hint="use 2 <= folds <= number of prompts")
    perm = np.random.default_rng(seed).permutation(n)
    return [np.sort(f) for f in np.array_split(perm, k)]
