"""Loading flows: the shipped library (package data) plus the user's library under ``$COMFYGEN_HOME/flows``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from .errors import FlowError, FlowNotFound
from .model import Family, Flow

FLOWS_PACKAGE_DIR = "flows"


class FlowFileError(FlowError):
    """A flow file could not be parsed; names the file and what is wrong."""

    def __init__(self, message: str):
        super().__init__(message, hint="fix the file, or check it with `comfygen flows validate`")


def _flows_in(text: str, origin: str) -> list[Flow]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise FlowFileError(f"{origin}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from e
    items = data if isinstance(data, list) else [data]
    flows = []
    for i, item in enumerate(items):
        try:
            flows.append(Flow.model_validate(item))
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise FlowFileError(f"{origin}[{i}]: {where}: {first['msg']}") from e
    return flows


def load_flow_file(path: Path) -> list[Flow]:
    return _flows_in(path.read_text(encoding="utf-8"), str(path))


def iter_shipped_base_flows() -> Iterator[Flow]:
    """Hand-built and rating-source flows shipped in the package (no variants)."""
    root = resources.files("comfygen.flow_library") / FLOWS_PACKAGE_DIR
    paths: list = []

    def walk(node) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            if child.is_dir():
                walk(child)
            elif child.name.endswith(".json"):
                paths.append(child)

    if root.is_dir():
        walk(root)
    for p in paths:
        yield from _flows_in(p.read_text(encoding="utf-8"), f"flow_library/{FLOWS_PACKAGE_DIR}/{p.name}")


class FlowLibrary:
    """An id → Flow mapping with lookups. Build with :meth:`default` (shipped + variants + user flows)."""

    def __init__(self, flows: Iterable[Flow]):
        self._flows: dict[str, Flow] = {}
        for flow in flows:
            if flow.id in self._flows:
                raise FlowFileError(f"duplicate flow id {flow.id!r}")
            self._flows[flow.id] = flow

    @classmethod
    def default(cls, user_dir: Path | None = None, *, variants: bool = True) -> "FlowLibrary":
        base = list(iter_shipped_base_flows())
        flows = list(base)
        if variants:
            from .variants import generate_variants

            flows += generate_variants(base)
        if user_dir is not None and user_dir.is_dir():
            for path in sorted(user_dir.glob("*.json")):
                flows += load_flow_file(path)
        return cls(flows)

    def __len__(self) -> int:
        return len(self._flows)

    def __iter__(self) -> Iterator[Flow]:
        return iter(self._flows.values())

    def __contains__(self, flow_id: object) -> bool:
        return flow_id in self._flows

    def ids(self) -> list[str]:
        return list(self._flows)

    def get(self, flow_id: str) -> Flow:
        try:
            return self._flows[flow_id]
        except KeyError:
            close = [i for i in self._flows if flow_id.split("-")[0] in i][:5]
            hint = f"did you mean one of {close}?" if close else "list flows with `comfygen flows list`"
            raise FlowNotFound(f"unknown flow {flow_id!r}", hint=hint) from None

    def filter(self, *, family: Family | str | None = None, tag: str | None = None,
               executable: bool | None = None) -> list[Flow]:
        out = []
        for flow in self._flows.values():
            if family is not None and flow.family != family:
                continue
            if tag is not None and tag not in flow.tags:
                continue
            if executable is not None and flow.executable != executable:
                continue
            out.append(flow)
        return out
