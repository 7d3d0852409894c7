from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from PIL import Image

from comfygen.flow_library.library import FlowLibrary
from comfygen.tools.comfy.pool import EndpointPool
from comfygen.tools.dataset.builder import ProgressLog, build, export, plan_items
from comfygen.tools.settings import Settings
from comfygen.tools.store import RunStore

FLOWS = ["rated-sd15", "rated-sd15-lowstep"]
PROMPTS = [("p1", "a red apple", ["food"]), ("p2", "a blue car", ["vehicles"]), ("p3", "a cat", ["animals"])]


class Crash(Exception):
    pass


def mean_pixel_score(fail_after: int | None = None):
    calls = {"n": 0}

    async def score(record):
        calls["n"] += 1
        if fail_after is not None and calls["n"] > fail_after:
            raise Crash("simulated kill after generation, before the triplet is written")
        img = np.asarray(Image.open(record.outputs[0].path).convert("L"), dtype=np.float32)
        return float(img.mean() / 255.0), {"brightness": float(img.mean() / 255.0)}

    return score


def test_build_resumes_after_a_crash_without_losing_or_repeating_work(tmp_path):
    from fakecomfy import FakeComfyUI

    fake = FakeComfyUI(models={"checkpoints": ["v1-5-pruned-emaonly.safetensors"]}).start_in_thread()
    try:
        settings = Settings(home=tmp_path / "home", comfyui_urls=[fake.url])
        store = RunStore(settings.store_path)
        library = FlowLibrary.default()
        items = plan_items(PROMPTS, FLOWS, plan="grid")
        assert len(items) == 6
        out = tmp_path / "ds"

        async def go(score):
            async with EndpointPool([fake.url]) as pool:
                return await build(items, out, library=library, pool=pool, store=store, settings=settings,
                                   score=score, width=64, height=64)

        with pytest.raises(Crash):
            asyncio.run(go(mean_pixel_score(fail_after=2)))
        assert len(ProgressLog(out).load()) == 2
        with (out / "triplets.jsonl").open("a") as fh:
            fh.write('{"prompt_id": "p9", "prom')  # a write torn by kill -9
        generated_before = len(fake.history)
        assert generated_before == 3  # the third run finished, its scoring was interrupted

        triplets = asyncio.run(go(mean_pixel_score()))
        assert len(triplets) == 6
        assert len(fake.history) == 6  # the interrupted job's image was reused, nothing ran twice
        assert sum(t.reused for t in triplets) == 1
        assert len({t.key for t in ProgressLog(out).load()}) == 6
        assert all(0.0 <= t.score <= 1.0 and t.categories for t in triplets)

        n = export(out, tmp_path / "t.csv")
        assert n == 6
        header = (tmp_path / "t.csv").read_text().splitlines()[0]
        assert header.startswith("prompt_id,prompt,flow,score")
        export(out, tmp_path / "t.jsonl")
        assert len((tmp_path / "t.jsonl").read_text().splitlines()) == 6
        export(out, tmp_path / "t.parquet")
        assert (tmp_path / "t.parquet").stat().st_size > 0
    finally:
        fake.stop()


def test_random_plan_picks_k_flows_per_prompt():
    items = plan_items(PROMPTS, ["a", "b", "c", "d"], plan="random", per_prompt=2, seeds=2)
    assert len(items) == 3 * 2 * 2
    for pid, _, _ in PROMPTS:
        assert len({i.flow_id for i in items if i.prompt_id == pid}) == 2


def test_online_table_update_respects_the_setting(tmp_path):
    from comfygen.flow_library.score_table import ScoreTable
    from comfygen.tools.dataset.table import update_table_from_run

    on = Settings(home=tmp_path / "on")
    assert update_table_from_run("rated-sd15", "a cat", 0.7, categories=["animals"], settings=on)
    assert update_table_from_run("rated-sd15", "a dog", 0.5, categories=["animals"], settings=on)
    cell = ScoreTable.load(on.score_table_path).cell("rated-sd15", "animals")
    assert cell.n == 2 and cell.mean == pytest.approx(0.6)
    off = Settings(home=tmp_path / "off", online_table_updates=False)
    assert not update_table_from_run("rated-sd15", "a cat", 0.7, categories=["animals"], settings=off)
    assert not off.score_table_path.exists()
    json.dumps({})
