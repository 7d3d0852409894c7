"""The score table: flows x prompt categories, each cell a running mean of measured scores.

As in ComfyGen-IC (sec. 3.3), an LLM reads this table (in its compact text form) to choose a flow
for a prompt's categories. Every cell says how many measurements it holds and where they came from
(a dataset of human ratings, calibration runs, online observations). The shipped table
(``flow_library/data/score_table.json``) holds only measured numbers; a flow with no cell for a
category is simply unmeasured there.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, Field

from .errors import FlowError

SHIPPED_NAME = "score_table.json"


class Cell(BaseModel):
    """Scores of one flow on prompts of one category."""

    mean: float = Field(description="Mean score of the flow's images for prompts in this category.")
    n: int = Field(ge=0, description="Number of measurements behind the mean.")
    std: float = Field(0.0, ge=0.0, description="Sample standard deviation of those measurements (0 when n < 2).")
    sources: list[str] = Field(default_factory=list, description="Where the measurements came from.")

    @property
    def m2(self) -> float:
        """Sum of squared deviations (Welford's M2), recovered from std and n."""
        return self.std**2 * (self.n - 1) if self.n > 1 else 0.0

    @classmethod
    def from_moments(cls, n: int, mean: float, m2: float, sources: list[str]) -> "Cell":
        std = math.sqrt(max(m2, 0.0) / (n - 1)) if n > 1 else 0.0
        return cls(mean=mean, n=n, std=std, sources=sources)

    def combined(self, other: "Cell") -> "Cell":
        """Pool two cells' measurements (Chan et al.'s parallel update)."""
        n = self.n + other.n
        if n == 0:
            return self
        delta = other.mean - self.mean
        mean = self.mean + delta * other.n / n
        m2 = self.m2 + other.m2 + delta**2 * self.n * other.n / n
        sources = self.sources + [s for s in other.sources if s not in self.sources]
        return Cell.from_moments(n, mean, m2, sources)


class Ranked(BaseModel):
    flow_id: str
    score: float = Field(description="Mean of the flow's cell means over the asked categories it has data for.")
    n: int = Field(description="Measurements behind the score.")
    per_category: dict[str, float] = Field(default_factory=dict)
    coverage: int = Field(description="How many of the asked categories have a cell for this flow.")


class ScoreTable(BaseModel):
    """flow id -> category id -> Cell."""

    metric: str = Field("", description="What the scores measure and on which scale.")
    notes: str = ""
    cells: dict[str, dict[str, Cell]] = Field(default_factory=dict)

    # -- files ------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> "ScoreTable":
        path = Path(path)
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FlowError(f"score table {path} does not exist", hint="check the path") from None
        except ValueError as e:
            raise FlowError(f"score table {path} is not valid: {e}", hint="regenerate or fix the file") from e

    @classmethod
    def shipped(cls) -> "ScoreTable":
        """The bundled table of measured scores, or an empty table when none ships yet."""
        res = resources.files("comfygen.flow_library") / "data" / SHIPPED_NAME
        if not res.is_file():
            return cls()
        return cls.model_validate_json(res.read_text(encoding="utf-8"))

    def save(self, path: str | Path) -> None:
        """Write atomically (a temp file in the same folder, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.model_dump(mode="json"), fh, indent=1, sort_keys=True)
                fh.write("\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- reading ----------------------------------------------------------------------------------
    def cell(self, flow_id: str, category_id: str) -> Cell | None:
        return self.cells.get(flow_id, {}).get(category_id)

    def flows(self) -> list[str]:
        return sorted(self.cells)

    def categories(self) -> list[str]:
        return sorted({c for row in self.cells.values() for c in row})

    def __len__(self) -> int:
        return sum(len(row) for row in self.cells.values())

    # -- writing ----------------------------------------------------------------------------------
    def merge(self, other: "ScoreTable") -> "ScoreTable":
        """A new table pooling both tables' measurements cell by cell."""
        out = self.model_copy(deep=True)
        for flow_id, row in other.cells.items():
            target = out.cells.setdefault(flow_id, {})
            for cat, cell in row.items():
                target[cat] = target[cat].combined(cell) if cat in target else cell.model_copy(deep=True)
        return out

    def observe(self, flow_id: str, category_ids: list[str] | tuple[str, ...], score: float, source: str) -> None:
        """Add one measured score of ``flow_id`` on a prompt of these categories (Welford update)."""
        if not math.isfinite(score):
            raise FlowError(f"score {score!r} is not a finite number", hint="pass a measured score")
        one = Cell(mean=float(score), n=1, std=0.0, sources=[source])
        row = self.cells.setdefault(flow_id, {})
        for cat in dict.fromkeys(category_ids):
            row[cat] = row[cat].combined(one) if cat in row else one.model_copy(deep=True)

    # -- ranking ----------------------------------------------------------------------------------
    def top_k(self, categories: list[str] | tuple[str, ...], k: int = 10, *,
              flows: list[str] | None = None, min_n: int = 1) -> list[Ranked]:
        """Flows ranked by their mean score over the asked categories (cells with fewer than ``min_n``
        measurements ignored). Flows covering more of the asked categories rank first on ties."""
        wanted = list(dict.fromkeys(categories))
        ranked: list[Ranked] = []
        for flow_id in flows if flows is not None else self.cells:
            row = self.cells.get(flow_id, {})
            per = {c: row[c] for c in wanted if c in row and row[c].n >= min_n}
            if not per:
                continue
            score = sum(c.mean for c in per.values()) / len(per)
            ranked.append(Ranked(flow_id=flow_id, score=score, n=sum(c.n for c in per.values()),
                                 per_category={c: cell.mean for c, cell in per.items()}, coverage=len(per)))
        ranked.sort(key=lambda r: (-r.coverage, -r.score, -r.n, r.flow_id))
        return ranked[:k]

    def render_text(self, categories: list[str] | tuple[str, ...], k: int = 10, *, max_chars: int = 6000) -> str:
        """A compact table an LLM can read: the top ``k`` flows for these categories, mean (n) per category."""
        wanted = list(dict.fromkeys(categories))
        top = self.top_k(wanted, k)
        if not top:
            return f"No measured scores for categories {', '.join(wanted) or '(none)'}."
        head = f"Top {len(top)} flows for {', '.join(wanted)}" + (f" ({self.metric})" if self.metric else "") + ":"
        lines = [head, "flow | " + " | ".join(wanted) + " | mean"]
        for r in top:
            row = self.cells[r.flow_id]
            vals = [f"{row[c].mean:.3f} (n={row[c].n})" if c in r.per_category else "-" for c in wanted]
            line = f"{r.flow_id} | " + " | ".join(vals) + f" | {r.score:.3f}"
            if sum(len(x) + 1 for x in lines) + len(line) > max_chars:
                lines.append("...")
                break
            lines.append(line)
        return "\n".join(lines)
