"""The client against a ComfyUI 0.38 (the test double's newer personality) and the 0.3.64 one side by side."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from comfy_graphs import modelfree
from fakecomfy import FakeComfyUI
from fakecomfy_v038 import FakeComfyUI038

from comfygen.tools.comfy import events as ev
from comfygen.tools.comfy.client import ComfyClient
from comfygen.tools.comfy.remote import PromptVanished
from comfygen.tools.errors import ComfyUIError, ComfyUIValidationError

pytestmark = pytest.mark.anyio


def _client(url: str, **kw) -> ComfyClient:
    return ComfyClient(url, retries=2, backoff_s=0.02, poll_interval_s=0.05, **kw)


async def test_detects_what_each_server_offers() -> None:
    async with FakeComfyUI() as old, FakeComfyUI038() as new:
        async with _client(old.url) as a, _client(new.url) as b:
            await a.run(modelfree(color=1))
            await b.run(modelfree(color=2))
            ia, ib = await a.server_info(), await b.server_info()
    assert (ia.version, ia.os, ia.jobs_api) == ("0.3.64", "posix", False)
    assert (ib.version, ib.os, ib.jobs_api) == ("0.38.1", "linux", True)
    assert ib.version_tuple >= (0, 38) and ib.features.get("node_replacements") is True
    assert "jobs API" in ib.describe() and "no jobs API" in ia.describe()


async def test_jobs_api_answers_what_became_of_a_prompt() -> None:
    async with FakeComfyUI038() as fake, _client(fake.url) as c:
        out = await c.run(modelfree(color=3))
        job = await c.job(out.prompt_id)
        assert job is not None and job["status"] == "completed" and job["outputs"]["3"]["images"]
        assert await c.job(str(uuid.uuid4())) is None
        assert await c.prompt_state(out.prompt_id) == ("done", fake.history[out.prompt_id])
        page = (await c._json("GET", "/api/jobs", params={"status": "completed"}))
        assert [j["id"] for j in page["jobs"]] == [out.prompt_id] and page["pagination"]["total"] == 1
    assert ("GET", f"/jobs/{out.prompt_id}") in fake.requests  # the jobs API was used, not /queue + /history


async def test_resubmission_409_counts_as_accepted() -> None:
    """A POST whose reply was lost is sent again; a newer server answers 409 and the run goes on."""
    async with FakeComfyUI038(step_time=0.01) as fake, _client(fake.url) as c:
        fake.drop_next("/prompt", after=True)  # accepted, reply lost
        pid = str(uuid.uuid4())
        graph = modelfree(color=4)

        async def lookup_fails(_pid: str) -> bool:  # the pre-resubmit lookup misses it (e.g. it timed out)
            return False

        c._known = lookup_fails  # type: ignore[method-assign]
        out = await c.run(graph, prompt_id=pid)
    assert out.prompt_id == pid and out.images
    assert [r for r in fake.requests if r == ("POST", "/prompt")] == [("POST", "/prompt")] * 2
    assert len([k for k in fake.history if k == pid]) == 1


async def test_previews_are_asked_for_per_prompt() -> None:
    """Newer servers send previews only when the prompt's extra_data names a preview method."""
    async with FakeComfyUI038() as fake, _client(fake.url) as c:
        out = await c.run(modelfree(color=13), previews=True)
        plain = await c.run(modelfree(color=14))
    assert fake.history[out.prompt_id]["prompt"][3]["preview_method"] == "auto"
    assert "preview_method" not in fake.history[plain.prompt_id]["prompt"][3]


async def test_prompt_ids_are_canonical_uuids() -> None:
    async with FakeComfyUI038() as fake, _client(fake.url) as c:
        upper = str(uuid.uuid4()).upper()
        out = await c.run(modelfree(color=5), prompt_id=upper)
        assert out.prompt_id == upper.lower()
        with pytest.raises(ComfyUIError, match="not a UUID"):
            await c.submit(modelfree(), prompt_id="my-run-1")
        resp = await c._request("POST", "/prompt", json={"prompt": modelfree(), "prompt_id": upper})
    assert resp.status_code == 400 and resp.json()["error"]["type"] == "invalid_prompt_id"


@pytest.mark.parametrize("cls", [FakeComfyUI, FakeComfyUI038])
async def test_unknown_node_says_install_the_pack(cls) -> None:
    async with cls() as fake, _client(fake.url) as c:
        with pytest.raises(ComfyUIValidationError) as ei:
            await c.run({**modelfree(), "9": {"class_type": "FaceDetailer", "inputs": {}}})
    assert "Install the custom node pack that provides FaceDetailer" in ei.value.hint
    if cls is FakeComfyUI038:
        assert ei.value.error["type"] == "missing_node_type"
        assert ei.value.error["message"] == "Node 'FaceDetailer' not found. The custom node may not be installed."
        assert ei.value.error["extra_info"] == {"node_id": "9", "class_type": "FaceDetailer",
                                                "node_title": "FaceDetailer"}


