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
