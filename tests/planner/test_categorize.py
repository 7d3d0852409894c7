from __future__ import annotations

import numpy as np
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


def test_everyday_prompts_get_their_categories_and_no_stray_ones():
    clf = CategoryClassifier.load()
    lighthouse = dict(clf.predict("a lighthouse on a cliff at dusk, oil painting"))
    assert "painting" in lighthouse and "vehicles" not in lighthouse
    dog = dict(clf.predict("a golden retriever puppy in the grass"))
    assert "animals" in dog and "scifi" not in dog
    car = dict(clf.predict("a red sports car on a mountain road, photo"))
    assert car["vehicles"] > 0.9  # confident where the prompt is plain, not squeezed towards 0.5


def test_fit_head_is_confident_on_separable_data_and_balanced_across_priors():
    from comfygen.tools.categorize.classifier import balanced_log_loss, fit_head

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.stack([x[:, 0] > 0, x[:, 1] > 0.35], axis=1).astype(np.float32)  # 50 % and ~10 % positives
    known = np.ones_like(y)
    known[:200, 1] = 0  # a source that does not label the second category
    w, b = fit_head(x, y, known)
    p = 1 / (1 + np.exp(-(x @ w.T + b)))
    assert ((p >= 0.5) == (y > 0)).mean(axis=0).min() > 0.9
    assert np.median(np.abs(p - 0.5)) > 0.3
    rare = p[known[:, 1] > 0, 1]
    truth = y[known[:, 1] > 0, 1] > 0
    tpr, tnr = (rare[truth] >= 0.5).mean(), (rare[~truth] < 0.5).mean()
    assert min(tpr, tnr) > 0.8  # class balance: the rare category is not just called "no"
    assert balanced_log_loss(x @ w.T + b, y, known) < 0.35


def test_thinly_labelled_categories_are_zero_shot():
    from comfygen.tools.categorize.train import MIN_LABELS, trainable

    y = np.zeros((100, 3), np.float32)
    known = np.ones_like(y)
    y[:50, 0] = 1  # plenty of both
    y[:MIN_LABELS - 1, 1] = 1  # too few positives
    assert trainable(y, known) == [True, False, False]  # the third has no positives at all
    clf = CategoryClassifier.load()
    assert {"anime", "photorealistic", "scifi"} <= set(clf.meta["zero_shot"])
    assert "anime" in clf.meta["zero_shot_report"]  # the labelled ones are still measured
