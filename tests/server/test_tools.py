"""Every MCP tool through the in-memory client, against the fake ComfyUI."""

from __future__ import annotations

import base64
import io

import anyio
import pytest
from mcp import Client
from mcp.types import CreateMessageResult, ImageContent, TextContent
from PIL import Image

from mcp_helpers import shared_library

from comfygen.server.app import build_server
from comfygen.tools.errors import WeightsMissing
from comfygen.tools.settings import Settings

pytestmark = pytest.mark.anyio

READ_ONLY = {"list_categories", "get_score_table", "suggest_flows", "get_flow", "score_image", "comfyui_status",
             "get_run"}


async def test_the_tool_surface_is_small_typed_described_and_annotated(server):
    async with Client(server) as c:
        tools = (await c.list_tools()).tools
    names = {t.name for t in tools}
    assert len(tools) <= 10
    assert {"list_categories", "get_score_table", "suggest_flows", "get_flow", "generate", "score_image",
            "comfyui_status", "get_run"} <= names
    for t in tools:
        assert t.description and len(t.description) > 30, t.name
        assert t.output_schema, f"{t.name} has no structured output"
        for prop, schema in t.input_schema.get("properties", {}).items():
            assert schema.get("description"), f"{t.name}.{prop} has no description"
        assert t.annotations is not None
        assert t.annotations.read_only_hint is (t.name in READ_ONLY), t.name
    assert {r.uri for r in (await _resources(server))} >= {"comfygen://categories", "comfygen://score-table"}


async def _resources(server):
    async with Client(server) as c:
        return (await c.list_resources()).resources


async def test_list_categories_returns_the_stable_ids(server):
    async with Client(server) as c:
        r = await c.call_tool("list_categories", {})
    ids = [cat["id"] for cat in r.structured_content["categories"]]
    assert "portrait" in ids and "anime" in ids and not r.is_error


async def test_get_flow_describes_a_flow_and_names_close_ids_for_a_typo(server):
    async with Client(server) as c:
        ok = await c.call_tool("get_flow", {"flow_id": "sdxl-base"})
        graph = await c.call_tool("get_flow", {"flow_id": "sdxl-base", "include_graph": True})
        bad = await c.call_tool("get_flow", {"flow_id": "sdxl-bsae"})
    assert ok.structured_content["family"] == "sdxl" and ok.structured_content["graph"] is None
    assert ok.structured_content["uri"] == "flow://sdxl-base"
    assert "KSampler" in str(graph.structured_content["graph"])
    assert bad.is_error and "unknown flow 'sdxl-bsae'" in bad.content[0].text and "What to do:" in bad.content[0].text


async def test_generate_returns_a_small_thumbnail_scores_and_the_full_image_path(server, comfy):
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(p, total, message):
        progress.append((p, total, message))

    async with Client(server) as c:
        r = await c.call_tool("generate", {"prompt": "a red fox in snow", "flow_id": "sd15-base", "size": "64x64",
                                           "seed": 7}, progress_callback=on_progress)
        assert not r.is_error, r.content[0].text
        out = r.structured_content
        record = await c.read_resource(f"run://{out['run_id']}/record")
        full = await c.read_resource(f"run://{out['run_id']}")
    assert out["status"] == "succeeded" and out["flow_id"] == "sd15-base" and out["seed"] == 7
    assert out["scores"]["total"] is not None and "brightness" in out["scores"]["per_scorer"]
    images = [b for b in r.content if isinstance(b, ImageContent)]
    assert len(images) == 1 and images[0].mime_type in ("image/webp", "image/jpeg")
    data = base64.b64decode(images[0].data)
    assert len(data) <= 300_000 and max(Image.open(io.BytesIO(data)).size) <= 512
    assert open(out["image_path"], "rb").read()[:4] == b"\x89PNG"
    assert base64.b64decode(full.contents[0].blob) == open(out["image_path"], "rb").read()
    assert '"prompt": "a red fox in snow"' in record.contents[0].text
    values = [p for p, _, _ in progress]
    assert values and values == sorted(values) and len(set(values)) == len(values)  # MCP progress only grows
    assert any("step" in (m or "") for _, _, m in progress)


