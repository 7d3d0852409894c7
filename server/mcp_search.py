"""The ``noise_search`` tool: best-of-N over initial noises, ranked by the scorers, with best-so-far progress."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from ..tools.app.models import MAX_SAFE_SEED, SearchOut
from ..tools.app.noise_search import noise_search as run_noise_search
from ..tools.app.jobs import DEFAULT_WAIT_S
from .mcp_tools import Prompt, cancel_requested, parse_size, reporter, service, tool_errors, with_image


def register(mcp: MCPServer) -> None:
    @mcp.tool(title="Search noises for a better image",
              annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False,
                                          open_world_hint=True))
    @tool_errors
    async def noise_search(
        ctx: Context,
        prompt: Prompt,
        flow_id: Annotated[str | None, Field(description="Flow to search with; empty: the planner's top pick.",
                                             max_length=200)] = None,
        algorithm: Annotated[Literal["random", "zero-order"], Field(
            description="'random': best of N seeds. 'zero-order': walk from the best noise to similar ones.")
        ] = "random",
        budget: Annotated[int, Field(description="Candidate images to generate and score.", ge=2, le=64)] = 8,
        size: Annotated[str | None, Field(description="WIDTHxHEIGHT; empty for the flow's own size.",
                                          max_length=20)] = None,
        seed: Annotated[int, Field(description="Base seed all candidate noises derive from (reproducible), "
                                               "an integer 0..9007199254740991 (2^53-1).",
                                   ge=0, le=MAX_SAFE_SEED)] = 0,
        negative: Annotated[str | None, Field(description="Negative prompt.", max_length=4000)] = None,
        wall_time_s: Annotated[float, Field(description="Stop after this many seconds with the best so far.",
                                            gt=0, le=3600)] = 45.0,
        wait_s: Annotated[float, Field(description="Seconds to wait before returning the id of a search that is "
                                                   "still going (then call get_run with it).",
                                       ge=0, le=3600)] = DEFAULT_WAIT_S,
    ) -> Annotated[CallToolResult, SearchOut]:
        """Generate many candidates from different initial noises, score them all, return the best one (preview,
        scores, run id, path). Slower than generate, and better when one image must be as good as possible.
        A search still going after wait_s returns a run_id ("search-...") with status "running": get_run with it
        returns the best image when the search ends."""
        width, height = parse_size(size)
        out = await run_noise_search(service(ctx), prompt, flow_id=flow_id or None, algorithm=algorithm,
                                     budget=budget, width=width, height=height, seed=seed, negative=negative,
                                     wall_time_s=wall_time_s, report=reporter(ctx), wait_s=wait_s,
                                     cancel_if=cancel_requested(ctx))
        result = with_image(out.best)
        result.structured_content = out.model_dump(mode="json")
        result.content[0].text = out.model_dump_json(exclude_none=True)  # type: ignore[union-attr]
        return result
