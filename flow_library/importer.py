"""Import a user's ComfyUI workflow (API format, or the UI format the editor saves) as a :class:`Flow`.

UI format (``{"nodes": [...], "links": [...]}``) is converted to API format with the node schema, as
ComfyUI's frontend does when it queues a prompt: subgraphs and legacy group nodes are expanded (inner ids
like ``75:58``, see :mod:`.ui_graph`), widget values are assigned to the schema's inputs in input order
(skipping the hidden ``control_after_generate`` value that follows seed inputs and the upload value after
file pickers) and inputs with no stored value get the schema's default, links (array or object form) become
``[source_id, output_index]``, reroutes and bypassed nodes are passed through, muted nodes and notes are
dropped, a primitive node's value is applied to the widgets it feeds. Numbers stored as strings become
numbers. Then the slots, family and models are read from the graph (:mod:`.inference`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .errors import FlowError, FlowValidationError
from .inference import (TEXT_INPUTS, base_size, family_guess, infer_family, infer_models, infer_slots,
                        sampling_settings)
from .model import Family, Flow, Graph, Provenance, Requirement
from .schema import NodeSchema, validate_graph
from .ui_graph import BYPASSED, MUTED, NOTES, FlattenError, flatten, has_control, has_upload, is_widget, \
    missing_classes

VIRTUAL = NOTES | {"PrimitiveNode", "Reroute"}


class WorkflowImportError(FlowError):
    """The workflow cannot be imported as it is."""


def is_ui_format(data: dict[str, Any]) -> bool:
    return isinstance(data.get("nodes"), list) and "links" in data


# -- UI -> API ---------------------------------------------------------------------------------------
def widget_default(spec: list) -> tuple[bool, Any]:
    """The value the frontend gives a widget that has none stored: the schema default, else min, 0, "", first option."""
    extra = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if "default" in extra and extra["default"] is not None:
        return True, extra["default"]
    options = spec[0] if isinstance(spec[0], list) else (extra.get("options") if spec[0] == "COMBO" else None)
    if options is not None:
        return (True, options[0]) if options else (False, None)
    if spec[0] in ("INT", "FLOAT"):
        return True, extra.get("min", 0)
    if spec[0] == "STRING":
        return True, ""
    if spec[0] == "BOOLEAN":
        return True, False
    return False, None


def unknown_node_error(classes: list[str]) -> WorkflowImportError:
    names = ", ".join(classes)
    return WorkflowImportError(
        f"the workflow uses {len(classes)} node class{'es' if len(classes) > 1 else ''} this node schema does not "
        f"know: {names}",
        hint="install the node packs that provide them in your ComfyUI, save its GET /object_info, and pass it "
             "with `--object-info FILE`", details={"missing_classes": classes})


def ui_to_api(workflow: dict[str, Any], schema: NodeSchema) -> Graph:
    """Convert a UI-format workflow to an API graph (subgraphs and group nodes flattened)."""
    missing = missing_classes(workflow, schema)
    if missing:
        raise unknown_node_error(missing)
    try:
        flat = flatten(workflow, schema)
    except FlattenError as e:
        raise WorkflowImportError(f"cannot read the workflow's graph: {e}", hint="open and save it in ComfyUI") from e
    graph: Graph = {}
    for node in flat:
        cls = node.type
        if cls in VIRTUAL or node.mode in (MUTED, BYPASSED):
            continue
        if cls not in schema:
            raise unknown_node_error([cls])
        linked = {inp.get("name"): inp.get("link") for inp in node.inputs}
        values = node.widgets_values
        inputs: dict[str, Any] = {}
        pos = 0
        for name, spec, _ in schema.inputs(cls):
            src = node.resolve(linked.get(name)) if linked.get(name) is not None else None
            if is_widget(spec):
                if isinstance(values, dict):
                    value, has_value = values.get(name), name in values
                else:
                    has_value = isinstance(values, list) and pos < len(values)
                    value = values[pos] if has_value else None
                    pos += 1 + has_control(name, spec) + has_upload(spec)
                if src is not None:
                    inputs[name] = src.value if src.is_value else [src.node, src.slot]
                elif name in node.overrides:  # a widget the subgraph instance shows (proxied)
                    inputs[name] = node.overrides[name]
                elif has_value and value is not None:
                    inputs[name] = value
                else:
                    has_default, default = widget_default(spec)
                    if has_default:
                        inputs[name] = default
            elif src is not None and not src.is_value:
                inputs[name] = [src.node, src.slot]
        graph[node.id] = {"class_type": cls, "inputs": inputs}
    return graph


def coerce_numbers(graph: Graph, schema: NodeSchema) -> list[str]:
    """Numbers stored as strings (``"16384"``) become numbers, so bounds and slots see them; returns what changed."""
    changed: list[str] = []
    for nid, node in graph.items():
        if node["class_type"] not in schema:
            continue
        for name, spec, _ in schema.inputs(node["class_type"]):
            value = node["inputs"].get(name)
            if spec and spec[0] in ("INT", "FLOAT") and isinstance(value, str):
                try:
                    number = float(value.strip())
                except ValueError:
                    continue
                node["inputs"][name] = int(number) if spec[0] == "INT" and number.is_integer() else number
                changed.append(f"{nid}.{name}")
    return changed


def _requirements(graph: Graph, schema: NodeSchema) -> list[Requirement]:
    packs: dict[str, set[str]] = {}
    for node in graph.values():
        cls = node["class_type"]
        pack = schema.packs.get(cls)
        module = str(schema.node(cls).get("python_module", ""))
        if pack is None and module.startswith("custom_nodes."):
            pack = module.split(".", 1)[1]
        if pack:
            packs.setdefault(pack, set()).add(cls)
    return [Requirement(kind="node_pack", name=p, note=", ".join(sorted(c))) for p, c in sorted(packs.items())]


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "imported-flow"


VALIDATE_HINT = ("fix the named inputs (in ComfyUI, or in the file) and try again; `comfygen flows validate FILE` "
                 "checks a workflow without importing it")


def validation_error(graph: Graph, schema: NodeSchema, what: str = "imported workflow") -> FlowValidationError | None:
    """None when ComfyUI would queue ``graph``; else an error naming every failing node, class and input."""
    report = validate_graph(graph, schema)
    if report.ok:
        return None
    problems = []
    for nid, err in report.errors():
        cls = report.node_errors[nid]["class_type"]
        name = (err.get("extra_info") or {}).get("input_name") or err.get("details") or ""
        detail = err.get("details") if err.get("details") and err.get("details") != name else ""
        problems.append(f"node {nid} ({cls}) input {name!r}: {err['message']}" + (f" ({detail})" if detail else ""))
    if not problems and report.error:
        problems.append(f"{report.error['message']}" + (f" ({report.error['details']})" if report.error.get("details")
                                                        else ""))
    error = report.error or {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                             "details": "", "extra_info": {}}
    return FlowValidationError(f"{what} failed validation: " + "; ".join(problems), error=error,
                               node_errors=report.node_errors, hint=VALIDATE_HINT)


def to_api_graph(data: Any, schema: NodeSchema) -> Graph:
    """The API graph of a workflow file's content (UI format, API format, or a /prompt request body)."""
    if not isinstance(data, dict):
        raise WorkflowImportError("a workflow must be a JSON object", hint="export it from ComfyUI (Save, or Export (API))")
    if isinstance(data.get("prompt"), dict) and not is_ui_format(data):
        data = data["prompt"]  # the body of a /prompt request
    if is_ui_format(data):
        graph = ui_to_api(data, schema)
    else:
        graph = {str(k): v for k, v in data.items()}
        for key, node in graph.items():
            if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
                raise WorkflowImportError(f"not a ComfyUI workflow: {key!r} is not a node (no class_type)",
                                          hint="pass a workflow ComfyUI saved (Save, or Export (API))")
        missing = []
        for node in graph.values():
            cls = node.get("class_type") if isinstance(node, dict) else None
            if isinstance(cls, str) and cls not in schema and cls not in missing:
                missing.append(cls)
        if missing:
            raise unknown_node_error(missing)
    coerce_numbers(graph, schema)
    return graph


