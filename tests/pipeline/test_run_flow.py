from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from fakecomfy import FakeComfyUI

from comfygen.tools.comfy.client import ComfyClient
from comfygen.tools.comfy.pool import EndpointPool
from comfygen.tools.errors import ComfyUIExecutionError, ConfigError, DeadlineExceeded, GuardError
from comfygen.tools.images import read_png_text
from comfygen.tools.pipeline import RunRequest, resume_run, run_flow, run_many

pytestmark = pytest.mark.anyio


def make_flow(**kw):
    import importlib.util

    spec = importlib.util.spec_from_file_location("pipeline_flows", Path(__file__).with_name("conftest.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.make_flow(**kw)


async def test_run_records_and_saves_with_provenance(flow, settings, store):
    events, records = [], []
    async with FakeComfyUI() as fake, EndpointPool([fake.url]) as pool:
        rec = await run_flow(flow, "a red fox in snow", negative="ugly", seed=123, pool=pool, store=store,
                             settings=settings, on_event=events.append, on_record=records.append)
    assert rec.status == "succeeded" and rec.endpoint == fake.url and rec.comfy_prompt_id
    assert records and records[0].status == "queued" and records[0].id == rec.id
    assert rec.graph["6"]["inputs"]["text"] == "a red fox in snow" and rec.graph["3"]["inputs"]["seed"] == 123
    assert rec.params == {"negative": "ugly", "width": 64, "height": 64, "batch": 1, "accelerate": "none"}
    (out,) = rec.outputs
    path = Path(out.path)
    assert path.is_file() and path.is_relative_to(settings.outputs_dir) and out.node == "9"
    raw = path.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == out.sha256 and (out.width, out.height) == (64, 64)
    text = read_png_text(raw)
    assert json.loads(text["prompt"]) == rec.graph
    ours = json.loads(text["comfygen"])
    assert ours["run_id"] == rec.id and ours["seed"] == 123 and ours["flow_id"] == flow.id
    kinds = {e.kind for e in events}
    assert {"started", "node_started", "progress", "finished"} <= kinds
    t = rec.timings
    assert t.queued <= t.submitted <= t.finished <= t.saved and t.per_node
    assert store.get(rec.id) == rec


async def test_batch_random_seed_and_rewrite(flow, settings, store):
    seen = []

    def rewrite(graph):
        seen.append(graph["5"]["inputs"]["batch_size"])
        graph["3"]["inputs"]["cfg"] = 5.5
        return graph

    async with FakeComfyUI() as fake, EndpointPool([fake.url]) as pool:
        rec = await run_flow(flow, "three cats", batch=3, pool=pool, store=store, settings=settings, rewrite=rewrite)
        no_slot = flow.model_copy(update={"slots": flow.slots.model_copy(update={"batch": []})})
        rec2 = await run_flow(no_slot, "two cats", batch=2, seed=1, pool=pool, store=store, settings=settings)
    assert seen == [3] and rec.graph["3"]["inputs"]["cfg"] == 5.5
    assert len(rec.outputs) == 3 and len({o.path for o in rec.outputs}) == 3 and rec.seed is not None
    assert [o.index for o in rec.outputs] == [0, 1, 2]
    assert len(rec2.outputs) == 2


async def test_acceleration_core_and_pruna(flow, settings, store):
    from comfygen.flow_library.schema import NodeSchema

    async with FakeComfyUI() as fake, EndpointPool([fake.url]) as pool:
        rec = await run_flow(flow, "x", seed=1, accelerate="cache-auto", pool=pool, store=store, settings=settings)
    assert rec.status == "succeeded" and rec.accelerate == "cache-auto"
    assert [n["class_type"] for n in rec.graph.values()].count("EasyCache") == 1
    pruna = NodeSchema.bundled().with_packs(["ComfyUI_pruna"]).info
    async with FakeComfyUI(object_info=pruna) as fake, EndpointPool([fake.url]) as pool:
        few = await run_flow(flow, "x", seed=1, accelerate="auto", pool=pool, store=store, settings=settings)
        rec = await run_flow(make_flow(steps=20), "x", seed=1, accelerate="auto", pool=pool, store=store,
                             settings=settings)
    assert not any(n["class_type"] == "CacheModelAuto" for n in few.graph.values())  # 4 steps: left alone
    assert any(n["class_type"] == "CacheModelAuto" for n in rec.graph.values())
    assert rec.graph["3"]["inputs"]["model"] != ["10", 0]
    bare = {k: v for k, v in pruna.items() if k not in ("PrunaCompileModel", "TorchCompileModel")}
    async with FakeComfyUI(object_info=bare) as fake, EndpointPool([fake.url]) as pool:
        with pytest.raises(ConfigError):
            await run_flow(flow, "x", seed=1, accelerate="compile", pool=pool, store=store, settings=settings)


async def test_guard_refusal_records_nothing(flow, settings, store):
    async with FakeComfyUI() as fake, EndpointPool([fake.url]) as pool:
        with pytest.raises(GuardError):
            await run_flow(flow, "x", width=8192, height=64, pool=pool, store=store, settings=settings)
        assert fake.history == {}
    assert store.count() == 0


async def test_execution_error_is_recorded(flow, settings, store):
    async with FakeComfyUI(fail={"execution_error": "KSampler"}) as fake, EndpointPool([fake.url]) as pool:
        with pytest.raises(ComfyUIExecutionError):
            await run_flow(flow, "x", seed=1, pool=pool, store=store, settings=settings)
    (rec,) = store.list()
    assert rec.status == "failed" and rec.error.type == "ComfyUIExecutionError" and "KSampler" in rec.error.message
    assert rec.outputs == []


async def test_cancellation(flow, settings, store):
    started = asyncio.Event()

    def on_event(e):
        if e.kind == "progress":
            started.set()

    async with FakeComfyUI(step_time=0.05, steps=200) as fake, EndpointPool([fake.url]) as pool:
        task = asyncio.create_task(run_flow(flow, "x", seed=1, pool=pool, store=store, settings=settings,
                                            on_event=on_event))
        await asyncio.wait_for(started.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert fake.interrupts
    (rec,) = store.list()
    assert rec.status == "cancelled" and rec.error.type == "Cancelled"


async def test_deadline_marks_interrupted_then_resume_finishes(flow, settings, store):
    async with FakeComfyUI(step_time=0.02, steps=15) as fake, EndpointPool([fake.url]) as pool:
        with pytest.raises(DeadlineExceeded):
            await run_flow(flow, "x", seed=3, pool=pool, store=store, settings=settings, deadline_s=0.1)
        (rec,) = store.list()
        assert rec.status == "interrupted" and rec.resumable and rec.endpoint == fake.url
        done = await resume_run(rec.id, pool=pool, store=store, settings=settings)
    assert done.status == "succeeded" and len(done.outputs) == 1 and Path(done.outputs[0].path).is_file()
    assert done.error is None


async def test_resume_after_process_death(flow, settings, store):
    """A process submitted the prompt and died: recover_orphans + resume_run finish the run."""
    from comfygen.flow_library.render import render

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    async with FakeComfyUI() as fake, EndpointPool([fake.url]) as pool:
        graph = render(flow, "orphan", seed=9)
        pid = str(uuid.uuid4())
        rec = store.create(prompt="orphan", flow_id=flow.id, graph=graph, seed=9, comfy_prompt_id=pid)
        with store._tx() as db:
            db.execute("UPDATE runs SET pid=?, status='running' WHERE id=?", (dead.pid, rec.id))
        async with ComfyClient(fake.url) as c:
            await c.submit(graph, prompt_id=pid)
        (orphan,) = store.recover_orphans()
        assert orphan.status == "interrupted" and orphan.resumable and orphan.endpoint is None
        done = await resume_run(orphan, pool=pool, store=store, settings=settings)
    assert done.status == "succeeded" and done.endpoint == fake.url and done.outputs


async def test_resume_unknown_prompt_fails_cleanly(flow, settings, store):
    from comfygen.tools.errors import ComfyUIError

    async with FakeComfyUI() as fake, EndpointPool([fake.url]) as pool:
        rec = store.create(prompt="gone", flow_id=flow.id, graph=flow.graph, seed=1,
                           comfy_prompt_id=str(uuid.uuid4()))
        store.mark_running(rec.id, endpoint=fake.url)
        with pytest.raises(ComfyUIError, match="is gone"):
            await resume_run(rec.id, pool=pool, store=store, settings=settings)
    after = store.get(rec.id)
    assert after.status == "failed" and "not queued, not running, not in its history" in after.error.message
    assert not after.resumable


async def test_run_many_across_two_endpoints_with_reuse(flow, settings, store):
    async with FakeComfyUI(step_time=0.005) as a, FakeComfyUI(step_time=0.005) as b, \
            EndpointPool([a.url, b.url]) as pool:
        jobs = [RunRequest(flow=flow, prompt=f"prompt {i % 3}", seed=i) for i in range(6)]
        jobs.append(RunRequest(flow=flow, prompt="bad", seed=1, width=8192))
        done = []
        results = await run_many(jobs, pool=pool, store=store, settings=settings, concurrency=3,
                                 on_done=done.append)
        assert [r.ok for r in results] == [True] * 6 + [False]
        assert isinstance(results[-1].error, GuardError) and len(done) == 7
        assert {r.record.endpoint for r in results[:6]} == {a.url, b.url}
        again = await run_many(jobs[:6], pool=pool, store=store, settings=settings, reuse=True)
    assert all(r.reused for r in again)
    assert [r.record.id for r in again] == [r.record.id for r in results[:6]]
    assert store.count() == 6


async def test_flow_declared_pack_is_allowed(flow, settings, store):
    from comfygen.flow_library.model import Requirement
    from comfygen.flow_library.schema import NodeSchema

    g = dict(flow.graph)
    g["40"] = {"class_type": "PrunaCompileModel", "inputs": {"model": ["10", 0], "compiler": "torch_compile"}}
    g["3"] = {**g["3"], "inputs": {**g["3"]["inputs"], "model": ["40", 0]}}
    plain = flow.model_copy(update={"graph": g})
    declared = plain.model_copy(update={"requires": [Requirement(kind="node_pack", name="ComfyUI_pruna")]})
    pruna = NodeSchema.bundled().with_packs(["ComfyUI_pruna"]).info
    async with FakeComfyUI(object_info=pruna) as fake, EndpointPool([fake.url]) as pool:
        with pytest.raises(GuardError):
            await run_flow(plain, "x", seed=1, pool=pool, store=store, settings=settings)
        rec = await run_flow(declared, "x", seed=1, pool=pool, store=store, settings=settings)
    assert rec.status == "succeeded"
