"""ComfyClient against the fake ComfyUI: runs, caching, retries, recovery, deadline, cancellation."""

from __future__ import annotations

import asyncio
import io
import json

import pytest
from fakecomfy import FakeComfyUI
from comfy_graphs import modelfree, scale_graph, t2i
from PIL import Image

from comfygen.tools.comfy import events as ev
from comfygen.tools.comfy.client import ComfyClient
from comfygen.tools.errors import (Cancelled, ComfyUIExecutionError, ComfyUIUnavailable, ComfyUIValidationError,
                                   DeadlineExceeded)

pytestmark = pytest.mark.anyio
FAST = {"retries": 2, "backoff_s": 0.01, "poll_interval_s": 0.02, "connect_timeout": 2.0}


async def test_run_returns_real_pngs_that_follow_the_inputs() -> None:
    async with FakeComfyUI() as fake, ComfyClient(fake.url, **FAST) as c:
        a = await c.run(t2i(seed=1, batch=2))
        b = await c.run(t2i(seed=2, batch=2))
        d = await c.run(t2i(seed=1, text="another prompt", batch=2))
    assert len(a.images) == 2 and a.images[0].filename == "t2i_00001_.png"
    img = Image.open(io.BytesIO(a.images[0].data))
    assert img.size == (64, 64)
    assert json.loads(img.text["prompt"])["3"]["inputs"]["seed"] == 1  # the graph in a tEXt chunk
    px = lambda o: Image.open(io.BytesIO(o.images[0].data)).tobytes()  # noqa: E731
    assert px(a) != px(b) and px(a) != px(d)
    assert a.timings.started and a.timings.finished and set(a.timings.per_node) == {"3", "4", "5", "6", "7", "8", "9"}


async def test_events_in_order_and_caching_like_comfyui() -> None:
    async with FakeComfyUI(previews=True) as fake, ComfyClient(fake.url, **FAST) as c:
        seen: list[ev.Event] = []
        await c.run(t2i(), on_event=seen.append, previews=True)
        kinds = [e.kind for e in seen]
        assert kinds.index("started") < kinds.index("cached") < kinds.index("node_started") < kinds.index("finished")
        assert [e.value for e in seen if isinstance(e, ev.Progress)] == [1, 2, 3, 4]
        assert sum(isinstance(e, ev.Preview) for e in seen) == 4
        dup = await c.run(t2i())
        assert sorted(dup.cached_nodes) == ["3", "4", "5", "6", "7", "8", "9"] and len(dup.images) == 1
        reseeded = await c.run(t2i(seed=7))
        assert sorted(reseeded.cached_nodes) == ["4", "5", "6", "7"]
        # async callbacks are awaited
        got: list[str] = []

        async def cb(e: ev.Event) -> None:
            got.append(e.kind)

        await c.run(t2i(seed=8), on_event=cb)
        assert got[-1] == "finished"


async def test_validation_error_keeps_comfyui_body() -> None:
    async with FakeComfyUI() as fake, ComfyClient(fake.url, **FAST) as c:
        with pytest.raises(ComfyUIValidationError) as ei:
            await c.run(scale_graph(width=99999))
    err = ei.value
    assert err.error["type"] == "prompt_outputs_failed_validation"
    assert err.node_errors["2"]["errors"][0]["type"] == "value_bigger_than_max"
    assert "node 2 ImageScale: width 99999 is above max 16384" in err.message


async def test_execution_errors() -> None:
    async with FakeComfyUI(fail={"execution_error": "KSampler"}) as fake, ComfyClient(fake.url, **FAST) as c:
        with pytest.raises(ComfyUIExecutionError, match="node 3 KSampler failed: RuntimeError"):
            await c.run(t2i())
        with pytest.raises(ComfyUIExecutionError, match="SafetensorError"):
            await c.run(t2i(ckpt="broken.safetensors"))
        entry = next(iter(fake.history.values()))
        assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False


async def test_post_retried_after_500_and_never_posted_twice() -> None:
    async with FakeComfyUI() as fake, ComfyClient(fake.url, **FAST) as c:
        fake.fail_next("/prompt", status=500)
        out = await c.run(modelfree())
        assert out.images
        fake.drop_next("/prompt", after=True)  # accepted, but the answer is lost
        out2 = await c.run(modelfree(color=1))
        assert out2.images
        posts = [r for r in fake.requests if r == ("POST", "/prompt")]
        assert len(posts) == 3  # 500 + ok + dropped-after-accept; no duplicate post of the dropped one
        assert len(fake.history) == 2


async def test_get_retried_after_connection_drop() -> None:
    async with FakeComfyUI() as fake, ComfyClient(fake.url, **FAST) as c:
        fake.drop_next("/system_stats")
        assert (await c.system_stats())["system"]["comfyui_version"]


async def test_websocket_drop_recovers_from_history() -> None:
    async with FakeComfyUI(step_time=0.01, fail={"ws_drop_at": "KSampler"}) as fake, \
            ComfyClient(fake.url, **FAST) as c:
        out = await c.run(t2i(steps=5))
        assert out.images and out.images[0].data[:4] == b"\x89PNG"
        assert ("GET", f"/history/{out.prompt_id}") in fake.requests


async def test_deadline_then_resume_with_wait() -> None:
    async with FakeComfyUI(step_time=0.02) as fake, ComfyClient(fake.url, **FAST) as c:
        with pytest.raises(DeadlineExceeded) as ei:
            await c.run(t2i(steps=15), deadline_s=0.1)
        pid = ei.value.details["prompt_id"]
        out = await c.wait(pid, deadline_s=5)
        assert out.prompt_id == pid and out.images
        assert not fake.interrupts  # a deadline does not stop the prompt


