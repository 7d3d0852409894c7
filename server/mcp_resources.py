"""Resources (flows, categories, score table, full-resolution run images and records) and the make-image prompt."""

from __future__ import annotations

import json
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

from ..tools.app.service import ComfyGen
from ..tools.errors import ComfyGenError

MAX_RESOURCE_BYTES = 32 * 1024 * 1024


def register_resources(mcp: MCPServer, cg: ComfyGen) -> None:
    @mcp.resource("comfygen://categories", name="categories", mime_type="application/json",
                  description="The prompt categories the score table is organised by.")
    def categories() -> str:
        from ..flow_library.categories import CATEGORIES

        return json.dumps([c.model_dump() for c in CATEGORIES], indent=1)

    @mcp.resource("flow://{flow_id}", name="flow", mime_type="application/json",
                  description="A flow: its metadata and ready-to-queue ComfyUI API JSON (prompt slots unfilled).")
    def flow(flow_id: str) -> str:
        try:
            f = cg.get_flow(flow_id)
        except ComfyGenError as e:
            raise ResourceError(str(e)) from e
        return json.dumps(f.model_dump(mode="json"), indent=1)

    @mcp.resource("run://{run_id}", name="run-image", mime_type="image/png",
                  description="The full-resolution PNG of a run (its best image), with provenance in the PNG text.")
    def run_image(run_id: str) -> bytes:
        record = _record(cg, run_id)
        if not record.outputs:
            raise ResourceError(f"run {run_id} has no image yet (status {record.status}); wait with get_run")
        best = record.best_output
        assert best is not None  # it has outputs
        path = Path(best.path)
        if not path.is_file():
            raise ResourceError(f"the image of run {run_id} is gone from {path}")
        if path.stat().st_size > MAX_RESOURCE_BYTES:
            raise ResourceError(f"the image of run {run_id} is larger than 32 MB; read it from {path}")
        return path.read_bytes()

    @mcp.resource("run://{run_id}/record", name="run-record", mime_type="application/json",
                  description="A run's full record: prompt, flow, seed, parameters, graph hash, timings, scores.")
    def run_record(run_id: str) -> str:
        record = _record(cg, run_id)
        return record.model_dump_json(indent=1, exclude={"graph"})

    @mcp.resource("comfygen://score-table", name="score-table", mime_type="text/plain",
                  description="Best flows per prompt category with mean scores (compact text).")
    def score_table() -> str:
        return cg.score_table(None, top_k=3).text

    @mcp.prompt(name="make-image", title="Make an image (ComfyGen-IC)",
                description="The procedure for choosing, running and checking a flow for a prompt, within a budget.")
    def make_image(request: str, budget: int = 3) -> str:
        return MAKE_IMAGE.format(request=request, budget=budget)


def _record(cg: ComfyGen, run_id: str):
    try:
        return cg.record(run_id)
    except ComfyGenError as e:
        raise ResourceError(str(e)) from e


MAKE_IMAGE = """Make an image for this request: {request}

Work like ComfyGen-IC, within a budget of {budget} generate calls:
1. Call suggest_flows with the request as the prompt. It detects the prompt's categories and ranks flows
   with predicted scores. (Or read get_score_table for those categories and choose a flow yourself:
   prefer flows that score well on all of the prompt's categories, with a large n.)
2. Call generate with the prompt and the chosen flow_id. It returns a preview, the scores and a run id.
   If it returns status "running", call get_run with that run id until it is done.
3. Look at the preview and the score. If the image misses something in the request, or the score is low
   compared with the table, try the next flow (or another seed, or candidates=4) while budget remains.
4. Answer with the best run: its run id, the flow used and why, its score, and the image path
   (run://<run_id> has the full-resolution image).
"""
