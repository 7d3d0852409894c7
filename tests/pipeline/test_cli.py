from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from comfygen.server.cli import app
from comfygen.server.commands import register_all
from comfygen.tools.settings import get_settings
from comfygen.tools.store import RunStore

register_all(app)
runner = CliRunner()


def _load_make_flow():
    import importlib.util

    spec = importlib.util.spec_from_file_location("pipeline_flows", Path(__file__).with_name("conftest.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.make_flow


@pytest.fixture
def user_flow(_isolated_home):
    flow = _load_make_flow()(flow_id="cli-test-flow")
    d = get_settings().user_flows_dir
    d.mkdir(parents=True, exist_ok=True)
    (d / "cli-test-flow.json").write_text(flow.model_dump_json(), encoding="utf-8")
    return flow


def test_run_then_list_and_show(fake_comfyui, user_flow):
    res = runner.invoke(app, ["run", "cli-test-flow", "--prompt", "a lighthouse", "--seed", "5", "--size", "64x64",
                              "--endpoint", fake_comfyui.url])
    assert res.exit_code == 0, res.output
    assert "run" in res.output and ".png" in res.output
    with RunStore(get_settings().store_path) as store:
        (rec,) = store.list()
    assert rec.status == "succeeded" and rec.seed == 5 and Path(rec.outputs[0].path).is_file()
    assert rec.id in res.output

    res = runner.invoke(app, ["runs", "list"])
    assert res.exit_code == 0 and "succeeded" in res.output and rec.flow_id[:6] in res.output
    res = runner.invoke(app, ["runs", "list", "--json"])
    assert json.loads(res.output.splitlines()[0])["id"] == rec.id
    res = runner.invoke(app, ["runs", "show", rec.id[:15]])
    assert res.exit_code == 0 and "a lighthouse" in res.output and "succeeded" in res.output
    res = runner.invoke(app, ["runs", "show", rec.id, "--json"])
    assert json.loads(res.output)["graph"]["6"]["inputs"]["text"] == "a lighthouse"


def test_run_json_and_env_endpoints(fake_comfyui, user_flow, monkeypatch):
    monkeypatch.setenv("COMFYGEN_COMFYUI_URLS", fake_comfyui.url)
    get_settings.cache_clear()
    res = runner.invoke(app, ["run", "cli-test-flow", "-p", "x", "--json", "--batch", "2"])
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.output)["outputs"]) == 2


def test_no_endpoint_is_a_clear_error(user_flow, capsys):
    from comfygen.server.cli import main

    with pytest.raises(SystemExit) as e:
        main(["run", "cli-test-flow", "-p", "x"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "no ComfyUI server configured" in err and "COMFYGEN_COMFYUI_URLS" in err


def test_bad_size(fake_comfyui, user_flow, capsys):
    from comfygen.server.cli import main

    with pytest.raises(SystemExit):
        main(["run", "cli-test-flow", "-p", "x", "--size", "big", "-e", fake_comfyui.url])
    assert "WIDTHxHEIGHT" in capsys.readouterr().err


def test_comfyui_commands(fake_comfyui):
    res = runner.invoke(app, ["comfyui", "status", "-e", fake_comfyui.url])
    assert res.exit_code == 0 and "yes" in res.output, res.output
    res = runner.invoke(app, ["comfyui", "status", "-e", fake_comfyui.url, "--json"])
    (status,) = json.loads(res.output)
    assert status["version"] == "0.3.64" and status["jobs_api"] is False
    res = runner.invoke(app, ["comfyui", "models", "-e", fake_comfyui.url, "--json"])
    assert "random_sd15.safetensors" in json.loads(res.output)[fake_comfyui.url]["checkpoints"]
    res = runner.invoke(app, ["comfyui", "queue", "-e", fake_comfyui.url])
    assert res.exit_code == 0 and "pending: 0" in res.output


def test_runs_empty_and_recover():
    res = runner.invoke(app, ["runs", "list"])
    assert res.exit_code == 0 and "no runs recorded" in res.output
    res = runner.invoke(app, ["runs", "recover"])
    assert res.exit_code == 0 and "no orphaned runs" in res.output


def _dead_pid() -> int:
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_recover_lists_only_resumable_runs_and_resume_leaves_finished_runs(fake_comfyui):
    import uuid

    graph = {"1": {"class_type": "EmptyImage", "inputs": {}}}
    with RunStore(get_settings().store_path) as store:
        handed = store.create(prompt="handed over", flow_id="f", graph=graph, comfy_prompt_id=str(uuid.uuid4()))
        store.mark_running(handed.id, endpoint=fake_comfyui.url)
        never = store.create(prompt="never sent", flow_id="f", graph=graph, comfy_prompt_id=str(uuid.uuid4()))
        failed = store.create(prompt="broke", flow_id="f", graph=graph, comfy_prompt_id=str(uuid.uuid4()))
        store.fail(failed.id, "node 3 KSampler failed: boom")
        with store._tx() as db:
            db.execute("UPDATE runs SET pid=? WHERE id IN (?, ?)", (_dead_pid(), handed.id, never.id))
    res = runner.invoke(app, ["runs", "recover"])
    assert res.exit_code == 0, res.output
    assert f"comfygen runs show {handed.id} --resume" in res.output
    assert never.id not in res.output and "1 run(s) never reached ComfyUI" in res.output

    res = runner.invoke(app, ["runs", "show", failed.id, "--resume", "-e", fake_comfyui.url])
    assert res.exit_code == 0 and "nothing to resume" in res.output
    with RunStore(get_settings().store_path) as store:
        after = store.get(failed.id)
        assert after.status == "failed" and after.error.message == "node 3 KSampler failed: boom"

    res = runner.invoke(app, ["runs", "show", handed.id, "--resume", "-e", fake_comfyui.url])
    assert res.exit_code != 0 and "is gone" in str(res.exception)  # the server never had it: failed, with why
    with RunStore(get_settings().store_path) as store:
        gone = store.get(handed.id)
    assert gone.status == "failed" and "not queued, not running, not in its history" in gone.error.message
