"""``comfygen flows …``: list, show, validate, import and bind flows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ...flow_library.binding import bind, installed_from_object_info
from ...flow_library.errors import FlowError
from ...flow_library.importer import (free_id, import_file, import_workflow, read_workflow,
                                      save_user_flow, slugify)
from ...flow_library.library import FlowLibrary
from ...flow_library.model import Flow
from ...flow_library.schema import NodeSchema, validate_graph
from ...tools.errors import ComfyGenError, ConfigError
from ...tools.settings import get_settings

flows_app = typer.Typer(help="Browse, validate, import and bind ComfyUI flows.", no_args_is_help=True)
console = Console()


def _library() -> FlowLibrary:
    return FlowLibrary.default(get_settings().user_flows_dir)


def _object_info(object_info: Path | None, comfyui: str | None) -> dict[str, Any] | None:
    if object_info and comfyui:
        raise ConfigError("pass either --object-info or --comfyui, not both", hint="drop one of them")
    if object_info:
        try:
            return json.loads(object_info.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"cannot read {object_info}: {e}", hint="pass a saved GET /object_info answer") from e
    if comfyui:
        import asyncio

        from ...tools.comfy.client import ComfyClient

        async def fetch() -> dict[str, Any]:
            s = get_settings()
            async with ComfyClient(comfyui, connect_timeout=s.connect_timeout_s, read_timeout=s.read_timeout_s) as c:
                return await c.object_info()

        return asyncio.run(fetch())
    return None


def _tags(flow: Flow) -> str:
    return ", ".join(flow.tags)


@flows_app.command("list")
def list_flows(
    family: str | None = typer.Option(None, "--family", "-f", help="Only this family (sd15, sdxl, flux, ...)."),
    category: list[str] = typer.Option([], "--category", "-c", help="Rank by measured scores for these categories."),
    tag: str | None = typer.Option(None, "--tag", "-t", help="Only flows with this tag."),
    base_only: bool = typer.Option(False, "--base", help="Only base flows (no generated variants)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List flows; with --category, ranked by the score table (unmeasured flows last)."""
    import anyio

    from ...tools.app.operations import invoke
    from ...tools.app.service import ComfyGen

    args = {"family": family, "tag": tag, "categories": list(category), "base_only": base_only}
    listed = anyio.run(invoke, ComfyGen(get_settings()), "list_flows", args)
    flows = listed.flows
    scores = {f.id: f.score for f in flows if f.measured}
    if as_json:
        typer.echo(json.dumps([f.model_dump(exclude=set() if category else {"score", "measured"}) for f in flows],
                              indent=1))
        return
    table = Table(title=f"{len(flows)} flows" + (f" ranked for {', '.join(category)}" if category else ""))
    for col in ("id", "family", "steps", "cfg", "tags") + (("score",) if category else ()):
        table.add_column(col, overflow="fold")
    for f in flows:
        row = [f.id, f.family, str(f.steps or "-"), f"{f.cfg:g}" if f.cfg is not None else "-", ", ".join(f.tags)]
        if category:
            row.append(f"{scores[f.id]:.3f}" if f.id in scores else "[dim]unmeasured[/]")
        table.add_row(*row)
    console.print(table)
    if category and not scores:
        console.print("[yellow]No measured scores for these categories yet: every flow is unmeasured.[/]")


@flows_app.command("show")
def show(flow_id: str = typer.Argument(..., help="Flow id."),
         api: bool = typer.Option(False, "--api", help="Print only the ComfyUI API graph (JSON).")) -> None:
    """Show one flow: models, settings, slots; or its API graph with --api."""
    flow = _library().get(flow_id)
    if api:
        typer.echo(json.dumps(flow.graph, indent=1))
        return
    table = Table(show_header=False, title=flow.id)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("name", flow.name)
    table.add_row("family", flow.family.value)
    table.add_row("description", flow.description)
    table.add_row("models", "\n".join(f"{folder}/{name}" for folder, name in flow.models.files()) or "-")
    table.add_row("sampling", f"{flow.sampler} / {flow.scheduler}, {flow.steps} steps, cfg {flow.cfg}")
    table.add_row("size", f"{flow.width}x{flow.height}")
    table.add_row("tags", _tags(flow))
    table.add_row("requires", ", ".join(f"{r.kind}:{r.name}" for r in flow.requires) or "-")
    prov = flow.provenance
    table.add_row("provenance", prov.kind + (f" of {prov.parent}: {'; '.join(prov.changes)}" if prov.parent else "")
                  + (f" ({prov.source})" if prov.source else ""))
    for name in ("positive", "negative", "regional", "seed", "width", "height", "batch", "image"):
        refs = getattr(flow.slots, name)
        if refs or name not in ("regional", "image"):
            table.add_row(f"slot {name}", ", ".join(f"{r.node}.{r.input}" for r in refs) or "-")
    table.add_row("outputs", ", ".join(flow.slots.output))
    if prov.notes:
        table.add_row("notes", escape("\n".join(prov.notes)))
    table.add_row("nodes", str(len(flow.graph)))
    console.print(table)


