"""The per-clip intermediates cache: keyed by representation and clip content, atomic segments,
an unreadable segment only costs a recomputation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emonets.clip_cache import FolderClipCache, cached_per_clip, digest


def _values():
    return {"a": np.ones((3, 7), np.float32), "b": np.zeros((0, 7), np.float32),
            "c": np.arange(14, dtype=np.float32).reshape(2, 7)}


def test_a_second_run_computes_only_the_clips_whose_content_changed(tmp_path):
    values, calls = _values(), []

    def compute(idx):
        calls.append(list(idx))
        return [values["abc"[i]] for i in idx]

    first = FolderClipCache(tmp_path, {"a": "fa", "b": "fb", "c": "fc"})
    cached_per_clip(first, "net1", ["a", "b", "c"], compute)
    again = FolderClipCache(tmp_path, {"a": "fa", "b": "fb", "c": "fc-changed"})
    out = cached_per_clip(again, "net1", ["a", "b", "c"], compute)
    assert calls == [[0, 1, 2], [2]]
    assert again.counts() == {"hits": 2, "misses": 1, "written": 1}
    for got, key in zip(out, "abc"):
        np.testing.assert_array_equal(got, values[key])
        assert got.shape == values[key].shape
    other_net = FolderClipCache(tmp_path, {"a": "fa"})
    cached_per_clip(other_net, "net2", ["a"], compute)  # another representation: a miss
    assert calls[-1] == [0]
    assert not list(tmp_path.rglob("*.tmp*"))  # segments are written atomically


def test_clips_without_a_fingerprint_are_never_cached(tmp_path):
    cache = FolderClipCache(tmp_path, {"a": "fa"})
    cached_per_clip(cache, "k", ["a", "a#speed0.9"], lambda idx: [np.ones(2) * i for i in idx])
    assert cache.counts() == {"hits": 0, "misses": 1, "written": 1}


def test_an_unreadable_segment_means_recomputing_not_failing(tmp_path):
    cache = FolderClipCache(tmp_path, {"a": "fa"})
    cached_per_clip(cache, "k", ["a"], lambda idx: [np.ones(2)])
    (segment,) = (tmp_path / "k").glob("*.npz")
    segment.write_bytes(b"not a zip")
    again = FolderClipCache(tmp_path, {"a": "fa"})
    out = cached_per_clip(again, "k", ["a"], lambda idx: [np.full(2, 5.0)])
    np.testing.assert_array_equal(out[0], [5.0, 5.0])
    assert again.counts()["misses"] == 1


def test_digest_follows_weights_and_settings():
    w = {"layer": torch.ones(3)}
    assert digest(w, 48, "mirror") == digest({"layer": torch.ones(3)}, 48, "mirror")
    assert digest(w, 48, "mirror") != digest(w, 48, "affine")
    assert digest(w, 48, "mirror") != digest({"layer": torch.ones(3) * 1.001}, 48, "mirror")


def test_prune_keeps_only_the_representations_in_use(tmp_path):
    old = FolderClipCache(tmp_path, {"a": "fa"})
    cached_per_clip(old, "old-net", ["a"], lambda idx: [np.ones(2)])
    new = FolderClipCache(tmp_path, {"a": "fa"})
    assert new.prune() == 0  # asked about nothing yet: nothing is judged stale
    cached_per_clip(new, "new-net", ["a"], lambda idx: [np.zeros(2)])
    assert new.prune() == 1
    assert [p.name for p in tmp_path.iterdir()] == ["new-net"]


def test_loaded_segments_stay_within_the_memory_bound_and_values_still_come_back(tmp_path):
    ids = [f"c{i}" for i in range(6)]
    fps = {c: f"f{c}" for c in ids}
    value = {c: np.full((50, 100), i, np.float32) for i, c in enumerate(ids)}  # 20 kB each
    writer = FolderClipCache(tmp_path, fps)
    for pair in (ids[0:2], ids[2:4], ids[4:6]):  # three segments of two clips
        cached_per_clip(writer, "k", pair, lambda idx, pair=pair: [value[pair[i]] for i in idx])
    reader = FolderClipCache(tmp_path, fps, max_loaded_bytes=50_000)  # room for one segment at a time
    out = cached_per_clip(reader, "k", ids, lambda idx: pytest.fail("all were cached"))
    for c, got in zip(ids, out):
        np.testing.assert_array_equal(got, value[c])
    assert reader.counts() == {"hits": 6, "misses": 0, "written": 0}
    assert len(reader._segments) == 1  # the other two were dropped once read
