"""`comfygen flows validate FILE`, `flows import DIR`, free ids, and an imported template run by `generate`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakecomfy import FakeComfyUI
from typer.testing import CliRunner
from workflow_builders import sd15, subgraphed

from comfygen.server.cli import app
from comfygen.server.commands import register_all
from comfygen.tools.settings import get_settings

runner = CliRunner()


def cli(*args: str) -> tuple[int, str]:
    if not any((c.name or c.callback.__name__) == "generate" for c in app.registered_commands):
        register_all(app)
    result = runner.invoke(app, list(args), env={"COLUMNS": "240"})
    return result.exit_code, result.output + (repr(result.exception) if result.exit_code not in (0, 1) else "")


def _write(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def _qwen() -> dict:
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "qwen_image_fp8_e4m3fn.safetensors",
                                                     "weight_dtype": "default"}},
        "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "qwen_2.5_vl_7b_fp8_scaled.safetensors",
                                                     "type": "qwen_image", "device": "default"}},
        "3": {"class_type": "VAELoader", "inputs": {"vae_name": "qwen_image_vae.safetensors"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "a poster", "clip": ["2", 0]}},
        "5": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1328, "height": 1328, "batch_size": 1}},
        "6": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["4", 0], "negative": ["4", 0],
                                                   "latent_image": ["5", 0], "seed": 1, "steps": 20, "cfg": 2.5,
                                                   "sampler_name": "euler", "scheduler": "simple", "denoise": 1}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["3", 0]}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "qwen"}},
    }


def test_validate_a_file_without_importing_it(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.json", sd15().workflow())
    code, out = cli("flows", "validate", str(good))
    assert code == 0 and "✓ good.json" in out and "1/1 workflows would import" in out
    assert not (get_settings().user_flows_dir / "good.json").exists()
    ui = sd15()
    ui.nodes[5]["widgets_values"] = [99999, 512, 1]
    ui.nodes[3]["widgets_values"][4] = "no_such_sampler"
    bad = _write(tmp_path / "bad.json", ui.workflow())
    code, out = cli("flows", "validate", str(bad))
    assert code == 1 and "node 5 (EmptyLatentImage) width: value_bigger_than_max" in out
    assert "node 3 (KSampler) sampler_name: value_not_in_list" in out


def test_import_a_folder_prints_imported_and_refused(tmp_path: Path) -> None:
    folder = tmp_path / "workflows"
    folder.mkdir()
    _write(folder / "castle.json", sd15().workflow())
    _write(folder / "flux_schnell.json", subgraphed())  # its id would be a shipped flow's
    _write(folder / "qwen.json", _qwen())
    custom = sd15()
    custom.node(40, "MyUpscaler")
    custom.node(41, "MyDetailer")
    _write(folder / "custom.json", custom.workflow())
    (folder / "notes.txt").write_text("not a workflow")
    code, out = cli("flows", "import", str(folder))
    assert code == 0, out
    assert "imported 3 of 4 workflows" in out
    assert "castle" in out and "qwen-image" in out and "refused" in out and "MyUpscaler, MyDetailer" in out
    assert "flux-schnell-imported" in out and "is a shipped flow id" in out
    user = get_settings().user_flows_dir
    assert {p.stem for p in user.glob("*.json")} == {"castle", "flux-schnell-imported", "qwen"}
    code, out = cli("flows", "list", "--family", "sd15", "--json")
    ids = {r["id"] for r in json.loads(out)}
    assert "castle" in ids and "qwen" not in ids
    code, out = cli("flows", "list", "--family", "qwen-image", "--json")
    assert "qwen" in {r["id"] for r in json.loads(out)}


def test_a_single_import_takes_a_free_id_and_says_so(tmp_path: Path) -> None:
    path = _write(tmp_path / "sd15_base.json", sd15().workflow())
    code, out = cli("flows", "import", str(path), "--yes")
    assert code == 0 and "imported as 'sd15-base-imported'" in out
    code, out = cli("flows", "import", str(path), "--yes")
    assert code == 0 and "sd15-base-imported-2" in out  # the first free one
    code, out = cli("flows", "import", str(path), "--id", "sd15-base", "--yes")
    assert code == 1  # asked for by name: refused
    code, out = cli("flows", "import", str(path), "--id", "mine", "--family", "sd21", "--yes")
    assert code == 0
    code, out = cli("flows", "show", "mine")
    assert code == 0 and "sd21" in out and "imported" in out and "slot image" not in out


@pytest.fixture
def fake():
    fake = FakeComfyUI(models={"checkpoints": ["v1-5-pruned-emaonly.safetensors"]}).start_in_thread()
    yield fake
    fake.stop()


def test_an_imported_template_then_generate_runs_it(fake: FakeComfyUI, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFYGEN_SCORERS", "")
    template = _write(tmp_path / "Z-Image-Turbo get started.json", subgraphed())
    code, out = cli("flows", "import", str(template), "--yes")
    assert code == 0, out
    flow_id = "z-image-turbo-get-started"
    image = tmp_path / "fox.png"
    code, out = cli("generate", "a red fox in the snow", "--flow", flow_id, "--size", "64x64", "-e", fake.url,
                    "--seed", "11", "--out", str(image))
    assert code == 0, out
    assert image.read_bytes()[:4] == b"\x89PNG" and flow_id in out
    entry = list(fake.history.values())[-1]  # what reached ComfyUI, as its /history keeps it
    graph = entry["prompt"][2]
    assert graph["75:58"]["inputs"]["text"] == "a red fox in the snow" and graph["75:61"]["inputs"]["seed"] == 11
    assert graph["75:60"]["inputs"]["width"] == 64 and graph["1"]["class_type"] == "CheckpointLoaderSimple"
    assert list(entry["outputs"]) == ["9"]
