"""The benchmark collector and the eval/bench CLI."""

from __future__ import annotations

import json
import textwrap

import pytest
from typer.testing import CliRunner

from comfygen.evals.metrics import Sample
from comfygen.evals.perf import runner as perf


@pytest.fixture
def bench_modules(tmp_path, monkeypatch):
    pkg = tmp_path / "fakebench"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "good.py").write_text(textwrap.dedent('''
        import argparse
        def main(argv=None):
            ap = argparse.ArgumentParser(); ap.add_argument("--quick", action="store_true")
            a = ap.parse_args(argv)
            r = {"quick": a.quick, "latency_ms": {"p50": 1.25, "p95": 2.5}, "n": 3}
            print(r)
            return r
    '''))
    (pkg / "bad.py").write_text("def main(argv=None):\n    raise RuntimeError('no GPU here')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path) + ":" + __import__("os").environ.get("PYTHONPATH", ""))
    monkeypatch.syspath_prepend(str(tmp_path))
    return pkg


def test_run_one_collects_figures_and_passes_quick(bench_modules):
    r = perf.run_one("fakebench.good", quick=True, timeout=60)
    assert r["ok"] and r["argv"] == ["--quick"]
    assert r["figures"] == {"quick": True, "latency_ms": {"p50": 1.25, "p95": 2.5}, "n": 3}
    rows = perf.rows([r])
    assert ("fakebench.good", "latency_ms.p95", "2.5") in rows
    bad = perf.run_one("fakebench.bad", timeout=60)
    assert not bad["ok"] and "no GPU here" in bad["error"]
    md = perf.markdown([r, bad], perf.machine(), "python -m comfygen.evals.perf")
    assert "## fakebench.good" in md and "| latency_ms.p50 | 1.25 |" in md
    assert "error: " in md and "Machine:" in md and "no GPU here" in md


def test_discover_lists_only_bench_modules():
    names = perf.discover()
    assert all(n.startswith("bench_") for n in names)
    assert "runner" not in names


def _app():
    import typer

    from comfygen.server.commands import register_all

    app = typer.Typer()
    register_all(app)
    return app


def test_cli_eval_prompts_and_report(tmp_path):
    runner = CliRunner()
    app = _app()
    r = runner.invoke(app, ["eval", "prompts", "geneval", "--per-category", "1", "--json"])
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.output.strip().splitlines()]
    assert len(lines) == 6 and {x["category"] for x in lines} == {"single_object", "two_object", "counting", "colors",
                                                                   "position", "color_attr"}
    s = [Sample(strategy=st, prompt_id=f"p{i}", prompt="x", seed=0, flow_id="f", scores={"hps": i * (k + 1)})
         for k, st in enumerate(["a", "b"]) for i in range(3)]
    (tmp_path / "samples.jsonl").write_text("".join(x.model_dump_json() + "\n" for x in s))
    (tmp_path / "run.json").write_text(json.dumps({"strategies": ["a", "b"], "heldout": "hps", "baseline": "a"}))
    r = runner.invoke(app, ["eval", "report", str(tmp_path), "--n-boot", "100"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "report.html").exists() and "0.833" in r.output  # b vs a: 2 wins + 1 tie of 3
    r = runner.invoke(app, ["bench", "--list"])
    assert r.exit_code == 0, r.output
    assert "bench_mcp" in r.output and "bench_client" in r.output  # the server's benchmark and evals/perf's


def test_cli_eval_run_rejects_a_bad_config(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nprompts: {set: geneval}\nstrategies: [{kind: flow}]\n")
    from comfygen.evals.runner import load_config
    from comfygen.tools.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        load_config(bad)
    assert "strategies.0" in str(e.value)


def test_cli_geneval_check(tmp_path):
    from pathlib import Path

    data = Path(__file__).resolve().parents[3] / "shared" / "data"
    if not (data / "ratings").is_dir():
        pytest.skip("GenEval annotation files not present")
    out = tmp_path / "check.json"
    r = CliRunner().invoke(_app(), ["eval", "geneval-check", "--data-dir", str(data), "--json", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["per_image_majority"]["all"]["n"] == 1200 and "not_checked" in res
    assert "position" in r.output and "not checked here" in r.output


def test_benchmarks_against_the_fake_say_they_need_a_source_checkout(tmp_path, monkeypatch):
    from comfygen.evals.perf import fake_comfyui

    monkeypatch.setattr(fake_comfyui, "TESTS", tmp_path)  # as in an install: no tests/ beside the package
    with pytest.raises(fake_comfyui.FakeComfyUIMissing) as e:
        fake_comfyui.start_fake()
    assert "source checkout" in str(e.value.code) and "tests/fakecomfy.py" in str(e.value.code)


def test_runner_takes_benchmarks_from_other_packages():
    found = perf.benchmarks(["comfygen.server.bench_mcp"])
    assert found["bench_mcp"] == "comfygen.server.bench_mcp" and found["bench_client"] == "bench_client"
    assert list(found) == sorted(found)
