"""Graph rewrites: reproducible, valid against ComfyUI's schemas, probed start latents; real ComfyUI when
COMFYUI_URL is set (a CPU ComfyUI with random_sd15.safetensors)."""

from __future__ import annotations

import os

import pytest
from search_helpers import CKPT, sd15_flow

from comfygen.flow_library.model import graph_hash
from comfygen.flow_library.render import render
from comfygen.tools.errors import FlowError
from comfygen.tools.search.generate import default_batch, plain_groups, rewrite_for
from comfygen.tools.search.graphs import find_noise_sampler, latent_graph, probe_graph, seeded_graph
from comfygen.tools.search.initial_noise import NoiseSpec, NoiseTerm, latent_shape, neighbour
from fakecomfy import FakeComfyUI, recorded_object_info
from fakecomfy_engine import validate_prompt
from fakecomfy_noise import NoiseExecutors, object_info_with_pack

SIZE = 64
SHAPE = latent_shape(SIZE, SIZE)


def _zero_order_specs():
    p = NoiseSpec.seeded(101, 0)
    nbs = [neighbour(p, NoiseTerm(seed=202, index=k), 0.9, SHAPE) for k in range(3)]
    return [p] + nbs + [neighbour(nbs[0], NoiseTerm(seed=303, index=0), 0.5, SHAPE)]


def _graph(flow=None):
    flow = flow or sd15_flow(SIZE)
    return render(flow, "a cat", seed=0, width=SIZE, height=SIZE)


def _valid(graph) -> None:
    info = dict(recorded_object_info())
    info["CheckpointLoaderSimple"] = {**info["CheckpointLoaderSimple"], "input": {"required": {
        "ckpt_name": [[CKPT]]}}}
    ok, err, _, node_errors = validate_prompt(graph, info)
    assert ok, (err, node_errors)


def test_same_seeds_give_identical_graphs():
    specs = _zero_order_specs()
    a = latent_graph(_graph(), specs, "sd15")
    b = latent_graph(_graph(), _zero_order_specs(), "sd15")
    assert a == b and graph_hash(a) == graph_hash(b)
    assert seeded_graph(_graph(), 9, range(2, 6)) == seeded_graph(_graph(), 9, [2, 3, 4, 5])
    assert latent_graph(_graph(), specs[:2], "sd15") != a


def test_rewritten_graphs_validate_against_comfyui_schemas():
    _valid(seeded_graph(_graph(), 5, [0, 1, 2, 3]))
    g = latent_graph(_graph(), _zero_order_specs(), "sd15")
    _valid(g)
    sampler, _ = find_noise_sampler(_graph())
    assert g[sampler]["class_type"] == "KSamplerAdvanced" and g[sampler]["inputs"]["add_noise"] == "disable"
    _valid(probe_graph(g))
    _valid(probe_graph(seeded_graph(_graph(), 5, [3])))


def test_families_without_core_realisation_are_refused_with_a_hint():
    with pytest.raises(FlowError) as e:
        latent_graph(_graph(), [NoiseSpec.seeded(1)], "flux")
    assert "random search" in e.value.hint


def test_seeded_groups_and_default_batch():
    specs = [NoiseSpec.seeded(1, k) for k in range(3)] + [NoiseSpec.seeded(2, 0)]
    assert plain_groups(specs) == [(1, [0, 1, 2]), (2, [0])]
    with pytest.raises(ValueError):
        rewrite_for(specs, "seeded", "sd15")
    assert default_batch("sd15", 512, 512) == 8 and default_batch("sd15", 64, 64) == 64
    assert default_batch("sdxl", 1024, 1024) == 4 and default_batch("flux", 2048, 2048) == 1




@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["seeded", "latent", "pack"])
async def test_probe_on_the_fake_matches(mode):
    from comfygen.tools.comfy.client import ComfyClient
    from comfygen.tools.search.probe import probe_noises

    specs = [NoiseSpec.seeded(77, k) for k in range(4)] if mode == "seeded" else _zero_order_specs()
    async with FakeComfyUI(object_info=object_info_with_pack(), models={"checkpoints": [CKPT]},
                           executors=NoiseExecutors().executors()) as fake:
        async with ComfyClient(fake.url) as client:
            rep = await probe_noises(client, sd15_flow(SIZE), specs, mode)  # type: ignore[arg-type]
    assert rep.max_rel_err < 1e-5 and rep.cosine_min > 0.999999


@pytest.mark.comfyui
@pytest.mark.anyio
@pytest.mark.skipif(not os.environ.get("COMFYUI_URL"), reason="set COMFYUI_URL to a CPU ComfyUI with random_sd15")
@pytest.mark.parametrize("mode", ["seeded", "latent", "pack"])
async def test_probe_on_a_real_comfyui(mode):
    from comfygen.tools.comfy.client import ComfyClient
    from comfygen.tools.search.probe import probe_noises

    flow = sd15_flow(SIZE, steps=2)
    flow.graph["1"]["inputs"]["ckpt_name"] = os.environ.get("COMFYUI_CKPT", "random_sd15.safetensors")
    specs = [NoiseSpec.seeded(77, k) for k in range(4)] if mode == "seeded" else _zero_order_specs()
    async with ComfyClient(os.environ["COMFYUI_URL"], read_timeout=600) as client:
        if mode == "pack" and "ComfyGenNoise" not in await client.object_info():
            pytest.skip("the server lacks ComfyGenNoise (comfygen comfyui install-nodes --path COMFYUI_DIR)")
        rep = await probe_noises(client, flow, specs, mode)  # type: ignore[arg-type]
    print(rep.model_dump_json())
    assert rep.max_rel_err < 1e-4 and rep.cosine_min > 0.99999
