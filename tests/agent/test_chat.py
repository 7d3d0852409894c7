"""``comfygen chat`` end to end: the CLI starts the server over stdio and a real SDK talks to the fake LLM."""

from __future__ import annotations

import json

import pytest
from fakecomfy import FakeComfyUI
from llmfake import Action, FakeLLM, ICPolicy
from mcp_helpers import library_models
from typer.testing import CliRunner

from comfygen.server.cli import app
from comfygen.server.commands import register_all


def small_sd15(turns, tools):
    action = ICPolicy()(turns, tools)
    return Action(action.text, [(n, {**a, "size": "64x64", "flow_id": "sd15-base"} if n == "generate" else a)
                                for n, a in action.tool_calls])


@pytest.fixture(scope="module")
def fake_comfy():
    fake = FakeComfyUI(models=library_models()).start_in_thread()
    yield fake
    fake.stop()


@pytest.fixture
def fake_llm():
    fake = FakeLLM(small_sd15).start_in_thread()
    yield fake
    fake.stop()


def cli(args):
    if not any((c.name or c.callback.__name__) == "chat" for c in app.registered_commands):
        register_all(app)
    return CliRunner().invoke(app, args)


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_chat_makes_and_saves_an_image_with_its_record(provider, fake_comfy, fake_llm, tmp_path, monkeypatch):
    for var in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    if provider == "anthropic":
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_llm.anthropic_url)
        extra = []
    else:
        extra = ["--base-url", fake_llm.openai_url, "--model", "local-model"]
    monkeypatch.setenv("COMFYGEN_SCORERS", "")  # no scoring: keeps the server start fast
    out = tmp_path / "out"
    result = cli(["chat", "a fox reading in a library", "--budget", "2", "--out", str(out),
                  "--endpoint", fake_comfy.url, *extra])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "-> suggest_flows" in result.output and "-> generate" in result.output
    pngs, records = list(out.glob("comfygen-*.png")), list(out.glob("comfygen-*.json"))
    assert len(pngs) == 1 and pngs[0].read_bytes()[:4] == b"\x89PNG"
    record = json.loads(records[0].read_text())
    assert record["prompt"] == "a fox reading in a library" and record["flow_id"] == "sd15-base"
    assert record["status"] == "succeeded"
    api = {r[0] for r in fake_llm.requests}
    assert api == {provider}


def test_chat_without_any_key_points_at_the_fast_path(monkeypatch):
    for var in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    result = cli(["chat", "a fox"])
    assert result.exit_code != 0
    text = result.output + str(result.exception)
    assert "ANTHROPIC_API_KEY" in text
