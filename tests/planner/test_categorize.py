from __future__ import annotations

from comfygen.flow_library.categories import category_ids
from comfygen.tools.categorize import CategoryClassifier


def test_shipped_classifier_covers_every_category_and_reports_heldout_accuracy():
    clf = CategoryClassifier.load()
    assert clf.ids == category_ids()
    report = clf.meta["heldout_report"]
    assert report["heldout"] > 500 and report["micro_accuracy"] > 0.8
    assert set(clf.meta["zero_shot"]).isdisjoint(report["per_category"])


def test_classifier_finds_obvious_categories():
    clf = CategoryClassifier.load()
    sign = dict(clf.predict("a neon sign that says OPEN"))
    assert "text" in sign
    counting = dict(clf.predict("three red apples to the left of a blue bowl"))
    assert "composition" in counting
    room = dict(clf.predict("a cozy living room with a fireplace"))
    assert "interior" in room and "vehicles" not in room
    assert all(0.5 <= p <= 1.0 for p in room.values())
