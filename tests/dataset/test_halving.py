from __future__ import annotations

import asyncio
import zlib

import pytest

from comfygen.flow_library.library import FlowLibrary
from comfygen.tools.comfy.pool import EndpointPool
from comfygen.tools.dataset.builder import (ProgressLog, build_halving, export, halving_items, halving_max_runs,
                                            plan_items)
from comfygen.tools.dataset.halving import max_prompts_per_flow, successive_halving
from comfygen.tools.settings import Settings
from comfygen.tools.store import RunStore

# best first: the score function below ranks them in this order on every prompt
FLOWS = ["rated-sd15", "rated-sd15-highcfg", "rated-sd15-lowcfg", "rated-sd15-lowstep"]
BASE = {"rated-sd15": 0.8, "rated-sd15-highcfg": 0.6, "rated-sd15-lowcfg": 0.4, "rated-sd15-lowstep": 0.2}
PROMPTS = ([(f"a{i}", f"an animal number {i}", ["animals"]) for i in range(7)]
           + [(f"f{i}", f"a dish number {i}", ["food"]) for i in range(3)]
           + [("x", "a dog eating a sandwich", ["animals", "food"]), ("u", "something else", [])])
N0, ETA = 2, 2


class Crash(Exception):
    pass


def flow_score(fail_after: int | None = None):
    """Deterministic: the flow's base plus a small prompt-dependent wobble that never changes the order."""
    calls = {"n": 0}

    async def score(record):
        calls["n"] += 1
        if fail_after is not None and calls["n"] > fail_after:
            raise Crash("simulated kill after generation, before the triplet is written")
        s = BASE[record.flow_id] + (zlib.crc32(record.prompt.encode()) % 100) / 1000
        return s, {"fake": s}

    return score


def test_policy_keeps_the_better_half_each_round():
    order = [f"p{i}" for i in range(10)]
    flows = ["a", "b", "c", "d", "e"]
    value = {"a": 1.0, "b": 5.0, "c": 3.0, "d": 4.0, "e": 2.0}
    known: dict[tuple[str, str], float] = {}
    rounds = []
    while not (state := successive_halving(order, flows, known, n0=2, eta=2)).done:
        rounds.append(state.pending)
        known.update({(p, f): value[f] for p, f in state.pending})
    assert [len(r) for r in rounds] == [10, 6, 8, 2]  # 5 flows x 2 prompts; 3 x 2 more; 2 x 4 more; 1 x 2 more
    assert state.alive == ["b"]
    assert sorted(flows, key=state.rank, reverse=True) == ["b", "d", "c", "e", "a"]
    assert max_prompts_per_flow(10, 5, n0=2, eta=2) == [10, 8, 4, 2, 2]
    assert sum(max_prompts_per_flow(10, 5, n0=2, eta=2)) == sum(len(r) for r in rounds)
    # the decisions are a function of the cells read: extra cells and a different arrival order change nothing
    extra = {**{(p, f): 0.0 for p in order[5:] for f in "ace"}, **known}
    again = successive_halving(order, flows, extra, n0=2, eta=2)
    assert again.done and again.stage == state.stage and again.means == state.means
    with pytest.raises(ValueError):
        successive_halving(order, flows, known, n0=2, eta=1)


def test_max_runs_bounds_the_plan_and_equals_the_grid_with_a_large_first_round():
    grid = len(plan_items(PROMPTS, FLOWS, plan="grid", seeds=2))
    assert halving_max_runs(PROMPTS, FLOWS, n0=100, eta=2, seeds=2) == grid
    assert halving_max_runs(PROMPTS, FLOWS, n0=N0, eta=ETA) < len(PROMPTS) * len(FLOWS)
    assert halving_items(PROMPTS, FLOWS, {}, n0=100, seeds=2) and \
        len(halving_items(PROMPTS, FLOWS, {}, n0=100, seeds=2)) == grid


