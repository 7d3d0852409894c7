"""The comfygen_noise node pack: same noise as our torch code, valid graphs, install, zero-order via the pack."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from search_helpers import CKPT, OnePool, TargetScorer, sd15_flow, verifiers

from comfygen.flow_library.library import FlowLibrary
from comfygen.flow_library.render import render
from comfygen.tools.errors import ConfigError
from comfygen.tools.search.engine import SearchConfig
from comfygen.tools.search.graphs import pack_graph
from comfygen.tools.search.nodepack import NODE, NODE_SOURCE, install_nodes, noises_json
from comfygen.tools.search.initial_noise import (NoiseSpec, NoiseTerm, discrete_sigma_max, eps_start_scale, latent_shape,
                                         neighbour, realise)
from comfygen.tools.search.flow_search import run_search
from comfygen.tools.settings import Settings
from comfygen.tools.store import RunStore
from fakecomfy import FakeComfyUI
from fakecomfy_engine import validate_prompt
from fakecomfy_noise import NoiseExecutors, object_info_with_pack, pack_module

SHAPE = (16, 8, 8)


def _node_module() -> types.ModuleType:
    return pack_module()


def _specs():
    p = NoiseSpec.seeded(5, 1)
    return [p] + [neighbour(p, NoiseTerm(seed=6, index=k), 0.7, SHAPE) for k in range(3)]


def test_node_noise_is_bitwise_our_noise():
    mod = _node_module()
    specs = _specs()
    (noise,) = mod.ComfyGenNoise().get_noise(noises_json(specs), 5)
    got = noise.generate_noise({"samples": torch.zeros([len(specs), *SHAPE])})
    want = torch.cat([realise(s, SHAPE) for s in specs])
    assert torch.equal(got, want)
    with pytest.raises(ValueError):
        noise.generate_noise({"samples": torch.zeros([2, *SHAPE])})


def _info_with_pack() -> dict:
    return object_info_with_pack()


@pytest.mark.parametrize("flow_id", ["flux-schnell", "sd35-medium", "playground-v25", "sd15-base"])
def test_pack_graphs_validate_for_every_sampler_kind(flow_id):
    flow = FlowLibrary.default().get(flow_id)
    g = pack_graph(render(flow, "a cat", seed=0), _specs())
    ok, err, _, node_errors = validate_prompt(g, _info_with_pack())
    # the recorded server has none of these model files: those are the only errors allowed
    for nid, entry in node_errors.items():
        for e in entry["errors"]:
            assert e["type"] == "value_not_in_list" and "_name" in e["extra_info"]["input_name"], (nid, e)
            assert e["extra_info"]["input_name"] != "sampler_name"
    samplers = [n for n in g.values() if n["class_type"] == "SamplerCustomAdvanced"]
    assert len(samplers) == 1 and g[samplers[0]["inputs"]["noise"][0]]["class_type"] == NODE


def test_install_nodes(tmp_path):
    with pytest.raises(ConfigError):
        install_nodes(tmp_path)
    (tmp_path / "custom_nodes").mkdir()
    path = install_nodes(tmp_path)
    assert path == tmp_path / "custom_nodes" / "comfygen_noise" / "__init__.py"
    assert path.read_text() == NODE_SOURCE


@pytest.mark.anyio
async def test_zero_order_through_the_pack_starts_from_exact_neighbours(tmp_path):
    ex = NoiseExecutors()
    scorer = TargetScorer(np.random.default_rng(3).standard_normal((8, 8, 3)))
    settings = Settings(home=tmp_path / "h")
    store = RunStore(settings.store_path)
    cfg = SearchConfig(algorithm="zero-order", candidates=9, neighbours=4, rounds=2, batch=8, lam=0.9, seed=4,
                       noise_nodes="pack")
    async with FakeComfyUI(object_info=object_info_with_pack(), models={"checkpoints": [CKPT]},
                           executors=ex.executors()) as fake:
        async with OnePool(fake.url) as pool:
            res = await run_search(sd15_flow(64), "x", cfg, verifiers=verifiers(scorer), pool=pool,
                                   store=store, settings=settings)
    assert res.mode == "pack" and len(res.candidates) == 9
    k = eps_start_scale(discrete_sigma_max())
    by_pid = {s.prompt_id: s.x_t for s in ex.starts}
    for c in res.candidates:
        rec = store.get(c.run_id)
        assert any(n["class_type"] == NODE for n in rec.graph.values())
        index = next(o.index for o in rec.outputs if o.path == c.image)
        got = torch.from_numpy(by_pid[rec.comfy_prompt_id][index])
        assert torch.allclose(got, k * realise(c.noise, latent_shape(64, 64))[0], rtol=1e-5, atol=1e-4)
