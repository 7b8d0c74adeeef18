"""Metrics on hand-made cases: absent classes, names vs indices, bad input, the confusion PNG."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import f1_score

from emonets.evaluation import accuracy, as_indices, confusion, macro_f1, metrics_dict, per_class_recall


def test_confusion_is_7x7_in_fixed_order_with_absent_classes():
    y_true = [0, 0, 3, 3, 3]
    y_pred = [0, 3, 3, 3, 6]
    cm = confusion(y_true, y_pred)
    assert cm.shape == (7, 7)
    assert cm[0, 0] == 1 and cm[0, 3] == 1 and cm[3, 3] == 2 and cm[3, 6] == 1
    assert cm.sum() == 5 and cm[[1, 2, 4, 5]].sum() == 0


def test_hand_computed_metrics():
    y_true = [0, 0, 3, 3, 3]
    y_pred = [0, 3, 3, 3, 6]
    m = metrics_dict(y_true, y_pred)
    assert m["n"] == 5 and m["accuracy"] == pytest.approx(3 / 5)
    # F1: class 0 = 2*1/(2+1) = 2/3, class 3 = 2*2/(3+3) = 2/3, class 6 = 0 (predicted, never true)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert m["recall"]["angry"] == pytest.approx(0.5) and m["recall"]["happy"] == pytest.approx(2 / 3)
    assert m["recall"]["disgust"] is None  # never tested, not zero
    assert np.array(m["confusion"]).shape == (7, 7)


def test_names_and_indices_agree():
    names = ["Angry", "happiness", "surprise", "neutral"]
    assert as_indices(names).tolist() == [0, 3, 6, 4]
    assert metrics_dict(names, [0, 3, 6, 5]) == metrics_dict([0, 3, 6, 4], ["angry", "happy", "surprise", "sad"])


def test_perfect_and_empty():
    assert accuracy(range(7), range(7)) == 1.0 and macro_f1(confusion(range(7), range(7))) == 1.0
    empty = metrics_dict([], [])
    assert empty["n"] == 0 and empty["accuracy"] == 0.0 and empty["macro_f1"] == 0.0
    assert all(v is None for v in per_class_recall(np.zeros((7, 7))).values())


@pytest.mark.parametrize("y_true,y_pred", [([0, -1], [0, 0]), ([0, 7], [0, 0]), ([0, 1], [0]), (["calm"], [0])])
def test_bad_labels_raise(y_true, y_pred):
    with pytest.raises(ValueError):
        metrics_dict(y_true, y_pred)


def test_confusion_png_is_written_atomically(tmp_path):
    from emonets.report.confusion_plot import confusion_png

    cm = confusion([0, 1, 2, 2, 6], [0, 1, 2, 5, 6])
    out = confusion_png(cm, tmp_path / "plots" / "cm.png", "test split")
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size[0] > 200
    assert [p.name for p in out.parent.iterdir()] == ["cm.png"]  # no temp file left behind
    with pytest.raises(ValueError):
        confusion_png(np.zeros((3, 3)), tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
