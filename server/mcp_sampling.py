"""``suggest_flows(mode="llm")``: ask the client's own model to choose flows from the score table (MCP sampling).

This is ComfyGen's in-context method without an API key on the server: the client's LLM reads the
detected categories and the table rows for them and answers with flow ids. When the client does not
support sampling, the planner's ranking is returned with a note that says so.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from mcp.server.mcpserver import Context, Resolve, Sample
from mcp.types import CreateMessageResult, SamplingMessage, TextContent

from ..tools.app.models import FlowSuggestion, SuggestOut
from ..tools.app.service import ComfyGen
from ..tools.errors import ComfyGenError

logger = logging.getLogger(__name__)

SampledChoice = CreateMessageResult | None

SYSTEM = ("You choose ComfyUI text-to-image workflows (flows) for a prompt. You get the prompt's categories and, "
          "per category, the flows with the best mean quality score (higher is better, n = images scored). Prefer "
          "flows that score well on all of the prompt's categories and have a large n. Answer with JSON only: "
          '{"flow_ids": ["best", "second", ...], "reason": "one sentence"}.')


async def _sample(ctx: Context, prompt: str, k: int, mode: str) -> Sample | None:
    """Resolver: a sampling request when mode='llm' and the client can sample, else nothing."""
    if mode != "llm":
        return None
    caps = ctx.client_capabilities
    if caps is None or caps.sampling is None:
        return None
    cg: ComfyGen = ctx.request_context.lifespan_context
    try:
        cats = [c.id for c in cg.detect_categories(prompt)]
        table = cg.score_table(cats or None, top_k=8)
        candidates = cg.suggest(prompt, k=min(20, max(k * 2, 8)))
    except ComfyGenError:
        return None  # the tool body reports the problem
    text = (f"Prompt: {prompt}\nCategories: {', '.join(cats) or 'none detected'}\n\nScore table:\n{table.text}\n\n"
            "Planner's candidates: " + ", ".join(f.flow_id for f in candidates.flows)
            + f"\n\nChoose the {k} best flow ids for this prompt, best first.")
    return Sample([SamplingMessage(role="user", content=TextContent(text=text))], max_tokens=500,
                  system_prompt=SYSTEM, temperature=0.0)


sample_choice = Resolve(_sample)


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


def llm_choice(cg: ComfyGen, planner_out: SuggestOut, sampled: SampledChoice, k: int) -> SuggestOut:
    if sampled is None:
        return planner_out.model_copy(update={
            "note": "this client does not support MCP sampling, so the bundled planner ranked the flows "
                    "(to choose yourself, read get_score_table and pass a flow_id to generate)"})
    content: Any = sampled.content
    text = getattr(content, "text", "") if not isinstance(content, list) else " ".join(
        getattr(c, "text", "") for c in content)
    known = {f.id for f in cg.library if f.executable}
    ids, reason = parse_choice(text or "", known)
    if not ids:
        return planner_out.model_copy(update={
            "note": f"the client's model ({sampled.model}) named no known flow, so the planner's ranking is shown"})
    planner_scores = {f.flow_id: f.predicted_score for f in planner_out.flows}
    flows = []
    for fid in ids[:k]:
        flow = cg.library.get(fid)
        flows.append(FlowSuggestion(
            flow_id=fid, name=flow.name, family=str(flow.family), predicted_score=planner_scores.get(fid),
            score_source="client LLM" + (" (score: planner)" if fid in planner_scores else ""),
            why=reason or cg._why(flow, planner_out.categories), runnable=cg.runnable(flow)))
    return SuggestOut(prompt=planner_out.prompt, mode="llm", note=f"chosen by the client's model {sampled.model}",
                      categories=planner_out.categories, flows=flows)
