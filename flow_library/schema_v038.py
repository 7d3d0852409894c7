"""Offline validation with the rules of newer ComfyUI servers (0.36+, as read in 0.38's ``execution.py``).

:func:`comfygen.flow_library.schema.validate_graph` keeps ComfyUI 0.3.64's rules for the bundled
(0.3.64) schema and hands a newer server's schema here (:func:`is_newer_schema`: its ``/object_info``
entries carry fields 0.3.64 never sent, such as ``search_aliases`` or ``has_intermediate_output``).
What differs from 0.3.64, each with ComfyUI's own error ``type`` and shape:

- an unknown node class, or a node without ``class_type``, is ``missing_node_type`` ("Node 'T' not
  found. The custom node may not be installed.", ``extra_info {node_id, class_type, node_title}``,
  the title from ``_meta.title``);
- V3 combo inputs (``["COMBO", {"options": [...]}]``) are checked, item by item for ``multiselect``,
  not at all for ``remote_combo``; ``value_not_in_list`` details show values with ``repr``
  (``ckpt_name: 'x.safetensors' not in [...]``);
- links: ``*``, MatchType (``COMFY_MATCHTYPE_V3``) and a list-typed output into a ``COMBO`` input are
  accepted; a classic combo input (a list) takes a link only from the same list;
- list widget values may come wrapped as ``{"__value__": [...]}``; every other list is a link;
- dynamic inputs: a ``COMFY_DYNAMICCOMBO_V3`` input selects one of its options, whose sub-inputs travel
  as dotted keys (``format``, ``format.codec``) and are validated like the node's own; a
  ``COMFY_AUTOGROW_V3`` input's members (``values.a``, ``values.b``) are validated against its template;
  a selection that is not an option is ``invalid_dynamic_input``;
- ``dependency_cycle`` for a graph whose links loop back, with the path ("1 (A) -> 2 (B) -> 1 (A)");
- loop boundaries (classes whose schema says ``loop_boundary: start|end``): an End without a Start
  upstream, or a Start without an End downstream, is ``custom_validation_failed`` with
  ``extra_info.loop_error_type`` (``loop_end_without_start``, ``loop_start_without_end``) and the
  outputs it reaches are dropped. The finer loop rules (nesting, escapes, accumulate) are not checked
  offline: the server reports them.
"""

from __future__ import annotations

from typing import Any

from .model import Graph
from .node_schema import (
    NodeSchema, ValidationReport, _top, bad_link, combo_options, convert_value, file_folder, finish_report,
    inner_exception, missing_input, not_in_list, type_mismatch, validate_outputs,
)

__all__ = ["is_newer_schema", "validate_graph_v038", "types_match"]

NEWER_NODE_KEYS = ("search_aliases", "has_intermediate_output", "is_input_list", "essentials_category",
                   "output_matchtypes")
MATCH_TYPE = "COMFY_MATCHTYPE_V3"
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"
AUTOGROW = "COMFY_AUTOGROW_V3"
_EXCEPTIONS = (KeyError, IndexError, TypeError)


def is_newer_schema(info: dict[str, Any]) -> bool:
    """The schema came from a ComfyUI newer than 0.3.64 (its node entries carry newer fields)."""
    return any(isinstance(node, dict) and any(k in node for k in NEWER_NODE_KEYS) for node in info.values())


def types_match(received: Any, expected: Any) -> bool:
    """Whether a link's output type fits an input type, as newer servers decide it."""
    if received == expected:
        return True
    if "*" in (received, expected) or MATCH_TYPE in (received, expected):
        return True
    if isinstance(received, list) and expected == "COMBO":
        return True
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    got = {t.strip() for t in received.split(",")}
    want = {t.strip() for t in expected.split(",")}
    return "*" in got or "*" in want or bool(got & want)


def _spec_parts(raw: list) -> tuple[Any, dict[str, Any]]:
    return raw[0], raw[1] if len(raw) > 1 and isinstance(raw[1], dict) else {}


