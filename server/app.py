"""The comfygen MCP server: ``build_server()`` returns an ``MCPServer`` with comfygen's tools, resources and prompt.

Long-lived state lives in one ``ComfyGen`` service entered in the server's lifespan: the flow library
and score table (loaded on first use), the run store, the ComfyUI endpoint pool, and lazily the
planner, the category classifier and the scorers. The tools are thin glue over it
(``server/mcp_tools.py``).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import MCPServer

from ..tools.app.service import ComfyGen, ScorerFactory, tiny_scorer_factory
from ..tools.settings import Settings, get_settings
from .mcp_resources import register_resources
from .mcp_tools import refuse_unknown_arguments, register_tools

logger = logging.getLogger(__name__)

INSTRUCTIONS = """comfygen picks the right ComfyUI workflow (flow) for an image prompt, runs it, scores the result and
returns the image. Fast path: generate(prompt) (the bundled planner picks the flow). To choose yourself
(ComfyGen-IC): suggest_flows or get_score_table, then generate(prompt, flow_id), then compare scores and retry
within a budget. Long runs return a run id: call get_run. The make-image prompt has the whole procedure."""

TINY_SCORERS_ENV = "COMFYGEN_TINY_SCORERS"


def leave_runs_and_exit(n: int) -> None:
    """End the process now, leaving ``n`` runs in flight to ComfyUI (see ``build_server``)."""
    logger.warning("stopping with %d run(s) in flight: they continue on ComfyUI, get_run finishes them", n)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(0)


def version() -> str:
    try:
        from importlib.metadata import version as v

        return v("comfygen")
    except Exception:  # not installed as a distribution
        return "0"


def build_server(settings: Settings | None = None, *, scorer_factory: ScorerFactory | None = None,
                 service: ComfyGen | None = None, exit_when_detached: bool = False,
                 **service_kwargs: Any) -> MCPServer:
    """An MCP server over one ComfyGen service.

    ``scorer_factory(settings) -> Ensemble`` replaces the default ensemble (tests pass tiny scorers);
    ``COMFYGEN_TINY_SCORERS=1`` does the same from the environment (smoke tests, demos: random weights,
    the scores mean nothing). Other keyword arguments go to ``ComfyGen`` (library, table, planner,
    classifier, pool, store).

    Runs outlive the server: when it stops (the client closed the session, or it was told to stop) with
    runs in flight, they are left to ComfyUI, their records stay "running", and ``get_run`` in a later
    process resumes them. ``exit_when_detached`` (``comfygen serve``) then ends the process at once,
    before the event loop's shutdown would cancel (and so interrupt) them: to ComfyUI and the store this
    is the same as a killed server, which ``get_run`` handles.
    """
    settings = settings or get_settings()
    if scorer_factory is None and os.environ.get(TINY_SCORERS_ENV, "").lower() in ("1", "true", "yes"):
        logger.warning("%s is set: scoring with random-weight tiny models (scores are meaningless)", TINY_SCORERS_ENV)
        scorer_factory = tiny_scorer_factory
    service_kwargs.setdefault("keep_runs_on_close", True)
    cg = service or ComfyGen(settings, scorer_factory=scorer_factory, **service_kwargs)

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[ComfyGen]:
        try:
            async with cg:
                yield cg
        finally:  # also when the server is stopped by Ctrl-C (a cancellation)
            if exit_when_detached and cg.jobs.detached:
                leave_runs_and_exit(len(cg.jobs.detached))

    mcp: MCPServer = MCPServer("comfygen", title="comfygen", version=version(), instructions=INSTRUCTIONS,
                               lifespan=lifespan,
                               log_level="WARNING")
    register_tools(mcp)
    refuse_unknown_arguments(mcp)
    register_resources(mcp, cg)
    return mcp
