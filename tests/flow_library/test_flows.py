"""The shipped flows: base flows, variants, rendering."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from comfygen.flow_library.library import FlowLibrary, iter_shipped_base_flows
from comfygen.flow_library.model import Family, Flow, Provenance, graph_hash
from comfygen.flow_library.render import render
from comfygen.flow_library.schema import NodeSchema, validate_graph
from comfygen.flow_library.variants import generate_variants


@pytest.fixture(scope="module")
def base() -> list[Flow]:
    return [f for f in iter_shipped_base_flows() if f.provenance.kind == "hand-built"]


@pytest.fixture(scope="module")
def library() -> FlowLibrary:
    return FlowLibrary.default()


def test_at_least_40_hand_built_base_flows_covering_the_families(base: list[Flow]) -> None:
    assert len(base) >= 40
    families = Counter(f.family for f in base)
    for fam in (Family.SD15, Family.SDXL, Family.SDXL_REFINER, Family.SSD1B, Family.PLAYGROUND, Family.SD3,
                Family.FLUX, Family.CASCADE):
        assert families[fam] >= 1, fam
    classes = {n["class_type"] for f in base for n in f.graph.values()}
    for cls in ("KSamplerAdvanced", "UNETLoader", "DualCLIPLoader", "FluxGuidance", "TripleCLIPLoader", "LoraLoader",
                "LatentUpscaleBy", "UpscaleModelLoader", "ImageUpscaleWithModel", "FreeU_V2", "PerturbedAttentionGuidance",
                "RescaleCFG", "CLIPSetLastLayer", "CLIPTextEncodeSDXL", "FaceRestoreCFWithModel",
                "StableCascade_StageB_Conditioning", "ModelSamplingContinuousEDM", "SDTurboScheduler"):
        assert cls in classes, cls
    ids = {f.id for f in base}
    assert {"sd15-base", "sdxl-base", "sdxl-refiner", "flux-dev", "flux-schnell", "sd35-large"} <= ids


def test_every_flow_validates(library: FlowLibrary) -> None:
    schema = NodeSchema.bundled()
    bad = {f.id: validate_graph(f.graph, schema).summary() for f in library
           if f.executable and not validate_graph(f.graph, schema).ok}
    assert bad == {}


def test_pack_nodes_are_declared_in_requires(library: FlowLibrary) -> None:
    schema = NodeSchema.bundled()
    for flow in library:
        packs = {schema.packs[n["class_type"]] for n in flow.graph.values() if n["class_type"] in schema.packs}
        assert packs <= {r.name for r in flow.requires if r.kind == "node_pack"}, flow.id
    assert any(r.name == "facerestore_cf" for r in library.get("sd15-facerestore").requires)


def test_files_named_in_models_match_the_graph(base: list[Flow]) -> None:
    from comfygen.flow_library.binding import graph_files

    for flow in base:
        in_graph = {name for _, name, _, _ in graph_files(flow.graph)}
        assert {name for _, name in flow.models.files()} | set(flow.models.other) == in_graph, flow.id


@pytest.mark.parametrize("prompt", ['a "quoted" word', "line one\nline two", "{braces} and [brackets] and %s",
                                    "emoji 🎨 and back\\slash", ""])
def test_render_fills_slots_structurally(library: FlowLibrary, prompt: str) -> None:
    for fid in ("sd15-base", "sdxl-refiner", "sdxl-sizecond", "flux-dev", "cascade", "sdxl-turbo"):
        flow = library.get(fid)
        g = render(flow, prompt, negative="no {x}", seed=2**63, width=768, height=512, batch=3)
        for ref in flow.slots.positive:
            assert g[ref.node]["inputs"][ref.input] == prompt
        for ref in flow.slots.negative:
            assert g[ref.node]["inputs"][ref.input] == "no {x}"
        assert all(g[r.node]["inputs"][r.input] == 2**63 for r in flow.slots.seed)
        assert all(g[r.node]["inputs"][r.input] == 768 for r in flow.slots.width)
        assert all(g[r.node]["inputs"][r.input] == 3 for r in flow.slots.batch)
        assert json.loads(json.dumps(g)) == g
        assert validate_graph(g).ok
        assert flow.graph != g  # the flow itself is untouched
    kept = render(library.get("sd15-realvis-people"), "p")
    assert "bad anatomy" in kept[library.get("sd15-realvis-people").slots.negative[0].node]["inputs"]["text"]


def test_every_flow_has_prompt_seed_size_and_output_slots(library: FlowLibrary) -> None:
    for flow in library.filter(executable=True):
        assert flow.slots.positive and flow.slots.seed and flow.slots.output, flow.id
        assert flow.slots.width and flow.slots.height and flow.slots.batch, flow.id


def test_at_least_300_distinct_flows(library: FlowLibrary) -> None:
    assert len(library) >= 300
    hashes = {graph_hash(f.graph) for f in library if f.graph}
    assert len(hashes) == len([f for f in library if f.graph])


def test_variants_are_deterministic_and_independent_of_order(base: list[Flow]) -> None:
    a = generate_variants(base)
    b = generate_variants(list(reversed(base)))
    assert sorted((v.id, v.graph_hash()) for v in a) == sorted((v.id, v.graph_hash()) for v in b)
    assert [v.id for v in a] == [v.id for v in generate_variants(base)]
    one = generate_variants([base[0]])
    assert {v.id for v in one} <= {v.id for v in a}


def test_variant_provenance_and_ids(base: list[Flow], library: FlowLibrary) -> None:
    variants = [f for f in library if f.provenance.kind == "variant"]
    assert len(variants) >= 250
    by_id = {f.id: f for f in base}
    kinds = Counter(c.split("=")[0] for v in variants for c in v.provenance.changes)
    for kind in ("checkpoint", "sampler", "steps", "cfg", "+lora", "+hires"):
        assert kinds[kind] > 0, kind
    for v in variants:
        parent = by_id[v.provenance.parent]
        assert v.id.startswith(parent.id + "-v") and v.provenance.changes
        assert v.family == parent.family
        Flow.model_validate(v.model_dump(mode="json"))  # slots point at real nodes


def test_dedup_by_graph_hash(base: list[Flow]) -> None:
    flow = base[0]
    twin = flow.model_copy(update={"id": flow.id + "-twin"})
    ids = [v.graph_hash() for v in generate_variants([flow, twin])]
    assert len(ids) == len(set(ids))
    assert len(generate_variants([flow, twin])) == len(generate_variants([flow]))


def test_variants_skip_external_and_rating_source_flows(base: list[Flow]) -> None:
    sd15 = next(f for f in base if f.id == "sd15-base")
    rated = sd15.model_copy(update={"id": "rated-sd15", "provenance": Provenance(kind="rating-source")})
    external = Flow(id="dalle3", name="DALL-E 3", family=Family.EXTERNAL)
    assert generate_variants([rated, external]) == []


def test_checkpoint_swaps_stay_in_family(library: FlowLibrary) -> None:
    from comfygen.flow_library.variants import POLICIES

    for v in library:
        for change in v.provenance.changes:
            if change.startswith("checkpoint="):
                assert change.split("=", 1)[1] in POLICIES[v.family].checkpoints