class _Validator038:
    def __init__(self, graph: Graph, schema: NodeSchema, check_model_files: bool):
        self.graph = graph
        self.schema = schema
        self.check_files = check_model_files
        self.validated: dict[str, tuple[bool, list[dict]]] = {}

    # -------------------------------------------------------------- inputs, dynamic ones expanded
    def effective_inputs(self, class_type: str, inputs: dict[str, Any]) -> list[tuple[str, list, str]]:
        """(name, spec, category) of the node's inputs with dynamic inputs resolved to dotted names.

        Raises ``ValueError`` (reported as ``invalid_dynamic_input``) for a selection that is no option.
        """
        out: list[tuple[str, list, str]] = []
        for name, spec, category in self.schema.inputs(class_type):
            self._expand(name, spec, category, inputs, out)
        return out

    def _expand(self, name: str, spec: list, category: str, inputs: dict[str, Any],
                out: list[tuple[str, list, str]]) -> None:
        itype, extra = _spec_parts(spec)
        if itype == DYNAMIC_COMBO:
            out.append((name, spec, category))
            if name not in inputs:
                return
            options = [o for o in extra.get("options") or [] if isinstance(o, dict)]
            chosen = next((o for o in options if o.get("key") == inputs[name]), None)
            if chosen is None:
                keys = [o.get("key") for o in options]
                raise ValueError(f"{name}: {inputs[name]!r} is not one of {keys}")
            for sub_cat in ("required", "optional"):
                for sub, sub_spec in ((chosen.get("inputs") or {}).get(sub_cat) or {}).items():
                    self._expand(f"{name}.{sub}", sub_spec, sub_cat if category == "required" else "optional",
                                 inputs, out)
        elif itype == AUTOGROW:
            template = (extra.get("template") or {}).get("input") or {}
            specs = [s for cat in ("required", "optional") for s in (template.get(cat) or {}).values()]
            if not specs:
                return
            for member in sorted(k for k in inputs if k.startswith(name + ".")):
                out.append((member, specs[0], "optional"))
        else:
            out.append((name, spec, category))

    # -------------------------------------------------------------- one node
    def node(self, node_id: str, visiting: list[str] | None = None) -> tuple[bool, list[dict]]:
        visiting = visiting if visiting is not None else []
        if node_id in self.validated:
            return self.validated[node_id]
        if node_id in visiting:
            return self._cycle(visiting[visiting.index(node_id):] + [node_id])
        node = self.graph[node_id]
        class_type = node["class_type"]
        inputs = node.get("inputs", {})
        errors: list[dict] = []
        valid = True
        try:
            effective = self.effective_inputs(class_type, inputs)
        except ValueError as ex:
            name = str(ex).split(":", 1)[0]
            result = (False, [{"type": "invalid_dynamic_input", "message": "Invalid dynamic input",
                               "details": str(ex), "extra_info": {"input_name": name}}])
            self.validated[node_id] = result
            return result
        for name, raw_spec, category in effective:
            input_type, extra = _spec_parts(raw_spec)
            spec = [input_type, extra]
            if name not in inputs:
                if category == "required":
                    errors.append(missing_input(name, name.split(".")[-1]))
                continue
            val = inputs[name]
            if isinstance(val, list):
                if len(val) != 2:
                    errors.append(bad_link(name, spec, val))
                    continue
                src_id = val[0]
                received = self.schema.outputs(self.graph[src_id]["class_type"])[val[1]]
                if not types_match(received, input_type):
                    errors.append(type_mismatch(name, spec, received, input_type, val))
                    continue
                visiting.append(node_id)
                try:
                    ok, _ = self.node(src_id, visiting)
                    if not ok:
                        valid = False
                except _EXCEPTIONS as ex:
                    valid = False
                    self.validated[src_id] = (False, [inner_exception(name, spec, ex, val)])
                finally:
                    visiting.pop()
                continue
            errors += self._value_errors(class_type, name, spec, input_type, extra, val)
        earlier = self.validated.get(node_id, (True, []))  # a cycle found below may have marked us already
        result = (earlier[0] and valid and not errors, earlier[1] + [e for e in errors if e not in earlier[1]])
        self.validated[node_id] = result
        return result

    def _cycle(self, path: list[str]) -> tuple[bool, list[dict]]:
        nodes = list(dict.fromkeys(path))
        shown = " -> ".join(f"{n} ({self.graph[n]['class_type']})" for n in path)
        for n in nodes:
            self.validated[n] = (False, [{"type": "dependency_cycle", "message": "Dependency cycle detected",
                                          "details": shown, "extra_info": {"node_id": n, "cycle_nodes": nodes}}])
        return self.validated[path[0]]

    def _value_errors(self, class_type: str, name: str, spec: list, input_type: Any, extra: dict,
                      val: Any) -> list[dict]:
        if isinstance(val, dict) and "__value__" in val:
            val = val["__value__"]
        val, errors = convert_value(name, spec, input_type, extra, val)
        if errors:
            return errors
        if input_type == "COMBO" and extra.get("remote_combo"):
            return []
        options = combo_options(spec)
        if options is None:
            return []
        if extra.get("multiselect") and isinstance(val, list):
            bad = [v for v in val if v not in options]
        else:
            bad = [val] if val not in options else []
        if not bad or (file_folder(class_type, name, spec) is not None and not self.check_files):
            return []
        return [not_in_list(name, spec, ", ".join(repr(v) for v in bad), options, val)]


