"""Small helpers shared by the graph rewrites: links, output types, consumers, fresh node ids."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from importlib import resources
from typing import Any

Graph = dict[str, dict[str, Any]]
Schema = dict[str, dict[str, Any]]
Link = list  # [node_id: str, output_index: int]


def is_link(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))
            and isinstance(value[1], int) and not isinstance(value[1], bool))


@lru_cache(maxsize=1)
def bundled_schema() -> Schema:
    """The recorded ``object_info`` of a stock ComfyUI (v0.3.64) shipped with the flow library."""
    text = (resources.files("comfygen.flow_library") / "data" / "object_info.json").read_text(encoding="utf-8")
    return json.loads(text)


def output_types(class_type: str, schema: Schema | None) -> list[str] | None:
    """Output types of a node class, from ``schema`` or else the bundled one; None when unknown."""
    for s in (schema or {}, bundled_schema()):
        info = s.get(class_type)
        if info is not None:
            return [o if isinstance(o, str) else "COMBO" for o in info.get("output", [])]
    return None


def link_type(graph: Graph, link: Link, schema: Schema | None) -> str | None:
    node = graph.get(str(link[0]))
    if node is None:
        return None
    outs = output_types(node["class_type"], schema)
    if outs is None or link[1] >= len(outs):
        return None
    return outs[link[1]]


def iter_links(graph: Graph) -> Iterator[tuple[str, str, Link]]:
    """(consumer node id, input name, link) for every link in the graph."""
    for node_id, node in graph.items():
        for name, value in node.get("inputs", {}).items():
            if is_link(value):
                yield node_id, name, value


def consumers(graph: Graph, source: str, index: int | None = None) -> list[tuple[str, str]]:
    return [(nid, name) for nid, name, link in iter_links(graph)
            if str(link[0]) == str(source) and (index is None or link[1] == index)]


def new_node_id(graph: Graph) -> str:
    """A fresh numeric id, above every numeric id in use (ComfyUI's own convention)."""
    nums = [int(k) for k in graph if str(k).isdigit()]
    n = max(nums, default=0) + 1
    while str(n) in graph:
        n += 1
    return str(n)


def topo_order(graph: Graph) -> list[str]:
    """Node ids with every node after the nodes it reads from (cycles are broken arbitrarily)."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(nid: str) -> None:
        if state.get(nid):
            return
        state[nid] = 1
        for value in graph[nid].get("inputs", {}).values():
            if is_link(value) and str(value[0]) in graph:
                visit(str(value[0]))
        state[nid] = 2
        order.append(nid)

    for nid in sorted(graph, key=lambda k: (not str(k).isdigit(), int(k) if str(k).isdigit() else 0, str(k))):
        visit(nid)
    return order
