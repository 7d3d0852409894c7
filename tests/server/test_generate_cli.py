"""``comfygen generate``: README command 1. Plans offline (no GPU, no ComfyUI), or runs with a ComfyUI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakecomfy import FakeComfyUI
from mcp_helpers import library_models
from typer.testing import CliRunner

from comfygen.server.cli import app
from comfygen.server.commands import register_all


def cli(args, **kw):
    if not any((c.name or c.callback.__name__) == "generate" for c in app.registered_commands):
        register_all(app)
    return CliRunner().invoke(app, args, **kw)


def test_without_comfyui_it_writes_the_api_json_and_explains_the_choice(tmp_path, monkeypatch):
    monkeypatch.delenv("COMFYGEN_COMFYUI_URLS", raising=False)
    monkeypatch.chdir(tmp_path)
    result = cli(["generate", "a lighthouse on a cliff at dusk, oil painting", "--seed", "5"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.is_file() and path.parent == tmp_path
    graph = json.loads(path.read_text())
    assert all("class_type" in node for node in graph.values())
    texts = [n["inputs"].get("text") for n in graph.values()]
    assert "a lighthouse on a cliff at dusk, oil painting" in texts
    assert 5 in [v for n in graph.values() for v in n["inputs"].values() if isinstance(v, int)]
    assert "No ComfyUI configured" in result.output and "why" in result.output and "predicted" in result.output


def test_a_chosen_flow_and_json_output(tmp_path, monkeypatch):
    monkeypatch.delenv("COMFYGEN_COMFYUI_URLS", raising=False)
    out = tmp_path / "flow.json"
    result = cli(["generate", "a cat", "--flow", "sdxl-base", "--size", "768x512", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["flow_id"] == "sdxl-base" and data["path"] == str(out)
    graph = json.loads(out.read_text())
    assert 768 in [v for n in graph.values() for v in n["inputs"].values()]


def test_bad_input_is_a_clean_error(tmp_path, monkeypatch):
    monkeypatch.delenv("COMFYGEN_COMFYUI_URLS", raising=False)
    assert cli(["generate", "a cat", "--size", "huge"]).exit_code != 0
    bad_flow = cli(["generate", "a cat", "--flow", "no-such-flow"])
    assert bad_flow.exit_code != 0 and "no-such-flow" in str(bad_flow.exception)


@pytest.fixture
def fake():
    fake = FakeComfyUI(models=library_models()).start_in_thread()
    yield fake
    fake.stop()


def test_with_a_comfyui_it_runs_scores_and_saves(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("COMFYGEN_SCORERS", "")  # scoring off: the image still comes back, unscored, saying why
    out = tmp_path / "fox.png"
    result = cli(["generate", "a red fox", "--flow", "sd15-base", "--size", "64x64", "-e", fake.url,
                  "--out", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert out.read_bytes()[:4] == b"\x89PNG" and result.stdout.strip().endswith(str(out))
    assert "not scored (scoring is turned off" in result.output and "sd15-base" in result.output
