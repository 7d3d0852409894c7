"""What one followed ComfyUI run produces (images, outputs, timings) and the state kept while following it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["OutputImage", "Timings", "RunOutput"]


class OutputImage(BaseModel):
    model_config = ConfigDict(frozen=True)
    node: str
    filename: str
    subfolder: str = ""
    type: str = "output"
    data: bytes = b""

    def ref(self) -> dict[str, str]:
        return {"filename": self.filename, "subfolder": self.subfolder, "type": self.type}


class Timings(BaseModel):
    submitted: float = Field(description="Unix time the prompt was posted")
    started: float | None = Field(None, description="Unix time ComfyUI started executing it")
    finished: float | None = Field(None, description="Unix time its end marker arrived")
    per_node: dict[str, float] = Field(default_factory=dict, description="Seconds spent in each node that ran")


class RunOutput(BaseModel):
    prompt_id: str
    endpoint: str
    images: list[OutputImage] = Field(default_factory=list)
    cached_nodes: list[str] = Field(default_factory=list)
    outputs: dict[str, Any] = Field(default_factory=dict, description="Raw UI outputs per output node")
    timings: Timings


class _RunState:
    def __init__(self, pid: str, submitted: float, graph: dict[str, Any]):
        self.pid = pid
        self.submitted = submitted
        self.started: float | None = None
        self.finished: float | None = None
        self.cached: list[str] = []
        self.outputs: dict[str, Any] = {}
        self.per_node: dict[str, float] = {}
        self.class_types = {str(k): str(v.get("class_type", "")) for k, v in graph.items() if isinstance(v, dict)}
        self.lossy = False
        self.absent = 0  # consecutive looks that found the prompt unknown to the server
        self.position: int | None = None
        self._cur: tuple[str, float] | None = None

    def add_output(self, node: str, output: dict[str, Any]) -> None:
        """A node's UI output; a looped node sends one per iteration, so list values accumulate."""
        prev = self.outputs.get(node)
        if not isinstance(prev, dict) or not prev:
            self.outputs[node] = dict(output)
            return
        merged = dict(prev)
        for key, value in output.items():
            old = merged.get(key)
            merged[key] = old + [v for v in value if v not in old] if isinstance(old, list) and isinstance(
                value, list) else value
        self.outputs[node] = merged

    def node_started(self, node: str | None, now: float) -> None:
        if self._cur is not None:
            name, t = self._cur
            self.per_node[name] = self.per_node.get(name, 0.0) + (now - t)
        self._cur = (node, now) if node is not None else None
