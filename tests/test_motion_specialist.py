"""Motion specialist: the synchrony autoencoder learns structured motion, the chi2 SVM separates
two directions of motion, bundles reload identically, and a real CREMA-D clip goes through."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emonets.labels import LABEL_INDEX
from emonets.specialists.base import ClipSet
from emonets.specialists.coding import contrast_normalise, fit_whitening
from emonets.specialists.motion.model import MotionSpecialist, MotionSpecialistConfig, chi2_distances
from emonets.specialists.motion.autoencoder import SynchronyAE, train_autoencoder

TINY = MotionSpecialistConfig(n_hidden=32, n_words=16, max_epochs=6, batch_size=64, lr=3e-3, max_pca_components=64,
                              kmeans_iter=20)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: one torch/BLAS/OpenMP thread is faster than two fighting over the cores."""
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


def gratings(n: int, direction: int, rng: np.random.Generator, *, depth: int = 6, size: int = 8) -> np.ndarray:
    """(n, depth, size, size) uint8 blocks of near-vertical gratings drifting right (+1) or left (-1)."""
    t = np.arange(depth)[:, None, None]
    yy, xx = np.mgrid[0:size, 0:size]
    out = np.empty((n, depth, size, size), np.uint8)
    for i in range(n):
        theta, period = rng.uniform(-0.4, 0.4), rng.uniform(4, 7)
        speed, phase = rng.uniform(0.6, 1.2) * direction, rng.uniform(0, 2 * np.pi)
        pos = (np.cos(theta) * xx + np.sin(theta) * yy)[None] - speed * t
        img = 128 + 60 * np.sin(2 * np.pi * pos / period + phase) + rng.normal(0, 6, (depth, size, size))
        out[i] = np.clip(img, 0, 255)
    return out


def two_directions(n_per_class: int, seed: int, blocks: int = 40) -> ClipSet:
    """Clips of gratings moving right ('happy') or left ('sad'): the same images, opposite motion."""
    rng = np.random.default_rng(seed)
    items, labels = [], []
    for label, direction in ((LABEL_INDEX["happy"], 1), (LABEL_INDEX["sad"], -1)):
        for _ in range(n_per_class):
            items.append(gratings(blocks, direction, rng))
            labels.append(label)
    return ClipSet([f"s{seed}-{i}" for i in range(len(items))], items, np.array(labels))


def _whitened(blocks: np.ndarray) -> np.ndarray:
    flat = contrast_normalise(blocks.reshape(len(blocks), -1))
    return fit_whitening(flat).transform(flat)


def test_product_units_ignore_the_sign_of_the_input():
    net = SynchronyAE(10, 4)
    x = torch.randn(3, 10)
    assert torch.allclose(net.encode(x), net.encode(-x))
    recon, codes = net(x)
    assert recon.shape == (3, 10) and codes.shape == (3, 4) and bool(((codes > 0) & (codes < 1)).all())


def test_autoencoder_learns_moving_gratings_but_not_noise():
    rng = np.random.default_rng(0)
    moving = np.concatenate([gratings(600, 1, rng), gratings(600, -1, rng)])
    noise = rng.integers(0, 256, size=moving.shape, dtype=np.uint8)
    fits = {name: train_autoencoder(_whitened(blocks), n_hidden=32, lr=3e-3, max_epochs=8, batch_size=32, seed=0)
            for name, blocks in (("moving", moving), ("noise", noise))}
    moving_fit, noise_fit = fits["moving"], fits["noise"]
    assert len(moving_fit.epoch_seconds) == 8 and moving_fit.precision == "32-true"
    assert moving_fit.final_loss < 0.2 * moving_fit.initial_loss
    assert moving_fit.final_loss < 0.5 * noise_fit.final_loss
    # the denoising objective falls on structure; on white noise a zeroed input cannot be guessed
    assert moving_fit.history[-1]["train_loss"] < 0.7 * moving_fit.history[0]["train_loss"]
    assert moving_fit.history[-1]["train_loss"] < 0.6 * noise_fit.history[-1]["train_loss"]


