"""ComfyGen's choosing logic with a filled score table, a stub classifier and a stub planner."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from mcp_helpers import pixel_scorers, shared_library

from comfygen.flow_library.score_table import ScoreTable
from comfygen.tools.app.service import ComfyGen
from comfygen.tools.planner import Planner
from comfygen.tools.planner.artifact import PlannerConfig
from comfygen.tools.errors import GuardError
from comfygen.tools.settings import Settings


class StubClassifier:
    def predict(self, prompt, threshold=0.5):
        return [("portrait", 0.93), ("photorealistic", 0.71)]


class StubPlanner(Planner):
    """A real planner's ranking over fixed predictions (no network)."""

    SCORES = {"rated-dalle3": 0.6, "rated-sdxl-base": 0.1, "rated-sd15": -0.5}

    def __init__(self):
        flows = list(self.SCORES)
        cfg = PlannerConfig(flows=flows, flow_order=flows, mean=0.0, std=1.0, score_min=-1.0, score_max=1.0,
                            tau=0.05, quality={f: [v, 0.02] for f, v in self.SCORES.items()})
        super().__init__(Path("."), cfg)

    def _ensure(self):  # no network to load
        self._torch = False
        return self

    def score_matrix(self, prompts):
        return np.array([[self.SCORES[f] for f in self.config.flows] for _ in prompts])


def table() -> ScoreTable:
    t = ScoreTable(metric="ensemble z")
    for _ in range(3):
        t.observe("sdxl-juggernaut", ["portrait", "photorealistic"], 0.7, source="GenAI-Bench")
    t.observe("sd15-base", ["portrait"], 0.2, source="own runs")
    return t


def service(tmp_path, **kw):
    return ComfyGen(Settings(home=tmp_path), library=shared_library(), scorer_factory=pixel_scorers,
                    classifier=StubClassifier(), **kw)


def test_suggest_ranks_the_whole_executable_library_with_provenance(tmp_path):
    cg = service(tmp_path, table=table(), planner=StubPlanner())
    out = cg.suggest("a portrait of an old sailor", k=20)
    assert "rated-dalle3" not in [f.flow_id for f in out.flows]  # external reference flows are never offered
    top = out.flows[0]
    assert top.flow_id == "rated-sdxl-base" and top.provenance == "rated" and top.score_source == "planner"
    assert top.predicted_score == pytest.approx(0.55) and "'portrait' prompt" in top.why
    ranked = cg.planner().rank_prompt("a portrait of an old sailor", cg.library, k=10_000)
    ids = [p.flow_id for p in ranked]
    assert len(ids) == sum(f.executable for f in cg.library) and "rated-dalle3" not in ids
    prov = {p.flow_id: p.provenance for p in ranked}
    assert prov["sdxl-base"] == "inherited" and prov["sdxl-juggernaut"] == "family prior"
    assert prov["cascade"] == "none" and ids[-1] in {p.flow_id for p in ranked if p.provenance == "none"}
    assert ids.index("sdxl-base") < ids.index("sd15-base")  # an SDXL photo flow before SD 1.5
    assert [c.id for c in out.categories] == ["portrait", "photorealistic"]


def test_suggestions_span_models_while_plan_keeps_the_strict_ranking(tmp_path):
    from comfygen.tools.planner.coverage import model_key

    cg = service(tmp_path, table=table(), planner=StubPlanner())
    prompt = "a portrait of an old sailor"
    out = cg.suggest(prompt, k=6)
    models = [model_key(cg.library.get(f.flow_id))[0] for f in out.flows]
    assert max(models.count(m) for m in models) <= 2 and len(set(models)) >= 3
    strict = cg.planner().rank_prompt(prompt, cg.library, k=6)
    assert out.flows[0].flow_id == strict[0].flow_id  # the pick is the same
    assert len({model_key(cg.library.get(p.flow_id))[0] for p in strict}) < len(set(models))
    order = [p.flow_id for p in cg.planner().rank_prompt(prompt, cg.library, k=10_000)]
    shown = [order.index(f.flow_id) for f in out.flows]
    assert shown == sorted(shown)  # what is shown keeps the ranking's order


