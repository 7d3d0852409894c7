"""The human-annotation check: rater answers -> synthetic detections -> GenEval's verdict."""

from __future__ import annotations

from pathlib import Path

import pytest

from comfygen.evals.geneval_check import check, human_detections, rule_verdict

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "ratings" / "geneval__annotations_clip.csv").exists(),
                                reason="GenEval annotation files not present")

POS = {"tag": "position", "include": [{"class": "parking meter", "count": 1},
                                      {"class": "bicycle", "count": 1, "position": ["above", 0]}]}
COLOR = {"tag": "color_attr", "include": [{"class": "kite", "count": 1, "color": "black"},
                                          {"class": "bear", "count": 1, "color": "green"}]}
COUNT = {"tag": "counting", "include": [{"class": "donut", "count": 4}], "exclude": [{"class": "donut", "count": 5}]}


def row(**answers: str) -> dict[str, str]:
    return {f"Answer.task-{k.replace('_', '-')}": v for k, v in answers.items()}


def test_position_answers_become_boxes_in_the_stated_relation():
    r = row(count_0="1", count_1="1.0", position_x="left", position_y="above")
    det, _ = human_detections(r, POS)
    assert set(det) == {"parking meter", "bicycle"}
    assert rule_verdict(r, POS)[0]  # "above" holds (and left too)
    assert not rule_verdict(row(count_0="1", count_1="1.0", position_x="left", position_y="neither_y"), POS)[0]
    assert not rule_verdict(row(count_0="1", count_1="0.0", position_x="", position_y=""), POS)[0]


def test_colour_answers_are_sets_of_colours_seen():
    ok = row(count_0="1", count_1="1.0", color_0="black|white", color_1="green")
    assert rule_verdict(ok, COLOR)[0]
    assert not rule_verdict(row(count_0="1", count_1="1.0", color_0="white", color_1="green"), COLOR)[0]


def test_counting_five_means_five_or_more_and_fails_the_exclude():
    assert rule_verdict(row(count_0="4"), COUNT)[0]
    assert not rule_verdict(row(count_0="3"), COUNT)[0]
    assert not rule_verdict(row(count_0="5"), COUNT)[0]


@needs_data
def test_check_on_the_annotation_files():
    res = check(DATA)
    assert res["skipped_rows"] == {"clip": 0, "if-xl": 8, "sdv2": 0}
    allv = res["per_image_majority"]["all"]
    assert allv["n"] == 1200  # 400 images per system
    assert 0.5 < allv["agreement"] <= 1.0 and -1 <= allv["kappa"] <= 1
    assert set(res["human_geneval_table"]) == {"clip", "if-xl", "sdv2"}
    # single objects are nearly always drawn, positions rarely: the raters' table must show that
    for system in res["human_geneval_table"].values():
        assert system["Single object"] > system["Position"]


@needs_data
def test_detector_check_runs_the_scorer_on_the_annotated_images(tmp_path, tiny_geneval):
    from PIL import Image

    from comfygen.evals.geneval_check import check_detector

    # two images of the sdv2 set, laid out like their URLs
    for pid, iid in [(328, 1), (220, 2)]:
        d = tmp_path / "sdv2" / f"{pid:05d}" / "samples"
        d.mkdir(parents=True)
        Image.new("RGB", (64, 64), (255, 255, 255)).save(d / f"{iid:05d}.png")
    res = check_detector(tmp_path, DATA, scorer=tiny_geneval)
    assert res["sdv2"]["images_found"] == 2 and res["clip"]["images_found"] == 0
    assert 0.0 <= res["sdv2"]["agreement"] <= 1.0
