"""Typed events of one ComfyUI run, parsed from ComfyUI's websocket messages.

ComfyUI sends JSON text frames ``{"type": ..., "data": ...}`` and binary preview frames. Only
messages for one prompt matter to a run; :func:`parse_message` turns a text frame into an
:class:`Event` (or ``None`` for messages a run does not surface, such as ``progress_state``), and
:func:`parse_binary` decodes both preview framings:

- event 1 (legacy): ``u32 event=1, u32 image_type (1 JPEG, 2 PNG), image bytes``, sent after ``progress``;
- event 4 (preview with metadata, when the client announced ``supports_preview_metadata``):
  ``u32 event=4, u32 metadata length, JSON metadata {node_id, prompt_id, ..., image_type}, image bytes``,
  sent before the matching ``progress``.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Queued", "Started", "NodeStarted", "Progress", "Cached", "NodeOutput", "Preview", "Finished",
    "ExecutionFailed", "Interrupted", "Event", "parse_message", "parse_binary",
    "PREVIEW_IMAGE", "PREVIEW_IMAGE_WITH_METADATA",
]

PREVIEW_IMAGE = 1
PREVIEW_IMAGE_WITH_METADATA = 4
_IMAGE_TYPES = {1: "image/jpeg", 2: "image/png"}


class _Ev(BaseModel):
    model_config = ConfigDict(frozen=True)


class Queued(_Ev):
    """The prompt is in ComfyUI's queue; ``position`` 0 means running, 1 means next, ..."""

    kind: Literal["queued"] = "queued"
    prompt_id: str
    position: int = Field(description="0 = running now, n = n prompts ahead of it")


class Started(_Ev):
    kind: Literal["started"] = "started"
    prompt_id: str


class NodeStarted(_Ev):
    kind: Literal["node_started"] = "node_started"
    node: str
    class_type: str = ""


class Progress(_Ev):
    """A sampler step (or any node reporting progress)."""

    kind: Literal["progress"] = "progress"
    node: str
    value: int
    max: int


class Cached(_Ev):
    """Nodes whose outputs ComfyUI reused from the previous prompt (they will not run)."""

    kind: Literal["cached"] = "cached"
    nodes: list[str]


class NodeOutput(_Ev):
    """An output node finished (its UI output, e.g. ``{"images": [{filename, subfolder, type}]}``)."""

    kind: Literal["node_output"] = "node_output"
    node: str
    output: dict[str, Any]


class Preview(_Ev):
    """A live preview image of the current sampler step."""

    kind: Literal["preview"] = "preview"
    data: bytes
    mime: str
    node: str | None = None
    prompt_id: str | None = None


class Finished(_Ev):
    kind: Literal["finished"] = "finished"
    prompt_id: str


class ExecutionFailed(_Ev):
    """``execution_error``: a node raised while running."""

    kind: Literal["failed"] = "failed"
    prompt_id: str
    node: str | None = None
    class_type: str | None = None
    exception_type: str = ""
    exception_message: str = ""
    traceback: list[str] = Field(default_factory=list)
    executed: list[str] = Field(default_factory=list)


class Interrupted(_Ev):
    """``execution_interrupted``: the prompt was interrupted (by us or someone else)."""

    kind: Literal["interrupted"] = "interrupted"
    prompt_id: str
    node: str | None = None
    class_type: str | None = None
    executed: list[str] = Field(default_factory=list)


Event = Union[Queued, Started, NodeStarted, Progress, Cached, NodeOutput, Preview, Finished, ExecutionFailed,
              Interrupted]


def message_prompt_id(msg: dict[str, Any]) -> str | None:
    """The prompt a text message belongs to (``None`` for global messages such as ``status``)."""
    data = msg.get("data")
    if isinstance(data, dict):
        pid = data.get("prompt_id")
        return str(pid) if pid is not None else None
    return None


def parse_message(msg: dict[str, Any], class_types: dict[str, str] | None = None) -> Event | None:
    """One websocket text message -> an event, or ``None`` for messages a run does not surface.

    ``executing`` with ``node: null`` is the end of a prompt and becomes :class:`Finished`.
    ``class_types`` maps node ids to class names so that :class:`NodeStarted` can name the class.
    """
    kind = msg.get("type")
    data = msg.get("data") or {}
    if not isinstance(data, dict):
        return None
    pid = data.get("prompt_id")
    if kind == "execution_start":
        return Started(prompt_id=str(pid))
    if kind == "execution_cached":
        return Cached(nodes=[str(n) for n in data.get("nodes", [])])
    if kind == "executing":
        node = data.get("node")
        if node is None:
            return Finished(prompt_id=str(pid)) if pid is not None else None
        return NodeStarted(node=str(node), class_type=(class_types or {}).get(str(node), ""))
    if kind == "progress":
        return Progress(node=str(data.get("node")), value=int(data.get("value", 0)), max=int(data.get("max", 0)))
    if kind == "executed":
        return NodeOutput(node=str(data.get("node")), output=data.get("output") or {})
    if kind == "execution_error":
        return ExecutionFailed(
            prompt_id=str(pid), node=_opt_str(data.get("node_id")), class_type=data.get("node_type"),
            exception_type=str(data.get("exception_type") or ""),
            exception_message=str(data.get("exception_message") or ""),
            traceback=[str(t) for t in data.get("traceback") or []],
            executed=[str(n) for n in data.get("executed") or []])
    if kind == "execution_interrupted":
        return Interrupted(prompt_id=str(pid), node=_opt_str(data.get("node_id")), class_type=data.get("node_type"),
                           executed=[str(n) for n in data.get("executed") or []])
    return None


def parse_binary(frame: bytes) -> Preview | None:
    """A binary websocket frame -> :class:`Preview` (both framings), ``None`` for other binary events."""
    if len(frame) < 8:
        return None
    (event,) = struct.unpack(">I", frame[:4])
    if event == PREVIEW_IMAGE:
        (itype,) = struct.unpack(">I", frame[4:8])
        return Preview(data=bytes(frame[8:]), mime=_IMAGE_TYPES.get(itype, "application/octet-stream"))
    if event == PREVIEW_IMAGE_WITH_METADATA:
        (mlen,) = struct.unpack(">I", frame[4:8])
        try:
            meta = json.loads(frame[8:8 + mlen].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None
        return Preview(data=bytes(frame[8 + mlen:]), mime=str(meta.get("image_type") or "image/jpeg"),
                       node=_opt_str(meta.get("node_id")), prompt_id=_opt_str(meta.get("prompt_id")))
    return None


def encode_preview(data: bytes, *, mime: str = "image/jpeg", metadata: dict[str, Any] | None = None) -> bytes:
    """The inverse of :func:`parse_binary` (event 4 when ``metadata`` is given, else event 1)."""
    if metadata is not None:
        meta = json.dumps({**metadata, "image_type": mime}).encode("utf-8")
        return struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, len(meta)) + meta + data
    itype = 2 if mime == "image/png" else 1
    return struct.pack(">II", PREVIEW_IMAGE, itype) + data


def _opt_str(v: Any) -> str | None:
    return None if v is None else str(v)