def test_halving_eliminates_worse_flows_costs_less_than_the_grid_and_resumes(tmp_path):
    from fakecomfy import FakeComfyUI

    fake = FakeComfyUI(models={"checkpoints": ["v1-5-pruned-emaonly.safetensors"]}).start_in_thread()
    try:
        library = FlowLibrary.default()

        def go(home, out, score, progress=None):
            settings = Settings(home=tmp_path / home, comfyui_urls=[fake.url])
            store = RunStore(settings.store_path)

            async def run():
                async with EndpointPool([fake.url]) as pool:
                    return await build_halving(PROMPTS, FLOWS, tmp_path / out, n0=N0, eta=ETA, library=library,
                                               pool=pool, store=store, settings=settings, score=score,
                                               width=64, height=64, on_progress=progress)

            return asyncio.run(run())

        # uninterrupted reference build
        seen: list[tuple[int, int]] = []
        ref = go("ref", "ref-ds", flow_score(), lambda d, t, _: seen.append((d, t)))
        ref_runs = len(fake.history)
        assert ref_runs == len(ref) == len({t.key for t in ref})
        grid = len(PROMPTS) * len(FLOWS)
        max_runs = halving_max_runs(PROMPTS, FLOWS, n0=N0, eta=ETA)
        assert ref_runs < grid and ref_runs <= max_runs
        assert seen[0] == (0, max_runs) and seen[-1] == (ref_runs, ref_runs)
        assert all(d <= t for d, t in seen)

        runs_per_flow = {f: sum(t.flow == f for t in ref) for f in FLOWS}
        assert runs_per_flow["rated-sd15"] > runs_per_flow["rated-sd15-highcfg"] > runs_per_flow["rated-sd15-lowcfg"]
        assert runs_per_flow["rated-sd15-lowcfg"] == runs_per_flow["rated-sd15-lowstep"]
        for cat in ("animals", "food"):  # the best flow saw every prompt of each category, the worst n0 at most
            pids = {pid for pid, _, c in PROMPTS if c == [cat]}  # (the shared prompt may be paid by the other one)
            assert {t.prompt_id for t in ref if t.flow == "rated-sd15"} >= pids
            assert len({t.prompt_id for t in ref if t.flow == "rated-sd15-lowstep"} & pids) <= N0
        assert {t.flow for t in ref if t.prompt_id == "u"} == set(FLOWS)  # uncategorized prompts form a group

        # interrupted build: killed while scoring a second-round job, plus a torn last line
        first_round = len(halving_items(PROMPTS, FLOWS, {}, n0=N0, eta=ETA))
        out = tmp_path / "ds"
        before = len(fake.history)
        with pytest.raises(Crash):
            go("home", "ds", flow_score(fail_after=first_round + 2))
        assert len(ProgressLog(out).load()) == first_round + 2
        assert len(fake.history) - before == first_round + 3
        with (out / "triplets.jsonl").open("a") as fh:
            fh.write('{"prompt_id": "a9", "prom')
        triplets = go("home", "ds", flow_score())
        assert len(fake.history) - before == ref_runs  # nothing generated twice
        assert sum(t.reused for t in triplets) == 1
        assert {t.key for t in triplets} == {t.key for t in ref}  # the same decisions as without the kill
        assert {t.key: t.score for t in triplets} == {t.key: t.score for t in ref}

        # a finished build restarted does nothing
        go("home", "ds", flow_score(fail_after=0))
        assert len(fake.history) - before == ref_runs

        assert export(out, tmp_path / "t.csv") == ref_runs
        assert (tmp_path / "t.csv").read_text().splitlines()[0].startswith("prompt_id,prompt,flow,score")
    finally:
        fake.stop()


def test_cli_builds_with_the_halving_plan(tmp_path, monkeypatch):
    from fakecomfy import FakeComfyUI
    from typer.testing import CliRunner

    from comfygen.server.cli import app
    from comfygen.server.commands import dataset as dataset_cmd
    from comfygen.server.commands import register_all
    from comfygen.tools.settings import get_settings

    fake = FakeComfyUI(models={"checkpoints": ["v1-5-pruned-emaonly.safetensors"]}).start_in_thread()
    try:
        monkeypatch.setenv("COMFYGEN_COMFYUI_URLS", fake.url)
        get_settings.cache_clear()
        monkeypatch.setattr(dataset_cmd, "_categorize", lambda texts: [["animals"] for _ in texts])
        register_all(app)
        (tmp_path / "p.txt").write_text("".join(f"a cat number {i}\n" for i in range(4)))
        args = ["dataset", "build", "--prompts", str(tmp_path / "p.txt"), "--flows", ",".join(FLOWS[:3]),
                "--out", str(tmp_path / "ds"), "--plan", "halving", "--initial-prompts", "1", "--eta", "2",
                "--tiny-scorers", "--width", "64", "--height", "64"]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        # 3 flows x 1 prompt, 2 x 1 more, 1 x 2 more: 7 of the grid's 12
        assert len(ProgressLog(tmp_path / "ds").load()) == len(fake.history) == 7
        res = CliRunner().invoke(app, ["dataset", "status", "--out", str(tmp_path / "ds")])
        assert "7 / at most 7" in res.output
        res = CliRunner().invoke(app, [a if a != "2" else "1" for a in args])  # --eta 1
        assert res.exit_code != 0 and "eta" in str(res.exception or res.output)
    finally:
        get_settings.cache_clear()
        fake.stop()