async def test_candidates_are_scored_and_the_best_one_is_returned(server):
    async with Client(server) as c:
        r = await c.call_tool("generate", {"prompt": "a lighthouse", "flow_id": "sd15-base", "size": "64x64",
                                           "candidates": 3})
    out = r.structured_content
    totals = [cand["total"] for cand in out["candidates"]]
    assert len(totals) == 3 and out["scores"]["total"] == max(totals)
    assert out["image_path"] == out["candidates"][totals.index(max(totals))]["path"]


async def test_a_run_that_outlives_the_call_is_finished_by_get_run(server):
    async with Client(server) as c:
        first = await c.call_tool("generate", {"prompt": "a castle", "flow_id": "sd15-base", "size": "64x64",
                                               "wait_s": 0})
        assert first.structured_content["status"] == "running"
        assert "get_run" in first.structured_content["next_step"]
        done = await c.call_tool("get_run", {"run_id": first.structured_content["run_id"], "wait_s": 30})
    assert done.structured_content["status"] == "succeeded"
    assert any(isinstance(b, ImageContent) for b in done.content)


async def test_without_a_comfyui_generate_says_how_to_configure_one(tmp_path):
    server = build_server(Settings(home=tmp_path), library=shared_library())
    async with Client(server) as c:
        r = await c.call_tool("generate", {"prompt": "a cat"})
        status = await c.call_tool("comfyui_status", {})
    assert r.is_error and "COMFYGEN_COMFYUI_URLS" in r.content[0].text
    assert status.structured_content["configured"] is False


async def test_an_unreachable_comfyui_gives_an_error_naming_the_url(tmp_path):
    url = "http://127.0.0.1:9"  # discard port: nothing listens
    server = build_server(Settings(home=tmp_path, comfyui_urls=[url], connect_timeout_s=0.5, read_timeout_s=1),
                          library=shared_library())
    async with Client(server) as c:
        r = await c.call_tool("generate", {"prompt": "a cat", "flow_id": "sd15-base", "size": "64x64"})
        status = await c.call_tool("comfyui_status", {})
    assert r.is_error and "127.0.0.1:9" in r.content[0].text
    assert status.structured_content["endpoints"][0]["healthy"] is False and status.structured_content["hint"]


async def test_bad_arguments_are_tool_errors_that_say_what_to_change(server):
    async with Client(server) as c:
        size = await c.call_tool("generate", {"prompt": "x", "flow_id": "sd15-base", "size": "big"})
        odd = await c.call_tool("generate", {"prompt": "x", "flow_id": "sd15-base", "size": "65x64"})
        ref = await c.call_tool("get_run", {"run_id": "nope-nope"})
        both = await c.call_tool("score_image", {})
        cands = await c.call_tool("generate", {"prompt": "x", "candidates": 99})
    assert "WIDTHxHEIGHT" in size.content[0].text
    assert "multiple of 8" in odd.content[0].text
    assert "unknown run" in ref.content[0].text
    assert "exactly one of run_id or path" in both.content[0].text
    assert cands.is_error and "candidates" in cands.content[0].text


async def test_score_image_scores_a_run_or_a_file(server, settings):
    settings.home.mkdir(parents=True, exist_ok=True)
    png = settings.home / "white.png"
    Image.new("RGB", (32, 32), "white").save(png)
    async with Client(server) as c:
        by_path = await c.call_tool("score_image", {"path": str(png), "prompt": "white"})
        run = await c.call_tool("generate", {"prompt": "a boat", "flow_id": "sd15-base", "size": "64x64"})
        by_run = await c.call_tool("score_image", {"run_id": run.structured_content["run_id"]})
        not_image = await c.call_tool("score_image", {"path": __file__, "prompt": "x"})
    assert by_path.structured_content["total"] == pytest.approx(1.0)
    assert by_run.structured_content["total"] == pytest.approx(run.structured_content["scores"]["total"])
    assert not_image.is_error and "not an image file inside COMFYGEN_HOME" in not_image.content[0].text


async def test_missing_weights_skip_scoring_but_still_return_the_image(settings):
    def no_weights(_settings):
        raise WeightsMissing("ImageReward weights are not in the cache", hint="run `comfygen score download`")

    server = build_server(settings, scorer_factory=no_weights, library=shared_library())
    async with Client(server) as c:
        r = await c.call_tool("generate", {"prompt": "a cat", "flow_id": "sd15-base", "size": "64x64"})
    out = r.structured_content
    assert not r.is_error and out["status"] == "succeeded" and out["image_path"]
    assert out["scores"]["total"] is None and "weights are not in the cache" in out["scores"]["skipped"]
    restarted = build_server(settings, scorer_factory=no_weights, library=shared_library())  # a new server process
    async with Client(restarted) as c:
        later = await c.call_tool("get_run", {"run_id": out["run_id"]})
    assert later.structured_content["scores"]["skipped"] == out["scores"]["skipped"]  # not "not scored yet"


