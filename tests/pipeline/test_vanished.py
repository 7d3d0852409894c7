"""Runs whose ComfyUI prompt no longer exists end as ``failed`` within seconds, with the reason.

The faults as ComfyUI shows them: a prompt deleted from the queue (what ComfyUI's own UI "delete"
does) and a server restart are both a prompt absent from ``/queue`` and ``/history`` (404 on the jobs
API of a newer server); a run recorded but never handed over has no prompt anywhere.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import pytest
from fakecomfy import FakeComfyUI
from fakecomfy_v038 import FakeComfyUI038

from comfygen.tools.comfy.client import ComfyClient
from comfygen.tools.comfy.pool import EndpointPool
from comfygen.tools.errors import ComfyUIError, DeadlineExceeded
from comfygen.tools.pipeline import resume_run, run_flow

pytestmark = pytest.mark.anyio
def modelfree(color: int) -> dict:
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": color}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "other"}}}


QUICK = {"idle_check_s": 0.3, "poll_interval_s": 0.05, "retries": 1, "backoff_s": 0.02, "health_interval_s": 0.2}


async def _wait_pending(fake, store, timeout: float = 10.0) -> str:
    """The prompt id of the one run in the store, once it waits in the fake's queue."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    while loop.time() - t0 < timeout:
        recs = store.list()
        if recs and recs[0].comfy_prompt_id in [p[1] for p in fake.pending]:
            return str(recs[0].comfy_prompt_id)
        await asyncio.sleep(0.02)
    raise AssertionError("the run never reached the queue")


@pytest.mark.parametrize("cls", [FakeComfyUI, FakeComfyUI038])
async def test_run_whose_prompt_is_deleted_from_the_queue_fails_in_seconds(cls, flow, settings, store) -> None:
    async with cls(node_time=0.4) as fake, EndpointPool([fake.url], **QUICK) as pool, \
            ComfyClient(fake.url) as other:
        blocker = asyncio.create_task(other.run(modelfree(color=1)))  # someone else's prompt runs first
        task = asyncio.create_task(run_flow(flow, "a fox", seed=1, pool=pool, store=store, settings=settings))
        pid = await _wait_pending(fake, store)
        await other.delete_queued([pid])
        t0 = asyncio.get_running_loop().time()
        with pytest.raises(ComfyUIError, match="is gone"):
            await task
        assert asyncio.get_running_loop().time() - t0 < 3.0
        await blocker
    (rec,) = store.list()
    assert rec.status == "failed" and rec.error.type == "PromptVanished"
    assert "deleted from its queue" in rec.error.message and not rec.resumable


async def test_run_whose_server_restarted_fails_with_the_reason(flow, settings, store) -> None:
    async with FakeComfyUI(node_time=0.4, port=0) as fake, EndpointPool([fake.url], **QUICK) as pool:
        task = asyncio.create_task(run_flow(flow, "a fox", seed=2, pool=pool, store=store, settings=settings))
        while fake.running is None:
            await asyncio.sleep(0.01)
        await fake.restart()
        with pytest.raises(ComfyUIError, match="restarted"):
            await asyncio.wait_for(task, 10)
    (rec,) = store.list()
    assert rec.status == "failed" and "restarted" in rec.error.message


async def test_deadline_says_it_keeps_running_only_when_it_does(flow, settings, store) -> None:
    async with FakeComfyUI(node_time=0.5) as fake, EndpointPool([fake.url], **QUICK) as pool, \
            ComfyClient(fake.url) as other:
        blocker = asyncio.create_task(other.run(modelfree(color=2)))
        with pytest.raises(DeadlineExceeded) as ei:
            await run_flow(flow, "queued", seed=3, pool=pool, store=store, settings=settings, deadline_s=0.2)
        (queued,) = store.list()
        assert queued.status == "interrupted" and queued.resumable
        assert "still queued on the ComfyUI server" in ei.value.hint and f"runs show {queued.id} --resume" in ei.value.hint
        await blocker

        # the same deadline, but the prompt was deleted meanwhile: no claim that it runs on
        blocker = asyncio.create_task(other.run(modelfree(color=3)))
        slow = {**QUICK, "idle_check_s": 30.0}
        async with EndpointPool([fake.url], **slow) as slow_pool:
            task = asyncio.create_task(run_flow(flow, "deleted", seed=4, pool=slow_pool, store=store,
                                                settings=settings, deadline_s=1.0))
            while len(store.list()) < 2 or store.list()[0].comfy_prompt_id not in [p[1] for p in fake.pending]:
                await asyncio.sleep(0.02)
            await other.delete_queued([str(store.list()[0].comfy_prompt_id)])
            with pytest.raises(DeadlineExceeded) as ei:
                await task
        await blocker
    gone = store.list()[0]
    assert "keeps running" not in str(ei.value) and "no longer knows" in ei.value.hint
    assert gone.status == "failed" and not gone.resumable


