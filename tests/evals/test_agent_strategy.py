"""ComfyGen-IC in the harness: the real agent loop, an LLM test double speaking the OpenAI API, the fake ComfyUI."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from comfygen.evals.runner import EvalConfig, run_eval
from comfygen.evals.summary import load_samples
from comfygen.flow_library.library import FlowLibrary
from comfygen.tools.settings import Settings
from comfygen.tools.store import RunStore


class PickFlowPolicy:
    """Generate with one flow at the seed the request names, follow the run, answer."""

    def __init__(self, flow_id: str):
        self.flow_id = flow_id

    def __call__(self, turns, tools):
        from llmfake import Action

        request = next(t.text for t in turns if t.role == "user")
        prompt = re.search(r"Make this image: (.*)", request).group(1).strip()
        seed = int(re.search(r"Use seed (\d+)", request).group(1))
        calls = [c for t in turns if t.role == "assistant" for c in t.tool_calls]
        if not calls:
            return Action("", [("generate", {"prompt": prompt, "flow_id": self.flow_id, "seed": seed})])
        last = [t for t in turns if t.role == "tool"][-1]
        if last.is_error:
            return Action(f"failed: {last.text[:100]}")
        data = json.loads(last.text[last.text.find("{"):last.text.rfind("}") + 1])
        if data.get("status") in ("running", "queued"):
            return Action("", [("get_run", {"run_id": data["run_id"], "wait_s": 30})])
        return Action(f"Done: run {data.get('run_id')}.")


@pytest.mark.slow
def test_agent_strategy_end_to_end(tmp_path, monkeypatch):
    from fakecomfy import FakeComfyUI
    from llmfake import FakeLLM

    lib = FlowLibrary.default()
    models: dict[str, list[str]] = {}
    for folder, name in lib.get("sd15-dreamshaper").models.files() + lib.get("sd15-base").models.files():
        models.setdefault(folder, []).append(name)
    fake = FakeComfyUI(models=models).start_in_thread()
    llm = FakeLLM(PickFlowPolicy("sd15-dreamshaper")).start_in_thread()
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    try:
        cfg = EvalConfig.model_validate({
            "name": "agent", "prompts": {"set": "geneval", "per_category": 1, "categories": ["counting", "colors"]},
            "seeds": 1, "width": 64, "height": 64,
            "strategies": [{"kind": "flow", "flow": "sd15-base"},
                           {"kind": "agent", "agent": {"provider": "openai", "base_url": llm.openai_url,
                                                       "max_attempts": 2}}],
            "scorers": ["imagereward"], "heldout": "imagereward", "tiny_scorers": True,
            "comfyui_urls": [fake.url], "n_boot": 100})
        settings = Settings(home=tmp_path / "home", comfyui_urls=[fake.url], scorers=["imagereward"])
        run_dir = asyncio.run(run_eval(cfg, settings=settings, out_dir=tmp_path / "run"))
    finally:
        fake.stop()
        llm.stop()
    samples = load_samples(run_dir)
    ic = [s for s in samples if s.strategy == "comfygen-ic"]
    assert len(ic) == 2 and all(s.error is None for s in ic), [s.error for s in ic]
    with RunStore(settings.store_path) as store:
        for s in ic:
            rec = store.get(s.run_id)
            assert rec.flow_id == s.flow_id == "sd15-dreamshaper"
            assert rec.seed == s.seed and rec.prompt == s.prompt  # the agent ran the eval's prompt at the eval's seed
            assert s.gpu_seconds is not None and s.image in {o.path for o in rec.outputs}
            assert "imagereward" in s.scores
    res = json.loads((run_dir / "results.json").read_text())
    assert {d["strategy"]: d["unique_flows"] for d in res["diversity"]} == {"sd15-base": 1, "comfygen-ic": 1}
    assert {(w["a"], w["b"]) for w in res["win_rates"]} == {("sd15-base", "comfygen-ic"), ("comfygen-ic", "sd15-base")}
    # imagereward guides the agent (it is the service's ensemble here), so the report must say it is not held out
    assert json.loads((run_dir / "run.json").read_text())["heldout_in_ensemble"] is True
    assert "not held out" in (run_dir / "report.html").read_text()