async def test_an_unknown_argument_is_refused_with_the_names_the_tool_takes(server):
    async with Client(server) as c:
        typo = await c.call_tool("generate", {"prompt": "a cat", "flow_id": "sd15-base", "seeds": 5})
        none = await c.call_tool("list_categories", {"verbose": True})
        tools = (await c.list_tools()).tools
    assert typo.is_error and "unknown argument(s) seeds" in typo.content[0].text
    assert "generate takes" in typo.content[0].text and "seed" in typo.content[0].text
    assert none.is_error and "list_categories takes no arguments" in none.content[0].text
    assert all(t.input_schema.get("additionalProperties") is False for t in tools)


async def test_comfyui_status_lists_endpoints_and_runnable_flows(server, comfy):
    from mcp_helpers import library_models

    async with Client(server) as c:
        r = await c.call_tool("comfyui_status", {})
    s = r.structured_content
    assert s["configured"] and s["endpoints"][0]["url"] == comfy.url and s["endpoints"][0]["healthy"]
    assert "sd15-base" in s["runnable"] and s["runnable_count"] >= len(s["runnable"])
    listed = s["models"]["checkpoints"]
    assert listed and len(listed) <= 30 and set(listed) <= set(library_models()["checkpoints"])  # capped per folder


async def test_cancelling_generate_interrupts_comfyui_and_records_the_run(tmp_path):
    from fakecomfy import FakeComfyUI
    from mcp_helpers import library_models, pixel_scorers, shared_library

    from comfygen.tools.app.service import ComfyGen

    async with FakeComfyUI(models=library_models(), steps=50, step_time=0.05) as slow:
        settings = Settings(home=tmp_path, comfyui_urls=[slow.url])
        cg = ComfyGen(settings, scorer_factory=pixel_scorers, library=shared_library())
        server = build_server(settings, service=cg)
        started = anyio.Event()

        async def on_progress(p, total, message):
            if message and "step" in message:
                started.set()

        async with Client(server) as c:
            async with anyio.create_task_group() as tg:
                async def call():
                    await c.call_tool("generate", {"prompt": "a slow cat", "flow_id": "sd15-base", "size": "64x64"},
                                      progress_callback=on_progress)

                tg.start_soon(call)
                with anyio.fail_after(10):
                    await started.wait()
                tg.cancel_scope.cancel()
            with anyio.fail_after(5):
                while not slow.interrupts or cg.store.list()[0].status == "running":
                    await anyio.sleep(0.02)
            runs = cg.store.list()
    assert slow.interrupts and runs[0].status == "cancelled"


async def test_resources_and_the_make_image_prompt(server):
    async with Client(server) as c:
        flow = await c.read_resource("flow://sd15-base")
        cats = await c.read_resource("comfygen://categories")
        prompt = await c.get_prompt("make-image", {"request": "a fox", "budget": "2"})
        prompts = (await c.list_prompts()).prompts
    assert '"class_type"' in flow.contents[0].text and '"portrait"' in cats.contents[0].text
    text = prompt.messages[0].content
    assert isinstance(text, TextContent) and "a fox" in text.text and "budget of 2" in text.text
    assert [p.name for p in prompts] == ["make-image"]


async def test_suggest_flows_in_llm_mode_without_sampling_says_so(server):
    async with Client(server) as c:
        r = await c.call_tool("suggest_flows", {"prompt": "a portrait of an old sailor", "mode": "llm", "k": 3})
    assert not r.is_error, r.content[0].text
    assert r.structured_content["mode"] == "planner" and "sampling" in r.structured_content["note"]


async def test_suggest_flows_in_llm_mode_asks_the_clients_model(server):
    seen = []

    async def sampling(context, params):
        seen.append(params)
        return CreateMessageResult(role="assistant", model="client-model",
                                   content=TextContent(text='{"flow_ids": ["sdxl-juggernaut", "sd15-base"], '
                                                            '"reason": "photoreal people"}'))

    async with Client(server, sampling_callback=sampling) as c:
        r = await c.call_tool("suggest_flows", {"prompt": "a portrait of an old sailor", "mode": "llm", "k": 2})
    assert not r.is_error, r.content[0].text
    out = r.structured_content
    assert out["mode"] == "llm" and [f["flow_id"] for f in out["flows"]] == ["sdxl-juggernaut", "sd15-base"]
    assert "client-model" in out["note"] and "Score table" in seen[0].messages[0].content.text


