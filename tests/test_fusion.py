"""Fusion: missing specialists, ties, one class, random search vs mean, determinism, bundles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emonets.fused_model import FusedModel, fit_fusion
from emonets.fusion import LearnedFusion, MeanFusion, RandomSearchFusion, predictions_to_tensor, weighted
from emonets.labels import EMOTIONS, PROB_COLUMNS


def _complementary(n=300, seed=0):
    """Specialist 0 is right on classes 0-3, specialist 1 on 4-6, otherwise both are noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 7, n)
    P = rng.dirichlet(np.ones(7), (n, 2))
    for i in range(n):
        P[i, 0 if y[i] < 4 else 1, y[i]] += 2.0
    return P / P.sum(-1, keepdims=True), np.ones((n, 2), bool), y


def test_missing_specialist_is_fused_from_the_others():
    P = np.zeros((2, 2, 7))
    P[:, 0, 1] = 1.0
    P[:, 1, 5] = 1.0
    M = np.array([[True, False], [False, False]])
    out = MeanFusion().fit(P, M, np.array([1, 1])).predict_proba(P, M)
    assert out[0].argmax() == 1 and out[0, 1] == pytest.approx(1.0)
    assert np.allclose(out[1], 1 / 7)  # no specialist: uniform


def test_weights_are_renormalised_over_present_specialists():
    P = np.full((1, 3, 7), 1 / 7)
    P[0, 2] = np.eye(7)[3]
    W = np.array([[0.5] * 7, [0.3] * 7, [0.2] * 7])
    only_third = weighted(P, np.array([[False, False, True]]), W)
    assert only_third[0, 3] == pytest.approx(1.0)


def test_random_search_finds_per_class_weights_and_beats_mean():
    P, M, y = _complementary()
    rs = RandomSearchFusion(n_draws=20_000, seed=1).fit(P, M, y)
    mean_acc = (MeanFusion().fit(P, M, y).predict_proba(P, M).argmax(1) == y).mean()
    rs_acc = (rs.predict_proba(P, M).argmax(1) == y).mean()
    assert rs_acc > mean_acc
    assert (rs.weights_[0, :4] > rs.weights_[1, :4]).all() and (rs.weights_[1, 4:] > rs.weights_[0, 4:]).all()
    assert np.allclose(rs.weights_.sum(0), 1.0, atol=0.02)
    again = RandomSearchFusion(n_draws=20_000, seed=1).fit(P, M, y)
    assert np.array_equal(rs.weights_, again.weights_)  # seeded: deterministic


def test_ties_are_broken_deterministically():
    P = np.full((4, 2, 7), 1 / 7)  # every weight set ties on accuracy
    y = np.array([0, 1, 2, 3])
    a = RandomSearchFusion(n_draws=500, refine_rounds=2, seed=3).fit(P, np.ones((4, 2), bool), y)
    b = RandomSearchFusion(n_draws=500, refine_rounds=2, seed=3).fit(P, np.ones((4, 2), bool), y)
    assert np.array_equal(a.weights_, b.weights_)


def test_single_class_present():
    P, M, _ = _complementary(n=20)
    y = np.full(20, 4)
    learned = LearnedFusion().fit(P, M, y)
    assert (learned.predict_proba(P, M).argmax(1) == 4).all()
    rs = RandomSearchFusion(n_draws=200, refine_rounds=1).fit(P, M, y)
    assert rs.predict_proba(P, M).shape == (20, 7)


def test_learned_fusion_uses_the_mask():
    P, M, y = _complementary(n=400, seed=2)
    M[::3, 0] = False
    fit = LearnedFusion().fit(P, M, y)
    assert (fit.predict_proba(P, M).argmax(1) == y).mean() > 0.8
    back = LearnedFusion.from_arrays(fit.to_arrays())
    assert np.allclose(back.predict_proba(P, M), fit.predict_proba(P, M))


def _long_table(P, M, clip_ids, names):
    rows = []
    for s, name in enumerate(names):
        for i, c in enumerate(clip_ids):
            if M[i, s]:
                rows.append({"clip_id": c, "specialist": name, **dict(zip(PROB_COLUMNS, P[i, s]))})
    return pd.DataFrame(rows)


def test_fit_fusion_on_val_and_report_on_test(tmp_path):
    P, M, y = _complementary(n=210)
    M[::7, 1] = False
    ids = [f"c{i}" for i in range(len(y))]
    split = np.array(["val", "test", "train"] * 70)
    clips = pd.DataFrame({"clip_id": ids, "label": [EMOTIONS[k] for k in y], "split": split})
    long = _long_table(P, M, ids, ["face_cnn", "audio"])
    back_ids, P2, M2 = predictions_to_tensor(long, ["face_cnn", "audio"])
    assert set(back_ids) == set(ids) and M2.sum() == M.sum()
    fit = fit_fusion(long, clips, ["face_cnn", "audio"], n_draws=5000)
    assert fit.fit_split == "val"
    assert set(fit.fused["method"]) == {"mean", "random_search", "learned"}
    assert fit.metrics["random_search"]["test"]["accuracy"] > fit.specialist_metrics["face_cnn"]["test"]["accuracy"]
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "bundle.json").write_text('{"kind": "audio"}')
    model = FusedModel({"face_cnn": None, "audio": None}, fit.fusers["random_search"], "random_search")
    model.save(tmp_path / "fused", specialist_bundles={"audio": tmp_path / "a"})
    assert (tmp_path / "fused" / "specialists" / "audio" / "bundle.json").is_file()
