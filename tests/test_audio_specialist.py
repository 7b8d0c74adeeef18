"""Audio specialist: top-k pooling, learning a synthetic task, save/load, a real RAVDESS smoke run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emonets.specialists.audio.model import AudioConfig, AudioSpecialist
from emonets.specialists.audio.data import Augment, augment, collate
from emonets.specialists.audio.net import FrameMLP, top_pool
from emonets.specialists.base import ClipSet

torch.set_num_threads(1)

TINY = dict(hidden=(32,), context=1, dilation=1, stride=1, dropout=0.1, input_dropout=0.0, lr=1e-2,
            batch_size=16, patience=50, augment=Augment())


def burst_clips(n: int, seed: int, d: int = 8) -> ClipSet:
    """Clip of class c: noise frames with a short burst on feature c somewhere in the clip.

    Only a few frames carry the label, so a clip-level mean over frames dilutes it; top pooling
    picks it out.
    """
    rng = np.random.default_rng(seed)
    items, labels = [], []
    for i in range(n):
        c = i % 7
        t = int(rng.integers(30, 70))
        x = rng.normal(size=(t, d)).astype(np.float32)
        start = int(rng.integers(0, t - 6))
        x[start:start + 6, c] += 4.0
        items.append(x)
        labels.append(c)
    return ClipSet([f"c{i}" for i in range(n)], items, np.array(labels))


def test_top_pool_by_hand():
    # one clip, two classes, 5 frames of which the last 1 is padding (length 4)
    scores = torch.tensor([[[1.0, 5.0, 3.0, 2.0, 100.0],
                            [-1.0, -4.0, -2.0, -3.0, 100.0]]])
    lengths = torch.tensor([4])
    paper = top_pool(scores, lengths, weights=(0.7, 0.3))
    torch.testing.assert_close(paper, torch.tensor([[0.7 * 5 + 0.3 * 3, 0.7 * -1 + 0.3 * -2]]))
    top3 = top_pool(scores, lengths, k=3)
    torch.testing.assert_close(top3, torch.tensor([[(5 + 3 + 2) / 3, (-1 - 2 - 3) / 3]]))
    half = top_pool(scores, lengths, frac=0.5)  # ceil(0.5 * 4) = 2 frames
    torch.testing.assert_close(half, torch.tensor([[4.0, -1.5]]))
    # k larger than the clip: the mean of all its (unpadded) frames
    torch.testing.assert_close(top_pool(scores, lengths, k=10), torch.tensor([[11 / 4, -10 / 4]]))


def test_top_pool_per_clip_lengths_and_short_clips():
    scores = torch.tensor([[[1.0, 9.0, 9.0]], [[2.0, 0.0, 0.0]]])
    out = top_pool(scores, torch.tensor([3, 1]), weights=(0.7, 0.3))
    # the second clip has one frame: the weights renormalise over what exists
    torch.testing.assert_close(out, torch.tensor([[9.0], [2.0]]))
    with pytest.raises(ValueError):
        top_pool(scores, torch.tensor([3, 1]))


def test_frame_mlp_is_a_context_window_mlp():
    torch.manual_seed(0)
    net = FrameMLP(3, 7, hidden=(5,), context=2, dilation=2, stride=2, dropout=0.0, input_dropout=0.0).eval()
    x = torch.randn(1, 3, 11)
    out = net(x)
    assert out.shape == (1, 7, 6)  # ceil(11 / 2)
    # frame 3 of the output looks at input frame 6 and its neighbours at ±2, ±4
    window = x[0, :, [2, 4, 6, 8, 10]]
    first = net.net[1]
    h = torch.relu((first.weight * window[None]).sum(dim=(1, 2)) + first.bias)
    last = net.net[4]
    expected = last.weight[:, :, 0] @ h + last.bias
    torch.testing.assert_close(out[0, :, 3], expected)


def test_augment_keeps_shape_finite_and_changes_clip():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 4)).astype(np.float32)
    y = augment(x, Augment(tempo=0.2, crop_min=0.5, time_masks=2, mask_frames=10, noise=0.1, max_frames=60), rng)
    assert y.shape[1] == 4 and 1 <= len(y) <= 60 and np.isfinite(y).all()
    assert not np.array_equal(y, x[: len(y)])
    xb, lengths, labels = collate([(x[:10], 1), (x[:4], 2)])
    assert xb.shape == (2, 4, 10) and lengths.tolist() == [10, 4] and labels.tolist() == [1, 2]
    assert torch.all(xb[1, :, 4:] == 0)


def test_learns_an_easy_synthetic_task():
    train, test = burst_clips(140, seed=1), burst_clips(70, seed=2)
    model = AudioSpecialist(AudioConfig(**TINY, max_epochs=25, pool="k", pool_k=3)).fit(train)
    proba = model.predict_proba(test)
    assert proba.shape == (70, 7)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    accuracy = (proba.argmax(1) == test.labels).mean()
    assert accuracy >= 0.9, accuracy  # chance is 1/7
    # normalisation statistics come from the training clips only
    frames = np.concatenate(train.items)
    np.testing.assert_allclose(model.mean_, frames.mean(0), atol=1e-4)
    np.testing.assert_allclose(model.std_, frames.std(0), rtol=1e-4)


def test_save_load_gives_identical_predictions(tmp_path):
    train, val = burst_clips(28, seed=3), burst_clips(14, seed=4)
    config = AudioConfig(**{**TINY, "seeds": (0, 1)}, max_epochs=3, log_dir=str(tmp_path / "logs"))
    model = AudioSpecialist(config).fit(train, val)
    assert len(model.states_) == 2 and model.metrics_["epochs_trained"] == [3, 3]
    assert (tmp_path / "logs" / "seed0" / "version_0" / "metrics.csv").is_file()
    assert list((tmp_path / "logs" / "seed1" / "checkpoints").glob("*.ckpt"))
    path = model.save(tmp_path / "audio-bundle")
    again = AudioSpecialist.load(path)
    assert again.config == config
    np.testing.assert_array_equal(again.mean_, model.mean_)
    np.testing.assert_array_equal(again.predict_proba(val), model.predict_proba(val))
    assert again.metrics_["val_accuracy"] == model.metrics_["val_accuracy"]
    with pytest.raises(ValueError, match="expected"):
        model.predict_proba(ClipSet(["x"], [np.zeros((5, 3), np.float32)]))


def test_training_is_reproducible_with_a_fixed_seed():
    train = burst_clips(21, seed=5)
    config = AudioConfig(**TINY, max_epochs=2)
    a = AudioSpecialist(config).fit(train).predict_proba(train)
    b = AudioSpecialist(config).fit(train).predict_proba(train)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_smoke_on_real_ravdess(shared):
    from emonets.labels import LABEL_INDEX
    from emonets.features.rows import clip_array
    from emonets.features.mfcc import PAPER_MFCC, extract_mfcc

    root = shared("ravdess-speech")
    emotions = {"05": "angry", "04": "sad"}
    clips, items, labels = [], [], []
    for actor in ("01", "02"):
        for code, name in emotions.items():
            for path in sorted((root / f"Actor_{actor}").glob(f"03-01-{code}-02-*-01-{actor}.flac")):
                clips.append(path.stem)
                items.append(clip_array("mfcc", extract_mfcc(path, clip_id=path.stem, config=PAPER_MFCC)))
                labels.append(LABEL_INDEX[name])
    data = ClipSet(clips, items, np.array(labels))
    assert len(data) == 8
    train, val = data.subset(np.array([c.endswith("-01") for c in clips])), data.subset(
        np.array([c.endswith("-02") for c in clips]))
    model = AudioSpecialist(AudioConfig(hidden=(16, 16), max_epochs=2, batch_size=4)).fit(train, val)
    proba = model.predict_proba(val)
    assert proba.shape == (4, 7) and np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    history = model.history_[0]["epochs"]
    assert len(history) == 2 and all(e["seconds"] > 0 and e["val_loss"] is not None for e in history)


def test_streamed_normaliser_equals_the_whole_training_set_s_statistics():
    """Fitted one clip at a time (memory flat in the clip count), the same as over all frames."""
    from emonets.specialists.audio.data import fit_normaliser, utterance_centre

    rng = np.random.default_rng(0)
    items = [rng.normal(3.0, 2.0, size=(n, 5)).astype(np.float32) for n in (7, 0, 30, 12)]
    mean, std = fit_normaliser(items, centre_columns=2)
    frames = np.concatenate([utterance_centre(x, 2) for x in items if len(x)]).astype(np.float64)
    np.testing.assert_allclose(mean, frames.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, frames.std(0), rtol=1e-5)
    assert abs(mean[:2]).max() < 1e-5 and abs(mean[2:] - 3.0).max() < 1.0  # centred columns only
    with pytest.raises(ValueError, match="no frames"):
        fit_normaliser([np.zeros((0, 5), np.float32)])


def test_warm_start_continues_from_the_previous_networks():
    """A warm fit starts where the previous model ended: its first epoch's training loss is far
    below a new network's, its normaliser is the previous one, and it still scores held-out clips."""
    train, test = burst_clips(140, seed=1), burst_clips(70, seed=2)
    config = AudioConfig(**TINY, max_epochs=15, pool="k", pool_k=3)
    previous = AudioSpecialist(config).fit(train)
    more = burst_clips(147, seed=1)  # the same clips and 7 more (the generator is deterministic)
    warm = AudioSpecialist(config).fit_warm(previous, more)
    assert [len(h["epochs"]) for h in warm.history_] == [AudioSpecialist.warm_epochs] * len(config.seeds)
    np.testing.assert_array_equal(warm.mean_, previous.mean_)
    first_loss = warm.history_[0]["epochs"][0]["train_loss"]
    scratch_loss = previous.history_[0]["epochs"][0]["train_loss"]
    assert first_loss < 0.7 * scratch_loss, (first_loss, scratch_loss)
    assert (warm.predict_proba(test).argmax(1) == test.labels).mean() >= 0.85
    assert "fine-tuned" in warm.warm_start_