async def test_many_calls_in_parallel_all_succeed(server):
    async with Client(server) as c:
        results = []

        async def one(i):
            results.append(await c.call_tool("generate", {"prompt": f"a cat {i}", "flow_id": "sd15-base",
                                                          "size": "64x64"}))

        async with anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(one, i)
    assert len(results) == 6 and not any(r.is_error for r in results)
    assert len({r.structured_content["run_id"] for r in results}) == 6


async def test_noise_search_returns_the_best_candidate_with_best_so_far_progress(server):
    progress = []

    async def on_progress(p, total, message):
        progress.append((p, total, message))

    async with Client(server) as c:
        r = await c.call_tool("noise_search", {"prompt": "a red apple", "flow_id": "sd15-base", "size": "64x64",
                                               "budget": 4, "seed": 3}, progress_callback=on_progress)
    assert not r.is_error, r.content[0].text
    out = r.structured_content
    assert out["evaluated"] == 4 and out["method"] == "random" and out["flow_id"] == "sd15-base"
    best = out["best"]
    assert best["image_path"] and best["scores"]["per_scorer"]["brightness"] >= 0
    assert any(isinstance(b, ImageContent) for b in r.content)
    assert progress and progress[-1][0] == 4 and "best so far" in progress[-1][2]


async def test_get_run_finishes_a_run_an_earlier_server_process_left_running(tmp_path):
    """The server that started the run died mid-run: a new server's get_run follows the prompt on ComfyUI,
    saves the image, scores it and returns it."""
    from fakecomfy import FakeComfyUI
    from mcp_helpers import library_models, pixel_scorers, shared_library

    from comfygen.flow_library.render import render
    from comfygen.tools.comfy.client import ComfyClient
    from comfygen.tools.store import RunStore

    async with FakeComfyUI(models=library_models(), steps=10, step_time=0.02) as fake:
        settings = Settings(home=tmp_path, comfyui_urls=[fake.url])
        graph = render(shared_library().get("sd15-base"), "an orphaned lighthouse", seed=4, width=64, height=64)
        store = RunStore(settings.store_path)
        rec = store.create(prompt="an orphaned lighthouse", flow_id="sd15-base", graph=graph, seed=4,
                           endpoint=fake.url, comfy_prompt_id="a1b2c3d4-0000-4000-8000-000000000001")
        async with ComfyClient(fake.url) as client:  # what the dead process had submitted
            await client.submit(graph, prompt_id=rec.comfy_prompt_id)
        store.mark_running(rec.id, endpoint=fake.url)
        server = build_server(settings, scorer_factory=pixel_scorers, library=shared_library())
        async with Client(server) as c:
            r = await c.call_tool("get_run", {"run_id": rec.id, "wait_s": 30})
    out = r.structured_content
    assert not r.is_error and out["status"] == "succeeded" and out["image_path"]
    assert out["scores"]["total"] is not None
    assert any(isinstance(b, ImageContent) for b in r.content)


async def test_clients_on_the_older_handshake_protocol_get_progress_images_and_sampling(server):
    """Claude Desktop and most clients today speak the initialize-handshake protocol (2025-xx)."""
    progress = []

    async def on_progress(p, total, message):
        progress.append(p)

    async def sampling(context, params):
        return CreateMessageResult(role="assistant", model="m", content=TextContent(text='{"flow_ids": ["sd15-base"]}'))

    async with Client(server, mode="legacy", sampling_callback=sampling) as c:
        assert not c.protocol_version.startswith("2026")
        gen = await c.call_tool("generate", {"prompt": "a kite", "flow_id": "sd15-base", "size": "64x64"},
                                progress_callback=on_progress)
        llm = await c.call_tool("suggest_flows", {"prompt": "a kite", "mode": "llm", "k": 1})
    assert gen.structured_content["status"] == "succeeded" and any(isinstance(b, ImageContent) for b in gen.content)
    assert progress and progress == sorted(progress)
    assert llm.structured_content["mode"] == "llm" and llm.structured_content["flows"][0]["flow_id"] == "sd15-base"
