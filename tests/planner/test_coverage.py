"""Provenance of every library flow's prediction: rated, inherited (with measured setting effects), family prior,
none; and the user's own measurements folded in."""

from __future__ import annotations

import math

import numpy as np
import pytest

from comfygen.flow_library.library import FlowLibrary
from comfygen.tools.planner.coverage import CoverageMap, combine_measured, link_user_cells

RATED = ["rated-sdxl-base", "rated-playground-v2", "rated-sd15", "rated-sd15-lowstep", "rated-sd15-lowcfg",
         "rated-flux-schnell", "rated-lcm-sdxl"]
QUALITY = {"rated-sdxl-base": (0.0, 0.01), "rated-playground-v2": (0.2, 0.02), "rated-sd15": (-0.6, 0.03),
           "rated-sd15-lowstep": (-0.7, 0.04), "rated-sd15-lowcfg": (-0.65, 0.04), "rated-flux-schnell": (0.4, 0.03),
           "rated-lcm-sdxl": (-1.5, 0.08)}


@pytest.fixture(scope="module")
def cov() -> CoverageMap:
    return CoverageMap(FlowLibrary.default(), RATED, QUALITY, counts={"rated-sd15": 100, "rated-sd15-lowstep": 10})


def _pred() -> np.ndarray:
    return np.array([QUALITY[f][0] for f in RATED])


def test_each_flow_says_where_its_number_comes_from(cov):
    by = {p.flow_id: p for p in cov.predict(_pred())}
    assert by["rated-sdxl-base"].provenance == "rated"
    inherited = by["sdxl-hires"]  # SDXL base with a hires pass
    assert inherited.provenance == "inherited" and inherited.anchor == "rated-sdxl-base"
    assert inherited.score == pytest.approx(0.0) and inherited.sd > by["rated-sdxl-base"].sd
    prior = by["sdxl-juggernaut"]  # an unrated SDXL checkpoint
    assert prior.provenance == "family prior" and prior.score == pytest.approx(0.1)
    assert set(prior.anchor.split(", ")) == {"rated-sdxl-base", "rated-playground-v2"}
    assert by["sdxl-lcm"].anchor == "rated-lcm-sdxl"  # the same few-step LoRA: that rated flow, not SDXL's
    assert by["flux-dev"].provenance == "family prior" and by["flux-dev"].anchor == "rated-flux-schnell"
    none = by["cascade"]
    assert none.provenance == "none" and math.isnan(none.score)
    ranked = [p.flow_id for p in cov.predict(_pred())]
    assert ranked.index("cascade") > ranked.index("rated-sd15")  # no data: last


def test_a_measured_setting_effect_moves_an_inherited_flow(cov):
    sd15 = FlowLibrary.default().get("sd15-base")
    few = sd15.model_copy(update={"id": "sd15-10-steps", "steps": 10})
    local = CoverageMap([*FlowLibrary.default(), few], RATED, QUALITY, counts={"rated-sd15": 100})
    p = next(x for x in local.predict(_pred()) if x.flow_id == "sd15-10-steps")
    assert p.provenance == "inherited" and "few steps: -0.10 (AGIQA-3K's SD 1.5 runs)" in p.note
    assert p.score == pytest.approx(-0.6 + (-0.7 + 0.6))
    rated = next(x for x in local.predict(_pred()) if x.flow_id == "rated-sd15")
    assert rated.rank_key > p.rank_key


def test_user_measurements_link_through_shared_flows_and_combine_by_precision():
    cells = {"rated-sdxl-base": (0.5, 0.1, 10), "rated-sd15": (-0.1, 0.1, 10), "cascade": (1.1, 0.1, 10)}
    joint = link_user_cells(cells, {"rated-sdxl-base": 0.0, "rated-sd15": -0.6})
    assert joint["rated-sdxl-base"][0] == pytest.approx(0.0) and joint["rated-sd15"][0] == pytest.approx(-0.6)
    assert joint["cascade"][0] == pytest.approx(0.6)  # 0.6 reward units above SDXL = 0.6 joint units here
    cov = CoverageMap(FlowLibrary.default(), RATED, QUALITY)
    ranked = combine_measured(cov.predict(_pred()), joint)
    assert ranked[0].flow_id == "cascade" and ranked[0].provenance == "measured"


