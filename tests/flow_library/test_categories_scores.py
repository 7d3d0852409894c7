"""Prompt categories and the score table."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest

from comfygen.flow_library.categories import CATEGORIES, UnknownCategory, category_ids, get_category
from comfygen.flow_library.errors import FlowError
from comfygen.flow_library.score_table import Cell, ScoreTable

# Ids are a contract with trained classifiers and stored tables: this list may grow, never change.
STABLE_IDS = ["people", "portrait", "animals", "nature", "urban", "interior", "food", "vehicles", "objects", "fashion",
              "anime", "illustration", "painting", "photorealistic", "fantasy", "scifi", "abstract", "render3d", "text",
              "dark", "composition"]


def test_category_ids_are_stable() -> None:
    assert category_ids()[: len(STABLE_IDS)] == STABLE_IDS
    assert len(set(category_ids())) == len(CATEGORIES)
    assert {c.kind for c in CATEGORIES} == {"object", "scene", "style"}
    assert all(c.description and c.name for c in CATEGORIES)
    assert get_category("anime").name.startswith("Anime")
    with pytest.raises(UnknownCategory) as e:
        get_category("cats")
    assert "people" in (e.value.hint or "")


def test_observe_matches_batch_statistics() -> None:
    scores = [0.2, 0.5, 0.9, 0.4, 0.7]
    t = ScoreTable()
    for s in scores:
        t.observe("sdxl-base", ["people", "people", "portrait"], s, "calib-2025")
    cell = t.cell("sdxl-base", "people")
    assert cell.n == 5 and math.isclose(cell.mean, statistics.mean(scores))
    assert math.isclose(cell.std, statistics.stdev(scores))
    assert cell.sources == ["calib-2025"]
    with pytest.raises(FlowError):
        t.observe("sdxl-base", ["people"], float("nan"), "x")


def test_merge_pools_measurements() -> None:
    a_scores, b_scores = [1.0, 2.0, 3.0], [10.0, 11.0]
    a, b = ScoreTable(), ScoreTable()
    for s in a_scores:
        a.observe("f", ["food"], s, "A")
    for s in b_scores:
        b.observe("f", ["food"], s, "B")
    b.observe("g", ["nature"], 0.5, "B")
    m = a.merge(b)
    cell = m.cell("f", "food")
    assert cell.n == 5 and math.isclose(cell.mean, statistics.mean(a_scores + b_scores))
    assert math.isclose(cell.std, statistics.stdev(a_scores + b_scores))
    assert cell.sources == ["A", "B"]
    assert m.cell("g", "nature").n == 1
    assert a.cell("g", "nature") is None and a.cell("f", "food").n == 3  # inputs unchanged


def test_top_k_ranks_by_mean_over_asked_categories() -> None:
    t = ScoreTable(cells={
        "a": {"people": Cell(mean=0.9, n=10), "nature": Cell(mean=0.1, n=10)},
        "b": {"people": Cell(mean=0.6, n=10), "nature": Cell(mean=0.6, n=10)},
        "c": {"people": Cell(mean=0.95, n=1)},
        "d": {"food": Cell(mean=1.0, n=50)},
    })
    assert [r.flow_id for r in t.top_k(["people"], 3)] == ["c", "a", "b"]
    top = t.top_k(["people", "nature"], 10)
    assert [r.flow_id for r in top] == ["b", "a", "c"]  # full coverage first, then by mean
    assert top[0].coverage == 2 and math.isclose(top[0].score, 0.6)
    assert [r.flow_id for r in t.top_k(["people"], 10, min_n=5)] == ["a", "b"]
    assert t.top_k(["scifi"], 5) == []


def test_render_text_is_compact() -> None:
    t = ScoreTable(metric="z-scored ensemble")
    for i in range(400):
        for cat in ("people", "nature", "anime"):
            t.observe(f"flow-{i:03d}-with-a-long-id", [cat], (i * 7919 % 400) / 400, "test")
    text = t.render_text(["people", "nature", "anime"], k=20)
    assert len(text) < 4000 and len(text.splitlines()) == 22
    assert text.splitlines()[1] == "flow | people | nature | anime | mean"
    assert "(n=1)" in text
    assert "No measured scores" in ScoreTable().render_text(["people"])
    huge = t.render_text(["people"], k=400)
    assert len(huge) <= 6100 and huge.endswith("...")


def test_save_load_and_shipped(tmp_path: Path) -> None:
    t = ScoreTable(metric="m")
    t.observe("x", ["food"], 0.3, "s")
    path = tmp_path / "sub" / "table.json"
    t.save(path)
    assert ScoreTable.load(path) == t
    assert json.loads(path.read_text())["cells"]["x"]["food"]["n"] == 1
    with pytest.raises(FlowError):
        ScoreTable.load(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(FlowError):
        ScoreTable.load(tmp_path / "bad.json")
    shipped = ScoreTable.shipped()
    for row in shipped.cells.values():
        for cell in row.values():
            assert cell.n >= 1 and cell.sources, "shipped cells must come from measurements"
