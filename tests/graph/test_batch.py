from __future__ import annotations

import pytest

from comfygen.flow_library.model import Flow, SlotRef, Slots
from comfygen.flow_library.schema import NodeSchema, validate_graph
from comfygen.tools.errors import GuardError
from comfygen.tools.graph.batch import (find_latent_source, find_samplers, graph_batch, replace_latent_input,
                                        set_batch, set_seed)


def _valid(graph: dict) -> None:
    report = validate_graph(graph, NodeSchema.bundled())
    assert report.ok, report.summary()


def test_set_batch_on_empty_latent(graphs):
    out = set_batch(graphs["sd15"], None, 4)
    assert out["5"]["inputs"]["batch_size"] == 4
    assert graphs["sd15"]["5"]["inputs"]["batch_size"] == 1
    assert graph_batch(out) == 4
    _valid(out)


def test_hires_second_pass_not_batched_twice(graphs):
    out = set_batch(graphs["hires"], None, 3)
    assert out["5"]["inputs"]["batch_size"] == 3
    assert not any(n["class_type"] == "RepeatLatentBatch" for n in out.values())
    assert graph_batch(out) == 3


def test_img2img_gets_repeat_latent_batch(graphs):
    out = set_batch(graphs["img2img"], None, 2)
    (rep,) = [k for k, n in out.items() if n["class_type"] == "RepeatLatentBatch"]
    assert out[rep]["inputs"] == {"samples": ["21", 0], "amount": 2}
    assert out["3"]["inputs"]["latent_image"] == [rep, 0]
    assert graph_batch(out) == 2
    _valid(out)
    assert set_batch(graphs["img2img"], None, 1) == graphs["img2img"]


def test_several_latent_sources():
    g = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "random_sd15.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["1", 1]}},
    }
    for i, (lat, ks, dec, save) in enumerate([("10", "11", "12", "13"), ("20", "21", "22", "23")]):
        g[lat] = {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
        g[ks] = {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": i, "steps": 4, "cfg": 7.0,
                                                      "sampler_name": "euler", "scheduler": "normal",
                                                      "positive": ["2", 0], "negative": ["2", 0],
                                                      "latent_image": [lat, 0], "denoise": 1.0}}
        g[dec] = {"class_type": "VAEDecode", "inputs": {"samples": [ks, 0], "vae": ["1", 2]}}
        g[save] = {"class_type": "SaveImage", "inputs": {"images": [dec, 0], "filename_prefix": "x"}}
    out = set_batch(g, None, 5)
    assert out["10"]["inputs"]["batch_size"] == out["20"]["inputs"]["batch_size"] == 5


def test_batch_slots_take_precedence(graphs):
    g = graphs["sd15"]
    flow = Flow(id="t", name="t", family="sd15", graph=g, slots=Slots(batch=[SlotRef(node="5", input="batch_size")]))
    assert set_batch(g, flow, 7)["5"]["inputs"]["batch_size"] == 7


def test_bad_batch(graphs):
    with pytest.raises(GuardError):
        set_batch(graphs["sd15"], None, 0)
    with pytest.raises(GuardError):
        set_batch(graphs["img2img"], None, 65)


def test_find_samplers_and_sources(graphs):
    s = find_samplers(graphs["hires"])
    assert [(x.node, x.first_pass, x.latent_source, x.seed_input) for x in s] == [
        ("3", True, "5", "seed"), ("13", False, "5", "seed")]
    r = find_samplers(graphs["refiner"])
    assert [(x.node, x.first_pass, x.add_noise, x.seed_input) for x in r] == [
        ("6", True, True, "noise_seed"), ("7", False, False, "noise_seed")]
    (c,) = find_samplers(graphs["custom"])
    assert (c.node, c.seed_node, c.seed_input, c.latent_source) == ("9", "5", "noise_seed", "4")
    assert find_latent_source(graphs["img2img"], "3") == "21"


def test_noise_hooks(graphs):
    g = set_seed(graphs["custom"], 99)
    assert g["5"]["inputs"]["noise_seed"] == 99 and graphs["custom"]["5"]["inputs"]["noise_seed"] == 42
    g = dict(graphs["sd15"])
    g["30"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 2}}
    out = replace_latent_input(g, "3", ["30", 0])
    assert out["3"]["inputs"]["latent_image"] == ["30", 0]
    with pytest.raises(GuardError):
        replace_latent_input(g, "8", ["30", 0])
