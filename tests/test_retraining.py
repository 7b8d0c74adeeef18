"""The warm-or-full rule: which clips changed (from fingerprints) and what that decides."""

from __future__ import annotations

import pandas as pd

from emonets.retraining import RetrainPolicy, clip_fingerprints, decide, diff

INPUTS = {"specialist": "audio", "data": "d1", "config": {}, "max_epochs": None, "library_version": "1"}


def _clips(n: int) -> dict[str, str]:
    return {f"c{i:03d}": f"f{i}" for i in range(n)}


def test_diff_names_added_removed_and_changed_clips():
    before, after = _clips(4), {**_clips(3), "c001": "other", "new": "x"}
    changes = diff(before, after)
    assert (changes.added, changes.removed, changes.changed, changes.previous) == (["new"], ["c003"], ["c001"], 4)
    assert changes.summary()["added"] == 1 and changes.summary()["changed_ids"] == ["c001"]


def test_one_added_clip_is_warm_and_everything_else_follows_the_rule():
    now = {**INPUTS, "data": "d2"}
    before = _clips(200)
    one_more = {**before, "new": "x"}
    assert decide(INPUTS, INPUTS, before, before).mode == "reuse"
    warm = decide(INPUTS, now, before, one_more)
    assert warm.mode == "warm" and "1 added" in warm.reason and warm.to_dict()["changes"]["added_ids"] == ["new"]
    assert decide(None, now, None, one_more).reason == "no previous model"
    assert "config" in decide(INPUTS, {**now, "config": {"lr": 1}}, before, one_more).reason
    assert "library version" in decide(INPUTS, {**now, "library_version": "2"}, before, one_more).reason
    assert decide(INPUTS, now, None, one_more).mode == "full"  # an old bundle without a clip map
    assert decide(INPUTS, now, before, one_more, RetrainPolicy(full=True)).mode == "full"
    many = {**before, **{f"n{i}": "x" for i in range(30)}}  # 15% added
    assert decide(INPUTS, now, before, many).mode == "full"
    one_removed = dict(list(before.items())[1:])  # 0.5% removed: fine-tuning may keep it
    assert decide(INPUTS, now, before, one_removed).mode == "warm"
    three_removed = dict(list(before.items())[3:])  # 1.5% removed: above the removal threshold
    lost = decide(INPUTS, now, before, three_removed)
    assert lost.mode == "full" and "un-learn" in lost.reason
    withdrawn = decide(INPUTS, now, before, one_removed, RetrainPolicy(withdrawn=frozenset({"c000"})))
    assert withdrawn.mode == "full" and "withdrawn" in withdrawn.reason


def test_fingerprints_follow_content_label_and_split_not_the_shared_partition(store):
    """FER images share a partition: adding one image leaves the others' fingerprints alone."""
    from emonets.features.extraction import work_units

    clips = pd.DataFrame({"clip_id": ["a", "b"], "path": ["/x/a.png", "/x/b.png"], "path_bytes": [b"/x/a.png", b"/x/b.png"],
                          "sha256": ["sa", "sb"], "label": ["happy", "sad"], "split": ["train", "train"],
                          "speaker": "", "dataset": "fer2013", "media": "image", "has_audio": False,
                          "has_video": False, "duration": 0.0, "fps": 0.0})
    clips = clips[[f.name for f in store.catalog["clips"].schema]]

    def write(frame: pd.DataFrame) -> dict[str, str]:
        store.write("clips", frame, partition="root")
        for unit in work_units(frame):
            store.write("faces", _face_rows(unit.clip_ids), partition=unit.key, config={"size": 48})
        return clip_fingerprints(store, "face_cnn", ["root"])

    first = write(clips)
    assert set(first) == {"a", "b"}
    extra = pd.concat([clips, clips.iloc[[0]].assign(clip_id="c", sha256="sc")], ignore_index=True)
    second = write(extra)
    assert diff(first, second).added == ["c"] and not diff(first, second).changed
    relabelled = write(extra.assign(label=["happy", "angry", "happy"]))
    assert diff(second, relabelled).changed == ["b"]



def _face_rows(clip_ids) -> pd.DataFrame:
    return pd.DataFrame({"clip_id": list(clip_ids), "frame": 0, "t": 0.0, "found": True,
                         "face": [bytes(4)] * len(clip_ids), "size": 2, "landmarks": [[]] * len(clip_ids)})
