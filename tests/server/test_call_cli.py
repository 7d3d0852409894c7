"""``comfygen call``: every registry operation from a terminal, with the MCP tools' arguments and results."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from comfygen.server.cli import app
from comfygen.server.commands import register_all
from comfygen.tools.app.operations import OPERATIONS
from comfygen.tools.errors import GuardError


def cli(args, **kw):
    register_all(app)
    return CliRunner().invoke(app, args, **kw)


def test_list_shows_every_operation_with_its_schema(tmp_path, monkeypatch):
    monkeypatch.setenv("COMFYGEN_HOME", str(tmp_path))
    result = cli(["call", "--list"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert set(listed) == set(OPERATIONS)
    assert listed["generate"]["arguments"]["properties"]["candidates"]["maximum"] == 16


def test_an_operation_runs_and_prints_its_result(tmp_path, monkeypatch):
    monkeypatch.setenv("COMFYGEN_HOME", str(tmp_path))
    monkeypatch.delenv("COMFYGEN_COMFYUI_URLS", raising=False)
    result = cli(["call", "get_flow", '{"flow_id": "sd15-base"}'])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["id"] == "sd15-base"


def test_bad_arguments_say_what_to_change(tmp_path, monkeypatch):
    monkeypatch.setenv("COMFYGEN_HOME", str(tmp_path))
    for args in (["call", "generate", '{"prompt": "a fox", "seeds": 2}'], ["call", "generate", "not json"],
                 ["call", "no_such_op"]):
        result = cli(args)
        assert isinstance(result.exception, GuardError), args
        assert result.exception.hint
    assert "seeds" in cli(["call", "generate", '{"prompt": "a fox", "seeds": 2}']).exception.message


def test_cli_only_operations_are_not_mcp_tools_and_run_from_the_cli(tmp_path, monkeypatch):
    from comfygen.tools.app.operations import served_on

    monkeypatch.setenv("COMFYGEN_HOME", str(tmp_path))
    assert {"list_flows", "list_runs"} <= {op.name for op in served_on("cli")}
    assert not {"list_flows", "list_runs"} & {op.name for op in served_on("mcp")}
    flows = json.loads(cli(["call", "list_flows", '{"family": "sd15", "base_only": true}']).stdout)["flows"]
    assert flows and all(f["family"] == "sd15" and f["provenance"] != "variant" for f in flows)
    assert json.loads(cli(["call", "list_runs", "{}"]).stdout) == {"runs": []}
    bad = cli(["call", "list_runs", '{"status": "done"}'])
    assert isinstance(bad.exception, GuardError) and "status" in bad.exception.message


def test_a_run_handed_back_as_running_goes_on_after_the_command_exits(tmp_path):
    """``wait_s`` elapses, the command prints the run id and exits; ComfyUI is not interrupted, and ``get_run``
    from a second process finishes the run (what MCP clients get from the server)."""
    import subprocess
    import sys

    from fakecomfy import FakeComfyUI
    from mcp_helpers import library_models
    from stdio_helpers import server_env

    fake = FakeComfyUI(models=library_models(), steps=40, step_time=0.05).start_in_thread()  # ~2 s a run
    try:
        env = server_env(tmp_path / "home", fake.url)
        gen = {"prompt": "a slow red fox", "flow_id": "sd15-base", "size": "64x64", "seed": 3, "wait_s": 0.2}
        first = subprocess.run([sys.executable, "-m", "comfygen.server.cli", "call", "generate", json.dumps(gen)],
                               env=env, capture_output=True, text=True, timeout=120)
        assert first.returncode == 0, first.stderr
        out = json.loads(first.stdout)
        assert out["status"] == "running" and out["run_id"]
        second = subprocess.run([sys.executable, "-m", "comfygen.server.cli", "call", "get_run",
                                 json.dumps({"run_id": out["run_id"], "wait_s": 60})],
                                env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
        assert json.loads(second.stdout)["status"] == "succeeded"
        assert not fake.interrupts
    finally:
        fake.stop()


def test_a_tiny_size_gets_the_range_not_the_syntax(tmp_path, monkeypatch):
    from comfygen.tools.app.requests import parse_size

    assert parse_size("8x8") == (8, 8) and parse_size(" 1024 × 768 ") == (1024, 768)
    monkeypatch.setenv("COMFYGEN_HOME", str(tmp_path))
    monkeypatch.setenv("COMFYGEN_COMFYUI_URLS", "http://127.0.0.1:9")
    bad = cli(["call", "generate", '{"prompt": "a fox", "flow_id": "sd15-base", "size": "8x8"}'])
    assert isinstance(bad.exception, GuardError) and "width=8" in bad.exception.message
    assert "multiple of 8" in bad.exception.hint