def test_imported_workflows_join_selection_by_their_model_files():
    from comfygen.flow_library.importer import import_workflow

    lib = FlowLibrary.default()

    def api(ckpt: str) -> dict:
        graph = {nid: {"class_type": n["class_type"], "inputs": dict(n["inputs"])}
                 for nid, n in lib.get("sdxl-base").graph.items()}
        for n in graph.values():
            if n["class_type"] == "CheckpointLoaderSimple":
                n["inputs"]["ckpt_name"] = ckpt
        return graph

    same = import_workflow(api("sd_xl_base_1.0.safetensors"), flow_id="my-sdxl")
    tune = import_workflow(api("someones_sdxl_finetune.safetensors"), flow_id="my-finetune", family="sdxl")
    qwen = import_workflow({nid: {"class_type": n["class_type"], "inputs": dict(n["inputs"])}
                            for nid, n in lib.get("qwen-image").graph.items()}, flow_id="my-qwen")
    local = CoverageMap([*lib, same, tune, qwen], RATED, QUALITY)
    by = {p.flow_id: p for p in local.predict(_pred())}
    assert by["my-sdxl"].provenance == "inherited" and by["my-sdxl"].anchor == "rated-sdxl-base"
    assert by["my-finetune"].provenance == "family prior"
    assert qwen.family == "qwen-image" and by["my-qwen"].provenance == "none"


def test_models_rated_only_on_the_joint_scale_keep_their_own_level():
    """AIGIQA-20K rates Playground v2, SSD-1B and LCM-SDXL on prompts no other model shares: they have a joint
    quality but no planner column. They are 'rated' at their own level, with the prompt's effect of their
    nearest column-rated relative, and their variants inherit from them (not from Playground v2.5 or SDXL)."""
    lib = FlowLibrary.default()
    rated = ["rated-sdxl-base", "rated-playground-v25", "rated-sd15"]
    quality = {"rated-sdxl-base": (0.0, 0.01), "rated-playground-v25": (0.5, 0.02), "rated-sd15": (-0.6, 0.02),
               "rated-playground-v2": (0.2, 0.02), "rated-ssd1b": (0.19, 0.02), "rated-lcm-sdxl": (-1.7, 0.08)}
    cov = CoverageMap(lib, rated, quality)
    pred = np.array([0.1, 0.9, -0.6])  # this prompt: SDXL +0.1 and Playground v2.5 +0.4 above their levels
    by = {p.flow_id: p for p in cov.predict(pred)}
    v2 = by["rated-playground-v2"]
    assert v2.provenance == "rated" and v2.anchor == "rated-playground-v2"
    assert v2.score == pytest.approx(0.2 + 0.4) and "prompt's effect from rated-playground-v25" in v2.note
    assert by["rated-lcm-sdxl"].score == pytest.approx(-1.7 + 0.1)  # not SDXL's +0.1
    assert by["rated-ssd1b"].provenance == "rated" and by["rated-ssd1b"].score == pytest.approx(0.19)
    variant = by["playground-v2"]
    assert variant.provenance == "inherited" and variant.anchor == "rated-playground-v2"
    assert variant.score == pytest.approx(v2.score) and variant.sd > v2.sd
    ssd = by["ssd1b-base"]
    assert ssd.provenance == "inherited" and ssd.anchor == "rated-ssd1b"
    prior = by["sdxl-juggernaut"]  # the SDXL-architecture mean now counts Playground v2 at its own level
    assert prior.score == pytest.approx(np.mean([0.1, 0.9, 0.6]))


def test_sd15_setting_effects_stay_on_sd15(cov):
    """AGIQA-3K measured CFG and step effects on SD 1.5 only: a high-CFG SDXL variant inherits SDXL's prediction."""
    lib = FlowLibrary.default()
    sdxl = lib.get("sdxl-base")
    hot = sdxl.model_copy(update={"id": "sdxl-cfg-14", "cfg": 2.0 * (sdxl.cfg or 7.0)})
    quality = {**QUALITY, "rated-sd15-highcfg": (-0.5, 0.04)}  # SD 1.5 at high CFG: +0.1
    local = CoverageMap([*lib, hot], RATED + ["rated-sd15-highcfg"], quality, counts={"rated-sd15": 100})
    by = {x.flow_id: x for x in local.predict(np.append(_pred(), -0.5))}
    p = by["sdxl-cfg-14"]
    assert p.provenance == "inherited" and "CFG" not in p.note and p.score == pytest.approx(0.0)
    sd15 = lib.get("sd15-base")
    hot15 = sd15.model_copy(update={"id": "sd15-cfg-high", "cfg": 2.0 * (sd15.cfg or 7.0)})
    local = CoverageMap([*lib, hot15], RATED + ["rated-sd15-highcfg"], quality, counts={"rated-sd15": 100})
    p15 = next(x for x in local.predict(np.append(_pred(), -0.5)) if x.flow_id == "sd15-cfg-high")
    assert "high CFG: +0.10" in p15.note and p15.score == pytest.approx(-0.6 + 0.1)