def import_workflow(data: dict[str, Any], schema: NodeSchema | None = None, *, flow_id: str | None = None,
                    name: str | None = None, family: Family | str | None = None, source: str | None = None) -> Flow:
    """Build a validated :class:`Flow` from a workflow in API or UI format."""
    schema = schema or NodeSchema.bundled()
    graph = to_api_graph(data, schema)
    error = validation_error(graph, schema)
    if error is not None:
        raise error
    slots = infer_slots(graph, schema)
    if not slots.positive:
        encoders = ", ".join(sorted(TEXT_INPUTS))
        raise WorkflowImportError("no prompt found: no text encoder reaches a sampler's positive input",
                                  hint=f"import a text-to-image workflow whose sampler takes a prompt from one of: "
                                       f"{encoders}")
    if not slots.output:
        raise WorkflowImportError("no image output found", hint="add a SaveImage node after the final VAEDecode")
    notes: list[str] = []
    if slots.regional:
        kept = ", ".join(f"{r.node}.{r.input}" for r in slots.regional)
        notes.append(f"regional prompts kept as they are ({kept}); the run's prompt fills "
                     + ", ".join(f"{r.node}.{r.input}" for r in slots.positive))
    if slots.image:
        notes.append("needs an input image: " + ", ".join(f"node {r.node} ({graph[r.node]['class_type']})"
                                                         for r in slots.image))
    if not slots.width:
        notes.append("no size input: --size cannot change this flow's size")
    linked = [f"node {nid} ({n['class_type']})" for nid, n in graph.items()
              if any(isinstance(n["inputs"].get(k), list) for k in ("width", "height"))]
    if linked:
        notes.append("size taken from a link, not changed by --size: " + ", ".join(linked))
    guessed_family, guessed = family_guess(graph)
    if guessed and not family:
        notes.append(f"family guessed ({guessed_family.value}): nothing in the graph names the architecture; "
                     "pass --family if it is wrong")
    width, height = base_size(graph, slots.width, slots.height)
    fid = flow_id or slugify(name or "imported-flow")
    tags = ["imported"] + (["needs-image"] if slots.image else [])
    return Flow(
        id=fid, name=name or fid, description="Imported workflow.",
        family=Family(family) if family else guessed_family, models=infer_models(graph),
        **sampling_settings(graph), width=width or 1024, height=height or 1024, tags=tags,
        requires=_requirements(graph, schema), provenance=Provenance(kind="imported", source=source, notes=notes),
        slots=slots, graph=graph)


