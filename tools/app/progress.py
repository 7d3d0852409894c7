"""Turn ComfyUI run events into monotonic progress (what MCP progress notifications and progress bars need).

ComfyUI reports sampler steps per node, and a flow can have several samplers (base + refiner, hires
fix). MCP wants ``progress`` to grow with every notification, so steps are accumulated across
samplers: ``progress = steps done so far``, ``total = steps known so far`` (it grows when a second
sampler starts).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..callbacks import call

logger = logging.getLogger(__name__)

ReportFn = Callable[[float, float | None, str], Awaitable[None] | None]


@dataclass
class ProgressState:
    """The last known state of one run, readable by ``get_run`` while it is still going."""

    stage: str = "starting"
    node: str | None = None
    class_type: str | None = None
    steps_done: float = 0.0
    steps_total: float = 0.0
    nodes_run: int = 0
    cached: int = 0
    queue_position: int | None = None
    best_score: float | None = None
    _offset: float = 0.0
    _current_max: float = 0.0
    _class_types: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        parts = [self.stage]
        if self.class_type:
            parts.append(f"node {self.class_type}")
        if self.steps_total:
            parts.append(f"step {int(self.steps_done)}/{int(self.steps_total)}")
        if self.queue_position is not None and self.stage == "queued":
            parts.append(f"position {self.queue_position}")
        if self.best_score is not None:
            parts.append(f"best so far {self.best_score:.4f}")
        return ", ".join(parts)


class ProgressTracker:
    """Callable ``on_event`` for the ComfyUI client: updates a ProgressState and forwards a report.

    ``report`` may be swapped (or set to None) while the run goes on: when the MCP call that started
    a run returns early, the run keeps its tracker and simply stops notifying.
    """

    def __init__(self, report: ReportFn | None = None, *, class_types: dict[str, str] | None = None):
        self.state = ProgressState()
        self.report = report
        self._last_sent = -1.0
        if class_types:
            self.state._class_types.update(class_types)

    async def __call__(self, event: Any) -> None:
        s = self.state
        kind = type(event).__name__ if not isinstance(event, dict) else str(event.get("type", ""))
        get = (lambda k: event.get(k)) if isinstance(event, dict) else (lambda k: getattr(event, k, None))
        if kind in ("Queued", "queued"):
            s.stage, s.queue_position = "queued", get("position")
        elif kind in ("Started", "execution_start"):
            s.stage = "running"
        elif kind in ("NodeStarted", "executing"):
            s.stage = "running"
            s.node = get("node")
            s.class_type = get("class_type") or s._class_types.get(str(s.node), s.class_type)
            s.nodes_run += 1
            s._offset, s._current_max = s.steps_total, 0.0
        elif kind in ("Progress", "progress"):
            value, maximum = float(get("value") or 0), float(get("max") or 0)
            node = get("node")
            if node is not None and str(node) != str(s.node):
                s.node = node
                s.class_type = s._class_types.get(str(node), s.class_type)
            if maximum and maximum != s._current_max:
                s._current_max = maximum
            s.steps_total = max(s.steps_total, s._offset + maximum)
            s.steps_done = max(s.steps_done, s._offset + value)
        elif kind in ("Cached", "execution_cached"):
            s.cached += len(get("nodes") or [])
        elif kind in ("Finished", "execution_success"):
            s.stage = "saving"
            s.steps_done = s.steps_total
        else:
            return
        stage_change = kind in ("Queued", "queued", "Started", "execution_start", "Finished", "execution_success")
        await self.emit(s.describe() if stage_change else None)

    async def emit(self, message: str | None = None) -> None:
        if self.report is None:
            return
        s = self.state
        progress = s.steps_done + s.nodes_run
        total = s.steps_total + s.nodes_run if s.steps_total else None
        if progress <= self._last_sent:  # MCP progress must grow with every notification
            if message is None:
                return
            progress = self._last_sent + 0.001
        self._last_sent = progress
        try:
            await call(self.report, progress, total, message or s.describe())
        except Exception:  # a client that went away must not fail the run
            logger.debug("progress report failed", exc_info=True)
            self.report = None

    async def note(self, stage: str, *, best_score: float | None = None) -> None:
        self.state.stage = stage
        if best_score is not None:
            self.state.best_score = best_score
        await self.emit(self.state.describe())
