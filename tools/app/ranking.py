"""How flows are ranked and explained for a prompt: the planner's ranking and the one-line reasons a caller reads.

Pure functions over the planner, the score table and the user's own measurements; the service
(``service.py``) gathers those and calls these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...flow_library.library import FlowLibrary
from ...flow_library.model import Flow
from .models import DetectedCategory

if TYPE_CHECKING:
    from ...flow_library.score_table import ScoreTable
    from ..planner import Planner
    from ..planner.coverage import FlowPrediction
    from ..planner.planner import Prediction


def rank_flows(planner: Planner, prompt: str, library: FlowLibrary, *, k: int, allowed: set[str],
               target_score: float | None = None, user: dict[str, tuple[float, float, int]] | None = None,
               per_model: int | None = None) -> list[FlowPrediction] | list[Prediction]:
    """A planner's best ``k`` flows of ``allowed`` for a prompt, best first (each with ``flow_id`` and ``score``).

    The bundled planner ranks the whole library, every flow with its provenance (and the user's own
    measurements); a planner that knows only its own flows (an older or experimental one) ranks those.
    The service's suggestions and the eval harness's ComfyGen-FT strategy both choose through here.
    ``per_model`` keeps at most that many flows of one model file among the ``k`` (the best flow first
    always): twenty sampler variants of the best model are no alternatives to an agent whose first try
    disappointed.
    """
    if hasattr(planner, "rank_prompt"):
        wide = len(library) if per_model else k
        ranked = list(planner.rank_prompt(prompt, library, k=wide, allowed=allowed, target_score=target_score,
                                          user=user))
    else:
        preds = planner.predict(prompt, k=len(allowed) if per_model else k, target_score=target_score,
                                allowed=allowed)
        ranked = [p for p in preds if p.flow_id in allowed]
    return spread_models(ranked, library, k, per_model) if per_model else ranked[:k]


def spread_models(ranked: list[Any], library: FlowLibrary, k: int, per_model: int) -> list[Any]:
    """The first ``k`` of ``ranked`` taking at most ``per_model`` flows of one main model file; the order is kept,
    and flows passed over fill the list only when too few models are left."""
    from ..planner.coverage import model_key

    seen: dict[str, int] = {}
    kept, passed = [], []
    for p in ranked:
        main = model_key(library.get(p.flow_id))[0] if p.flow_id in library else ""
        key = main or p.flow_id
        seen[key] = seen.get(key, 0) + 1
        (kept if seen[key] <= per_model else passed).append(p)
        if len(kept) == k:
            break
    return (kept + passed)[:k]


def table_why(table: ScoreTable, flow: Flow, cats: list[DetectedCategory], source: str = "planner") -> str:
    """One line on why a flow fits: its best table cell among the prompt's categories, else its family and tags."""
    best: tuple[float, str, Any] | None = None
    for cat in cats:
        cell = table.cell(flow.id, cat.id)
        if cell is not None and (best is None or cell.mean > best[0]):
            best = (cell.mean, cat.id, cell)
    family = f"{flow.family} flow"
    if best is not None:
        mean, cat, cell = best
        src = ", ".join(cell.sources[:2]) or "own runs"
        return f"{family}; scores {mean:.3f} on '{cat}' prompts (n={cell.n}, {src})"
    tags = ", ".join(flow.tags[:3])
    by = {"planner": "; ranked by the planner for this prompt", "score table": "; ranked by its table scores"}
    return f"{family}{'; ' + tags if tags else ''}{by.get(source, '')}"


def planner_why(flow: Flow, p: FlowPrediction, cats: list[DetectedCategory], planner: Planner) -> str:
    """One line on a planner pick: its provenance, prediction and interval on the joint scale, whose ratings."""
    kind = f"'{cats[0].id}' prompt" if cats else "prompt"
    if p.provenance == "none":
        return f"{flow.family} flow; {p.note}: no human ratings say how good it is, so it is ranked last"
    rated = (p.anchor or "").split(", ")
    from ..planner.sources import scale_title

    srcs = sorted({scale_title(s).split(",")[0] for f in rated for s in planner.config.flow_sources.get(f, [])})
    by = f"human ratings: {', '.join(srcs)}" if srcs else "from the planner's training data"
    what = {"rated": "rated model", "inherited": "inherited", "family prior": "family prior",
            "measured": "measured"}[p.provenance]
    zero = " (0 = SDXL base)" if "rated-sdxl-base" in planner.config.quality else ""
    note = "" if p.provenance == "rated" else f"; {p.note}"
    return (f"{flow.family} flow, {what}: predicted {p.score:+.2f} ± {p.sd:.2f} on the joint quality "
            f"scale{zero} for this {kind}; {by}{note}")


def user_cells(user: ScoreTable | None, cats: list[str]) -> dict[str, tuple[float, float, int]]:
    """The user's own measurements (calibration, scored runs) in the prompt's categories: flow -> (mean,
    sd, n), pooled over the categories."""
    if user is None or not cats:
        return {}
    out: dict[str, tuple[float, float, int]] = {}
    for fid in user.flows():
        cells = [c for c in (user.cell(fid, cat) for cat in cats) if c is not None and c.n > 0]
        if not cells:
            continue
        pooled = cells[0]
        for c in cells[1:]:
            pooled = pooled.combined(c)
        out[fid] = (pooled.mean, pooled.std, pooled.n)
    return out
