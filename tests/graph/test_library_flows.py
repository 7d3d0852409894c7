"""Every executable flow of the shipped library survives the rewrites and still validates."""

from __future__ import annotations

import pytest

from comfygen.flow_library.library import FlowLibrary
from comfygen.flow_library.render import render
from comfygen.flow_library.schema import NodeSchema, validate_graph
from comfygen.tools.graph.accel import accel_nodes, accelerate, plan_acceleration
from comfygen.tools.graph.batch import find_samplers, set_batch
from comfygen.tools.graph.guard import guard
from comfygen.tools.settings import Settings

SCHEMA = NodeSchema.bundled()


@pytest.fixture(scope="module")
def flows():
    return FlowLibrary.default().filter(executable=True)


def test_library_flows_guard_accelerate_batch(flows, tmp_path):
    settings = Settings(home=tmp_path, node_packs=["facerestore_cf"])
    assert len(flows) > 40
    for flow in flows:
        graph = render(flow, "a red fox", seed=3)
        guard(graph, settings)
        assert find_samplers(graph), flow.id
        for mode in ("compile", "cache-auto"):
            out = accelerate(graph, mode, schema=SCHEMA.info, family=flow.family)
            assert accel_nodes(out), (flow.id, mode)
        auto = accelerate(graph, "auto", schema=SCHEMA.info, family=flow.family)
        report = validate_graph(auto, SCHEMA)
        assert report.ok, (flow.id, report.summary())
        batched = set_batch(graph, flow, 2)
        assert validate_graph(batched, SCHEMA).ok, flow.id


def test_auto_choices_by_family(flows):
    seen = {}
    for flow in flows:
        plan = plan_acceleration(render(flow, "x", seed=0), "auto", schema=SCHEMA.info, family=flow.family)
        seen.setdefault(flow.family.value, set()).add(plan.node_class)
    assert seen["cascade"] == {None}
    assert "CacheModelAuto" in seen["sdxl"] and "CacheModelAuto" in seen["flux"]
    assert "CacheModelAuto" not in seen.get("sd3", set())
    assert None in seen["sdxl"]  # turbo / lightning flows are left alone
