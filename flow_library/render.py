"""Fill a flow's slots structurally: a deep copy of the graph with values set by (node, input).

Never string templating: a prompt full of quotes, braces or newlines is just a string value.
"""

from __future__ import annotations

import copy

from .errors import FlowError
from .model import Flow, Graph, SlotRef

MAX_SEED = 2**64 - 1  # ComfyUI's KSampler seed range is [0, 0xffffffffffffffff]


class RenderError(FlowError):
    """The flow cannot be rendered with these values."""


def render(
    flow: Flow,
    prompt: str,
    negative: str | None = None,
    seed: int = 0,
    width: int | None = None,
    height: int | None = None,
    batch: int = 1,
) -> Graph:
    """Return a ready-to-queue API graph for ``flow`` with the per-run values filled in.

    ``negative=None`` keeps the flow's own negative prompt (e.g. a "bad anatomy" preset);
    ``width``/``height`` default to the flow's size.
    """
    if not flow.executable:
        raise RenderError(f"flow {flow.id!r} is a reference flow ({flow.family}) and cannot be rendered for ComfyUI")
    if not isinstance(prompt, str):
        raise RenderError("prompt must be a string")
    if not 0 <= seed <= MAX_SEED:
        raise RenderError(f"seed {seed} is outside [0, {MAX_SEED}]")
    if batch < 1:
        raise RenderError(f"batch {batch} must be at least 1")
    w = flow.width if width is None else width
    h = flow.height if height is None else height
    for name, value in (("width", w), ("height", h)):
        if value < 16 or value % 8:
            raise RenderError(f"{name} {value} must be a multiple of 8 and at least 16")

    graph = copy.deepcopy(flow.graph)
    _fill(graph, flow.slots.positive, prompt)
    if negative is not None:
        _fill(graph, flow.slots.negative, negative)
    _fill(graph, flow.slots.seed, seed)
    _fill(graph, flow.slots.width, w)
    _fill(graph, flow.slots.height, h)
    _fill(graph, flow.slots.batch, batch)
    return graph


def _fill(graph: Graph, refs: list[SlotRef], value: object) -> None:
    for ref in refs:
        graph[ref.node]["inputs"][ref.input] = value
