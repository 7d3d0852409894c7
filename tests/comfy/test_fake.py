"""The fake ComfyUI itself: recorded shapes, message sequences, executors, previews."""

from __future__ import annotations

import asyncio
import io
import json
import struct

import httpx
import numpy as np
import pytest
from fakecomfy import _SHARED as SHARED
import websockets
from comfy_graphs import modelfree, scale_graph, t2i
from fakecomfy import FakeComfyUI
from PIL import Image

pytestmark = pytest.mark.anyio
CAPTURES = SHARED / "comfyui" / "captures"


async def _post(url: str, body: dict) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url) as h:
        return await h.post("/prompt", json=body)


async def _collect(ws: websockets.ClientConnection, pid: str) -> list:
    frames: list = []
    while True:
        f = await asyncio.wait_for(ws.recv(), 5)
        if isinstance(f, bytes):
            frames.append(("bin",) + struct.unpack(">I", f[:4]))
            continue
        m = json.loads(f)
        frames.append(m)
        if m["type"] == "executing" and m["data"]["node"] is None and m["data"]["prompt_id"] == pid:
            return frames


@pytest.mark.skipif(not (CAPTURES / "errors.json").exists(), reason="recorded captures not available")
@pytest.mark.parametrize("case,graph", [
    ("missing_required_input", {**scale_graph(), "2": {"class_type": "ImageScale", "inputs": {
        "image": ["1", 0], "upscale_method": "bilinear", "height": 32, "crop": "disabled"}}}),
    ("link_to_missing_node", {**scale_graph(), "3": {"class_type": "SaveImage", "inputs": {
        "images": ["2", 0], "filename_prefix": "p"}}, "2": {"class_type": "ImageScale", "inputs": {
            "image": ["77", 0], "upscale_method": "bilinear", "width": 8, "height": 8, "crop": "disabled"}}}),
    ("no_output_node", {"1": scale_graph()["1"]}),
    ("missing_class_type", {"1": {"inputs": {}}}),
])
async def test_error_bodies_match_recordings(case: str, graph: dict) -> None:
    recorded = json.loads((CAPTURES / "errors.json").read_text())[case]
    async with FakeComfyUI() as fake:
        r = await _post(fake.url, {"prompt": graph})
    assert r.status_code == recorded["status"]
    body = r.json()
    assert body["error"] == recorded["body"]["error"]
    strip = lambda ne: {k: {**v, "errors": [{**e, "extra_info": {x: y for x, y in e["extra_info"].items()  # noqa
                                                                 if x != "traceback"}} for e in v["errors"]]}
                        for k, v in ne.items()}
    assert strip(body["node_errors"]) == strip(recorded["body"]["node_errors"])


async def test_no_prompt_and_custom_id_and_front() -> None:
    async with FakeComfyUI() as fake:
        r = await _post(fake.url, {"client_id": "x"})
        assert r.status_code == 400 and r.json()["error"]["type"] == "no_prompt"
        r = await _post(fake.url, {"prompt": modelfree(), "prompt_id": "my-own-id-123", "number": 5.5})
        assert r.json() == {"prompt_id": "my-own-id-123", "number": 5.5, "node_errors": {}}
        r = await _post(fake.url, {"prompt": modelfree(color=3), "front": True})
        assert r.json()["number"] < 0


async def test_message_sequence_like_the_transcript() -> None:
    async with FakeComfyUI(previews=True) as fake:
        uri = "ws://" + fake.url.split("://")[1]
        async with websockets.connect(uri + "/ws?clientId=legacy") as legacy, \
                websockets.connect(uri + "/ws?clientId=meta") as meta, \
                websockets.connect(uri + "/ws") as observer:
            assert json.loads(await legacy.recv())["data"]["sid"] == "legacy"
            await meta.recv()
            await meta.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
            assert json.loads(await meta.recv())["type"] == "feature_flags"
            sid = json.loads(await observer.recv())["data"]["sid"]
            assert len(sid) == 32
            pid = (await _post(fake.url, {"prompt": t2i(steps=2), "client_id": "legacy"})).json()["prompt_id"]
            frames = await _collect(legacy, pid)
            kinds = [f[0] if isinstance(f, tuple) else f["type"] for f in frames]
            names = [k for k in kinds if k not in ("progress_state", "status")]
            assert names[:3] == ["execution_start", "execution_cached", "executing"]
            assert names[-3:] == ["executed", "execution_success", "executing"]
            i = kinds.index("progress")
            assert kinds[i + 1] == "bin" and frames[i + 1] == ("bin", 1)  # legacy preview after progress
            pid2 = (await _post(fake.url, {"prompt": t2i(steps=2, seed=9), "client_id": "meta"})).json()["prompt_id"]
            frames = await _collect(meta, pid2)
            kinds = [f[0] if isinstance(f, tuple) else f["type"] for f in frames]
            i = kinds.index("progress")
            assert frames[i - 1] == ("bin", 4)  # preview with metadata before progress
            # the observer saw only status / progress_state
            seen = set()
            while True:
                try:
                    seen.add(json.loads(await asyncio.wait_for(observer.recv(), 0.2))["type"])
                except asyncio.TimeoutError:
                    break
            assert seen <= {"status", "progress_state"} and "status" in seen


