"""Flatten a UI-format workflow into executable nodes, as ComfyUI's frontend does when it queues a prompt.

What the editor saves is a graph of graphs: a node may be a **subgraph instance** (its ``type`` is the id of a
definition in ``definitions.subgraphs``) or a legacy **group node** (``workflow>NAME``, defined in
``extra.groupNodes``). The frontend expands both before queueing: every inner node gets the execution id
``<instance id>:<inner id>`` (nested: ``1:2:3``; group nodes: ``<instance id>:<index>``), a link into the
subgraph's input node continues outside on the instance's input, and an unlinked input that the instance shows
as a widget gives the inner node that widget's value. Links are read in both forms the editor writes:
arrays ``[id, origin_id, origin_slot, target_id, target_slot, type]`` and objects ``{id, origin_id, ...}``.

:func:`flatten` returns the executable nodes (:class:`FlatNode`); :meth:`FlatNode.resolve` follows one of its
input links through reroutes, bypassed nodes, subgraph and group boundaries to a real output (a
:class:`Source`), or to a value (a primitive's, or a subgraph widget's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .schema import NodeSchema

SUBGRAPH_INPUT, SUBGRAPH_OUTPUT = -10, -20
MUTED, BYPASSED = 2, 4
NOTES = {"Note", "MarkdownNote"}
GROUP_PREFIXES = ("workflow>", "workflow/")
SEED_NAMES = ("seed", "noise_seed")
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


class FlattenError(ValueError):
    """The workflow's structure is broken (a cycle of subgraphs, a link to nowhere that cannot be skipped)."""


@dataclass(frozen=True)
class Link:
    origin: Any
    origin_slot: int
    target: Any
    target_slot: int
    type: Any = None


@dataclass(frozen=True)
class Source:
    """Where an input's value comes from: a node output (``node``, ``slot``) or a literal ``value``."""

    node: str | None = None
    slot: int = 0
    value: Any = None

    @property
    def is_value(self) -> bool:
        return self.node is None


