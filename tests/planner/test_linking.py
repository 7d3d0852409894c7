"""The joint quality scale: sources with their own units and offsets, linked through shared flows."""

from __future__ import annotations

import numpy as np
import pytest

from comfygen.tools.errors import PlannerError
from comfygen.tools.planner.linking import ScaleData, fit_linked, leave_one_source_out, spearman

TRUE = {"gan": -2.0, "sd15": -0.6, "sd21": -0.4, "sdxl": 0.0, "dalle3": 0.4, "flux": 0.5}


def _rows(flows: list[str], unit: float, offset: float, n: int, seed: int, noise: float = 0.15,
          prefix: str = "p") -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        difficulty = rng.normal(0, 0.5)
        for f in flows:
            rows.append({"prompt_id": f"{prefix}{i}", "prompt": f"prompt {i}", "flow": f,
                         "score": offset + unit * (TRUE[f] + difficulty + rng.normal(0, noise))})
    return rows


def _sources(seed: int = 0) -> dict[str, list[ScaleData]]:
    # An old benchmark rated SD 1.5 beside a GAN; a new one rated SDXL beside DALL-E 3 and FLUX; a third, on a
    # 0-100 MOS, links them through the models it shares with both.
    return {
        "new": [ScaleData.from_rows("new", _rows(["sdxl", "dalle3", "flux"], 1.0, 3.0, 300, seed, prefix="n"))],
        "mos": [ScaleData.from_rows("mos", _rows(["sd15", "sd21", "sdxl", "dalle3"], 12.0, 55.0, 300, seed + 1,
                                                 prefix="m"))],
        "old": [ScaleData.from_rows("old", _rows(["gan", "sd15", "sd21", "sdxl", "dalle3"], 0.7, 2.5, 300,
                                                 seed + 2, prefix="o"))],
    }


def test_linked_scale_recovers_one_order_where_per_source_zscores_do_not():
    groups = _sources()
    data = [d for g in groups.values() for d in g]
    linked = fit_linked(data, anchor="sdxl", bootstrap=20)
    est = {f: linked.quality(f) for f in TRUE}
    assert sorted(est, key=est.get) == sorted(TRUE, key=TRUE.get)
    for f, v in TRUE.items():
        assert est[f] == pytest.approx(v, abs=0.05 + 0.05 * abs(v)), f
    assert linked.scales["mos"]["b"] == pytest.approx(12.0, rel=0.1)
    assert linked.scales["old"]["b"] == pytest.approx(0.7, rel=0.15)
    assert np.all(np.isfinite(linked.theta_sd)) and linked.theta_sd.max() < 0.1
    # the trap the joint scale avoids: z-scored within its own source, the old benchmark's SD 1.5 (rated beside
    # a GAN) lands above the new benchmark's SDXL (rated beside DALL-E 3 and FLUX)
    def z(rows: list[dict], flow: str) -> float:
        ys = np.array([r["score"] for r in rows])
        return float(np.mean([(r["score"] - ys.mean()) / ys.std() for r in rows if r["flow"] == flow]))
    old_rows = _rows(["gan", "sd15", "sd21", "sdxl", "dalle3"], 0.7, 2.5, 300, 2, prefix="o")
    new_rows = _rows(["sdxl", "dalle3", "flux"], 1.0, 3.0, 300, 0, prefix="n")
    assert z(old_rows, "sd15") > z(new_rows, "sdxl")
    assert est["sd15"] < est["sdxl"]


def test_raw_scores_map_onto_the_joint_scale():
    linked = fit_linked([d for g in _sources().values() for d in g], anchor="sdxl")
    s = linked.scales["mos"]
    assert linked.to_joint("mos", np.array([s["offset"] + s["b"] * 0.5]))[0] == pytest.approx(0.5)


def test_unlinked_sources_are_refused_with_a_reason():
    a = ScaleData.from_rows("a", _rows(["sdxl", "flux"], 1.0, 0.0, 20, 0, prefix="a"))
    b = ScaleData.from_rows("b", _rows(["gan", "sd15"], 1.0, 0.0, 20, 1, prefix="b"))
    with pytest.raises(PlannerError, match="share no flow"):
        fit_linked([a, b])


def test_unpaired_sources_use_one_offset_and_still_inform_quality():
    rng = np.random.default_rng(3)
    rows = [{"prompt_id": f"u{i}", "prompt": "x", "flow": f, "score": 4.0 + 0.8 * (TRUE[f] + rng.normal(0, 0.2))}
            for i, f in enumerate(["sdxl", "flux", "sd15"] * 200)]
    unpaired = ScaleData.from_rows("unpaired", rows)
    assert not unpaired.paired
    paired = ScaleData.from_rows("paired", _rows(["sdxl", "flux"], 1.0, 3.0, 200, 4))
    linked = fit_linked([paired, unpaired], anchor="sdxl")
    assert linked.quality("sd15") == pytest.approx(TRUE["sd15"], abs=0.1)


def test_category_effects_move_a_flow_only_where_the_data_say_so():
    rng = np.random.default_rng(5)
    rows, weights = [], {}
    for i in range(400):
        cat = i % 2  # category 1: 'flux' is much better there
        weights[f"p{i}"] = np.eye(2)[cat]
        for f in ("sdxl", "flux"):
            rows.append({"prompt_id": f"p{i}", "prompt": "x", "flow": f,
                         "score": TRUE[f] + (0.6 if (f == "flux" and cat == 1) else 0.0) + rng.normal(0, 0.2)})
    linked = fit_linked([ScaleData.from_rows("s", rows, weights_of=weights)], anchor="sdxl", lam=5.0)
    j, k = linked.index("flux"), linked.index("sdxl")
    # only within-prompt differences are identified: flux's advantage over sdxl grows by 0.6 in category 1
    gap = (linked.delta[j, 1] - linked.delta[j, 0]) - (linked.delta[k, 1] - linked.delta[k, 0])
    assert gap == pytest.approx(0.6, abs=0.1)


def test_leave_one_source_out_predicts_the_held_out_order():
    groups = _sources()
    groups["check"] = [ScaleData.from_rows("check", _rows(["sd15", "sd21", "sdxl", "dalle3"], 2.0, 1.0, 200, 9,
                                                          prefix="c"))]
    out = {r.source: r for r in leave_one_source_out(groups, anchor="sdxl")}
    assert out["check"].rho == pytest.approx(1.0)
    assert out["new"].rho is None or np.isfinite(out["new"].rho)
    assert spearman(np.array([1, 2, 3]), np.array([3, 2, 1])) == pytest.approx(-1.0)
