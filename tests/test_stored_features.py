"""Training reads feature tables from the store in bounded batches of partitions and gets the
same per-clip arrays as decoding the whole table at once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emonets.stored_features import StoredClip, StoredFeatures, arrays_by_clip
from emonets.training_data import split_sets, with_views


def _mfcc_rows(clip_id: str, n: int, rng: np.random.Generator) -> pd.DataFrame:
    feats = rng.normal(size=(n, 6)).astype(np.float32)
    return pd.DataFrame({"clip_id": clip_id, "frame": np.arange(n, dtype=np.int32)[::-1],
                         "t": np.arange(n) / 100.0, "coeffs": list(feats), "duration": 1.0})


@pytest.fixture
def mfcc_store(store):
    """Five clips' mfcc partitions, each with a speed-perturbed copy "<clip>@1.1" beside the clip."""
    rng = np.random.default_rng(0)
    clips = pd.DataFrame({"clip_id": [f"c{i}" for i in range(5)], "label": ["happy", "sad", "angry", "", "fear"],
                          "split": ["train", "train", "train", "val", "val"]})
    for i, clip_id in enumerate(clips["clip_id"]):
        rows = pd.concat([_mfcc_rows(clip_id, 20 + i, rng), _mfcc_rows(f"{clip_id}@1.1", 18 + i, rng)])
        store.write("mfcc", rows, partition=clip_id)
    return store, clips


def test_batches_of_partitions_give_the_whole_table_s_arrays(mfcc_store, monkeypatch):
    store, clips = mfcc_store
    keys = list(clips["clip_id"])
    whole = arrays_by_clip("mfcc", "frame", store.read("mfcc", partitions=keys))
    read_sizes = []
    real_read = store.read
    monkeypatch.setattr(store, "read", lambda table, partitions=None, **kw:
                        read_sizes.append(len(partitions)) or real_read(table, partitions=partitions, **kw))
    batched = StoredFeatures(store, "mfcc", keys, batch_bytes=1).per_clip()  # one partition a batch
    assert read_sizes == [1] * 5
    assert sorted(batched) == sorted(whole) and len(whole) == 10
    for clip_id, array in whole.items():
        np.testing.assert_array_equal(batched[clip_id], array)
    assert list(StoredFeatures(store, "mfcc", keys).per_clip()) == list(batched)  # one batch: the same
    assert isinstance(batched["c0"], np.ndarray) and batched["c0"].shape[0] == 20


def test_split_sets_and_views_from_the_store_equal_those_from_rows(mfcc_store):
    store, clips = mfcc_store
    rows = store.read("mfcc")
    stored = StoredFeatures(store, "mfcc", list(clips["clip_id"]), batch_bytes=1)
    from_rows, from_store = split_sets(clips, rows, "audio"), split_sets(clips, stored, "audio")
    assert from_rows.keys() == from_store.keys() == {"train", "val"}
    for split in from_rows:
        a, b = from_rows[split], from_store[split]
        assert a.clip_ids == b.clip_ids and list(a.labels) == list(b.labels)
        for x, y in zip(a.items, b.items):
            np.testing.assert_array_equal(x, y)
    wide_rows = with_views(from_rows["train"], rows, "mfcc", "frame")
    wide_store = with_views(from_store["train"], stored, "mfcc", "frame")
    assert wide_store.clip_ids == wide_rows.clip_ids == ["c0", "c1", "c2", "c0@1.1", "c1@1.1", "c2@1.1"]
    assert list(wide_store.labels) == list(wide_rows.labels)
    np.testing.assert_array_equal(wide_store.items[4], wide_rows.items[4])


def test_a_clip_changed_under_a_lazy_read_is_an_error_not_wrong_data(store):
    rows = pd.DataFrame({"clip_id": "a", "block": np.arange(3, dtype=np.int32), "t": 0.0, "frame": 0, "y": 0, "x": 0,
                         "data": [bytes(2 * 4 * 4)] * 3, "depth": 2, "height": 4, "width": 4})
    store.write("motion_blocks", rows, partition="a")
    item = StoredFeatures(store, "motion_blocks", ["a"]).per_clip()["a"]
    assert isinstance(item, StoredClip) and len(item) == 3 and item.shape == (3, 2, 4, 4)
    assert np.asarray(item).shape == (3, 2, 4, 4)
    store.write("motion_blocks", rows.head(2), partition="a")
    with pytest.raises(RuntimeError, match="changed under the run"):
        np.asarray(item)


def test_training_keeps_augmented_copies_of_training_clips_only(mfcc_store):
    from emonets.training_data import needed_clip_ids

    store, clips = mfcc_store
    kept = StoredFeatures(store, "mfcc", list(clips["clip_id"]), keep=needed_clip_ids(clips, "audio")).per_clip()
    assert sorted(kept) == ["c0", "c0@1.1", "c1", "c1@1.1", "c2", "c2@1.1", "c3", "c4"]  # c3, c4 are val
    no_views = StoredFeatures(store, "mfcc", list(clips["clip_id"]), keep=needed_clip_ids(clips, "motion")).per_clip()
    assert sorted(no_views) == ["c0", "c1", "c2", "c3", "c4"]