def _key(value: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def normalize_links(raw: Any) -> dict[Any, Link]:
    """Link id -> :class:`Link`, from either the array or the object form."""
    out: dict[Any, Link] = {}
    for lk in raw or []:
        if isinstance(lk, dict):
            if lk.get("id") is None:
                continue
            out[_key(lk["id"])] = Link(_key(lk.get("origin_id")), int(lk.get("origin_slot") or 0),
                                      _key(lk.get("target_id")), int(lk.get("target_slot") or 0), lk.get("type"))
        elif isinstance(lk, (list, tuple)) and len(lk) >= 5:
            out[_key(lk[0])] = Link(_key(lk[1]), int(lk[2] or 0), _key(lk[3]), int(lk[4] or 0),
                                   lk[5] if len(lk) > 5 else None)
    return out


def is_widget(spec: list) -> bool:
    return bool(spec) and (isinstance(spec[0], list) or spec[0] in WIDGET_TYPES)


def has_control(name: str, spec: list) -> bool:
    """True when the frontend adds a ``control_after_generate`` widget (its value follows this one's)."""
    extra = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return bool(extra.get("control_after_generate")) or (spec[0] == "INT" and name in SEED_NAMES)


def has_upload(spec: list) -> bool:
    extra = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return any(extra.get(k) for k in ("image_upload", "video_upload", "audio_upload"))


@dataclass
class _Level:
    """One graph: the root, a subgraph instance's definition, or a group node's inner graph."""

    nodes: dict[Any, dict]
    links: dict[Any, Link]
    path: tuple[str, ...] = ()
    parent: "_Level | None" = None
    instance: dict | None = None  # the subgraph / group node in the parent level
    promoted: dict[int, Any] = field(default_factory=dict)  # instance input slot -> its widget value
    out_links: dict[int, Any] = field(default_factory=dict)  # output slot -> inner link id
    children: dict[Any, "_Level"] = field(default_factory=dict)  # instance node id -> its level
    input_names: list[str] = field(default_factory=list)  # the subgraph's inputs, by slot
    overrides: dict[tuple[Any, str], Any] = field(default_factory=dict)  # (inner node, widget) -> proxied value

    def instance_input(self, slot: int) -> dict:
        """The instance's input for subgraph input ``slot``: by name, as the frontend rebinds them, else by position."""
        inputs = (self.instance or {}).get("inputs") or []
        name = self.input_names[slot] if slot < len(self.input_names) else None
        for inp in inputs:
            if name is not None and inp.get("name") == name:
                return inp
        return inputs[slot] if slot < len(inputs) and name is None else {}

    def exec_id(self, node_id: Any) -> str:
        return ":".join((*self.path, str(node_id)))


@dataclass
class FlatNode:
    """One executable node: its execution id, class, mode, stored widget values and input slots."""

    id: str
    type: str
    mode: int
    widgets_values: Any
    inputs: list[dict]
    title: str | None
    level: _Level
    overrides: dict[str, Any] = field(default_factory=dict)  # widget name -> value shown on the instance

    def resolve(self, link_id: Any) -> Source | None:
        return _resolve_link(self.level, link_id, None, set())


def _resolve_link(level: _Level, link_id: Any, want: Any, seen: set) -> Source | None:
    if link_id is None:
        return None
    key = (id(level), "L", _key(link_id))
    if key in seen:
        raise FlattenError(f"a cycle of links through link {link_id}")
    seen.add(key)
    link = level.links.get(_key(link_id))
    if link is None:
        return None
    if link.origin == SUBGRAPH_INPUT and level.instance is not None:
        outer = level.instance_input(link.origin_slot)
        if outer.get("link") is not None:
            return _resolve_link(level.parent, outer["link"], want or link.type, seen)
        if link.origin_slot in level.promoted:
            return Source(value=level.promoted[link.origin_slot])
        return None
    src = level.nodes.get(link.origin)
    if src is None:
        return None
    return _resolve_output(level, src, link.origin_slot, want or link.type, seen)


def _resolve_output(level: _Level, src: dict, slot: int, want: Any, seen: set) -> Source | None:
    key = (id(level), "O", _key(src.get("id")), slot)
    if key in seen:
        raise FlattenError(f"a cycle through node {src.get('id')}")
    seen.add(key)
    mode = src.get("mode")
    if mode == MUTED or src.get("type") in NOTES:
        return None
    if mode == BYPASSED:
        return _bypass(level, src, slot, want, seen)
    child = level.children.get(_key(src.get("id")))
    if child is not None:  # subgraph or group instance: continue inside, from its output node
        return _resolve_link(child, child.out_links.get(slot), want, seen)
    if src.get("type") == "Reroute":
        return _resolve_link(level, ((src.get("inputs") or [{}])[0]).get("link"), want, seen)
    if src.get("type") == "PrimitiveNode":
        values = src.get("widgets_values")
        if isinstance(values, list) and values:
            return Source(value=values[0])
        return None
    return Source(node=level.exec_id(src["id"]), slot=int(slot))


def _bypass(level: _Level, src: dict, slot: int, want: Any, seen: set) -> Source | None:
    """A bypassed node passes through its first input of the output's type (the same slot preferred)."""
    inputs = src.get("inputs") or []
    outputs = src.get("outputs") or []
    out_type = outputs[slot].get("type") if slot < len(outputs) else want
    candidates = [slot] if slot < len(inputs) and inputs[slot].get("type") == out_type else []
    candidates += [i for i, inp in enumerate(inputs) if inp.get("type") in (out_type, want)]
    for i in candidates:
        if inputs[i].get("link") is not None:
            return _resolve_link(level, inputs[i]["link"], want, seen)
    return None


# -- building the levels ----------------------------------------------------------------------------
def _subgraph_defs(workflow: dict) -> dict[str, dict]:
    defs: dict[str, dict] = {}
    stack = [workflow]
    while stack:
        holder = stack.pop()
        for sg in ((holder.get("definitions") or {}).get("subgraphs") or []):
            if isinstance(sg, dict) and sg.get("id") and sg["id"] not in defs:
                defs[sg["id"]] = sg
                stack.append(sg)
    return defs


def _group_defs(workflow: dict) -> dict[str, dict]:
    return dict(((workflow.get("extra") or {}).get("groupNodes")) or {})


def _group_name(node_type: Any, groups: dict[str, dict]) -> str | None:
    if isinstance(node_type, str):
        for prefix in GROUP_PREFIXES:
            if node_type.startswith(prefix) and node_type[len(prefix):] in groups:
                return node_type[len(prefix):]
    return None


def _promoted_values(instance: dict, sub: dict, links: dict[Any, Link], nodes: dict[Any, dict],
                     schema: NodeSchema) -> tuple[dict[int, Any], dict[tuple[Any, str], Any]]:
    """The widgets the instance shows and their values: (subgraph input slot -> value, (inner node, widget) -> value).

    Some editor versions list them in ``properties.proxyWidgets`` as ``[inner node id or "-1" (a subgraph
    input), widget name]``; otherwise every subgraph input that feeds an inner widget shows one, in the
    subgraph's input order. The instance's ``widgets_values`` follow that order (older files add a slot after
    each control_after_generate).
    """
    sub_inputs = sub.get("inputs") or []
    names = [i.get("name") for i in sub_inputs]
    values = instance.get("widgets_values")
    if not isinstance(values, list) or not values:
        return {}, {}

    def spec_of(node: dict | None, name: str | None) -> tuple[str, list] | None:
        if node is None or node.get("type") not in schema:
            return None
        return next(((n, sp) for n, sp, _ in schema.inputs(node["type"]) if n == name), None)

    def target_spec(slot: int) -> tuple[str, list] | None:
        ids = (sub_inputs[slot].get("linkIds") if slot < len(sub_inputs) else None) or \
              [k for k, lk in links.items() if lk.origin == SUBGRAPH_INPUT and lk.origin_slot == slot]
        for link_id in ids:
            lk = links.get(_key(link_id))
            node = nodes.get(lk.target) if lk else None
            if node is not None:
                name = ((node.get("inputs") or [{}] * (lk.target_slot + 1))[lk.target_slot] or {}).get("name")
                found = spec_of(node, name)
                if found:
                    return found
        return None

    entries: list[tuple[Any, str]] = []  # ("-1", input name) or (inner node id, widget name)
    proxies = (instance.get("properties") or {}).get("proxyWidgets")
    if isinstance(proxies, list) and proxies:
        entries = [(str(p[0]), str(p[1])) for p in proxies if isinstance(p, (list, tuple)) and len(p) == 2]
    else:  # every subgraph input that feeds an inner widget shows one, in the subgraph's input order
        entries = [("-1", str(name)) for slot, name in enumerate(names)
                   if (found := target_spec(slot)) is not None and is_widget(found[1])]
    extra_slots = len(values) > len(entries)
    promoted: dict[int, Any] = {}
    overrides: dict[tuple[Any, str], Any] = {}
    pos = 0
    for owner, name in entries:
        value = values[pos] if pos < len(values) else None
        pos += 1
        if owner == "-1":
            if name not in names:
                continue
            slot = names.index(name)
            spec = target_spec(slot)
            if value is not None:
                promoted[slot] = value
        else:
            spec = spec_of(nodes.get(_key(owner)), name)
            if value is not None:
                overrides[(_key(owner), name)] = value
        if extra_slots and spec and has_control(*spec):
            pos += 1
    return promoted, overrides


def _group_level(instance: dict, data: dict, schema: NodeSchema) -> tuple[dict[Any, dict], dict[Any, Link],
                                                                              dict[int, Any]]:
    """A legacy group node as a subgraph-like level: inner nodes by index, links, output slot -> link id.

    The group's inputs are, in order, each inner node's unlinked input sockets, then its unlinked
    converted widgets; its outputs are each inner node's outputs that are not only used inside; its widget
    values are the inner nodes' widget values in order (with the control/upload companions).
    """
    inner = [dict(n) for n in data.get("nodes") or []]
    links_to: dict[tuple[int, int], list] = {}
    links_from: dict[tuple[int, int], list] = {}
    for lk in data.get("links") or []:
        if isinstance(lk, list) and len(lk) >= 4 and lk[0] is not None:
            links_to[(int(lk[2]), int(lk[3]))] = lk
            links_from.setdefault((int(lk[0]), int(lk[1])), []).append(lk)
    external = {(int(e[0]), int(e[1])) for e in data.get("external") or [] if isinstance(e, list) and len(e) >= 2}
    links: dict[Any, Link] = {}
    values = instance.get("widgets_values") if isinstance(instance.get("widgets_values"), list) else None
    pos = 0
    next_input = 0
    converted_later: list[tuple[int, int]] = []
    for idx, node in enumerate(inner):
        node["id"] = idx
        node["inputs"] = [dict(i) for i in node.get("inputs") or []]
        cls = node.get("type")
        if cls == "PrimitiveNode" and (idx, 0) in links_from:  # its value widget and control companion
            if values is not None:
                node["widgets_values"] = values[pos:pos + 2]
            pos += 2
            continue
        if cls not in schema:
            continue
        own = list(node["inputs"])
        sockets = [n for n, spec, _ in schema.inputs(cls) if not is_widget(spec)]
        converted = [i for i, inp in enumerate(own) if inp.get("widget")]
        new_values: list[Any] = []
        for name, spec, _ in schema.inputs(cls):
            if not is_widget(spec) or any(inp.get("name") == name and inp.get("widget") for inp in own):
                continue
            take = 1 + has_control(name, spec) + has_upload(spec)
            chunk = values[pos:pos + take] if values is not None else []
            new_values += chunk
            pos += take
        if values is not None and new_values:
            node["widgets_values"] = new_values
        for j, _name in enumerate(sockets):
            if j < len(own) and not own[j].get("widget"):
                _wire(links, node, idx, j, links_to, next_input)
                if (idx, j) not in links_to:
                    next_input += 1
        converted_later += [(idx, j) for j in converted]
    for idx, j in converted_later:
        _wire(links, inner[idx], idx, j, links_to, next_input)
        if (idx, j) not in links_to:
            next_input += 1
    out_links: dict[int, Any] = {}
    out_slot = 0
    for idx, node in enumerate(inner):
        cls = node.get("type")
        n_out = len(schema.outputs(cls)) if cls in schema else len(node.get("outputs") or [])
        for s in range(n_out):
            if (idx, s) in links_from and (idx, s) not in external:
                continue
            key = ("out", out_slot)
            links[key] = Link(idx, s, SUBGRAPH_OUTPUT, out_slot)
            out_links[out_slot] = key
            out_slot += 1
    return {i: n for i, n in enumerate(inner)}, links, out_links


def _wire(links: dict[Any, Link], node: dict, idx: int, slot: int, links_to: dict, next_input: int) -> None:
    inputs = node["inputs"]
    if slot >= len(inputs):
        return
    lk = links_to.get((idx, slot))
    key = ("in", idx, slot)
    if lk is not None:
        links[key] = Link(int(lk[0]), int(lk[1]), idx, slot)
    else:
        links[key] = Link(SUBGRAPH_INPUT, next_input, idx, slot)
    inputs[slot]["link"] = key


def flatten(workflow: dict, schema: NodeSchema) -> list[FlatNode]:
    """Every node the frontend would send, subgraphs and group nodes expanded, in graph order."""
    subgraphs = _subgraph_defs(workflow)
    groups = _group_defs(workflow)
    out: list[FlatNode] = []

    def build(level: _Level, stack: tuple[str, ...], inherited: int | None) -> None:
        for node_id, node in level.nodes.items():
            kind = node.get("type")
            mode = inherited if inherited in (MUTED, BYPASSED) else node.get("mode", 0)
            group = _group_name(kind, groups)
            if isinstance(kind, str) and (kind in subgraphs or group):
                if kind in stack:
                    raise FlattenError(f"subgraph {kind!r} contains itself")
                if group:
                    nodes, links, out_links = _group_level(node, groups[group], schema)
                    promoted: dict[int, Any] = {}
                else:
                    sub = subgraphs[kind]
                    nodes = {_key(n.get("id")): n for n in sub.get("nodes") or []}
                    links = normalize_links(sub.get("links"))
                    out_links = {}
                    for k, lk in links.items():
                        if lk.target == SUBGRAPH_OUTPUT:
                            out_links.setdefault(lk.target_slot, k)
                    promoted, overrides = _promoted_values(node, sub, links, nodes, schema)
                child = _Level(nodes, links, level.path + (str(node_id),), level, node, promoted, out_links)
                if not group:
                    child.input_names = [str(i.get("name")) for i in subgraphs[kind].get("inputs") or []]
                    child.overrides = overrides
                level.children[node_id] = child
                build(child, stack + (kind,), mode if mode in (MUTED, BYPASSED) else None)
                continue
            overrides = {name: v for (owner, name), v in level.overrides.items() if owner == node_id}
            out.append(FlatNode(level.exec_id(node_id), str(kind), int(mode or 0), node.get("widgets_values"),
                                list(node.get("inputs") or []), node.get("title"), level, overrides))

    root = _Level({_key(n.get("id")): n for n in workflow.get("nodes") or [] if isinstance(n, dict)},
                  normalize_links(workflow.get("links")))
    build(root, (), None)
    return out


def missing_classes(workflow: dict, schema: NodeSchema) -> list[str]:
    """Node classes the workflow uses (subgraphs and groups included) that ``schema`` does not know."""
    subgraphs = _subgraph_defs(workflow)
    groups = _group_defs(workflow)
    found: list[str] = []
    node_lists = [workflow.get("nodes") or []] + [sg.get("nodes") or [] for sg in subgraphs.values()]
    node_lists += [g.get("nodes") or [] for g in groups.values()]
    for nodes in node_lists:
        for n in nodes:
            t = n.get("type") if isinstance(n, dict) else None
            if not isinstance(t, str) or t in schema or t in subgraphs or _group_name(t, groups):
                continue
            if t in NOTES or t in ("Reroute", "PrimitiveNode") or n.get("mode") == MUTED:
                continue
            if t not in found:
                found.append(t)
    return found
