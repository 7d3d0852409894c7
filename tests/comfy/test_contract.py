"""Contract tests: the same suite runs against the fake ComfyUI and, with COMFYUI_URL set, a real one.

    pytest tests/comfy/test_contract.py                                   # fake, as 0.3.64 and as 0.38
    COMFYUI_URL=http://127.0.0.1:8188 pytest tests/comfy/test_contract.py  # real ComfyUI (CPU is fine)

Where ComfyUI changed after 0.3.64 (error types, the jobs API), a case asks the server what it is
(``server_info``) and checks the answer that version gives.

Against a real server the text-to-image cases need a checkpoint named ``random_sd15.safetensors``
(``evals/perf/make_random_checkpoint.py`` builds one) and the runtime-error case a corrupt
``broken.safetensors``; they are skipped when the server lacks those files.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fakecomfy import _SHARED as SHARED
from comfy_graphs import modelfree, scale_graph, t2i
from PIL import Image

from comfygen.tools.comfy import events as ev
from comfygen.tools.comfy.client import ComfyClient
from comfygen.tools.comfy.remote import PromptVanished
from comfygen.tools.errors import ComfyUIExecutionError, ComfyUIValidationError

pytestmark = [pytest.mark.anyio, pytest.mark.comfyui]
REAL = os.environ.get("COMFYUI_URL")
CAPTURES = SHARED / "comfyui" / "captures"
SLOW_NODE_S = 0.3  # the fake's per-node time in the cancel case


class Target:
    def __init__(self, url: str, fake: Any = None):
        self.url, self.fake = url, fake

    def client(self) -> ComfyClient:
        return ComfyClient(self.url, read_timeout=600, retries=2, backoff_s=0.05, poll_interval_s=0.1)


@pytest.fixture(params=["real"] if REAL else ["0.3.64", "0.38"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    if REAL:
        yield Target(REAL.rstrip("/"))
        return
    from fakecomfy import personalities

    fake = personalities()[request.param]().start_in_thread()
    try:
        yield Target(fake.url, fake)
    finally:
        fake.stop()


def _color() -> int:
    return random.randrange(1, 0xFFFFFF)  # a fresh input, so a shared real server's cache does not interfere


async def test_server_endpoints_have_comfyui_shapes(target: Target) -> None:
    async with target.client() as c:
        stats = await c.system_stats()
        assert {"os", "comfyui_version", "python_version", "pytorch_version"} <= set(stats["system"])
        assert stats["devices"] and {"name", "type", "vram_total"} <= set(stats["devices"][0])
        folders = await c.models()
        assert {"checkpoints", "loras", "vae"} <= set(folders)
        assert isinstance(await c.models("checkpoints"), list)
        assert await c.models("no_such_folder") == []
        info = await c.object_info(refresh=True)
        ks = info["KSampler"]
        assert ks["input"]["required"]["steps"][0] == "INT" and ks["output"] == ["LATENT"]
        assert info["SaveImage"]["output_node"] is True
        q = await c.queue()
        assert set(q) == {"queue_running", "queue_pending"}
        assert await c.history("no-such-prompt-" + uuid.uuid4().hex) == {}


async def test_modelfree_run_events_png_and_history(target: Target) -> None:
    graph = modelfree(color=_color(), prefix="contract")
    seen: list[ev.Event] = []
    async with target.client() as c:
        out = await c.run(graph, on_event=seen.append)
        hist = (await c.history(out.prompt_id))[out.prompt_id]
    kinds = [e.kind for e in seen]
    assert kinds.index("started") < kinds.index("cached") < kinds.index("node_started") < kinds.index("node_output")
    assert kinds[-1] == "finished"
    assert [e.node for e in seen if isinstance(e, ev.NodeStarted)] == ["1", "2", "3"]
    assert [e.class_type for e in seen if isinstance(e, ev.NodeStarted)] == ["EmptyImage", "ImageBlur", "SaveImage"]
    (img,) = out.images
    assert (img.node, img.type, img.subfolder) == ("3", "output", "") and img.filename.startswith("contract_")
    pil = Image.open(io.BytesIO(img.data))
    assert pil.format == "PNG" and pil.size == (64, 48)
    assert json.loads(pil.text["prompt"]) == graph
    assert hist["status"]["status_str"] == "success" and hist["status"]["completed"] is True
    assert [m[0] for m in hist["status"]["messages"]] == ["execution_start", "execution_cached", "execution_success"]
    assert hist["prompt"][1] == out.prompt_id and hist["prompt"][3]["client_id"] == c.client_id
    assert hist["outputs"]["3"]["images"][0]["filename"] == img.filename
    assert set(out.timings.per_node) == {"1", "2", "3"}


async def test_cache_reuses_unchanged_nodes(target: Target) -> None:
    color = _color()
    async with target.client() as c:
        first = await c.run(modelfree(color=color, prefix="cache"))
        dup = await c.run(modelfree(color=color, prefix="cache"))
        changed = await c.run(modelfree(color=color, prefix="cache", blur=2))
    assert first.cached_nodes == []
    assert sorted(dup.cached_nodes) == ["1", "2", "3"]
    assert [i.filename for i in dup.images] == [i.filename for i in first.images]  # cached UI output re-sent
    assert dup.images[0].data == first.images[0].data
    assert changed.cached_nodes == ["1"]


@pytest.mark.skipif(not (CAPTURES / "errors.json").exists(), reason="recorded captures not available")
@pytest.mark.parametrize("case,graph", [
    ("value_too_big", scale_graph(width=99999)),
    ("value_too_small", scale_graph(width=-5)),
    ("bad_combo_value", scale_graph(method="magic")),
    ("bad_value_type_int", scale_graph(width="abc")),
])
async def test_validation_errors_match_recorded_bodies(target: Target, case: str, graph: dict) -> None:
    recorded = json.loads((CAPTURES / "errors.json").read_text())[case]["body"]
    async with target.client() as c:
        with pytest.raises(ComfyUIValidationError) as ei:
            await c.run(graph)
    assert ei.value.error == recorded["error"]
    assert ei.value.node_errors == recorded["node_errors"]
    assert "node 2 ImageScale:" in ei.value.message


async def test_prompt_level_errors(target: Target) -> None:
    async with target.client() as c:
        newer = (await c.server_info()).version_tuple >= (0, 36)
        with pytest.raises(ComfyUIValidationError) as ei:
            await c.run({**modelfree(), "9": {"class_type": "NoSuchNode", "inputs": {}}})
        assert ei.value.node_errors == {} and "Install the custom node pack that provides NoSuchNode" in ei.value.hint
        if newer:
            assert ei.value.error["type"] == "missing_node_type"
            assert ei.value.error["extra_info"]["class_type"] == "NoSuchNode"
            assert "Node 'NoSuchNode' not found" in ei.value.message
        else:
            assert ei.value.error["type"] == "invalid_prompt"
            assert "NoSuchNode does not exist" in ei.value.message
        with pytest.raises(ComfyUIValidationError) as ei:
            await c.run({"1": modelfree()["1"]})
        assert ei.value.error["type"] == "prompt_no_outputs"
        missing = modelfree()
        del missing["1"]["inputs"]["width"]
        with pytest.raises(ComfyUIValidationError) as ei:
            await c.run(missing)
        assert ei.value.node_errors["1"]["errors"][0]["type"] == "required_input_missing"


async def test_cancel_interrupts_our_prompt(target: Target) -> None:
    if target.fake is not None:
        target.fake.node_time = SLOW_NODE_S
    color = _color()
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 384, "height": 384, "batch_size": 2,
                                                           "color": color}},
             "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 31, "sigma": 8.0}},
             "4": {"class_type": "ImageBlur", "inputs": {"image": ["2", 0], "blur_radius": 31, "sigma": 8.0}},
             "3": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "cancel"}}}
    async with target.client() as c:
        blurring = asyncio.Event()
        pid = str(uuid.uuid4())

        def on_event(e: ev.Event) -> None:
            if isinstance(e, ev.NodeStarted) and e.node == "2":
                blurring.set()

        task = asyncio.create_task(c.run(graph, prompt_id=pid, on_event=on_event))
        await asyncio.wait_for(blurring.wait(), 120)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        entry: dict = {}
        for _ in range(600):
            entry = (await c.history(pid)).get(pid, {})
            if entry:
                break
            await asyncio.sleep(0.1)
        assert entry["status"]["status_str"] == "error" and entry["outputs"] == {}
        last = entry["status"]["messages"][-1]
        assert last[0] == "execution_interrupted" and last[1]["prompt_id"] == pid
        q = await c.queue()
        assert pid not in [item[1] for item in q["queue_running"] + q["queue_pending"]]


async def test_upload_image(target: Target) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(buf, format="PNG")
    name = f"contract-{uuid.uuid4().hex[:8]}.png"
    async with target.client() as c:
        res = await c.upload_image(buf.getvalue(), name)
        assert {k: res[k] for k in ("name", "subfolder", "type")} == {"name": name, "subfolder": "", "type": "input"}
        assert set(res) <= {"name", "subfolder", "type", "asset"}  # newer servers add an asset record
        if "asset" in res:
            assert res["asset"]["name"] == name and res["asset"]["size"] == len(buf.getvalue())
        graph = {"1": {"class_type": "LoadImage", "inputs": {"image": name}},
                 "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "upl"}}}
        out = await c.run(graph)
    px = Image.open(io.BytesIO(out.images[0].data)).convert("RGB")
    assert px.size == (16, 16) and px.getpixel((3, 3)) == (10, 200, 30)


async def _need(c: ComfyClient, name: str) -> None:
    if name not in await c.models("checkpoints"):
        pytest.skip(f"server has no checkpoints/{name}")


async def test_text_to_image_with_progress(target: Target) -> None:
    seen: list[ev.Event] = []
    async with target.client() as c:
        await _need(c, "random_sd15.safetensors")
        out = await c.run(t2i(seed=random.randrange(2**31), steps=2, size=64), on_event=seen.append)
    assert [(e.value, e.max) for e in seen if isinstance(e, ev.Progress) and e.node == "3"] == [(1, 2), (2, 2)]
    (img,) = out.images
    assert Image.open(io.BytesIO(img.data)).size == (64, 64)


async def test_runtime_error_is_reported(target: Target) -> None:
    async with target.client() as c:
        await _need(c, "broken.safetensors")
        with pytest.raises(ComfyUIExecutionError) as ei:
            await c.run(t2i(ckpt="broken.safetensors", seed=random.randrange(2**31)))
    assert "node 4 CheckpointLoaderSimple" in ei.value.message
    assert ei.value.details["exception_type"] and ei.value.details["traceback"]


async def test_server_info_and_prompt_state(target: Target) -> None:
    async with target.client() as c:
        info = await c.server_info()
        assert info.version_tuple >= (0, 3) and info.os
        out = await c.run(modelfree(color=_color(), prefix="state"))
        state, entry = await c.prompt_state(out.prompt_id)
        assert state == "done" and entry["status"]["status_str"] == "success"
        assert await c.prompt_state(str(uuid.uuid4())) == ("unknown", None)
        if info.jobs_api:
            job = await c.job(out.prompt_id)
            assert job is not None and job["status"] == "completed" and job["id"] == out.prompt_id
            assert await c.job(str(uuid.uuid4())) is None


async def test_repeated_prompt_id_is_accepted_once(target: Target) -> None:
    """A resubmission with the same id: a server that answers 409 has it already; the client says accepted."""
    async with target.client() as c:
        pid = str(uuid.uuid4())
        graph = modelfree(color=_color(), prefix="again")
        out = await c.run(graph, prompt_id=pid)
        resp = await c._request("POST", "/prompt", json={"prompt": graph, "client_id": c.client_id, "prompt_id": pid})
        if resp.status_code != 409:
            pytest.skip(f"this server answers {resp.status_code} to a repeated prompt id")
        assert "already exists" in resp.text
        assert await c.submit(graph, prompt_id=pid) == pid
    assert out.prompt_id == pid


async def test_prompt_deleted_from_queue_is_reported_gone(target: Target) -> None:
    if target.fake is not None:
        target.fake.node_time = SLOW_NODE_S
    slow = {"1": {"class_type": "EmptyImage", "inputs": {"width": 384, "height": 384, "batch_size": 2,
                                                          "color": _color()}},
            "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 31, "sigma": 8.0}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "blocker"}}}
    async with ComfyClient(target.url, read_timeout=600, retries=2, backoff_s=0.05, poll_interval_s=0.1,
                           idle_check_s=0.5) as c:
        blocker = asyncio.create_task(c.run(slow))
        await asyncio.sleep(0.2)
        pid = str(uuid.uuid4())
        task = asyncio.create_task(c.run(modelfree(color=_color()), prompt_id=pid))
        for _ in range(200):
            if await c.queue_position(pid):
                break
            await asyncio.sleep(0.02)
        else:
            blocker.cancel()
            pytest.skip("the blocker finished before the second prompt could wait behind it")
        await c.delete_queued([pid])
        with pytest.raises(PromptVanished):
            await asyncio.wait_for(task, 30)
        await blocker
