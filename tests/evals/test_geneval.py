"""GenEval's verdict rules on synthetic detections (no detector needed), and the tiny OWLv2 + CLIP path."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from comfygen.evals.geneval import (
    GENEVAL_RULES, GenEvalRules, compute_iou, evaluate, geneval_table, relative_position, select_detections)


def box(cx: float, cy: float, w: float = 10, h: float = 10) -> np.ndarray:
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def test_relative_position_reads_directions_in_image_coordinates():
    assert relative_position(box(0, 0), box(100, 0)) == {"left of"}
    assert relative_position(box(100, 0), box(0, 0)) == {"right of"}
    assert relative_position(box(0, 0), box(0, 100)) == {"above"}  # y grows downwards
    assert relative_position(box(0, 100), box(0, 0)) == {"below"}
    assert relative_position(box(0, 0), box(100, 100)) == {"left of", "above"}


def test_position_margin_of_a_tenth_of_the_box_sizes():
    # boxes 80 px wide: the margin 0.1 * (80 + 80) = 16 px comes off the offset, and what is left must
    # still be more than half the original offset, so centres must be > 32 px apart
    assert relative_position(box(0, 0, 80, 80), box(15, 0, 80, 80)) == set()
    assert relative_position(box(0, 0, 80, 80), box(31, 0, 80, 80)) == set()
    assert relative_position(box(0, 0, 80, 80), box(33, 0, 80, 80)) == {"left of"}
    # without the margin the small offset counts
    assert relative_position(box(0, 0, 80, 80), box(15, 0, 80, 80), margin=0.0) == {"left of"}
    # a mostly-vertical offset with a small horizontal one gives only the vertical relation
    assert relative_position(box(0, 0), box(20, 100)) == {"above"}


def test_iou_uses_inclusive_pixels():
    assert compute_iou([0, 0, 9, 9], [0, 0, 9, 9]) == pytest.approx(1.0)
    assert compute_iou([0, 0, 9, 9], [10, 10, 19, 19]) == 0.0
    assert compute_iou([0, 0, 9, 9], [5, 0, 14, 9]) == pytest.approx(50 / 150)


def test_select_detections_thresholds_cap_and_nms():
    raw = {"cat": [(box(0, 0), 0.95), (box(1, 0), 0.92), (box(100, 0), 0.5), (box(200, 0), 0.2)]}
    assert len(select_detections(raw, "two_object")["cat"]) == 3   # > 0.3
    assert len(select_detections(raw, "counting")["cat"]) == 2     # > 0.9 on counting prompts
    nms = GenEvalRules(max_overlap=0.5)
    assert len(select_detections(raw, "two_object", nms)["cat"]) == 2  # the near-duplicate box goes
    assert len(select_detections(raw, "two_object", GenEvalRules(max_objects=1))["cat"]) == 1
    assert select_detections({"dog": [(box(0, 0), 0.1)]}, "single_object") == {}
    kept = select_detections(raw, "two_object")["cat"]
    assert np.allclose(kept[0], box(0, 0))  # highest score first


def test_counting_needs_exactly_the_number_via_include_and_exclude():
    meta = {"tag": "counting", "include": [{"class": "clock", "count": 2}], "exclude": [{"class": "clock", "count": 3}]}
    assert evaluate({"clock": [box(0, 0), box(50, 0)]}, meta)[0]
    ok, why = evaluate({"clock": [box(0, 0)]}, meta)
    assert not ok and "expected clock>=2, found 1" in why[0]
    ok, why = evaluate({"clock": [box(0, 0), box(50, 0), box(100, 0)]}, meta)
    assert not ok and "expected clock<3" in why[0]


def test_two_objects_both_needed():
    meta = {"tag": "two_object", "include": [{"class": "cake", "count": 1}, {"class": "stop sign", "count": 1}]}
    assert evaluate({"cake": [box(0, 0)], "stop sign": [box(50, 0)]}, meta)[0]
    assert not evaluate({"cake": [box(0, 0)]}, meta)[0]


def test_colour_check_uses_the_classifier_on_the_most_confident_objects():
    meta = {"tag": "color_attr", "include": [{"class": "bus", "count": 1, "color": "green"},
                                             {"class": "microwave", "count": 1, "color": "purple"}]}
    seen: list[tuple[str, int]] = []

    def colours(cls: str, boxes: list) -> list[str]:
        seen.append((cls, len(boxes)))
        return {"bus": ["green"], "microwave": ["red"]}[cls]

    dets = {"bus": [box(0, 0), box(9, 9)], "microwave": [box(50, 0)]}
    ok, why = evaluate(dets, meta, colours)
    assert not ok and "expected purple microwave>=1, found 0 purple" in why[0]
    assert seen == [("bus", 1), ("microwave", 1)]  # only `count` objects are classified
    assert evaluate(dets, meta, lambda c, b: {"bus": ["green"], "microwave": ["purple"]}[c])[0]
    with pytest.raises(ValueError):
        evaluate(dets, meta)  # a colour prompt without a classifier is a programming error


def test_position_against_the_target_group():
    meta = {"tag": "position", "include": [{"class": "teddy bear", "count": 1},
                                           {"class": "dog", "count": 1, "position": ["right of", 0]}]}
    assert evaluate({"teddy bear": [box(0, 0)], "dog": [box(100, 0)]}, meta)[0]
    ok, why = evaluate({"teddy bear": [box(0, 0)], "dog": [box(-100, 0)]}, meta)
    assert not ok and "expected dog right of target, found left of target" in why[0]
    ok, why = evaluate({"dog": [box(100, 0)]}, meta)  # no target found
    assert not ok and any("no target for dog" in w for w in why)
    # the dog must be right of every kept teddy bear (only `count` = 1 of them is kept)
    assert evaluate({"teddy bear": [box(0, 0), box(200, 0)], "dog": [box(100, 0)]}, meta)[0]


def test_geneval_table_averages_images_per_task_then_tasks():
    rows = [("A", "single_object", True), ("A", "single_object", False), ("A", "counting", True),
            ("B", "position", False)]
    t = geneval_table(rows)
    assert t["A"] == {"Single object": 0.5, "Counting": 1.0, "Overall": 0.75}
    assert t["B"] == {"Position": 0.0, "Overall": 0.0}


def test_geneval_defaults_are_genevals_own():
    assert (GENEVAL_RULES.threshold, GENEVAL_RULES.counting_threshold, GENEVAL_RULES.max_objects,
            GENEVAL_RULES.max_overlap, GENEVAL_RULES.position_threshold) == (0.3, 0.9, 16, 1.0, 0.1)


def test_tiny_owlv2_and_clip_run_the_whole_path(tiny_geneval):
    from comfygen.evals.geneval import COLORS, object_names

    scorer = tiny_geneval
    img = Image.new("RGB", (96, 64), (200, 20, 20))
    dets = scorer.detect(img)
    assert dets and set(dets) <= set(object_names())
    for found in dets.values():
        for b, s in found:
            assert 0 <= b[0] <= b[2] <= 96 and 0 <= b[1] <= b[3] <= 64 and 0.0 <= s <= 1.0
    cols = scorer.colors(img, [box(20, 20, 30, 30), box(60, 30, 20, 20), np.array([95.5, 10, 95.5, 10])], "apple")
    assert len(cols) == 3 and set(cols) <= set(COLORS)  # a degenerate box at the border still gets a colour
    res = scorer.evaluate(img, {"tag": "color_attr", "include": [{"class": "bus", "count": 1, "color": "green"}]})
    assert res.tag == "color_attr" and isinstance(res.correct, bool)
