"""The MCP tool, ``comfygen search`` and the eval harness run noise search through one front door
(``search_flow``) and rank the same candidates the same way: by the scoring ensemble's total of each image."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image
from search_helpers import CKPT

from comfygen.evals.prompts import Prompt
from comfygen.evals.multi_run import _planner_search
from comfygen.evals.strategies import SearchSpec, StrategySpec, build_strategies
from comfygen.flow_library.library import FlowLibrary
from comfygen.server.cli import main
from comfygen.tools.app.noise_search import noise_search
from comfygen.tools.app.service import ComfyGen
from comfygen.tools.comfy.pool import EndpointPool
from comfygen.tools.scoring.ensemble import Ensemble
from comfygen.tools.settings import Settings
from comfygen.tools.store import RunStore
from fakecomfy import FakeComfyUI
from fakecomfy_noise import NoiseExecutors

PROMPT, FLOW, SEED, BUDGET = "a lighthouse at dusk", "sd15-base", 5, 4
VERIFIERS = ["aesthetic", "imagereward"]


def tiny_ensemble(settings: Settings) -> Ensemble:
    return Ensemble.from_settings(settings, VERIFIERS, tiny=True).load()


def summary_under(folder: Path) -> dict:
    (path,) = folder.rglob("summary.json")
    return json.loads(path.read_text())


def ranking(summary: dict) -> dict[str, tuple[int, float, dict[str, float]]]:
    """Candidate noise -> (rank, total, raw scores)."""
    return {json.dumps(c["noise"], sort_keys=True): (c["rank"], round(c["total"], 6),
                                                     {k: round(v, 6) for k, v in c["raw"].items()})
            for c in summary["candidates"]}


def search_by_cli(url: str, out: Path) -> dict:
    try:
        main(["search", "-p", PROMPT, "-f", FLOW, "-n", str(BUDGET), "--size", "64x64", "--seed", str(SEED),
              "-v", ",".join(VERIFIERS), "--tiny-verifiers", "-e", url, "-o", str(out)])
    except SystemExit as e:
        assert e.code in (0, None)
    return summary_under(out)


async def search_by_mcp_operation(settings: Settings):
    async with ComfyGen(settings, scorer_factory=tiny_ensemble) as cg:
        return await noise_search(cg, PROMPT, flow_id=FLOW, budget=BUDGET, width=64, height=64, seed=SEED,
                                  wait_s=None)


async def search_by_harness(settings: Settings) -> None:
    (st,) = build_strategies([StrategySpec(kind="planner_search", flow=FLOW,
                                           search=SearchSpec(candidates=BUDGET, verifiers=VERIFIERS))],
                             FlowLibrary.default())
    cfg = SimpleNamespace(width=64, height=64, negative=None, tiny_scorers=True)
    async with EndpointPool(list(settings.comfyui_urls)) as pool:
        await _planner_search(cfg, st, Prompt(id="t:0", text=PROMPT), SEED, settings=settings, pool=pool,
                              store=RunStore(settings.store_path))


def test_the_three_callers_rank_the_same_candidates_the_same_way(_isolated_home, tmp_path):
    fake = FakeComfyUI(models={"checkpoints": [CKPT]}, executors=NoiseExecutors().executors()).start_in_thread()
    try:
        cli = search_by_cli(fake.url, tmp_path / "cli")
        mcp_settings = Settings(home=tmp_path / "mcp", comfyui_urls=[fake.url])
        out = asyncio.run(search_by_mcp_operation(mcp_settings))
        harness_settings = Settings(home=tmp_path / "harness", comfyui_urls=[fake.url])
        asyncio.run(search_by_harness(harness_settings))
    finally:
        fake.stop()
    mcp = summary_under(mcp_settings.outputs_dir)
    harness = summary_under(harness_settings.outputs_dir)
    assert len(cli["candidates"]) == BUDGET and len({t for _, t, _ in ranking(cli).values()}) == BUDGET
    assert ranking(cli) == ranking(mcp) == ranking(harness)
    assert cli["aggregation"] == mcp["aggregation"] == harness["aggregation"] == "ensemble"

    # the ranking number is the ensemble's total of the image, as `comfygen score` and generate give it
    scored = tiny_ensemble(mcp_settings).score([Image.open(c["image"]) for c in cli["candidates"]], PROMPT)
    assert [c["total"] for c in cli["candidates"]] == pytest.approx([r.total for r in scored], abs=1e-5)
    best = min(cli["candidates"], key=lambda c: c["rank"])
    assert out.best_score == pytest.approx(best["total"], abs=1e-5) and out.evaluated == BUDGET
    assert out.history[-1].best_score == pytest.approx(best["total"], abs=1e-5)
    assert out.best.scores.per_scorer == pytest.approx(best["raw"], abs=1e-5)
