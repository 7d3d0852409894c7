"""`planner train` with several sources: one joint scale, one network, the flows shared across files link them."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from comfygen.server.cli import app
from comfygen.server.commands import register_all
from comfygen.tools.errors import PlannerError
from comfygen.tools.planner import Planner, load_triplets

from planner_helpers import synthetic_rows, write_csv


def cli(args: list[str]):
    if not any(getattr(g, "name", None) == "planner" for g in app.registered_groups):
        register_all(app)
    return CliRunner().invoke(app, args)


def _second_source(seed: int = 3) -> list[dict]:
    """The same flows on another scale (x10 + 50, a 0-100 MOS) plus one flow only this source rated."""
    rows = []
    for r in synthetic_rows(n_per_word=2, seed=seed):
        rows.append({**r, "prompt_id": "b" + r["prompt_id"], "score": round(50 + 10 * r["score"], 3)})
        if r["flow"] == "photo":
            rows.append({**r, "prompt_id": "b" + r["prompt_id"], "flow": "newer", "score": round(50 + 10 * 4.3, 3)})
    return rows


def test_two_files_train_one_planner_on_one_scale(tmp_path):
    a = write_csv(synthetic_rows(), tmp_path / "a.csv")
    b = write_csv(_second_source(), tmp_path / "b.csv")
    out = tmp_path / "planner"
    res = cli(["planner", "train", "--triplets", str(a), "--triplets", str(b), "--out", str(out),
                                   "--members", "2", "--epochs", "1", "--time-budget", "0"])
    assert res.exit_code == 0, res.output
    assert "scale b: raw = " in res.output
    cfg = json.loads((out / "config.json").read_text())
    assert set(cfg["scales"]) == {"a", "b"} and cfg["scales"]["b"]["b"] == pytest.approx(10.0, rel=0.15)
    q = {f: v[0] for f, v in cfg["quality"].items()}
    assert q["newer"] > q["photo"] > q["weak"]  # 'newer' was rated by b only, and lands on a's scale
    assert cfg["flow_order"][0] == "newer" and cfg["flow_sources"]["newer"] == ["b"]
    planner = Planner.load(out)
    assert set(planner.flows) == {"creature", "photo", "weak", "newer"}
    # eval on one source's file as today
    res = cli(["planner", "eval", "--planner", str(out), "--triplets", str(a)])
    assert res.exit_code == 0 and res.output.strip().splitlines()[-1].startswith("planner=")


def test_files_that_share_no_flow_are_refused(tmp_path):
    a = write_csv(synthetic_rows(), tmp_path / "a.csv")
    rows = [{**r, "flow": r["flow"] + "-x"} for r in _second_source()]
    b = write_csv(rows, tmp_path / "b.csv")
    res = cli(["planner", "train", "--triplets", str(a), "--triplets", str(b),
                                   "--out", str(tmp_path / "p")])
    assert isinstance(res.exception, PlannerError) and "share no flow" in str(res.exception)


def test_eval_maps_a_sources_model_names_onto_rated_flows(tmp_path):
    rows = [{"prompt_id": f"e{i}", "prompt": f"a photo of thing {i}", "flow": m, "score": s}
            for i in range(3) for m, s in (("sdxl_base_1", 50.0), ("ali_flux_schnell", 60.0), ("sd_v2-1", 40.0))]
    test = write_csv(rows, tmp_path / "t.csv")
    mapped = load_triplets(test)
    assert "rated-flux-schnell" not in mapped.flows
    from comfygen.tools.planner.sources import get_source, map_models

    assert {r["flow"] for r in map_models(mapped.to_rows(), get_source("evalmi"))} == {
        "rated-sdxl-base", "rated-flux-schnell", "rated-sd21"}