async def test_cancel_interrupts_running_prompt_only() -> None:
    async with FakeComfyUI(step_time=0.02) as fake, ComfyClient(fake.url, **FAST) as c:
        sampling = asyncio.Event()

        def on_event(e: ev.Event) -> None:
            if isinstance(e, ev.Progress):
                sampling.set()

        task = asyncio.create_task(c.run(t2i(steps=50), on_event=on_event))
        await asyncio.wait_for(sampling.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):
            if fake.history:
                break
            await asyncio.sleep(0.01)
        (pid, entry), = fake.history.items()
        assert {"prompt_id": pid} in fake.interrupts
        assert entry["status"]["messages"][-1][0] == "execution_interrupted"


async def test_cancel_while_queued_deletes_it() -> None:
    async with FakeComfyUI(step_time=0.02) as fake, ComfyClient(fake.url, **FAST) as c, \
            ComfyClient(fake.url, **FAST) as other:
        blocker = await other.submit(t2i(steps=30, seed=99))
        task = asyncio.create_task(c.run(t2i(seed=5)))
        for _ in range(200):
            if len(fake.pending) == 1:
                break
            await asyncio.sleep(0.01)
        mine = fake.pending[0][1]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not fake.pending and fake.running is not None and fake.running[1] == blocker
        assert {"prompt_id": mine} in fake.interrupts  # targeted: the blocker keeps running
        out = await other.wait(blocker, deadline_s=5)
        assert out.images


async def test_interrupted_by_someone_else_is_cancelled() -> None:
    async with FakeComfyUI(step_time=0.02) as fake, ComfyClient(fake.url, **FAST) as c:
        task = asyncio.create_task(c.run(t2i(steps=40)))
        for _ in range(200):
            if fake.running:
                break
            await asyncio.sleep(0.01)
        async with ComfyClient(fake.url, **FAST) as admin:
            await admin.interrupt(None)
        with pytest.raises(Cancelled, match="interrupted"):
            await task


async def test_server_down_and_death_mid_run() -> None:
    with pytest.raises(ComfyUIUnavailable) as ei:
        async with ComfyClient("http://127.0.0.1:9", **FAST) as c:
            await c.system_stats()
    assert "127.0.0.1:9" in ei.value.message and ei.value.hint and ei.value.url == "http://127.0.0.1:9"
    async with FakeComfyUI(step_time=0.01, fail={"die_at": "KSampler"}) as fake, ComfyClient(fake.url, **FAST) as c:
        with pytest.raises(ComfyUIUnavailable):
            await c.run(t2i(), deadline_s=10)


async def test_plain_endpoints() -> None:
    async with FakeComfyUI(models={"checkpoints": ["a.safetensors"]}) as fake, ComfyClient(fake.url, **FAST) as c:
        assert await c.models("checkpoints") == ["a.safetensors"]
        assert await c.models("nope") == []
        assert "loras" in await c.models()
        info = await c.object_info(refresh=True)
        assert info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] == ["a.safetensors"]
        n = len(fake.requests)
        await c.object_info()
        assert len(fake.requests) == n  # cached per endpoint
        assert (await c.installed(["checkpoints", "loras"]))["loras"] == []
        up = await c.upload_image(b"\x89PNG fake", "upl.png")
        assert up == {"name": "upl.png", "subfolder": "", "type": "input"}
        q = await c.queue()
        assert q == {"queue_running": [], "queue_pending": []}
        assert (await c.system_stats())["devices"]
        out = await c.run(modelfree(), fetch_images=False)
        assert out.images[0].data == b"" and (await c.fetch_image(out.images[0]))[:4] == b"\x89PNG"
        assert out.prompt_id in await c.history(max_items=5)


def test_fixture_serves_sync_code(fake_comfyui: FakeComfyUI) -> None:
    import httpx

    assert httpx.get(fake_comfyui.url + "/queue").json() == {"queue_running": [], "queue_pending": []}
    out = asyncio.run(_one(fake_comfyui.url))
    assert out.images


async def _one(url: str):  # type: ignore[no-untyped-def]
    async with ComfyClient(url, **FAST) as c:
        return await c.run(modelfree())


async def test_queue_position_events_while_waiting() -> None:
    async with FakeComfyUI(step_time=0.02) as fake, ComfyClient(fake.url, **FAST) as c, \
            ComfyClient(fake.url, **FAST) as other:
        blockers = [await other.submit(t2i(steps=5, seed=100 + i)) for i in range(2)]
        seen: list[ev.Event] = []
        out = await c.run(t2i(seed=1), on_event=seen.append)
        positions = [e.position for e in seen if isinstance(e, ev.Queued)]
        assert positions[0] >= 1 and positions == sorted(positions, reverse=True)  # moves up the queue
        assert len(positions) == len(set(positions))  # reported only when it changes
        kinds = [e.kind for e in seen]
        assert kinds.index("queued") < kinds.index("started") and out.images
        assert all(b in fake.history for b in blockers)


def test_an_unreachable_server_hint_names_its_own_host_and_port():
    from comfygen.tools.comfy.client import ComfyClient

    err = ComfyClient("http://127.0.0.5:9999")._unavailable("connection refused")
    assert "127.0.0.5:9999" in err.message and "--listen 127.0.0.5 --port 9999" in err.hint
