"""Fusion: missing specialists, ties, one class, random search vs mean, determinism, bundles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emonets.fusion.model import FusedModel, fit_fusion
from emonets.fusion.fusers import (LearnedFusion, LogLinearFusion, MeanFusion, RandomSearchFusion, predictions_to_tensor,
                            weighted)
from emonets.labels import EMOTIONS, PROB_COLUMNS


def _complementary(n=300, seed=0, strength=2.0):
    """Specialist 0 is right on classes 0-3, specialist 1 on 4-6, otherwise both are noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 7, n)
    P = rng.dirichlet(np.ones(7), (n, 2))
    for i in range(n):
        P[i, 0 if y[i] < 4 else 1, y[i]] += strength
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
    assert set(fit.fused["method"]) == {"mean", "random_search", "learned", "log_linear"}
    assert fit.metrics["random_search"]["test"]["accuracy"] > fit.specialist_metrics["face_cnn"]["test"]["accuracy"]
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "bundle.json").write_text('{"kind": "audio"}')
    model = FusedModel({"face_cnn": None, "audio": None}, fit.fusers["random_search"], "random_search")
    model.save(tmp_path / "fused", specialist_bundles={"audio": tmp_path / "a"})
    assert (tmp_path / "fused" / "specialists" / "audio" / "bundle.json").is_file()


# ---------------------------------------------------------------- edge cases and the vectorised search

from emonets.fusion.fusers import cross_val_accuracy, unscored  # noqa: E402
from emonets.fusion.scorer import Scorer  # noqa: E402


def _draws(seed: int, n: int, n_spec: int) -> np.ndarray:
    """The weight sets RandomSearchFusion draws first, for the same seed."""
    W = np.random.default_rng(seed).random((n, n_spec, 7))
    return W / W.sum(1, keepdims=True)


def test_missing_entries_are_never_read():
    P, M, y = _complementary(n=50)
    M[::4, 1] = False
    M[7] = False
    P_nan = P.copy()
    P_nan[~M] = np.nan
    for fuser in (MeanFusion(), RandomSearchFusion(n_draws=300, refine_rounds=2), LearnedFusion()):
        a = fuser.fit(P, M, y).predict_proba(P, M)
        b = fuser.fit(P_nan, M, y).predict_proba(P_nan, M)
        assert np.isfinite(b).all() and np.allclose(a, b)
        assert np.allclose(b.sum(1), 1.0)


def test_a_clip_no_specialist_scored_is_uniform_and_flagged():
    P, M, y = _complementary(n=60)
    M[[3, 10]] = False
    assert unscored(M).tolist() == [i in (3, 10) for i in range(60)]
    for fuser in (MeanFusion(), RandomSearchFusion(n_draws=300, refine_rounds=2), LearnedFusion()):
        out = fuser.fit(P, M, y).predict_proba(P, M)
        assert np.allclose(out[[3, 10]], 1 / 7)
        assert not np.allclose(out[0], 1 / 7)


def test_vectorised_counts_match_the_plain_loop_with_missing_specialists():
    rng = np.random.default_rng(4)
    n = 120
    y = rng.integers(0, 7, n)
    P = rng.dirichlet(np.ones(7), (n, 3))
    M = rng.random((n, 3)) > 0.3
    M[:5] = False  # scored by nobody
    W = _draws(9, 200, 3)
    W[:4, :, 2] = 0.0  # a class with no weight anywhere
    W[4:8, 1, :] = 0.0  # a specialist switched off
    loop = np.array([(weighted(P, M, w).argmax(1) == y).sum() for w in W])
    assert np.array_equal(Scorer(P, M, y).correct(W), loop)


def test_exact_ties_follow_argmax_first_index():
    # Dyadic numbers: every fused score is exact in float32 and float64, so ties are real ties.
    P = np.zeros((6, 2, 7))
    P[:, 0, 2] = P[:, 0, 5] = 0.5  # specialist 0: a tie between classes 2 and 5
    P[:, 1, 5] = P[:, 1, 2] = 0.5
    P[3:, 1] = [0.25, 0, 0.25, 0.25, 0, 0.25, 0]
    y = np.array([2, 5, 2, 5, 0, 2])
    M = np.ones((6, 2), bool)
    M[5, 1] = False
    W = np.stack([np.full((2, 7), 0.5), np.array([[0.25] * 7, [0.75] * 7]), np.array([[1.0] * 7, [0.0] * 7])])
    loop = np.array([(weighted(P, M, w).argmax(1) == y).sum() for w in W])
    assert np.array_equal(Scorer(P, M, y).correct(W), loop)
    assert loop.tolist() == [3, 3, 3]  # ties go to the lower class: 2 right, 5 wrong


