"""ComfyGen-IC through the caller's own model: it reads the score table and names flows (``suggest_flows(mode="llm")``).

The surface that can ask the caller's model (MCP sampling) sends :func:`choice_request`'s text and hands
the answer back as a :class:`ClientChoice`; :func:`apply_choice` turns it into a ranking. A surface that
cannot ask (a client without sampling, the in-process agent tool box) passes ``None`` and gets the
planner's ranking with a note that says so.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .models import FlowSuggestion, SuggestOut

if TYPE_CHECKING:
    from .service import ComfyGen

SYSTEM = ("You choose ComfyUI text-to-image workflows (flows) for a prompt. You get the prompt's categories and, "
          "per category, the flows with the best mean quality score (higher is better, n = images scored). Prefer "
          "flows that score well on all of the prompt's categories and have a large n. Answer with JSON only: "
          '{"flow_ids": ["best", "second", ...], "reason": "one sentence"}.')


@dataclass(frozen=True)
class ClientChoice:
    """What the caller's model answered, and which model it was."""

    text: str
    model: str


def choice_request(cg: ComfyGen, prompt: str, k: int) -> str:
    """The question for the caller's model: the prompt, its categories, their table rows, the planner's candidates."""
    cats = [c.id for c in cg.detect_categories(prompt)]
    table = cg.score_table(cats or None, top_k=8)
    candidates = cg.suggest(prompt, k=min(20, max(k * 2, 8)))
    return (f"Prompt: {prompt}\nCategories: {', '.join(cats) or 'none detected'}\n\nScore table:\n{table.text}\n\n"
            "Planner's candidates: " + ", ".join(f.flow_id for f in candidates.flows)
            + f"\n\nChoose the {k} best flow ids for this prompt, best first.")


def parse_choice(text: str, known: set[str]) -> tuple[list[str], str | None]:
    """Flow ids from the model's answer: its JSON if it sent some, else known ids in the order they appear."""
    ids: list[str] = []
    reason = None
    match = re.search(r"\{.*\}", text, re.S)
    if match:
        try:
            data = json.loads(match.group(0))
            ids = [str(i) for i in data.get("flow_ids", []) if isinstance(i, str)]
            reason = data.get("reason") if isinstance(data.get("reason"), str) else None
        except (json.JSONDecodeError, AttributeError):
            ids = []
    if not ids:
        found = sorted(((text.find(fid), fid) for fid in known if fid in text), key=lambda t: t[0])
        ids = [fid for _, fid in found]
    return [i for i in dict.fromkeys(ids) if i in known], reason


def apply_choice(cg: ComfyGen, planner_out: SuggestOut, choice: ClientChoice | None, k: int) -> SuggestOut:
    """The caller's model's ranking, or the planner's with a note saying why it was kept."""
    if choice is None:
        return planner_out.model_copy(update={
            "note": "this client does not support MCP sampling, so the bundled planner ranked the flows "
                    "(to choose yourself, read get_score_table and pass a flow_id to generate)"})
    known = {f.id for f in cg.library if f.executable}
    ids, reason = parse_choice(choice.text, known)
    if not ids:
        return planner_out.model_copy(update={
            "note": f"the client's model ({choice.model}) named no known flow, so the planner's ranking is shown"})
    planner_scores = {f.flow_id: f.predicted_score for f in planner_out.flows}
    flows = []
    for fid in ids[:k]:
        flow = cg.library.get(fid)
        flows.append(FlowSuggestion(
            flow_id=fid, name=flow.name, family=str(flow.family), predicted_score=planner_scores.get(fid),
            score_source="client LLM" + (" (score: planner)" if fid in planner_scores else ""),
            why=reason or cg.why(flow, planner_out.categories), runnable=cg.runnable(flow)))
    return SuggestOut(prompt=planner_out.prompt, mode="llm", note=f"chosen by the client's model {choice.model}",
                      categories=planner_out.categories, flows=flows)
