"""`comfygen flows …` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from comfygen.flow_library.schema import NodeSchema
from comfygen.flow_library.score_table import ScoreTable
from comfygen.server.commands import flows as flows_cmd
from comfygen.tools.settings import get_settings

UI = Path(__file__).parent / "data" / "default_ui.json"
runner = CliRunner()


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        pass

    flows_cmd.register(app)
    return app


def _run(app: typer.Typer, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output + (str(result.exception) if result.exception and result.exit_code not in (0, 1) else "")


def test_list_family_and_json(app: typer.Typer) -> None:
    code, out = _run(app, "flows", "list", "--family", "flux", "--json")
    assert code == 0
    rows = json.loads(out)
    assert len(rows) >= 6 and {r["family"] for r in rows} == {"flux"}
    code, out = _run(app, "flows", "list", "--base")
    assert code == 0 and "sdxl-refiner" in out and "-v" not in out.split("sdxl-refiner")[0][-40:]


def test_list_by_category_ranks_measured_flows_first(app: typer.Typer) -> None:
    table = ScoreTable()
    table.observe("sd15-base", ["people"], 0.2, "test")
    table.observe("sdxl-juggernaut", ["people"], 0.9, "test")
    table.save(get_settings().score_table_path)
    code, out = _run(app, "flows", "list", "--category", "people", "--json")
    assert code == 0
    # The shipped table measures the rating-source flows; the user's cells rank the rest.
    rows = [r for r in json.loads(out) if not r["id"].startswith("rated-")]
    assert [r["id"] for r in rows[:2]] == ["sdxl-juggernaut", "sd15-base"]
    assert rows[0]["measured"] and not rows[2]["measured"] and rows[2]["score"] is None
    code, out = _run(app, "flows", "list", "--category", "people", "--family", "sd15")
    assert code == 0 and "unmeasured" in out and "0.200" in out
    code, _ = _run(app, "flows", "list", "--category", "no-such-category")
    assert code != 0


def test_show(app: typer.Typer) -> None:
    code, out = _run(app, "flows", "show", "sdxl-refiner")
    assert code == 0 and "sd_xl_refiner_1.0.safetensors" in out and "slot seed" in out
    code, out = _run(app, "flows", "show", "flux-dev", "--api")
    assert code == 0 and {n["class_type"] for n in json.loads(out).values()} >= {"UNETLoader", "FluxGuidance"}


def test_validate_bundled_and_object_info(app: typer.Typer, tmp_path: Path) -> None:
    code, out = _run(app, "flows", "validate")
    assert code == 0 and "flows valid" in out
    core = {k: v for k, v in NodeSchema.bundled().info.items() if k not in NodeSchema.bundled().packs}
    path = tmp_path / "object_info.json"
    path.write_text(json.dumps(core))
    code, out = _run(app, "flows", "validate", "--object-info", str(path))
    assert code == 1 and "sd15-facerestore" in out and "FaceRestoreModelLoader does not exist" in out
    code, out = _run(app, "flows", "validate", "--object-info", str(path), "--id", "sd15-base", "--check-files")
    assert code == 1 and "value_not_in_list" in out


def test_validate_against_a_comfyui_url(app: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    info = NodeSchema.bundled().info

    from comfygen.tools.comfy.client import ComfyClient

    async def fake_object_info(self: ComfyClient, refresh: bool = False) -> dict:
        assert self.url == "http://comfy.test:8188"
        return info

    monkeypatch.setattr(ComfyClient, "object_info", fake_object_info)
    code, out = _run(app, "flows", "validate", "--comfyui", "http://comfy.test:8188/", "--id", "flux-dev")
    assert code == 0 and "1/1" in out


def test_import_then_list_and_bind(app: typer.Typer, tmp_path: Path) -> None:
    code, out = _run(app, "flows", "import", str(UI), "--id", "my-flow", "--yes")
    assert code == 0, out
    assert (get_settings().user_flows_dir / "my-flow.json").is_file()
    code, out = _run(app, "flows", "import", str(UI), "--id", "my-flow", "--yes")
    assert code == 1  # exists; --force overwrites
    code, out = _run(app, "flows", "show", "my-flow")
    assert code == 0 and "imported" in out
    code, _ = _run(app, "flows", "import", str(UI), "--id", "sd15-base", "--yes")
    assert code == 1

    bundled = NodeSchema.bundled().info
    info = {k: v for k, v in bundled.items()}
    info["CheckpointLoaderSimple"] = {**bundled["CheckpointLoaderSimple"], "input": {"required": {
        "ckpt_name": [["v1-5-pruned-emaonly.safetensors", "SDXL/sd_xl_base_1.0.safetensors"], {}]}}}
    info["LoraLoader"] = {**bundled["LoraLoader"], "input": {"required": {
        **bundled["LoraLoader"]["input"]["required"], "lora_name": [["add_detail.safetensors"], {}]}}}
    path = tmp_path / "oi.json"
    path.write_text(json.dumps(info))
    code, out = _run(app, "flows", "bind", "--object-info", str(path), "--json")
    assert code == 0
    status = {b["flow_id"]: b for b in json.loads(out)}
    assert status["sd15-base"]["status"] == "runnable"
    assert status["my-flow"]["status"] == "runnable"
    assert status["sdxl-base"]["status"] == "mappable"
    assert status["sdxl-base"]["mapping"] == {"sd_xl_base_1.0.safetensors": "SDXL/sd_xl_base_1.0.safetensors"}
    assert status["flux-dev"]["status"] == "missing"
    code, out = _run(app, "flows", "bind", "--object-info", str(path), "--status", "runnable")
    assert code == 0 and "sd15-base" in out and "flux-dev " not in out
    code, _ = _run(app, "flows", "bind")
    assert code == 1