def _missing_node(node_id: str, node: Any) -> dict[str, Any] | None:
    meta = node.get("_meta") if isinstance(node, dict) and isinstance(node.get("_meta"), dict) else {}
    if not isinstance(node, dict) or "class_type" not in node:
        title = meta.get("title")
        return {"type": "missing_node_type",
                "message": f"Node '{title or f'ID #{node_id}'}' has no class_type. The workflow may be corrupted or "
                           "a custom node is missing.",
                "details": f"Node ID '#{node_id}'", "extra_info": {"node_id": node_id, "class_type": None,
                                                                  "node_title": title}}
    return None


def validate_graph_v038(graph: Graph, schema: NodeSchema, *, check_model_files: bool = False) -> ValidationReport:
    """Check ``graph`` the way a ComfyUI 0.36+ ``POST /prompt`` does, against that server's schema."""
    if not isinstance(graph, dict):
        return ValidationReport(error=_top("no_prompt", "No prompt provided", "No prompt provided"))
    outputs: list[str] = []
    for node_id, node in graph.items():
        missing = _missing_node(node_id, node)
        if missing is not None:
            return ValidationReport(error=missing)
        class_type = node["class_type"]
        if class_type not in schema:
            title = (node.get("_meta") or {}).get("title", class_type) if isinstance(node.get("_meta"), dict) \
                else class_type
            return ValidationReport(error={
                "type": "missing_node_type", "message": f"Node '{title}' not found. The custom node may not be "
                                                        "installed.",
                "details": f"Node ID '#{node_id}'",
                "extra_info": {"node_id": node_id, "class_type": class_type, "node_title": title}})
        if schema.is_output(class_type):
            outputs.append(node_id)
    if not outputs:
        return ValidationReport(error=_top("prompt_no_outputs", "Prompt has no outputs"))

    v = _Validator038(graph, schema, check_model_files)
    report, failed = validate_outputs(v, graph, outputs)
    cycle = any(e["type"] == "dependency_cycle" for _, reasons in v.validated.values() for e in reasons)
    if not cycle:
        loop_error = _loop_error(graph, schema, outputs)
        if loop_error is not None:
            for node_id in loop_error["extra_info"]["node_ids"]:
                entry = report.node_errors.setdefault(
                    node_id, {"errors": [], "dependent_outputs": [], "class_type": graph[node_id]["class_type"]})
                entry["errors"].append(loop_error)
                entry["dependent_outputs"] = sorted(set(entry["dependent_outputs"]) |
                                                    set(loop_error["extra_info"]["output_ids"]))
            report.good_outputs = [o for o in report.good_outputs if o not in loop_error["extra_info"]["output_ids"]]
            reached = loop_error["extra_info"]["output_ids"]
            failed.append((reached[0] if reached else "", [loop_error]))
    return finish_report(report, failed)


# ------------------------------------------------------------------------------------------ loop boundaries
def _links(graph: Graph) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    parents: dict[str, set[str]] = {n: set() for n in graph}
    children: dict[str, set[str]] = {n: set() for n in graph}
    for node_id, node in graph.items():
        for value in (node.get("inputs") or {}).values():
            if isinstance(value, list) and len(value) == 2 and str(value[0]) in graph:
                parents[node_id].add(str(value[0]))
                children[str(value[0])].add(node_id)
    return parents, children


def _reach(start: set[str], edges: dict[str, set[str]], stop: set[str]) -> set[str]:
    """Nodes reachable from ``start`` along ``edges``, not walking past nodes in ``stop``."""
    seen: set[str] = set()
    todo = list(start)
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        if n not in stop:
            todo.extend(edges[n])
    return seen


def _loop_error(graph: Graph, schema: NodeSchema, outputs: list[str]) -> dict[str, Any] | None:
    boundary = {n: schema.node(node["class_type"]).get("loop_boundary") for n, node in graph.items()}
    starts = {n for n, b in boundary.items() if b == "start"}
    ends = {n for n, b in boundary.items() if b == "end"}
    if not starts and not ends:
        return None
    parents, children = _links(graph)

    def error(kind: str, message: str, details: str, actors: set[str]) -> dict[str, Any]:
        reached = _reach(actors, children, set()) & set(outputs)
        return {"type": "custom_validation_failed", "message": message, "details": details,
                "extra_info": {"input_name": "loop boundary", "loop_error_type": kind, "node_ids": sorted(actors),
                               "output_ids": sorted(reached)}}

    for end in sorted(ends):
        if not (_reach(parents[end], parents, starts) & starts):
            return error("loop_end_without_start", "End Loop has no Start Loop",
                         f"End Loop {end} has no available Start Loop", {end})
    lonely = sorted(s for s in starts if not (_reach(children[s], children, ends) & ends))
    if lonely:
        return error("loop_start_without_end", "Start Loop has no End Loop",
                     f"Start Loops without End Loops: {', '.join(lonely)}", set(lonely))
    return None
