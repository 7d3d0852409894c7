"""ComfyGen's choosing logic with a filled score table, a stub classifier and a stub planner."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from mcp_helpers import pixel_scorers, shared_library

from comfygen.flow_library.score_table import ScoreTable
from comfygen.tools.agent.service import ComfyGen
from comfygen.tools.errors import GuardError
from comfygen.tools.settings import Settings


class StubClassifier:
    def predict(self, prompt, threshold=0.5):
        return [("portrait", 0.93), ("photorealistic", 0.71)]


class StubPlanner:
    def __init__(self):
        self.allowed = None

    def predict(self, prompt, k=5, target_score=None, allowed=None):
        self.allowed = allowed
        preds = [("rated-dalle3", 0.99), ("sdxl-juggernaut", 0.8), ("sd15-base", 0.4)]
        return [SimpleNamespace(flow_id=f, score=s * 10, normalized=s) for f, s in preds if allowed is None or
                f in allowed][:k]


def table() -> ScoreTable:
    t = ScoreTable(metric="ensemble z")
    for _ in range(3):
        t.observe("sdxl-juggernaut", ["portrait", "photorealistic"], 0.7, source="GenAI-Bench")
    t.observe("sd15-base", ["portrait"], 0.2, source="own runs")
    return t


def service(tmp_path, **kw):
    return ComfyGen(Settings(home=tmp_path), library=shared_library(), scorer_factory=pixel_scorers,
                    classifier=StubClassifier(), **kw)


def test_suggest_uses_the_planner_only_over_executable_flows_and_explains_with_the_table(tmp_path):
    planner = StubPlanner()
    out = service(tmp_path, table=table(), planner=planner).suggest("a portrait of an old sailor", k=2)
    assert "rated-dalle3" not in planner.allowed  # external reference flows are never offered
    assert [f.flow_id for f in out.flows] == ["sdxl-juggernaut", "sd15-base"]
    top = out.flows[0]
    assert top.predicted_score == 0.8 and top.score_source == "planner"
    assert "0.700 on 'portrait' prompts (n=3, GenAI-Bench)" in top.why
    assert [c.id for c in out.categories] == ["portrait", "photorealistic"]


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
