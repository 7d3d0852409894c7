from __future__ import annotations

import pytest

from comfygen.tools.errors import GuardError
from comfygen.tools.graph.guard import check_filename_prefix, guard
from comfygen.tools.settings import Settings


@pytest.fixture
def settings(tmp_path):
    return Settings(home=tmp_path, max_side=2048, max_steps=100, max_batch=8)


def test_library_shaped_graphs_pass(graphs, settings):
    for g in graphs.values():
        guard(g, settings)


def test_unknown_and_pack_nodes(graphs, settings, pruna_schema):
    g = graphs["sd15"]
    g["50"] = {"class_type": "CacheModelAuto", "inputs": {"model": ["11", 0]}}
    with pytest.raises(GuardError) as e:
        guard(g, settings)
    assert "CacheModelAuto" in e.value.message and "COMFYGEN_NODE_PACKS" in e.value.hint
    guard(g, settings, allowed_packs=["ComfyUI_pruna"])
    guard(g, Settings(home=settings.home, node_packs=["comfyui-pruna"]))  # spelling-insensitive
    g["51"] = {"class_type": "EvilShell", "inputs": {}}
    with pytest.raises(GuardError):
        guard(g, settings, allowed_packs=["ComfyUI_pruna"])
    schema = {**pruna_schema, "EvilShell": {"python_module": "custom_nodes.my-pack", "output": []}}
    guard(g, settings, allowed_packs=["ComfyUI_pruna", "my-pack"], schema=schema)


def test_api_nodes_need_opt_in(settings, core_schema):
    api = next(k for k, v in core_schema.items() if str(v.get("python_module", "")).startswith("comfy_api_nodes"))
    g = {"1": {"class_type": api, "inputs": {}}}
    with pytest.raises(GuardError):
        guard(g, settings)
    guard(g, settings, allowed_packs=["comfy_api_nodes"])


@pytest.mark.parametrize("prefix", ["../x", "a/../../b", "/etc/passwd", "C:/x", "c:x", "a\\b", "", "~/x", "a\x00b",
                                    "x" * 300])
def test_bad_prefixes(prefix):
    with pytest.raises(GuardError) as e:
        check_filename_prefix(prefix, "node 9 SaveImage")
    assert "filename_prefix" in e.value.message and e.value.hint


@pytest.mark.parametrize("prefix", ["ComfyUI", "comfygen/run", "a..b", "x/y/z_%date:yyyy%"])
def test_good_prefixes(prefix):
    check_filename_prefix(prefix, "n")


def test_prefix_in_graph(graphs, settings):
    g = graphs["sd15"]
    g["9"]["inputs"]["filename_prefix"] = "../../etc/cron"
    with pytest.raises(GuardError) as e:
        guard(g, settings)
    assert "node 9 SaveImage" in e.value.message


@pytest.mark.parametrize("node,name,value,word", [("5", "width", 4096, "2048"), ("5", "batch_size", 9, "8"),
                                                  ("3", "steps", 101, "100")])
def test_bounds(graphs, settings, node, name, value, word):
    g = graphs["sd15"]
    g[node]["inputs"][name] = value
    with pytest.raises(GuardError) as e:
        guard(g, settings)
    assert word in str(e.value) and name in e.value.message


def test_total_batch_bound(graphs, settings):
    from comfygen.tools.graph.batch import set_batch

    g = set_batch(graphs["img2img"], None, 8)
    guard(g, settings)
    rep = next(k for k, n in g.items() if n["class_type"] == "RepeatLatentBatch")
    g[rep]["inputs"]["amount"] = 9
    with pytest.raises(GuardError):
        guard(g, settings)


def test_structure(settings):
    with pytest.raises(GuardError):
        guard({}, settings)
    with pytest.raises(GuardError):
        guard({"1": {"inputs": {}}}, settings)
    with pytest.raises(GuardError):
        guard({"1": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0]}}}, settings)


def test_own_pack_allowed_by_default(graphs, settings):
    g = graphs["custom"]
    g["5"] = {"class_type": "ComfyGenNoise", "inputs": {"seeds": "1,2", "coefficients": "0.5,0.5"}}
    guard(g, settings)


@pytest.mark.parametrize("value", ["250", 250.0, " 250 ", "2.5e2"])
def test_numbers_as_text_or_float_cannot_slip_the_step_bound(graphs, settings, value):
    g = graphs["sd15"]
    g["3"]["inputs"]["steps"] = value
    with pytest.raises(GuardError) as e:
        guard(g, settings)
    assert "steps 250 is above the limit of 100" in e.value.message


@pytest.mark.parametrize("node,name,value", [("5", "width", "16384"), ("5", "height", 4096.0),
                                             ("5", "batch_size", "9")])
def test_text_sizes_and_batches_are_bounded_too(graphs, settings, node, name, value):
    g = graphs["sd15"]
    g[node]["inputs"][name] = value
    with pytest.raises(GuardError) as e:
        guard(g, settings)
    assert "above the limit" in e.value.message and name in e.value.message


