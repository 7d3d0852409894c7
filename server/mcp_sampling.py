"""``suggest_flows(mode="llm")`` over MCP: ask the client's own model to choose flows from the score table.

This is ComfyGen's in-context method without an API key on the server. The question and the reading
of the answer are ``tools/app/client_choice.py``'s; what is MCP's is the asking: a sampling request,
made by the SDK's resolver before the tool body runs, only when the client declared sampling.
"""

from __future__ import annotations

from mcp.server.mcpserver import Context, Resolve, Sample
from mcp.types import CreateMessageResult, SamplingMessage, TextContent

from ..tools.app.client_choice import SYSTEM, choice_request
from ..tools.app.service import ComfyGen
from ..tools.errors import ComfyGenError

SampledChoice = CreateMessageResult | None


async def _sample(ctx: Context, prompt: str, k: int, mode: str) -> Sample | None:
    """Resolver: a sampling request when mode='llm' and the client can sample, else nothing."""
    if mode != "llm":
        return None
    caps = ctx.client_capabilities
    if caps is None or caps.sampling is None:
        return None
    cg: ComfyGen = ctx.request_context.lifespan_context
    try:
        text = choice_request(cg, prompt, k)
    except ComfyGenError:
        return None  # the tool body reports the problem
    return Sample([SamplingMessage(role="user", content=TextContent(text=text))], max_tokens=500,
                  system_prompt=SYSTEM, temperature=0.0)


sample_choice = Resolve(_sample)