async def test_looped_node_keeps_every_iterations_images() -> None:
    async with FakeComfyUI038(loops={"3": 3}) as fake, _client(fake.url) as c:
        seen: list[ev.Event] = []
        out = await c.run(modelfree(color=6, prefix="loop"), on_event=seen.append)
    outputs = [e for e in seen if isinstance(e, ev.NodeOutput)]
    assert len(outputs) == 3 and all(len(e.output["images"]) == 1 for e in outputs)  # one per iteration
    names = [i.filename for i in out.images]
    assert len(names) == 3 and len(set(names)) == 3 and all(i.data for i in out.images)
    assert names == [i["filename"] for i in fake.history[out.prompt_id]["outputs"]["3"]["images"]]


async def test_reconnect_answers_the_credential_handshake() -> None:
    async with FakeComfyUI038(step_time=0.05, steps=20, credential_wait_s=0.5) as fake, _client(fake.url) as c:
        await c._ensure_ws()
        assert c._credential_key
        first_key = c._credential_key
        task = asyncio.create_task(c.run(modelfree(color=7)))
        await asyncio.sleep(0.1)
        fake.drop_websockets()  # the server still counts the old socket as registered
        for _ in range(100):
            await asyncio.sleep(0.05)
            if c._ws_up.is_set() and c._credential_key != first_key:
                break
        assert c._credential_key != first_key and fake.refused == []
        await task
        # a stranger reusing the clientId without the key is refused
        intruder = _client(fake.url, client_id=c.client_id)
        fake.drop_websockets()
        async with intruder:
            stolen = intruder.client_id
            await intruder._ensure_ws()
            for _ in range(100):
                if stolen in fake.refused and intruder.client_id != stolen and intruder._ws_up.is_set():
                    break
                await asyncio.sleep(0.05)
            assert stolen in fake.refused and "refused the websocket reconnect" in (intruder._ws_error or "")
            # it goes on under a fresh clientId, and its new prompts run with live events
            assert intruder.client_id != stolen and intruder._ws_up.is_set()
            seen: list[ev.Event] = []
            await intruder.run(modelfree(color=12), on_event=seen.append)
        assert any(isinstance(e, ev.NodeStarted) for e in seen)


@pytest.mark.parametrize("cls", [FakeComfyUI, FakeComfyUI038])
async def test_prompt_deleted_from_the_queue_ends_the_run(cls) -> None:
    """ComfyUI's UI "delete": the prompt leaves the queue and never reaches history."""
    async with cls(node_time=0.3) as fake, _client(fake.url, idle_check_s=0.3) as c:
        blocker = asyncio.create_task(c.run(modelfree(color=8)))
        await asyncio.sleep(0.05)
        pid = str(uuid.uuid4())
        task = asyncio.create_task(c.run(modelfree(color=9), prompt_id=pid))
        while pid not in [p[1] for p in fake.pending]:
            await asyncio.sleep(0.01)
        await c.delete_queued([pid])
        t0 = asyncio.get_running_loop().time()
        with pytest.raises(PromptVanished, match="not queued, not running and not in its history"):
            await task
        assert asyncio.get_running_loop().time() - t0 < 2.0
        await blocker


@pytest.mark.parametrize("cls", [FakeComfyUI, FakeComfyUI038])
async def test_server_restart_loses_the_prompt_and_the_run_says_so(cls) -> None:
    async with cls(node_time=0.5) as fake, _client(fake.url, idle_check_s=0.3) as c:
        task = asyncio.create_task(c.run(modelfree(color=10)))
        while fake.running is None:
            await asyncio.sleep(0.01)
        await fake.restart()
        with pytest.raises(PromptVanished, match="restarted"):
            await asyncio.wait_for(task, 10)


async def test_cancel_uses_the_jobs_api() -> None:
    async with FakeComfyUI038(node_time=0.3) as fake, _client(fake.url) as c:
        started = asyncio.Event()
        task = asyncio.create_task(c.run(modelfree(color=11), on_event=lambda e: started.set()
                                         if isinstance(e, ev.NodeStarted) else None))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):
            if fake.history:
                break
            await asyncio.sleep(0.02)
    (entry,) = fake.history.values()
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    assert any(m == "POST" and p.startswith("/jobs/") and p.endswith("/cancel") for m, p in fake.requests)
    assert ("POST", "/interrupt") not in fake.requests