def _workflow_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".json")
        if not files:
            raise ConfigError(f"no workflow files (*.json) in {path}", hint="pass a folder of ComfyUI workflow JSON files")
        return files
    return [path]


def _error_lines(e: ComfyGenError) -> list[str]:
    node_errors = getattr(e, "node_errors", None) or {}
    lines = [e.message.split(": node ")[0] + ":" if node_errors else e.message]
    for nid, ne in node_errors.items():
        for err in ne.get("errors", []):
            name = (err.get("extra_info") or {}).get("input_name") or ""
            lines.append(f"  node {nid} ({ne.get('class_type')}) {name}: {err.get('type')}: {err.get('message')}"
                         + (f": {err['details']}" if err.get("details") and err.get("details") != name else ""))
    if e.hint:
        lines.append(f"  hint: {e.hint}")
    return lines


def _slot_summary(flow: Flow) -> str:
    s = flow.slots
    parts = [f"{name} {len(getattr(s, name))}" for name in ("positive", "negative", "regional", "seed", "width", "image")
             if getattr(s, name)]
    return ", ".join(parts + [f"output {', '.join(s.output)}"])


def _validate_files(path: Path, schema: NodeSchema) -> None:
    bad = 0
    files = _workflow_files(path)
    for file in files:
        try:
            flow = import_workflow(read_workflow(file), schema, flow_id=slugify(file.stem), name=file.stem)
        except ComfyGenError as e:
            bad += 1
            console.print(f"[red]✗ {file.name}[/]")
            for line in _error_lines(e):
                console.print("  " + line, markup=False, highlight=False)
            continue
        console.print(f"[green]✓ {file.name}[/] ({flow.family.value}; {_slot_summary(flow)})")
        for note in flow.provenance.notes:
            console.print(f"  note: {note}", markup=False, highlight=False)
    console.print(f"{len(files) - bad}/{len(files)} workflows would import")
    if bad:
        raise typer.Exit(1)


@flows_app.command("validate")
def validate(
    path: Path | None = typer.Argument(None, exists=True, help="A workflow file (UI or API format) or a folder of "
                                                                "them: check without importing. Default: the library."),
    object_info: Path | None = typer.Option(None, "--object-info", help="Validate against this saved /object_info."),
    comfyui: str | None = typer.Option(None, "--comfyui", help="Validate against a running ComfyUI's /object_info."),
    flow_id: str | None = typer.Option(None, "--id", help="Only this flow."),
    check_files: bool = typer.Option(False, "--check-files", help="Also require model files to be installed."),
) -> None:
    """Validate flows (or a workflow file) the way ComfyUI's POST /prompt would (bundled schema by default)."""
    info = _object_info(object_info, comfyui)
    schema = NodeSchema(info) if info is not None else NodeSchema.bundled()
    if path is not None:
        _validate_files(path, NodeSchema(info).with_packs() if info is not None else schema)
        return
    lib = _library()
    flows = [lib.get(flow_id)] if flow_id else list(lib)
    references = [f for f in flows if not f.executable]
    flows = [f for f in flows if f.executable]
    bad = 0
    for flow in flows:
        report = validate_graph(flow.graph, schema, check_model_files=check_files)
        if not report.ok:
            bad += 1
            console.print(f"[red]✗ {flow.id}[/]\n  " + report.summary().replace("\n", "\n  "))
    source = "bundled schema (ComfyUI 0.3.64 + known packs)" if info is None else (comfyui or str(object_info))
    console.print(f"{len(flows) - bad}/{len(flows)} flows valid against {source}")
    if references:
        console.print(f"{len(references)} reference flows (API-only or research models, no graph) not validated")
    if bad:
        raise typer.Exit(1)


def _slots_table(flow: Flow) -> Table:
    table = Table(title=f"{flow.id}: inferred slots ({flow.family.value}, {len(flow.graph)} nodes)")
    table.add_column("slot")
    table.add_column("node.input (current value)", overflow="fold")
    for name in ("positive", "negative", "regional", "seed", "width", "height", "batch", "image"):
        refs = getattr(flow.slots, name)
        table.add_row(name, "\n".join(f"{r.node}.{r.input} ({flow.graph[r.node]['inputs'].get(r.input)!r:.60})"
                                       for r in refs) or "-")
    table.add_row("output", ", ".join(flow.slots.output))
    return table


def _import_one(file: Path, schema: NodeSchema, *, flow_id: str | None, family: str | None, force: bool,
                shipped: set[str]) -> tuple[Flow, str | None]:
    """The flow to save, and a message when its id had to change."""
    flow = import_file(file, schema, flow_id=flow_id, family=family)
    if flow.id in shipped:
        if flow_id is not None:  # asked for by name: a user flow may not shadow a shipped one
            raise FlowError(f"{flow.id!r} is a shipped flow id", hint="pick another id with --id")
        user_dir = get_settings().user_flows_dir
        taken = shipped | ({p.stem for p in user_dir.glob("*.json")} if user_dir.is_dir() and not force else set())
        new_id = free_id(flow.id, taken)
        return flow.model_copy(update={"id": new_id}), f"{flow.id!r} is a shipped flow id: imported as {new_id!r}"
    return flow, None


