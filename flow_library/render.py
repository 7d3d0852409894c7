"""Fill a flow's slots structurally: a deep copy of the graph with values set by (node, input).

Never string templating: a prompt full of quotes, braces or newlines is just a string value.

A size follows ``width``/``height`` in proportion to the size the graph is built at (its empty latent's): that
node gets the new width, a hires target holding 1.5× it gets 1.5× the new one (rounded to a multiple of 8). Prompts with
``{a|b|c}`` choices (ComfyUI's dynamic prompts, which its frontend resolves at queue time) get one choice
each, drawn from the seed so a run is reproducible.
"""

from __future__ import annotations

import copy
import random
import re

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

    if (w, h) != (flow.width, flow.height) and not (flow.slots.width or flow.slots.height):
        raise RenderError(f"flow {flow.id!r} has no size input: it cannot render at {w}x{h}"
                          + (" (its size comes from the input image)" if flow.needs_image else ""),
                          hint=f"drop --size, or use its own size {flow.width}x{flow.height}")

    graph = copy.deepcopy(flow.graph)
    _fill(graph, flow.slots.positive, prompt)
    if negative is not None:
        _fill(graph, flow.slots.negative, negative)
    _fill(graph, flow.slots.seed, seed)
    _scale(graph, flow.slots.width, w, _base(graph, flow.slots.width, "width", flow.width))
    _scale(graph, flow.slots.height, h, _base(graph, flow.slots.height, "height", flow.height))
    _fill(graph, flow.slots.batch, batch)
    rng = random.Random(seed)
    for ref in (*flow.slots.positive, *flow.slots.negative, *flow.slots.regional):
        value = graph[ref.node]["inputs"].get(ref.input)
        if isinstance(value, str) and "{" in value:
            graph[ref.node]["inputs"][ref.input] = dynamic_prompt(value, rng)
    return graph


def _fill(graph: Graph, refs: list[SlotRef], value: object) -> None:
    for ref in refs:
        graph[ref.node]["inputs"][ref.input] = value


def _base(graph: Graph, refs: list[SlotRef], axis: str, default: int) -> int:
    """The size the graph itself is built at: its empty latent's (a node fed by no link), else the first slot's."""
    sized = [r for r in refs if r.input == axis and isinstance(graph[r.node]["inputs"].get(axis), int)]
    for ref in sized:
        if not any(isinstance(v, list) for v in graph[ref.node]["inputs"].values()):
            return int(graph[ref.node]["inputs"][axis])
    return int(graph[sized[0].node]["inputs"][axis]) if sized else default


def _scale(graph: Graph, refs: list[SlotRef], new: int, base: int) -> None:
    """Set each size in proportion to ``new / base`` (the flow's own size maps exactly to ``new``)."""
    for ref in refs:
        old = graph[ref.node]["inputs"].get(ref.input)
        if not isinstance(old, (int, float)) or isinstance(old, bool) or old == base or base <= 0:
            graph[ref.node]["inputs"][ref.input] = new
        elif old:
            graph[ref.node]["inputs"][ref.input] = max(8, int(round(old * new / base / 8)) * 8)


_CHOICE = re.compile(r"(?<!\\)\{([^{}]*?(?<!\\)\|[^{}]*)(?<!\\)\}")  # braces holding at least one "|"


def dynamic_prompt(text: str, rng: random.Random) -> str:
    """Resolve ``{a|b|c}`` choices (innermost first, so they nest).

    Braces without a ``|`` (``{braces}``, JSON) are left alone, and so are escaped ``\\{a|b\\}``: only a choice
    is a dynamic prompt.
    """
    while True:
        m = _CHOICE.search(text)
        if m is None:
            break
        options = re.split(r"(?<!\\)\|", m.group(1))
        text = text[:m.start()] + rng.choice(options) + text[m.end():]
    return text