def test_early_stopping_uses_the_validation_split(tmp_path):
    rng = np.random.default_rng(1)
    x = _whitened(gratings(400, 1, rng))
    result = train_autoencoder(x[:300], x[300:], n_hidden=16, max_epochs=3, batch_size=64, work_dir=tmp_path)
    assert "val_loss" in result.history[-1] and "val_recon" in result.history[-1]
    assert (tmp_path / "checkpoints" / "best.ckpt").is_file()
    assert list((tmp_path / "motion_ae").glob("version_*/metrics.csv"))


@pytest.fixture(scope="module")
def fitted():
    unlabelled = two_directions(2, seed=9)
    train = two_directions(8, seed=0)
    train = ClipSet(train.clip_ids + unlabelled.clip_ids, train.items + unlabelled.items,
                    np.concatenate([train.labels, np.full(len(unlabelled), -1)]))
    return MotionSpecialist(TINY).fit(train, two_directions(2, seed=5))


def test_svm_separates_two_directions_of_motion(fitted):
    test = two_directions(6, seed=1)
    proba = fitted.predict_proba(test)
    assert proba.shape == (12, 7) and proba.sum(axis=1) == pytest.approx(1.0)
    assert (proba.argmax(axis=1) == test.labels).mean() >= 0.9
    m = fitted.metrics_
    assert m["svm_clips"] == 16 and m["train_blocks"] == 20 * 40  # unlabelled clips feed the AE only
    assert m["ae_final_loss"] < m["ae_initial_loss"] and m["calibrated"]
    assert "val_accuracy" in m


def test_bundle_reload_gives_identical_predictions(fitted, tmp_path):
    test = two_directions(3, seed=2)
    test = ClipSet(test.clip_ids + ["empty"], test.items + [np.zeros((0, 6, 8, 8), np.uint8)])
    before = fitted.predict_proba(test)
    assert np.isnan(before[-1]).all() and np.isfinite(before[:-1]).all()
    loaded = MotionSpecialist.load(fitted.save(tmp_path / "motion"))
    assert loaded.config == fitted.config
    np.testing.assert_array_equal(loaded.predict_proba(test), before)
    with pytest.raises(ValueError, match="fitted on"):
        loaded.predict_proba(ClipSet(["odd"], [np.zeros((3, 10, 16, 16), np.uint8)]))


def test_one_clip_per_class_falls_back_to_a_softmax():
    train = two_directions(1, seed=3, blocks=30)
    model = MotionSpecialist(TINY).fit(train)
    assert model.calibrator_ is None
    proba = model.predict_proba(train)
    assert (proba.argmax(axis=1) == train.labels).all()  # consistent with the SVM's own decisions


def test_chi2_distance_by_hand():
    x = np.array([[0.5, 0.5, 0.0]])
    y = np.array([[0.25, 0.25, 0.5], [0.5, 0.5, 0.0]])
    # (0.25^2 / 0.75) * 2 + 0.5^2 / 0.5 = 1/6 + 1/2
    assert chi2_distances(x, y) == pytest.approx(np.array([[1 / 6 + 0.5, 0.0]]))


def test_real_cremad_blocks(shared):
    from emonets.features.rows import clip_array
    from emonets.features.motion_blocks import MotionConfig, extract_motion_blocks

    cfg = MotionConfig(max_blocks_per_clip=300)
    names = ("1001_DFA_HAP_XX", "1001_DFA_SAD_XX")
    items = [clip_array("motion_blocks", extract_motion_blocks(shared("crema-d", f"{n}.flv"), clip_id=n, config=cfg)) for n in names]
    data = ClipSet(list(names), items, np.array([LABEL_INDEX["happy"], LABEL_INDEX["sad"]]))
    model = MotionSpecialist(MotionSpecialistConfig(n_hidden=16, n_words=8, max_epochs=2, max_pca_components=32,
                                                    kmeans_iter=10)).fit(data)
    proba = model.predict_proba(data)
    assert proba.shape == (2, 7) and np.isfinite(proba).all() and proba.sum(axis=1) == pytest.approx(1.0)
    assert model.metrics_["ae_final_loss"] < model.metrics_["ae_initial_loss"]


def test_training_leaves_torch_global_flags_as_found():
    before = torch.are_deterministic_algorithms_enabled()
    x = _whitened(gratings(100, 1, np.random.default_rng(3)))
    train_autoencoder(x, n_hidden=8, max_epochs=1, batch_size=50)
    assert torch.are_deterministic_algorithms_enabled() == before