@flows_app.command("import")
def import_cmd(
    path: Path = typer.Argument(..., exists=True, help="Workflow JSON (UI or API format), or a folder of them."),
    flow_id: str | None = typer.Option(None, "--id", help="Id for the flow (default: from the file name)."),
    object_info: Path | None = typer.Option(None, "--object-info", help="Node schema of your ComfyUI (custom nodes)."),
    family: str | None = typer.Option(None, "--family", help="Model family, when the inferred one is wrong."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Save without asking to confirm the inferred slots."),
    force: bool = typer.Option(False, "--force", help="Overwrite a user flow with the same id."),
) -> None:
    """Import a workflow (or every workflow in a folder) into your library ($COMFYGEN_HOME/flows)."""
    info = _object_info(object_info, None)
    schema = NodeSchema(info).with_packs() if info is not None else NodeSchema.bundled()
    shipped = set(FlowLibrary.default(variants=True).ids())
    user_dir = get_settings().user_flows_dir
    if path.is_dir():
        if flow_id:
            raise ConfigError("--id names one flow; a folder imports several", hint="drop --id, or import one file")
        _import_folder(path, schema, family=family, force=force, shipped=shipped)
        return
    flow, renamed = _import_one(path, schema, flow_id=flow_id, family=family, force=force, shipped=shipped)
    console.print(_slots_table(flow))
    for note in flow.provenance.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    if renamed:
        console.print(f"[yellow]{renamed}[/]")
    if not yes and not typer.confirm("Save this flow?", default=True):
        raise typer.Exit(1)
    out = save_user_flow(flow, user_dir, overwrite=force)
    console.print(f"saved {flow.id} to {out}")


def _import_folder(path: Path, schema: NodeSchema, *, family: str | None, force: bool, shipped: set[str]) -> None:
    imported: list[tuple[str, Flow, str | None]] = []
    refused: list[tuple[str, str]] = []
    for file in _workflow_files(path):
        try:
            flow, renamed = _import_one(file, schema, flow_id=None, family=family, force=force, shipped=shipped)
            save_user_flow(flow, get_settings().user_flows_dir, overwrite=force)
        except (ComfyGenError, ValueError) as e:
            refused.append((file.name, "\n".join(_error_lines(e)) if isinstance(e, ComfyGenError) else str(e)))
            continue
        imported.append((file.name, flow, renamed))
    table = Table(title=f"imported {len(imported)} of {len(imported) + len(refused)} workflows from {path}")
    for col in ("file", "result", "id", "family", "slots / reason"):
        table.add_column(col, overflow="fold")
    for name, flow, renamed in imported:
        detail = _slot_summary(flow) + "".join(f"\nnote: {n}" for n in [*flow.provenance.notes, *([renamed] if renamed
                                                                                                 else [])])
        table.add_row(escape(name), "[green]imported[/]", flow.id, flow.family.value, escape(detail))
    for name, reason in refused:
        table.add_row(escape(name), "[red]refused[/]", "-", "-", escape(reason))
    console.print(table)
    if not imported:
        raise typer.Exit(1)


@flows_app.command("bind")
def bind_cmd(
    object_info: Path | None = typer.Option(None, "--object-info", help="A saved /object_info of your ComfyUI."),
    comfyui: str | None = typer.Option(None, "--comfyui", help="A running ComfyUI to read /object_info from."),
    status: str | None = typer.Option(None, "--status", help="Only flows with this status (runnable|mappable|missing)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Which flows run on your ComfyUI as they are, which after renaming files, and what is missing."""
    info = _object_info(object_info, comfyui)
    if info is None:
        raise ConfigError("bind needs your ComfyUI's model lists", hint="pass --object-info FILE or --comfyui URL")
    installed = installed_from_object_info(info)
    classes = set(info)
    bindings = [bind(f, installed, node_classes=classes) for f in _library() if f.executable]
    colour = {"runnable": "green", "mappable": "yellow", "missing": "red"}
    counts = {s: sum(b.status == s for b in bindings) for s in colour}
    if status:
        bindings = [b for b in bindings if b.status == status]
    if as_json:
        typer.echo(json.dumps([{**b.model_dump(mode="json"), "mapping": b.mapping} for b in bindings], indent=1))
        return
    table = Table(title="flows on this ComfyUI")
    for col in ("id", "status", "mapping / missing"):
        table.add_column(col, overflow="fold")
    for b in bindings:
        detail = [f"{k} → {v}" for k, v in b.mapping.items()]
        detail += [f"missing {folder}/{name}" for folder, name in b.missing] + [f"missing node {n}" for n in b.missing_nodes]
        table.add_row(b.flow_id, f"[{colour[b.status]}]{b.status}[/]", "\n".join(detail) or "-")
    console.print(table)
    console.print(", ".join(f"{n} {s}" for s, n in counts.items()))


def register(app: typer.Typer) -> None:
    app.add_typer(flows_app, name="flows")