async def test_executors_get_linked_values_and_shape_the_pixels() -> None:
    calls: list[dict] = []

    def ksampler(inputs: dict, ctx) -> tuple:  # type: ignore[no-untyped-def]
        calls.append(inputs)
        lat = inputs["latent_image"]["samples"]
        return ({"samples": np.full_like(lat, 3.0)},)

    async def encode(inputs: dict, ctx) -> tuple:  # type: ignore[no-untyped-def]
        return ({"text": inputs["text"].upper(), "vec": np.zeros(4, dtype=np.float32)},)

    async with FakeComfyUI(executors={"KSampler": ksampler, "CLIPTextEncode": encode}) as fake:
        from comfygen.tools.comfy.client import ComfyClient

        async with ComfyClient(fake.url) as c:
            out = await c.run(t2i(text="cat", size=32, batch=2))
    (inputs,) = calls
    assert inputs["positive"]["text"] == "CAT" and inputs["latent_image"]["samples"].shape == (2, 4, 4, 4)
    assert inputs["model"]["name"] == "random_sd15.safetensors" and inputs["steps"] == 4
    img = np.asarray(Image.open(io.BytesIO(out.images[0].data)))
    assert img.shape == (32, 32, 3) and len(np.unique(img.reshape(-1, 3), axis=0)) == 1  # uniform latent


async def test_view_history_queue_edges() -> None:
    async with FakeComfyUI(step_time=0.05) as fake, httpx.AsyncClient(base_url=fake.url) as h:
        assert (await h.get("/view", params={"filename": "../x.png"})).status_code == 400
        assert (await h.get("/view", params={"filename": "nope.png"})).status_code == 404
        assert (await h.get("/models/nope")).status_code == 404
        assert (await h.get("/object_info/NoSuch")).json() == {}
        assert (await h.get("/api/object_info/KSampler")).json()["KSampler"]["output"] == ["LATENT"]
        ids = [(await h.post("/prompt", json={"prompt": t2i(seed=i, steps=2)})).json()["prompt_id"] for i in range(3)]
        q = (await h.get("/queue")).json()
        assert q["queue_running"][0][1] == ids[0] and {p[1] for p in q["queue_pending"]} == set(ids[1:])
        await h.post("/interrupt", json={"prompt_id": "someone-else"})
        await h.post("/queue", json={"delete": [ids[2]]})
        assert [p[1] for p in (await h.get("/queue")).json()["queue_pending"]] == [ids[1]]
        for _ in range(100):
            if len(fake.history) == 2:
                break
            await asyncio.sleep(0.05)
        assert all(e["status"]["status_str"] == "success" for e in fake.history.values())
        assert list((await h.get("/history", params={"max_items": 1})).json()) == [ids[1]]
        img = fake.history[ids[0]]["outputs"]["9"]["images"][0]
        r = await h.get("/view", params={**img, "preview": "webp;50"})
        assert r.status_code == 200 and r.content[:4] == b"RIFF"
        await h.post("/history", json={"clear": True})
        assert (await h.get("/history")).json() == {}


def test_internal_validator_agrees_with_flow_library() -> None:
    import fakecomfy_engine as eng
    from fakecomfy import recorded_object_info

    from comfygen.flow_library.schema import NodeSchema, validate_graph

    info = recorded_object_info()
    graphs = [scale_graph(width=99999), scale_graph(width=-5), scale_graph(method="magic"), scale_graph(width="abc"),
              {"1": scale_graph()["1"]}, {**modelfree(), "9": {"class_type": "NoSuchNode", "inputs": {}}},
              t2i(), t2i(steps=0), {**t2i(), "3": {**t2i()["3"], "inputs": {**t2i()["3"]["inputs"],
                                                                             "latent_image": ["8", 0]}}}]
    for g in graphs:
        ok, error, good, node_errors = eng.validate_prompt(g, info)
        rep = validate_graph(g, NodeSchema(info), check_model_files=True, check_v3_combos=False)
        assert (error, sorted(good), node_errors) == (rep.error, sorted(rep.good_outputs), rep.node_errors), g
