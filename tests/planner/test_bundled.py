from __future__ import annotations

from comfygen.flow_library.library import FlowLibrary
from comfygen.flow_library.model import Family
from comfygen.flow_library.schema import NodeSchema, validate_graph
from comfygen.flow_library.score_table import ScoreTable
from comfygen.tools.planner import Planner
from comfygen.tools.planner.sources import SOURCES


CORE_RUNNABLE = {"rated-flux-schnell", "rated-sd35-large", "rated-playground-v2", "rated-playground-v25",
                 "rated-pixart-sigma", "rated-pixart-alpha", "rated-ssd1b", "rated-sdxl-base", "rated-sdxl-turbo",
                 "rated-lcm-sdxl", "rated-lcm-sd15", "rated-lcm-pixart", "rated-sd14", "rated-sd15", "rated-sd21",
                 "rated-dreamlike-photoreal"}


def test_every_rated_model_of_every_source_has_a_flow():
    lib = FlowLibrary.default()
    for src in SOURCES.values():
        for model, flow_id in src.models.items():
            assert flow_id in lib, (src.name, model)
    runnable = {f.id for f in lib if f.id.startswith("rated-") and f.executable}
    assert CORE_RUNNABLE <= runnable
    kolors = lib.get("rated-kolors")
    assert not kolors.executable and kolors.requires[0].kind == "node_pack"


def test_rated_flows_are_valid_graphs_or_external_references():
    lib = FlowLibrary.default()
    rated = [f for f in lib if f.id.startswith("rated-")]
    assert len(rated) == len({fid for s in SOURCES.values() for fid in s.models.values()})
    schema = NodeSchema.bundled()
    for flow in rated:
        assert flow.provenance.kind == "rating-source" and flow.provenance.source
        if flow.family == Family.EXTERNAL:
            assert not flow.graph and flow.requires and not flow.executable
        else:
            assert validate_graph(flow.graph, schema).ok, flow.id


def test_bundled_planner_and_table_name_only_rated_flows_with_real_measurements():
    lib = FlowLibrary.default()
    planner = Planner.load()
    cfg = planner.config
    rated = {fid for src in SOURCES.values() for fid in src.models.values()}
    assert cfg.members == 3 and set(cfg.flows) <= rated and set(cfg.flows) <= {f.id for f in lib}
    assert set(cfg.quality) == rated  # every rated model on the joint scale, also those only linked
    assert {s.split("-")[0] for s in cfg.scales} == set(SOURCES)
    assert cfg.quality["rated-sdxl-base"][0] == 0.0  # the anchor
    q = {f: v[0] for f, v in cfg.quality.items()}
    assert q["rated-sdxl-base"] > q["rated-sd21"] > q["rated-sd15"]  # no human study says otherwise
    assert q["rated-flux-schnell"] > q["rated-sdxl-base"] and q["rated-sd35-large"] > q["rated-sdxl-base"]
    assert cfg.trained_on["prompts"] > 1000
    preds = planner.predict("a bowl of ramen on a wooden table", k=5)
    assert len(preds) == 5 and len({p.flow_id for p in preds}) == 5
    table = ScoreTable.shipped()
    assert set(table.flows()) <= rated
    assert all(c.n > 0 and c.sources for row in table.cells.values() for c in row.values())


def test_everyday_prompts_get_current_rated_models():
    lib = FlowLibrary.default()
    planner = Planner.load()
    current = {Family.FLUX, Family.SD3, Family.PLAYGROUND, Family.PIXART}
    for prompt in ("a lighthouse on a cliff at dusk, oil painting", "portrait photo of an old fisherman",
                   "a red sports car on a mountain road", "a bowl of ramen, food photography"):
        top = planner.rank_prompt(prompt, lib, k=1)[0]
        flow = lib.get(top.flow_id)
        assert flow.family in current and top.provenance == "rated", (prompt, top)
