"""The comfygen MCP server: ``build_server()`` returns an ``MCPServer`` with comfygen's tools, resources and prompt.

Long-lived state lives in one ``ComfyGen`` service entered in the server's lifespan: the flow library
and score table (loaded on first use), the run store, the ComfyUI endpoint pool, and lazily the
planner, the category classifier and the scorers. The tools are thin glue over it
(``server/mcp_tools.py``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import MCPServer

from ..tools.agent.service import ComfyGen, ScorerFactory, tiny_scorer_factory
from ..tools.settings import Settings, get_settings
from .mcp_resources import register_resources
from .mcp_tools import register_tools

logger = logging.getLogger(__name__)

INSTRUCTIONS = """comfygen picks the right ComfyUI workflow (flow) for an image prompt, runs it, scores the result and
returns the image. Fast path: generate(prompt) (the bundled planner picks the flow). To choose yourself
(ComfyGen-IC): suggest_flows or get_score_table, then generate(prompt, flow_id), then compare scores and retry
within a budget. Long runs return a run id: call get_run. The make-image prompt has the whole procedure."""

TINY_SCORERS_ENV = "COMFYGEN_TINY_SCORERS"


def version() -> str:
    try:
        from importlib.metadata import version as v

        return v("comfygen")
    except Exception:  # not installed as a distribution
        return "0"


def build_server(settings: Settings | None = None, *, scorer_factory: ScorerFactory | None = None,
                 service: ComfyGen | None = None, **service_kwargs: Any) -> MCPServer:
    """An MCP server over one ComfyGen service.

    ``scorer_factory(settings) -> Ensemble`` replaces the default ensemble (tests pass tiny scorers);
    ``COMFYGEN_TINY_SCORERS=1`` does the same from the environment (smoke tests, demos: random weights,
    the scores mean nothing). Other keyword arguments go to ``ComfyGen`` (library, table, planner,
    classifier, pool, store).
    """
    settings = settings or get_settings()
    if scorer_factory is None and os.environ.get(TINY_SCORERS_ENV, "").lower() in ("1", "true", "yes"):
        logger.warning("%s is set: scoring with random-weight tiny models (scores are meaningless)", TINY_SCORERS_ENV)
        scorer_factory = tiny_scorer_factory
    cg = service or ComfyGen(settings, scorer_factory=scorer_factory, **service_kwargs)

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[ComfyGen]:
        async with cg:
            yield cg

    mcp: MCPServer = MCPServer("comfygen", title="comfygen", version=version(), instructions=INSTRUCTIONS,
                               lifespan=lifespan,
                               log_level="WARNING")
    register_tools(mcp)
    register_resources(mcp, cg)
    return mcp
