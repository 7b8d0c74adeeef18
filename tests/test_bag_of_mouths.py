"""Bag of mouths: the coding steps on hand-made values, learning a synthetic task, bundles, FER."""

from __future__ import annotations

import numpy as np
import pytest

from emonets.labels import LABEL_INDEX
from emonets.specialists.bag_of_mouths.model import BagOfMouths, BagOfMouthsConfig, region_edges, region_patches
from emonets.specialists.base import ClipSet
from emonets.specialists.coding import (
    contrast_normalise,
    fit_whitening,
    nearest_centroid,
    triangle_encode,
)

@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """k-means and BLAS on one thread: tiny problems only lose time to thread hand-offs."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


TINY = BagOfMouthsConfig(grid=(2, 4), patch=5, n_centroids=12, kmeans_patches_per_frame=4,
                         max_kmeans_patches=4000, kmeans_iter=20, C=1.0)


def test_triangle_encoding_on_hand_made_values():
    centroids = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    # distances [0, 5, 10], mean 5 -> [5, 0, 0]; distances [5, 0, 5], mean 10/3 -> [0, 10/3, 0]
    codes = triangle_encode(np.array([[0.0, 0.0], [3.0, 4.0]]), centroids)
    assert codes == pytest.approx(np.array([[5.0, 0.0, 0.0], [0.0, 10 / 3, 0.0]]), abs=1e-5)
    # equidistant from all centroids: nothing fires
    assert triangle_encode(np.array([[1.0, 1.0]]), np.array([[0.0, 1.0], [2.0, 1.0]])) == pytest.approx(0.0)
    assert list(nearest_centroid(np.array([[5.0, 7.0], [0.1, 0.0]]), centroids)) == [2, 0]


def test_contrast_normalisation_keeps_flat_rows_flat():
    x = np.array([[10.0, 20.0, 30.0, 40.0], [7.0, 7.0, 7.0, 7.0], [0.0, 255.0, 0.0, 255.0]])
    out = contrast_normalise(x, eps=10.0)
    assert out.mean(axis=1) == pytest.approx(0.0, abs=1e-5)
    assert np.all(out[1] == 0)
    assert out[2].std() == pytest.approx(127.5 / np.sqrt(127.5**2 + 10), rel=1e-4)


def test_whitening_decorrelates_and_keeps_the_asked_variance():
    rng = np.random.default_rng(0)
    scales = np.array([10.0, 5.0, 1.0, 0.1])  # variances 100, 25, 1, 0.01 of 126.01
    x = rng.normal(size=(20000, 4)) * scales @ np.linalg.qr(rng.normal(size=(4, 4)))[0]
    assert fit_whitening(x, variance=0.75).n_components == 1
    assert fit_whitening(x, variance=0.95).n_components == 2
    assert fit_whitening(x, variance=0.95, max_components=1).n_components == 1
    white = fit_whitening(x, variance=0.999, eps=0.0)
    assert white.n_components == 3
    cov = np.cov(white.transform(x).T)
    assert cov == pytest.approx(np.eye(3), abs=0.05)


def test_regions_and_dense_patches():
    edges = region_edges((16, 28), (2, 4), 5)
    assert edges[0] == (0, 8, 0, 7) and edges[-1] == (8, 16, 21, 28) and len(edges) == 8
    frames = np.arange(2 * 16 * 28, dtype=np.uint8).reshape(2, 16, 28)
    patches = region_patches(frames, edges[5], 5)  # rows 8..16, cols 7..14: 4 x 3 patches
    assert patches.shape == (2, 12, 25)
    assert np.array_equal(patches[1, 0].reshape(5, 5), frames[1, 8:13, 7:12])
    with pytest.raises(ValueError, match="smaller"):
        region_edges((16, 28), (4, 4), 5)


def _mouth(kind: int, rng: np.random.Generator) -> np.ndarray:
    """A 16x28 grey mouth: 0 = open (dark ellipse), 1 = closed (thin dark line)."""
    yy, xx = np.mgrid[0:16, 0:28]
    cy, cx = 8 + rng.integers(-1, 2), 14 + rng.integers(-2, 3)
    skin = rng.uniform(130, 190)
    img = np.full((16, 28), skin)
    if kind == 0:
        img[((yy - cy) / 4.5) ** 2 + ((xx - cx) / 8.0) ** 2 <= 1] = skin - 90
    else:
        img[(np.abs(yy - cy) <= 0) & (np.abs(xx - cx) <= 9)] = skin - 70
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


def _clips(n_per_class: int, frames: int, seed: int) -> ClipSet:
    rng = np.random.default_rng(seed)
    items, labels = [], []
    for label, kind in ((LABEL_INDEX["surprise"], 0), (LABEL_INDEX["neutral"], 1)):
        for _ in range(n_per_class):
            items.append(np.stack([_mouth(kind, rng) for _ in range(frames)]))
            labels.append(label)
    return ClipSet([f"c{seed}-{i}" for i in range(len(items))], items, np.array(labels))


@pytest.fixture(scope="module")
def fitted():
    return BagOfMouths(TINY).fit(_clips(30, 2, seed=0))


def test_learns_an_easy_two_class_task(fitted):
    test = _clips(20, 3, seed=1)
    proba = fitted.predict_proba(test)
    assert proba.shape == (40, 7)
    assert proba.sum(axis=1) == pytest.approx(1.0)
    assert np.all(proba[:, [0, 1, 2, 3, 5]] == 0)  # classes never seen in training get 0
    assert (proba.argmax(axis=1) == test.labels).mean() >= 0.95
    assert fitted.metrics_["whitening_components"] and fitted.encode(test.items[0]).shape == (3, 8 * 12)


def test_clip_probability_is_the_mean_of_its_frames(fitted):
    frames = _clips(1, 4, seed=2).items[0]
    per_frame = fitted.frame_proba(frames)
    clip = fitted.predict_proba(ClipSet(["x"], [frames]))
    assert clip[0] == pytest.approx(per_frame.mean(axis=0))


def test_bundle_reload_gives_identical_predictions(fitted, tmp_path):
    test = _clips(5, 2, seed=3)
    test = ClipSet(test.clip_ids + ["empty"], test.items + [np.zeros((0, 16, 28), np.uint8)])
    before = fitted.predict_proba(test)
    assert np.isnan(before[-1]).all() and not np.isnan(before[:-1]).any()
    loaded = BagOfMouths.load(fitted.save(tmp_path / "bom"))
    assert loaded.config == fitted.config
    np.testing.assert_array_equal(loaded.predict_proba(test), before)
    with pytest.raises(ValueError, match="fitted on"):
        loaded.predict_proba(ClipSet(["odd"], [np.zeros((1, 20, 28), np.uint8)]))


def test_needs_two_classes():
    one = _clips(3, 1, seed=4).subset(np.array([True] * 3 + [False] * 3))
    with pytest.raises(ValueError, match="two classes"):
        BagOfMouths(TINY).fit(one)


def test_real_fer_mouths(shared):
    from emonets.media.images import load_grey_images

    root = shared("fer2013")
    paths, labels = [], []
    for name in ("happy", "surprise", "neutral"):
        for path in sorted((root / "train" / name).glob("*.jpg"))[:12]:
            paths.append(path)
            labels.append(LABEL_INDEX[name])
    ids = [f"{p.parent.name}/{p.stem}" for p in paths]
    mouths = load_grey_images(paths)[:, 30:46, 10:38]
    train = ClipSet(ids, list(mouths[:, None]), np.array(labels))
    model = BagOfMouths(TINY).fit(train)
    val_paths = sorted((root / "val" / "happy").glob("*.jpg"))[:4]
    val = load_grey_images(val_paths)[:, 30:46, 10:38]
    proba = model.predict_proba(ClipSet([p.stem for p in val_paths], list(val[:, None])))
    assert proba.shape == (4, 7) and np.isfinite(proba).all()
    assert proba.sum(axis=1) == pytest.approx(1.0)
    assert model.metrics_["train_frames"] == 36


def test_whitening_with_fewer_rows_than_dimensions_matches_the_covariance_route():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 10)) @ rng.normal(size=(10, 200))
    few = fit_whitening(x, variance=0.99, eps=0.0)           # 60 rows < 200 dims: Gram route
    many = fit_whitening(np.concatenate([x, x]), variance=0.99, eps=0.0)  # same data twice: 120 rows
    few2 = fit_whitening(np.concatenate([x, x, x, x]), variance=0.99, eps=0.0)  # 240 rows: covariance route
    assert few.n_components == many.n_components == few2.n_components <= 10
    assert np.abs(few.transform(x)) == pytest.approx(np.abs(few2.transform(x)), abs=1e-3)
    assert np.cov(few.transform(x).T, bias=True) == pytest.approx(np.eye(few.n_components), abs=1e-3)


def test_predicting_in_groups_of_clips_equals_one_pass(fitted):
    """predict_proba encodes a few chunks of clips at a time (bounded memory): same figures."""
    import dataclasses

    test = _clips(10, 3, seed=4)
    test = ClipSet(test.clip_ids + ["none"], test.items + [test.items[0][:0]], np.r_[test.labels, -1])
    small = BagOfMouths(dataclasses.replace(fitted.config, chunk=4))
    for name, value in vars(fitted).items():
        if name.endswith("_"):
            setattr(small, name, value)
    one, grouped = fitted.predict_proba(test), small.predict_proba(test)
    assert np.isnan(grouped[-1]).all()
    np.testing.assert_allclose(grouped, one, atol=1e-6)


def test_training_frames_are_bounded_in_all():
    import dataclasses

    data = _clips(10, 8, seed=5)  # 20 clips of 8 frames
    model = BagOfMouths(dataclasses.replace(TINY, max_frames_per_clip=6, max_train_frames=40))
    frames, labels = model._training_frames(data)
    assert len(frames) == 40 and len(labels) == 40  # 2 a clip, not 6
    frames, _ = BagOfMouths(dataclasses.replace(TINY, max_frames_per_clip=6, max_train_frames=None))._training_frames(data)
    assert len(frames) == 120


def test_warm_start_keeps_the_dictionaries_and_refits_the_classifier(fitted):
    more = _clips(33, 2, seed=4)
    warm = BagOfMouths(TINY).fit_warm(fitted, more)
    assert all(w is p for w, p in zip(warm.centroids_, fitted.centroids_))  # the dictionaries, as they were
    assert warm.classifier_ is not fitted.classifier_ and warm.metrics_["train_frames"] == 66 * 2
    test = _clips(20, 3, seed=1)
    assert (warm.predict_proba(test).argmax(axis=1) == test.labels).mean() >= 0.95
    assert "kept from the previous model" in warm.warm_start_
    with pytest.raises(ValueError, match="previous model took"):
        BagOfMouths(TINY).fit_warm(fitted, ClipSet(["a", "b"], [np.zeros((2, 12, 20), np.uint8)] * 2,
                                                   np.array([0, 1])))


def test_a_warm_refit_encodes_only_the_clips_the_cache_does_not_hold(tmp_path):
    """After one added clip only that clip's frames go through the dictionaries again; the
    cached codes give the same model as encoding everything afresh."""
    from emonets.clip_cache import FolderClipCache

    data = _clips(20, 3, seed=5)
    fps = {c: f"content-{c}" for c in data.clip_ids}
    first = BagOfMouths(TINY)
    first.clip_cache = FolderClipCache(tmp_path, fps)
    first.fit(data)
    assert first.clip_cache.counts()["written"] == len(data)

    extra = _clips(1, 3, seed=6)  # one more clip a class
    more = ClipSet(data.clip_ids + extra.clip_ids, data.items + extra.items, np.concatenate([data.labels, extra.labels]))
    more_fps = {c: f"content-{c}" for c in more.clip_ids}
    encoded = []
    warm = BagOfMouths(TINY)
    warm.clip_cache = FolderClipCache(tmp_path, more_fps)
    real_encode = warm.encode
    warm.encode = lambda frames: (encoded.append(len(frames)), real_encode(frames))[1]
    warm.fit_warm(first, more)
    assert encoded == [6]  # the two added clips' three frames each, once
    fresh = BagOfMouths(TINY).fit_warm(first, more)  # no cache: everything encoded
    np.testing.assert_allclose(warm.predict_proba(more), fresh.predict_proba(more), atol=1e-12)


def test_a_warm_refit_starts_the_solver_from_the_previous_weights_and_reaches_the_same_model():
    data = _clips(20, 3, seed=5)
    import dataclasses

    config = dataclasses.replace(TINY, C=0.05, max_iter=2000)
    first = BagOfMouths(config).fit(data)
    extra = _clips(1, 3, seed=6)
    more = ClipSet(data.clip_ids + extra.clip_ids, data.items + extra.items, np.concatenate([data.labels, extra.labels]))
    warm = BagOfMouths(config).fit_warm(first, more)
    cold = BagOfMouths(config)
    for attr in ("patch_shape_", "edges_", "whitenings_", "centroids_"):
        setattr(cold, attr, getattr(first, attr))
    cold._fit_head(more, None)  # the same head from zero weights
    assert warm.metrics_["solver_iterations"] < cold.metrics_["solver_iterations"]
    np.testing.assert_allclose(warm.predict_proba(more), cold.predict_proba(more), atol=2e-3)
    assert warm.classifier_[-1].warm_start is False
