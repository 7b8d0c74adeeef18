"""Ingestion: every reader, `auto` detection, and every bad-input case."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
from PIL import Image

from emonets.datasets import UnknownFormatError, detect_format, ingest
from emonets.media.fingerprint import FingerprintCache


def _reasons(result) -> dict[str, str]:
    return dict(zip(result.problems["clip_id"], result.problems["reason"]))


# --- real shared data --------------------------------------------------------------------
def test_ravdess_counts_and_speaker_independent_splits(shared):
    result = ingest(shared("ravdess-speech"))
    assert result.format == "ravdess"
    # RAVDESS ships one file twice: actor 07's happy statement 2, repetition 2 is byte-identical
    # to repetition 1, so one copy only is kept (see emonets.datasets.ingest).
    assert len(result.clips) == 1080 - 144 - 1 and result.skipped["calm"] == 144
    counts = result.clips["label"].value_counts().to_dict()
    assert counts == {"angry": 144, "disgust": 144, "fear": 144, "happy": 143, "sad": 144,
                      "surprise": 144, "neutral": 72}
    speakers = result.clips.groupby("split")["speaker"].apply(set)
    assert not speakers["train"] & speakers["val"]
    assert speakers["val"] == {f"ravdess-{a}" for a in ("15", "16", "17", "18")}
    assert result.clips["sha256"].str.len().eq(64).all() and result.clips["sha256"].is_unique
    assert result.problems[["clip_id", "reason"]].values.tolist() == [[
        "03-01-03-01-02-02-07", "same bytes as 03-01-03-01-02-01-07 (" + str(shared("ravdess-speech"))
        + "/Actor_07/03-01-03-01-02-01-07.flac); same label (happy); left out, only 03-01-03-01-02-01-07 is kept"]]


def test_ravdess_calm_as_neutral(shared):
    result = ingest(shared("ravdess-speech"), calm="neutral")
    assert len(result.clips) == 1080 - 1 and result.clips["label"].value_counts()["neutral"] == 72 + 144


def test_cremad_clips_all_probe(shared):
    result = ingest(shared("crema-d"))
    assert result.format == "cremad" and len(result.clips) == 6
    assert set(result.clips["label"]) == {"angry", "disgust", "fear", "happy", "neutral", "sad"}
    assert result.clips["has_audio"].all() and result.clips["has_video"].all()
    assert (result.clips["fps"].round(2) == 29.97).all() and (result.clips["duration"] > 1).all()


def test_fer2013_folders_counts(shared):
    result = ingest(shared("fer2013"))
    assert result.format == "fer2013"
    # FER-2013 holds 1,532 byte-identical copies (1,273 images seen 2-12 times; 65 copies under
    # another class, 270 images in both train and val). One copy of each is kept, the val copy
    # when they span splits, so val loses only its own 26 repeats and train no longer holds
    # val images: 28,709 -> 27,203 train, 3,589 -> 3,563 val.
    by_split = result.clips["split"].value_counts().to_dict()
    assert by_split == {"train": 27203, "val": 3563}
    assert len(result.clips) + len(result.problems) == 28709 + 3589
    assert result.problems["reason"].str.startswith("same bytes as ").all()
    assert result.problems["reason"].str.contains("labels conflict: ").sum() == 65
    val = result.clips[result.clips["split"] == "val"]["label"].value_counts().to_dict()
    assert val == {"angry": 464, "disgust": 55, "fear": 490, "happy": 894, "neutral": 605,
                   "sad": 652, "surprise": 403}
    assert result.clips["clip_id"].is_unique  # FER repeats file names across class folders
    assert result.clips["sha256"].is_unique


def test_unlabelled_videos_folder(shared):
    result = ingest(shared("talking-faces"))
    assert result.format == "videos" and len(result.clips) == 7 and (result.clips["label"] == "").all()


# --- generated fixtures --------------------------------------------------------------------
def test_afew_tree_with_bad_inputs(tmp_path, make_clip):
    root = tmp_path / "afew"
    make_clip("001.mp4", folder=root / "Train" / "Happy")
    make_clip("002.mp4", folder=root / "Val" / "Angry", seconds=1.2)  # other bytes: not a copy
    make_clip("003.mp4", folder=root / "Test" / "Surprise", audio=False)
    make_clip("004.mp4", folder=root / "Train" / "Contempt", seconds=1.4)  # unknown label
    (root / "Train" / "Sad").mkdir(parents=True)
    (root / "Train" / "Sad" / "005.avi").write_bytes(b"")              # zero bytes
    (root / "Train" / "Sad" / "006.mp4").write_bytes(b"this is not a video at all")
    good = (root / "Train" / "Happy" / "001.mp4").read_bytes()
    (root / "Val" / "Sad").mkdir(parents=True)
    (root / "Val" / "Sad" / "007.mp4").write_bytes(good[: len(good) // 3])  # truncated
    shutil.copy(root / "Train" / "Happy" / "001.mp4", root / "Val" / "Angry" / "001.mp4")  # duplicate id

    result = ingest(root)
    assert result.format == "afew"
    ok = result.clips.set_index("clip_id")
    assert ok.loc["001", "split"] == "train" and ok.loc["001", "label"] == "happy"
    assert ok.loc["002", "split"] == "val" and ok.loc["003", "label"] == "surprise"
    assert not ok.loc["003", "has_audio"]
    reasons = _reasons(result)
    assert "unknown label" in reasons["004"]
    assert "empty" in reasons["005"]
    assert "not a readable media file" in reasons["006"]
    assert "duplicate clip id" in reasons["001"]
    assert "no audio stream" in reasons["003"]
    assert "007" in reasons  # truncated: reported, not crashed
    assert all(str(root) in p for p in result.problems["path"])


def _ravdess_tree(root, make_clip):
    names = ["03-01-03-01-01-01-02", "03-01-02-01-01-01-02", "03-01-09-01-01-01-02", "03-01-05-02-01-01-16"]
    for i, n in enumerate(names):  # lengths differ: byte-identical files would be one clip
        make_clip(f"{n}.mp4", folder=root / "Actor_02", seconds=0.2 + 0.04 * i)
    return names


def test_ravdess_unknown_emotion_code(tmp_path, make_clip):
    root = tmp_path / "rav"
    happy, calm, unknown, angry = _ravdess_tree(root, make_clip)
    result = ingest(root)
    assert set(result.clips["clip_id"]) == {happy, angry}
    assert result.skipped["calm"] == 1
    assert "emotion code 09" in _reasons(result)[unknown]
    assert result.clips.set_index("clip_id").loc[angry, "split"] == "val"


def test_cremad_names(tmp_path, make_clip):
    root = tmp_path / "cremad"
    make_clip("1001_DFA_ANG_XX.mp4", folder=root, seconds=0.2)
    make_clip("1080_IEO_HAP_HI.mp4", folder=root, seconds=0.24)
    make_clip("1002_DFA_XYZ_XX.mp4", folder=root, seconds=0.28)
    result = ingest(root)
    assert result.format == "cremad"
    rows = result.clips.set_index("clip_id")
    assert rows.loc["1001_DFA_ANG_XX", "label"] == "angry" and rows.loc["1080_IEO_HAP_HI", "split"] == "test"
    assert "unknown label" in _reasons(result)["1002_DFA_XYZ_XX"]


def test_fer_class_folders_without_splits_and_bad_image(tmp_path):
    root = tmp_path / "fer"
    for grey, cls in ((100, "happy"), (150, "sad")):
        (root / cls).mkdir(parents=True)
        Image.fromarray(np.full((48, 48), grey, np.uint8)).save(root / cls / "a.jpg")
    (root / "sad" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    result = ingest(root)
    assert result.format == "fer2013" and len(result.clips) == 2
    assert set(result.clips["split"]) == {"train"}
    assert "not a readable image" in _reasons(result)["sad-broken"]


def test_fer_original_csv(tmp_path):
    path = tmp_path / "fer2013.csv"
    pix = " ".join(["7"] * 48 * 48)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        w.writerow([3, pix, "Training"])
        w.writerow([6, pix.replace("7", "8"), "PublicTest"])
        w.writerow([9, pix, "PrivateTest"])
        w.writerow([0, "1 2 3", "Training"])
    assert detect_format(path) == "fer2013"
    result = ingest(path)
    assert list(result.clips["label"]) == ["happy", "neutral"]
    assert list(result.clips["split"]) == ["train", "val"]
    reasons = list(result.problems["reason"])
    assert any("unknown label" in r for r in reasons) and any("48x48" in r for r in reasons)


def test_csv_manifest_with_missing_file(tmp_path, make_clip):
    make_clip("a.mp4", folder=tmp_path / "m", seconds=0.2)
    (tmp_path / "m" / "manifest.csv").write_text(
        "path,label,split,speaker\na.mp4,Happy,train,s1\nmissing.mp4,sad,val,s2\na.mp4,bogus,val,s3\n"
    )
    result = ingest(tmp_path / "m")
    assert result.format == "csv"
    assert result.clips.iloc[0][["label", "split", "speaker"]].tolist() == ["happy", "train", "s1"]
    reasons = list(result.problems["reason"])
    assert any("does not exist" in r for r in reasons) and any("unknown label" in r for r in reasons)


def test_detect_format_errors(tmp_path):
    with pytest.raises(UnknownFormatError, match="does not exist"):
        detect_format(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnknownFormatError, match="no video, audio or image"):
        detect_format(tmp_path / "empty")
    with pytest.raises(ValueError, match="unknown format"):
        ingest(tmp_path, fmt="mp3")


def test_fingerprints_are_cached_until_bytes_change(tmp_path, make_clip):
    root = tmp_path / "videos"
    clip = make_clip("x.mp4", folder=root, seconds=0.2)
    cache = FingerprintCache(tmp_path / "cache.json")
    first = ingest(root, fingerprints=cache)
    cache.save()
    again = FingerprintCache(tmp_path / "cache.json")
    second = ingest(root, fingerprints=again)
    assert again.hashed == 0 and first.clips["sha256"].tolist() == second.clips["sha256"].tolist()
    make_clip("x.mp4", folder=root, seconds=0.4)  # new bytes
    third = ingest(root, fingerprints=again)
    assert again.hashed == 1 and third.clips["sha256"][0] != first.clips["sha256"][0]
    assert clip.exists()
