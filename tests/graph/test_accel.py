from __future__ import annotations

import copy

import pytest

from comfygen.flow_library.schema import NodeSchema, validate_graph
from comfygen.tools.errors import ConfigError, GuardError
from comfygen.tools.graph.accel import ACCEL_MODES, accel_nodes, accelerate, plan_acceleration


def _valid(graph: dict) -> None:
    report = validate_graph(graph, NodeSchema.bundled())
    assert report.ok, report.summary()


def _without(schema: dict, *classes: str) -> dict:
    return {k: v for k, v in schema.items() if k not in classes}


@pytest.mark.parametrize("mode,cls", [("compile", "PrunaCompileModel"), ("cache-adaptive", "CacheModelAdaptive"),
                                      ("cache-periodic", "CacheModelPeriodic"), ("cache-auto", "CacheModelAuto")])
def test_pruna_node_wraps_final_model_after_lora_and_freeu(graphs, pruna_schema, mode, cls):
    g = graphs["sd15"]
    out = accelerate(g, mode, schema=pruna_schema, family="sd15")
    (node_id,) = accel_nodes(out)
    assert out[node_id]["class_type"] == cls
    assert out[node_id]["inputs"]["model"] == ["11", 0]  # after LoRA (10) and FreeU (11)
    assert out["3"]["inputs"]["model"] == [node_id, 0]
    assert g["3"]["inputs"]["model"] == ["11", 0], "input graph must not be mutated"
    _valid(out)


def test_core_fallbacks_when_pruna_absent(graphs, core_schema):
    g = graphs["sd15"]
    assert accelerate(g, "compile", schema=core_schema)[accel_nodes(accelerate(g, "compile", schema=core_schema))[0]][
        "class_type"] == "TorchCompileModel"
    for mode in ("cache-adaptive", "cache-periodic", "cache-auto"):
        out = accelerate(g, mode, schema=core_schema)
        assert [out[n]["class_type"] for n in accel_nodes(out)] == ["EasyCache"]
        _valid(out)
    plan = plan_acceleration(g, "cache-periodic", schema=core_schema)
    assert plan.provider == "core" and "no periodic cacher" in plan.reason
    no_easy = _without(core_schema, "EasyCache")
    out = accelerate(g, "cache-adaptive", schema=no_easy)
    assert [out[n]["class_type"] for n in accel_nodes(out)] == ["LazyCache"]


def test_missing_nodes_name_what_to_install(graphs, core_schema):
    bare = _without(core_schema, "TorchCompileModel", "EasyCache", "LazyCache")
    with pytest.raises(ConfigError) as e:
        accelerate(graphs["sd15"], "compile", schema=bare)
    assert "PrunaCompileModel" in e.value.message and "ComfyUI_pruna" in e.value.hint
    with pytest.raises(ConfigError) as e:
        accelerate(graphs["sd15"], "cache-auto", schema=bare)
    assert "pruna_pro" in e.value.hint
    # auto never raises: nothing to insert leaves the graph as it is
    assert accelerate(graphs["sd15"], "auto", schema=bare, family="sd15") == graphs["sd15"]


def test_unknown_mode_and_bad_options(graphs, pruna_schema):
    with pytest.raises(GuardError):
        accelerate(graphs["sd15"], "turbo", schema=pruna_schema)
    with pytest.raises(GuardError) as e:
        accelerate(graphs["sd15"], "cache-adaptive", schema=pruna_schema, options={"threshold": 0.5})
    assert "0.2" in str(e.value)
    out = accelerate(graphs["sd15"], "cache-adaptive", schema=pruna_schema, options={"threshold": 0.05,
                                                                                     "compiler": "torch_compile"})
    node = out[accel_nodes(out)[0]]["inputs"]
    assert node["threshold"] == 0.05 and node["compiler"] == "torch_compile"


def test_none_is_identity(graphs, pruna_schema):
    for g in graphs.values():
        assert accelerate(g, "none", schema=pruna_schema) == g


def test_one_node_per_model_source(graphs, pruna_schema):
    hires = accelerate(graphs["hires"], "cache-auto", schema=pruna_schema)
    (n,) = accel_nodes(hires)  # both passes share the base model
    assert hires["3"]["inputs"]["model"] == hires["13"]["inputs"]["model"] == [n, 0]
    _valid(hires)
    ref = accelerate(graphs["refiner"], "compile", schema=pruna_schema)
    nodes = accel_nodes(ref)
    assert len(nodes) == 2
    assert {tuple(ref[n]["inputs"]["model"]) for n in nodes} == {("1", 0), ("2", 0)}
    _valid(ref)


def test_guider_is_wrapped_scheduler_is_not(graphs, pruna_schema):
    out = accelerate(graphs["custom"], "cache-auto", schema=pruna_schema, family="flux")
    (n,) = accel_nodes(out)
    assert out["6"]["inputs"]["model"] == [n, 0]
    assert out["8"]["inputs"]["model"] == ["1", 0]
    _valid(out)


def test_never_wraps_twice(graphs, pruna_schema):
    once = accelerate(graphs["sd15"], "compile", schema=pruna_schema)
    twice = accelerate(once, "compile", schema=pruna_schema)
    assert twice == once


def test_auto_by_family_and_steps(graphs, pruna_schema, core_schema):
    g = graphs["sd15"]
    assert plan_acceleration(g, "auto", schema=pruna_schema, family="sd15").node_class == "CacheModelAuto"
    assert plan_acceleration(g, "auto", schema=core_schema, family="sdxl").node_class == "EasyCache"
    turbo = copy.deepcopy(g)
    turbo["3"]["inputs"]["steps"] = 4
    plan = plan_acceleration(turbo, "auto", schema=pruna_schema, family="sdxl")
    assert plan.resolved == "none" and "few-step" in plan.reason
    assert plan_acceleration(g, "auto", schema=pruna_schema, family="cascade").resolved == "none"
    compile_only = {k: v for k, v in pruna_schema.items()
                    if k not in ("CacheModelAuto", "CacheModelAdaptive", "CacheModelPeriodic", "EasyCache", "LazyCache")}
    assert plan_acceleration(g, "auto", schema=compile_only, family="sd15").node_class == "PrunaCompileModel"
    assert plan_acceleration(graphs["custom"], "auto", schema=pruna_schema, family="flux").resolved == "cache-auto"


def test_graph_without_model_refuses(pruna_schema):
    g = {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
         "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}
    with pytest.raises(GuardError):
        accelerate(g, "compile", schema=pruna_schema)
    assert accelerate(g, "auto", schema=pruna_schema) == g


def test_modes_constant():
    assert ACCEL_MODES == ("none", "compile", "cache-adaptive", "cache-periodic", "cache-auto", "auto")