def test_numbers_in_range_are_converted_the_way_comfyui_converts_them(graphs, settings):
    g = graphs["sd15"]
    g["3"]["inputs"]["steps"] = "20"
    g["5"]["inputs"]["width"] = 512.0
    guard(g, settings)
    assert g["3"]["inputs"]["steps"] == 20 and type(g["3"]["inputs"]["steps"]) is int
    assert g["5"]["inputs"]["width"] == 512 and type(g["5"]["inputs"]["width"]) is int


@pytest.mark.parametrize("value", ["20 steps", "", 20.5, True, None, float("nan"), {"x": 1}])
def test_what_is_not_a_whole_number_is_refused(graphs, settings, value):
    g = graphs["sd15"]
    g["3"]["inputs"]["steps"] = value
    with pytest.raises(GuardError) as e:
        guard(g, settings)
    assert "steps" in e.value.message and e.value.hint


def _upscaled(graphs, factor, cls="LatentUpscaleBy"):
    g = graphs["sd15"]
    g["12"] = {"class_type": cls, "inputs": {"samples" if cls == "LatentUpscaleBy" else "image": ["3", 0],
                                            "upscale_method": "nearest-exact", "scale_by": factor}}
    g["8"]["inputs"]["samples"] = ["12", 0]
    return g


def test_an_upscale_past_the_side_limit_is_refused(graphs, settings):
    guard(_upscaled(graphs, 2.0), settings)  # 512 -> 1024
    with pytest.raises(GuardError) as e:
        guard(_upscaled(graphs, "8"), settings)  # 512 -> 4096 > 2048, given as text
    assert "4096 px per side" in e.value.message and "2048" in e.value.message
    with pytest.raises(GuardError) as e:
        guard(_upscaled(graphs, 64.0), settings)
    assert "scale_by 64.0 is outside" in e.value.message
    g = graphs["sd15"]  # a downloaded workflow with an ImageScale of 16384 given as text
    g["12"] = {"class_type": "ImageScale", "inputs": {"image": ["8", 0], "upscale_method": "nearest-exact",
                                                     "width": "16384", "height": 512, "crop": "disabled"}}
    g["9"]["inputs"]["images"] = ["12", 0]
    with pytest.raises(GuardError) as e:
        guard(g, settings)
    assert "width 16384 is above the limit of 2048" in e.value.message


def test_megapixels_are_bounded(graphs, settings):
    g = graphs["sd15"]
    g["12"] = {"class_type": "ImageScaleToTotalPixels", "inputs": {"image": ["8", 0], "upscale_method": "nearest-exact",
                                                                  "megapixels": "16.0"}}
    with pytest.raises(GuardError) as e:
        guard(g, settings)
    assert "megapixels" in e.value.message
    g["12"]["inputs"]["megapixels"] = 1.0
    guard(g, settings)


def test_fractional_area_inputs_stay_fractions(graphs, settings):
    g = graphs["sd15"]
    g["20"] = {"class_type": "ConditioningSetAreaPercentage", "inputs": {
        "conditioning": ["6", 0], "width": 0.5, "height": "0.5", "x": 0, "y": 0, "strength": 1.0}}
    guard(g, settings)
    assert g["20"]["inputs"]["width"] == 0.5 and g["20"]["inputs"]["height"] == 0.5


@pytest.mark.anyio
async def test_a_workflow_with_steps_as_text_never_reaches_comfyui(tmp_path):
    from fakecomfy import FakeComfyUI

    from comfygen.flow_library.library import FlowLibrary
    from comfygen.tools.comfy.pool import EndpointPool
    from comfygen.tools.pipeline import run_flow
    from comfygen.tools.store import RunStore

    flow = FlowLibrary.default().get("sd15-base")
    sampler = next(n for n, node in flow.graph.items() if node["class_type"] == "KSampler")

    def downloaded(graph):  # what a shared workflow file can hold: numbers as text
        graph[sampler]["inputs"]["steps"] = "250"
        return graph

    settings = Settings(home=tmp_path, max_steps=200)
    async with FakeComfyUI() as fake, EndpointPool([fake.url]) as pool:
        with RunStore(tmp_path / "runs.sqlite") as store, pytest.raises(GuardError) as e:
            await run_flow(flow, "a cat", width=64, height=64, pool=pool, store=store, settings=settings,
                           rewrite=downloaded)
    assert "steps 250 is above the limit of 200" in e.value.message
    assert not [p for m, p in fake.requests if m == "POST" and p == "/prompt"]


@pytest.mark.parametrize("seed,ok", [(2**64 - 1, True), ("18446744073709551615", True), (2**64, False), (-1, False)])
def test_seeds_stay_in_comfyuis_range(graphs, settings, seed, ok):
    g = graphs["sd15"]
    g["3"]["inputs"]["seed"] = seed
    if ok:
        guard(g, settings)
        assert g["3"]["inputs"]["seed"] == 2**64 - 1
    else:
        with pytest.raises(GuardError, match="outside ComfyUI's range"):
            guard(g, settings)