def test_without_a_planner_the_table_ranks_and_says_so(tmp_path):
    cg = service(tmp_path, table=table())
    cg._planner = None
    cg.planner = lambda: (_ for _ in ()).throw(ImportError("no planner here"))  # type: ignore[method-assign]
    out = cg.suggest("a portrait", k=2)
    assert [f.flow_id for f in out.flows] == ["sdxl-juggernaut", "sd15-base"]
    assert out.flows[0].score_source == "score table" and "planner unavailable" in out.note


def test_score_table_view_and_bad_categories(tmp_path):
    cg = service(tmp_path, table=table())
    view = cg.score_table(["portrait"], 2)
    assert [e.flow_id for e in view.entries["portrait"]] == ["sdxl-juggernaut", "sd15-base"]
    assert view.entries["portrait"][0].n == 3 and "sdxl-juggernaut" in view.text and not view.empty
    with pytest.raises(GuardError, match="unknown categories"):
        cg.score_table(["potrait"], 2)


def test_scored_runs_feed_the_users_table_without_touching_the_shipped_one(tmp_path):
    cg = service(tmp_path)
    cg.observe("sd15-base", "a portrait", 0.5)
    cg.observe("sd15-base", "a portrait", 0.7)
    saved = ScoreTable.load(cg.settings.score_table_path)
    cell = saved.cell("sd15-base", "portrait")
    assert cell.n == 2 and cell.mean == pytest.approx(0.6) and cell.sources == ["own runs"]
    again = service(tmp_path)  # a new process sees shipped + own, counted once
    assert again.table.cell("sd15-base", "portrait").n == cell.n + (
        (ScoreTable.shipped().cell("sd15-base", "portrait") or SimpleNamespace(n=0)).n)


class VehicleClassifier:
    def predict(self, prompt, threshold=0.5):
        return [("vehicles", 0.9)]


def test_the_users_calibration_moves_choices_where_its_runs_say_so(tmp_path):
    """Synthetic calibration: an unrated flow (no human ratings: ranked last) is clearly best on portraits."""
    rng = np.random.default_rng(0)
    user = ScoreTable(metric="ensemble score of local runs")
    for _ in range(12):
        user.observe("cascade", ["portrait"], 1.4 + rng.normal(0, 0.2), "calibration")
        user.observe("rated-sdxl-base", ["portrait"], 0.3 + rng.normal(0, 0.2), "calibration")
        user.observe("rated-sd15", ["portrait"], -0.5 + rng.normal(0, 0.2), "calibration")
    user.save(Settings(home=tmp_path).score_table_path)
    before = service(tmp_path / "other", planner=StubPlanner()).suggest("a portrait of an old sailor", k=3)
    assert before.flows[0].flow_id != "cascade"
    out = service(tmp_path, planner=StubPlanner()).suggest("a portrait of an old sailor", k=3)
    top = out.flows[0]
    assert top.flow_id == "cascade" and top.provenance == "measured" and "your own scored runs" in top.why
    elsewhere = ComfyGen(Settings(home=tmp_path), library=shared_library(), scorer_factory=pixel_scorers,
                         classifier=VehicleClassifier(), planner=StubPlanner()).suggest("a red sports car", k=3)
    assert elsewhere.flows[0].flow_id != "cascade"  # its runs said nothing about vehicles


def test_a_prompt_is_classified_once_for_choosing_and_filing_its_score(tmp_path):
    class Counting(StubClassifier):
        calls = 0

        def predict(self, prompt, threshold=0.5):
            Counting.calls += 1
            return super().predict(prompt, threshold)

    cg = ComfyGen(Settings(home=tmp_path), library=shared_library(), table=table(), classifier=Counting(),
                  planner=StubPlanner())
    flow, _ = cg.pick_flow("a portrait of a sailor", None)
    cg.observe(flow.id, "a portrait of a sailor", 0.4)
    assert Counting.calls == 1
    assert [c.id for c in cg.detect_categories("a portrait of a sailor")] == ["portrait", "photorealistic"]