def test_search_runs_in_chunks_and_keeps_the_best_draw():
    P, M, y = _complementary(n=90, seed=5)
    M[::6, 0] = False
    draws = _draws(11, 3000, 2)
    counts = Scorer(P, M, y).correct(draws)
    fits = [RandomSearchFusion(n_draws=3000, refine_rounds=0, chunk=c, seed=11).fit(P, M, y) for c in (37, 1000, None)]
    for fit in fits:
        assert fit.correct_ == max(counts.max(), (MeanFusion().fit(P, M, y).predict_proba(P, M).argmax(1) == y).sum())
        assert np.allclose(fit.weights_, fits[0].weights_)
        assert fit.accuracy_ == pytest.approx(fit.correct_ / len(y))


def test_refinement_never_loses_and_weights_are_normalised_per_class():
    P, M, y = _complementary(n=150, seed=6)
    coarse = RandomSearchFusion(n_draws=200, refine_rounds=0, seed=2).fit(P, M, y)
    refined = RandomSearchFusion(n_draws=200, refine_rounds=10, refine_batch=100, seed=2).fit(P, M, y)
    assert refined.correct_ >= coarse.correct_
    assert np.allclose(refined.weights_.sum(0), 1.0) and (refined.weights_ >= 0).all()


def test_random_search_is_never_below_the_mean_on_its_fitting_split():
    for seed in range(3):
        rng = np.random.default_rng(seed)
        P = rng.dirichlet(np.ones(7) * 0.5, (40, 3))
        y = rng.integers(0, 7, 40)
        M = rng.random((40, 3)) > 0.2
        mean_right = (MeanFusion().fit(P, M, y).predict_proba(P, M).argmax(1) == y).sum()
        rs = RandomSearchFusion(n_draws=500, refine_rounds=3, seed=seed).fit(P, M, y)
        assert rs.correct_ >= mean_right
        assert (rs.predict_proba(P, M).argmax(1) == y).sum() == rs.correct_


def test_random_search_finds_the_known_optimum_and_generalises():
    # A weak signal: the mean drowns it in the other specialist's noise; the known optimum gives
    # each class only to the specialist that is reliable on it.
    P, M, y = _complementary(n=300, seed=7, strength=0.4)
    Pt, Mt, yt = _complementary(n=300, seed=8, strength=0.4)
    rs = RandomSearchFusion(n_draws=5000, seed=0).fit(P, M, y)
    optimum = np.zeros((2, 7))
    optimum[0, :4] = optimum[1, 4:] = 1.0

    def test_acc(probs):
        return (probs.argmax(1) == yt).mean()

    mean_acc = test_acc(MeanFusion().fit(P, M, y).predict_proba(Pt, Mt))
    rs_acc = test_acc(rs.predict_proba(Pt, Mt))
    assert rs_acc > mean_acc + 0.08
    assert rs_acc > test_acc(weighted(Pt, Mt, optimum)) - 0.05
    assert (rs.weights_[0, :3] > 0.5).all() and (rs.weights_[1, 4:] > 0.5).all()


def test_fit_refuses_no_labels_and_bad_shapes():
    P, M, _ = _complementary(n=10)
    unlabelled = np.full(10, -1)
    with pytest.raises(ValueError, match="labelled"):
        RandomSearchFusion(n_draws=10).fit(P, M, unlabelled)
    with pytest.raises(ValueError, match="labelled"):
        LearnedFusion().fit(P, M, unlabelled)
    fit = MeanFusion().fit(P, M, unlabelled)  # the mean needs no labels
    with pytest.raises(ValueError, match="specialists"):
        fit.predict_proba(P[:, :1], M[:, :1])
    with pytest.raises(ValueError):
        MeanFusion().fit(P[:, :, :5], M, unlabelled)


def test_two_classes_present_in_fitting():
    P, M, y = _complementary(n=200, seed=9)
    keep = y < 2
    learned = LearnedFusion().fit(P[keep], M[keep], y[keep])
    pred = learned.predict_proba(P, M).argmax(1)
    assert set(pred) <= {0, 1}
    assert (pred[keep] == y[keep]).mean() > 0.8


def test_predictions_to_tensor_skips_nan_rows_and_unknown_specialists():
    long = pd.DataFrame([
        {"clip_id": "a", "specialist": "audio", **dict(zip(PROB_COLUMNS, np.eye(7)[1]))},
        {"clip_id": "b", "specialist": "audio", **dict(zip(PROB_COLUMNS, [np.nan] * 7))},
        {"clip_id": "b", "specialist": "face_cnn", **dict(zip(PROB_COLUMNS, np.eye(7)[3]))},
        {"clip_id": "c", "specialist": "motion", **dict(zip(PROB_COLUMNS, np.eye(7)[4]))},
    ])
    ids, P, M = predictions_to_tensor(long, ["face_cnn", "audio"])
    assert ids == ["a", "b", "c"]
    assert M.tolist() == [[False, True], [True, False], [False, False]]
    assert P[0, 1].argmax() == 1 and P[1, 0].argmax() == 3
    out = MeanFusion().fit(P, M).predict_proba(P, M)
    assert out[0].argmax() == 1 and out[1].argmax() == 3 and np.allclose(out[2], 1 / 7)


