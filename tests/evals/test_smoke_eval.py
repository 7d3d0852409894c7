"""The shipped smoke config end to end: fake ComfyUI, tiny scorers, report; numbers checked against the run store."""

from __future__ import annotations

import asyncio
import json
import time
from importlib import resources
from pathlib import Path

import pytest

from comfygen.evals.runner import load_config, prompt_seeds, run_eval
from comfygen.evals.summary import load_samples
from comfygen.flow_library.library import FlowLibrary
from comfygen.tools.store import RunStore

SMOKE = Path(str(resources.files("comfygen.evals") / "configs" / "smoke.yaml"))


@pytest.fixture
def fake_with_flow_models():
    from fakecomfy import FakeComfyUI

    cfg = load_config(SMOKE)
    lib = FlowLibrary.default()
    models: dict[str, list[str]] = {}
    import fnmatch

    for spec in cfg.strategies:
        for s in spec.expand():
            flows = [lib.get(s.flow)] if s.flow else [f for f in lib if f.executable and any(
                fnmatch.fnmatchcase(f.id, pat) for pat in s.only)]
            for f in flows:
                for folder, name in f.models.files():
                    models.setdefault(folder, []).append(name)
    fake = FakeComfyUI(models=models).start_in_thread()
    yield fake
    fake.stop()


@pytest.mark.slow
def test_smoke_config_end_to_end(tmp_path, fake_with_flow_models):
    from comfygen.server.cli import main
    from comfygen.tools.settings import get_settings

    settings = get_settings()  # COMFYGEN_HOME is a per-test folder (tests/conftest.py)
    cfg = load_config(SMOKE)
    cfg.comfyui_urls = [fake_with_flow_models.url]
    t0 = time.monotonic()
    with pytest.raises(SystemExit) as done:
        main(["eval", "run", "--config", str(SMOKE), "--comfyui", fake_with_flow_models.url,
              "--out", str(tmp_path / "run1")])
    assert done.value.code == 0
    assert time.monotonic() - t0 < 120
    run_dir = tmp_path / "run1"

    res = json.loads((run_dir / "results.json").read_text())
    samples = load_samples(run_dir)
    plain = ["sd15-base", "sd15-dreamshaper", "sd15-lcm"]
    names = plain + ["sd15-base+search", "comfygen-ft"]
    assert res["strategies"] == names
    n_prompts = 6  # one per GenEval task
    assert res["n_prompts"] == n_prompts and len(samples) == n_prompts * 2 * len(names)
    assert all(s.error is None for s in samples)

    # same prompts and seeds for every strategy, seeds derived from the prompt id
    keys = {st: {(s.prompt_id, s.seed) for s in samples if s.strategy == st} for st in names}
    assert all(keys[st] == keys[names[0]] for st in names)
    for s in samples:
        assert s.seed in prompt_seeds(type("P", (), {"id": s.prompt_id})(), cfg.seed, cfg.seeds)

    with RunStore(settings.store_path) as store:
        total = {st: 0.0 for st in names}
        for s in samples:
            rec = store.get(s.run_id)
            assert rec.status == "succeeded" and rec.flow_id == s.flow_id and rec.prompt == s.prompt
            assert s.image in {o.path for o in rec.outputs} and Path(s.image).is_file()
            if s.strategy in plain + ["comfygen-ft"]:
                assert rec.seed == s.seed and rec.outputs[0].path == s.image
                assert (rec.timings.finished - rec.timings.started) == pytest.approx(s.gpu_seconds)
            total[s.strategy] += s.gpu_seconds
            assert set(s.scores) == {"imagereward", "pickscore", "hpsv20"}
            assert s.geneval_correct is not None
        n_runs = store.count()
    search_runs = n_runs - n_prompts * 2 * (len(plain) + 1)
    ft = [s for s in samples if s.strategy == "comfygen-ft"]
    assert all(s.flow_id.startswith("rated-sd1") and s.note.startswith("planner's top allowed flow") for s in ft)
    assert search_runs >= n_prompts * 2  # every searched image came out of at least one batch of candidates
    cost = {c["strategy"]: c for c in res["cost"]}
    for st in names:
        assert cost[st]["gpu_seconds_total"] == pytest.approx(total[st])
        assert cost[st]["images"] == n_prompts * 2 and cost[st]["reused"] == 0
    wins = {(w["a"], w["b"]): w for w in res["win_rates"]}
    for a in names:
        for b in names:
            if a != b:
                assert wins[(a, b)]["n"] == n_prompts * 2
                assert wins[(a, b)]["win_rate"] + wins[(b, a)]["win_rate"] == pytest.approx(1.0)
    mean = {(m["strategy"], m["scorer"]): m["mean"] for m in res["mean_scores"]}
    for st in names:
        vals = [s.scores["hpsv20"] for s in samples if s.strategy == st]
        assert mean[(st, "hpsv20")] == pytest.approx(sum(vals) / len(vals))
    assert set(res["geneval"]["table"]) == set(names)
    html = (run_dir / "report.html").read_text()
    assert html.count("data:image/") == n_prompts * len(names)  # the grid shows the first seed of each prompt

    # the dry run sees it all: done in run1; in the store for a new directory (except the noise search)
    from comfygen.evals.runner import plan_eval

    plan = {r["strategy"]: r for r in plan_eval(cfg, settings=settings, out_dir=run_dir)["strategies"]}
    assert all(plan[st]["done"] == n_prompts * 2 and plan[st]["to_generate"] == 0 for st in names)
    plan = {r["strategy"]: r for r in plan_eval(cfg, settings=settings, out_dir=tmp_path / "run2")["strategies"]}
    assert all(plan[st]["in_store"] == n_prompts * 2 for st in plain + ["comfygen-ft"])
    assert plan["sd15-base+search"]["to_generate"] == n_prompts * 2 and plan["sd15-base+search"]["runs_per_image"] == 3

    # a second evaluation in a new run directory makes no new plain runs: the run store has them all
    # (noise search draws its candidates again: it has no store-level reuse)
    run2 = asyncio.run(run_eval(cfg, settings=settings, out_dir=tmp_path / "run2"))
    with RunStore(settings.store_path) as store:
        assert store.count() == n_runs + search_runs
    res2 = json.loads((run2 / "results.json").read_text())
    reused = {c["strategy"]: c["reused"] for c in res2["cost"]}
    assert reused == {st: (n_prompts * 2 if st != "sd15-base+search" else 0) for st in names}
    again = {(s.strategy, s.prompt_id, s.seed, s.run_id) for s in load_samples(run2) if s.strategy in plain}
    assert again == {(s.strategy, s.prompt_id, s.seed, s.run_id) for s in samples if s.strategy in plain}