def _store_blocks(store, cs: ClipSet) -> None:
    """Each clip's blocks as its own `motion_blocks` partition, the way extraction writes them."""
    import pandas as pd

    for clip_id, blocks in zip(cs.clip_ids, cs.items):
        depth, h, w = blocks.shape[1:]
        n = len(blocks)
        store.write("motion_blocks", pd.DataFrame({
            "clip_id": [clip_id] * n, "block": np.arange(n, dtype=np.int32)[::-1], "t": np.zeros(n),
            "frame": np.zeros(n, np.int32), "y": np.zeros(n, np.int32), "x": np.zeros(n, np.int32),
            "data": [b.tobytes() for b in blocks[::-1]], "depth": np.full(n, depth, np.int32),
            "height": np.full(n, h, np.int32), "width": np.full(n, w, np.int32)}), partition=clip_id)


def test_training_from_the_store_keeps_blocks_on_disk_and_fits_the_same_model(store, monkeypatch):
    """Lazy items (what `train` uses: StoredFeatures) hold no blocks and give the model the
    in-memory arrays give; each clip is read once to sample the whitening and AE blocks."""
    from emonets.stored_features import StoredClip, StoredFeatures

    train, val = two_directions(8, seed=0), two_directions(2, seed=5)
    _store_blocks(store, train)
    _store_blocks(store, val)
    per_clip = StoredFeatures(store, "motion_blocks", train.clip_ids + val.clip_ids).per_clip()
    assert all(isinstance(item, StoredClip) for item in per_clip.values())
    assert per_clip[train.clip_ids[0]].shape == train.items[0].shape
    np.testing.assert_array_equal(np.asarray(per_clip[train.clip_ids[3]]), train.items[3])  # block order restored

    def lazy(cs: ClipSet) -> ClipSet:
        return ClipSet(cs.clip_ids, [per_clip[c] for c in cs.clip_ids], cs.labels)

    reads = []
    real_load = StoredClip.load
    monkeypatch.setattr(StoredClip, "load", lambda self: reads.append(self.clip_id) or real_load(self))
    from_store = MotionSpecialist(TINY).fit(lazy(train), lazy(val))
    sampling_reads = reads[: len(train)]
    assert sorted(sampling_reads) == sorted(train.clip_ids)  # whitening + AE samples: one read per clip
    in_memory = MotionSpecialist(TINY).fit(train, val)
    test = two_directions(3, seed=2)
    np.testing.assert_allclose(from_store.predict_proba(test), in_memory.predict_proba(test), atol=1e-6)
    assert from_store.metrics_["train_accuracy"] == in_memory.metrics_["train_accuracy"]


def test_warm_start_keeps_the_representation_and_reads_only_new_clips(tmp_path):
    """fit_warm re-fits the SVM on the new set from the previous model's whitening, autoencoder and
    words; with the clip cache, a known clip's bag of words is never recomputed."""
    from emonets.clip_cache import FolderClipCache

    train = two_directions(6, seed=0)
    ids = {c: f"fp-{c}" for c in train.clip_ids}
    first = MotionSpecialist(TINY)
    first.clip_cache = FolderClipCache(tmp_path, ids)
    first.fit(train)
    added = two_directions(1, seed=3)
    bigger = ClipSet(train.clip_ids + ["new-0", "new-1"], train.items + added.items,
                     np.concatenate([train.labels, added.labels]))
    warm = MotionSpecialist(TINY)
    warm.clip_cache = FolderClipCache(tmp_path, {**ids, "new-0": "fp-n0", "new-1": "fp-n1"})
    warm.fit_warm(MotionSpecialist.load(first.save(tmp_path / "bundle")), bigger)
    assert warm.clip_cache.counts()["misses"] == 2 and warm.clip_cache.counts()["hits"] == 12
    assert warm.representation_key() == first.representation_key()
    np.testing.assert_array_equal(warm.words_, first.words_)
    assert warm.metrics_["svm_clips"] == 14 and "kept from the previous model" in warm.warm_start_
    # the cached histograms are the ones the model computes itself
    direct = np.stack([warm.histogram(x) for x in bigger.items])
    np.testing.assert_allclose(warm.train_hist_, direct, atol=1e-12)
    test = two_directions(6, seed=1)
    assert (warm.predict_proba(test).argmax(axis=1) == test.labels).mean() >= 0.9