@pytest.mark.parametrize("fuser", [MeanFusion(), RandomSearchFusion(n_draws=500, refine_rounds=2), LearnedFusion(),
                                   LogLinearFusion()],
                         ids=lambda f: f.name)
def test_fusers_round_trip_through_the_fused_bundle(fuser, tmp_path):
    """Every method survives the format production saves fusers in: FusedModel's bundle (here
    without specialist copies, so only the fuser's part of the bundle is read back)."""
    P, M, y = _complementary(n=80, seed=3)
    M[::5, 0] = False
    fuser.fit(P, M, y)
    FusedModel({}, fuser, fuser.name).save(tmp_path / "fused", specialist_bundles={})
    back = FusedModel.load(tmp_path / "fused")
    assert back.method == fuser.name and back.fuser.name == fuser.name and back.specialists == {}
    assert np.allclose(back.fuser.predict_proba(P, M), fuser.predict_proba(P, M))


def test_cross_validation_exposes_in_sample_optimism():
    P, M, y = _complementary(n=70, seed=10, strength=0.4)
    mean_in_sample = (MeanFusion().fit(P, M, y).predict_proba(P, M).argmax(1) == y).mean()
    assert cross_val_accuracy(MeanFusion, P, M, y) == pytest.approx(mean_in_sample)  # nothing fitted
    learned_in_sample = (LearnedFusion().fit(P, M, y).predict_proba(P, M).argmax(1) == y).mean()
    learned_cv = cross_val_accuracy(LearnedFusion, P, M, y, folds=5, seed=0)
    assert learned_in_sample - learned_cv > 0.15
    assert cross_val_accuracy(LearnedFusion, P, M, y, folds=5, seed=0) == learned_cv  # seeded folds


def _independent_views(n=600, seed=0, noise_specialist=True):
    """Two weak specialists seeing independent evidence of the label, plus (optionally) one that
    is pure noise: the case of face + voice + a chance-level specialist."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 7, n)
    views = []
    for _ in range(2):
        logits = rng.normal(0, 1, (n, 7))
        logits[np.arange(n), y] += 1.2
        views.append(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))
    if noise_specialist:
        views.append(rng.dirichlet(np.ones(7) * 0.3, n))  # confident and useless
    return np.stack(views, 1), np.ones((n, len(views)), bool), y


def test_log_linear_fusion_ignores_a_useless_specialist_and_beats_each_view():
    P, M, y = _independent_views()
    fit = LogLinearFusion().fit(P[:300], M[:300], y[:300])
    assert fit.weights_[2] < 0.2 * min(fit.weights_[:2])  # the noise specialist is (almost) dropped
    test = slice(300, None)
    fused = (fit.predict_proba(P[test], M[test]).argmax(1) == y[test]).mean()
    singles = [(P[test, s].argmax(1) == y[test]).mean() for s in range(2)]
    mean = (MeanFusion().fit(P, M).predict_proba(P[test], M[test]).argmax(1) == y[test]).mean()
    assert fused > max(singles) + 0.05 and fused > mean


def test_log_linear_fusion_with_missing_specialists_single_class_and_nobody():
    P, M, y = _independent_views(n=60, noise_specialist=False)
    M[::2, 0] = False
    M[1::4, 1] = False
    M[3, :] = False
    fit = LogLinearFusion().fit(P, M, y)
    out = fit.predict_proba(P, M)
    assert np.allclose(out.sum(1), 1.0) and np.allclose(out[3], 1 / 7)
    only_second = M[:, 1] & ~M[:, 0]
    # a clip seen by one specialist keeps that specialist's ranking (bias aside, it is a power of it)
    assert (out[only_second].argmax(1) == P[only_second, 1].argmax(1)).mean() > 0.8
    one_class = LogLinearFusion().fit(P, M, np.full(60, 2))
    assert (one_class.predict_proba(P, M)[M.any(1)].argmax(1) == 2).all()


def test_choice_of_fusion_prefers_the_simplest_within_one_standard_error():
    from emonets.fusion.model import choose_method

    rng = np.random.default_rng(4)
    y = rng.integers(0, 7, 150)
    one = rng.dirichlet(np.ones(7), 150)
    one[np.arange(150), y] += 0.8
    one /= one.sum(1, keepdims=True)
    P = np.stack([one, one], 1)  # two copies of one specialist: nothing to gain from weighting them
    method, cv = choose_method(P, np.ones((150, 2), bool), y, cv_draws=2000, repeats=2)
    assert method == "mean" and set(cv) == {"mean", "log_linear", "random_search", "learned"}

    P, M, y = _complementary(n=280, strength=0.6)  # each knows different classes: per-class weights pay
    method, cv = choose_method(P, M, y, cv_draws=5000, repeats=2)
    assert method in ("random_search", "learned") and cv[method] > cv["mean"] + 0.1