async def test_resume_of_a_gone_prompt_with_a_recorded_endpoint_fails(flow, settings, store) -> None:
    """resume_run asks the recorded endpoint too (it used to skip the check and wait 30 minutes)."""
    async with FakeComfyUI() as fake, EndpointPool([fake.url], **QUICK) as pool:
        rec = store.create(prompt="gone", flow_id=flow.id, graph=flow.graph, seed=1, endpoint=fake.url,
                           comfy_prompt_id=str(uuid.uuid4()))
        store.mark_running(rec.id, endpoint=fake.url)
        t0 = asyncio.get_running_loop().time()
        with pytest.raises(ComfyUIError, match="is gone"):
            await resume_run(rec.id, pool=pool, store=store, settings=settings)
        assert asyncio.get_running_loop().time() - t0 < 3.0
    after = store.get(rec.id)
    assert after.status == "failed" and fake.url in after.error.message


async def test_resume_never_changes_a_finished_run(flow, settings, store) -> None:
    async with FakeComfyUI() as fake, EndpointPool([fake.url], **QUICK) as pool:
        for status in ("failed", "cancelled"):
            rec = store.create(prompt=status, flow_id=flow.id, graph=flow.graph, seed=1, endpoint=fake.url,
                               comfy_prompt_id=str(uuid.uuid4()))
            store.fail(rec.id, ComfyUIError("it broke", hint="fix it"), status=status)
            before = store.get(rec.id)
            after = await resume_run(rec.id, pool=pool, store=store, settings=settings)
            store.mark_running(rec.id, endpoint=fake.url)  # the store refuses too
            assert after == before == store.get(rec.id)
            assert after.status == status and after.error.message == "it broke"


async def test_resume_of_a_run_never_handed_to_comfyui_fails(flow, settings, store) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    async with FakeComfyUI() as fake, EndpointPool([fake.url], **QUICK) as pool:
        rec = store.create(prompt="never", flow_id=flow.id, graph=flow.graph, seed=1, endpoint=fake.url,
                           comfy_prompt_id=str(uuid.uuid4()))
        with store._tx() as db:
            db.execute("UPDATE runs SET pid=? WHERE id=?", (dead.pid, rec.id))
        with pytest.raises(ComfyUIError, match="never submitted"):
            await resume_run(rec.id, pool=pool, store=store, settings=settings)
    after = store.get(rec.id)
    assert after.status == "failed" and "never submitted" in after.error.message
    assert ("POST", "/prompt") not in fake.requests


async def test_get_run_of_a_gone_prompt_ends_failed_not_waited_on(tmp_path) -> None:
    """The MCP get_run path (a run an earlier server left running) gets the same check through resume_run."""
    from comfygen.tools.app.service import ComfyGen
    from comfygen.tools.settings import Settings
    from comfygen.tools.store import RunStore

    async with FakeComfyUI() as fake:
        settings = Settings(home=tmp_path, comfyui_urls=[fake.url])
        with RunStore(settings.store_path) as store:
            rec = store.create(prompt="left running", flow_id="sd15-base", graph={}, seed=4, endpoint=fake.url,
                               comfy_prompt_id=str(uuid.uuid4()))
            store.mark_running(rec.id, endpoint=fake.url)
        t0 = asyncio.get_running_loop().time()
        async with ComfyGen(settings) as cg:
            try:
                out = await cg.get_run(rec.id, wait_s=30)
                status = getattr(out, "status", None)
            except ComfyUIError as e:
                status = "raised: " + e.message
        assert asyncio.get_running_loop().time() - t0 < 5.0
        with RunStore(settings.store_path) as store:
            after = store.get(rec.id)
    assert after.status == "failed" and "is gone" in after.error.message
    assert str(status).startswith("raised: ") and "is gone" in str(status)  # the tool answers with the reason