def free_id(wanted: str, taken: set[str] | Any) -> str:
    """``wanted``, or ``wanted-imported`` (then ``-2``, ``-3`` …) when that id is taken."""
    if wanted not in taken:
        return wanted
    base = f"{wanted}-imported"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def read_workflow(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WorkflowImportError(f"cannot read workflow {path}: {e}", hint="pass a ComfyUI workflow JSON file") from e


def import_file(path: str | Path, schema: NodeSchema | None = None, *, flow_id: str | None = None,
                family: Family | str | None = None) -> Flow:
    path = Path(path)
    return import_workflow(read_workflow(path), schema, flow_id=flow_id or slugify(path.stem), name=path.stem,
                           family=family, source=str(path))


def save_user_flow(flow: Flow, user_dir: Path, *, overwrite: bool = False) -> Path:
    """Write ``flow`` to ``user_dir/<id>.json`` (the user library, loaded beside the shipped one)."""
    user_dir.mkdir(parents=True, exist_ok=True)
    path = user_dir / f"{flow.id}.json"
    if path.exists() and not overwrite:
        raise FlowError(f"a user flow {flow.id!r} already exists at {path}",
                        hint="pass another id (--id) or overwrite it (--force)")
    path.write_text(json.dumps(flow.model_dump(mode="json"), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


__all__ = ["import_workflow", "import_file", "save_user_flow", "ui_to_api", "to_api_graph", "validation_error",
           "free_id", "infer_slots", "infer_family", "infer_models", "is_ui_format", "WorkflowImportError"]
