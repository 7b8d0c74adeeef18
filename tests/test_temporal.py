"""Temporal pooling of frame probabilities into the 10-segment (70-d) clip vector."""

from __future__ import annotations

import numpy as np
import pytest

from emonets.specialists.temporal import segment_pool


def _probs(t: int, c: int = 7, seed: int = 0) -> np.ndarray:
    p = np.random.default_rng(seed).random((t, c))
    return p / p.sum(1, keepdims=True)


@pytest.mark.parametrize("t", [1, 3, 9, 10, 11, 25, 103])
def test_shape_and_rows_stay_distributions(t):
    v = segment_pool(_probs(t))
    assert v.shape == (70,) and v.dtype == np.float32
    np.testing.assert_allclose(v.reshape(10, 7).sum(1), 1.0, rtol=1e-5)


def test_segments_average_equal_chunks_in_order():
    p = _probs(20)
    v = segment_pool(p).reshape(10, 7)
    for k in range(10):
        np.testing.assert_allclose(v[k], p[2 * k:2 * k + 2].mean(0), rtol=1e-6)


def test_uneven_length_covers_every_frame_once():
    p = _probs(23)
    v = segment_pool(p).reshape(10, 7)
    edges = np.floor(np.arange(11) * 23 / 10).astype(int)
    sizes = np.diff(edges)
    assert sizes.sum() == 23 and sizes.min() >= 2
    # the size-weighted mean of the segments is the mean of all frames
    np.testing.assert_allclose((v * sizes[:, None]).sum(0) / 23, p.mean(0), rtol=1e-5)


def test_exactly_ten_frames_is_the_frames_themselves():
    p = _probs(10)
    np.testing.assert_allclose(segment_pool(p), p.reshape(-1), rtol=1e-6)


def test_short_clip_is_stretched_in_time_order():
    p = np.eye(3)  # 3 frames, each "votes" a different class
    v = segment_pool(p, segments=10).reshape(10, 3)
    winners = v.argmax(1)
    assert np.all(np.diff(winners) >= 0)  # order is kept
    assert set(winners) == {0, 1, 2}  # every frame is used
    assert np.all(np.isin(v, [0.0, 1.0]))  # each segment is one frame, not a blend
    np.testing.assert_allclose(segment_pool(p[:1]).reshape(10, 3), np.tile(p[:1], (10, 1)))


def test_other_segment_counts():
    assert segment_pool(_probs(40), segments=4).shape == (28,)


@pytest.mark.parametrize("bad", [np.zeros((0, 7)), np.zeros(7), np.zeros((2, 3, 7))])
def test_bad_input_raises(bad):
    with pytest.raises(ValueError):
        segment_pool(bad)
