"""Any file name the file system allows is ingested, stored losslessly, opened by every stage and
printed escaped: non-UTF-8 bytes, spaces, quotes, ``#``, ``ü``, a newline, Rich markup."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from data_catalog import Store
from emonets.datasets import ingest
from emonets.features.extraction import default_config, work_units
from emonets.media.fingerprint import FingerprintCache
from emonets.media.paths import display_path, display_text, fs_bytes, portable_path, to_fs
from emonets.media.video import probe

# Every name is a different clip (lengths differ: byte-identical files would be one clip).
NAMES = [b"clip\xff.mp4", b"with space.mp4", b"quote'\"s.mp4", b"hash#1.mp4", "ü-umlaut.mp4".encode(),
         b"new\nline.mp4", b"[red]markup[bold].mp4", b"latin1-\xe9t\xe9.mp4"]


def _odd_root(tmp_path: Path, make_clip) -> tuple[Path, list[bytes]]:
    """A folder whose own name is not UTF-8, holding one clip per odd name."""
    root = tmp_path / os.fsdecode(b"videos \xfe#dir")
    raw = []
    for i, name in enumerate(NAMES):
        made = make_clip(f"plain{i}.mp4", folder=tmp_path / "made", seconds=0.2 + 0.04 * i)
        target = os.fsencode(root) + b"/" + name
        os.makedirs(os.fsencode(root), exist_ok=True)
        os.rename(os.fsencode(made), target)
        raw.append(target)
    return root, raw


def _valid_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\n" not in text


def test_every_odd_name_is_a_clip_with_its_exact_bytes(tmp_path, make_clip):
    root, raw = _odd_root(tmp_path, make_clip)
    result = ingest(root, fmt="videos")
    assert result.problems.empty, result.problems.to_dict("records")
    clips = result.clips
    assert sorted(clips["path_bytes"]) == sorted(raw)
    assert all(_valid_utf8(p) for p in clips["path"]) and all(_valid_utf8(c) for c in clips["clip_id"])
    assert clips["clip_id"].is_unique
    by_bytes = clips.set_index("path_bytes")
    assert by_bytes.loc[raw[0], "clip_id"] == "clip\\xff"
    assert by_bytes.loc[raw[5], "clip_id"] == "new\\nline"
    assert by_bytes.loc[raw[0], "path"].endswith("videos \\xfe#dir/clip\\xff.mp4")
    for stored in clips["path_bytes"]:
        assert probe(os.fsdecode(stored)).has_video


def test_clips_table_round_trips_and_units_open_the_real_files(tmp_path, make_clip, store):
    from tasks.ingest import ingest_root

    root, raw = _odd_root(tmp_path, make_clip)
    summary = ingest_root.fn(str(root), str(store.root), "videos")
    assert summary["clips"] == len(NAMES) and summary["problems"] == 0
    assert summary["root"] == display_path(root) and _valid_utf8(summary["partition"])
    clips = store.read("clips")
    assert sorted(clips["path_bytes"]) == sorted(raw)
    units = work_units(clips)
    for unit in units:
        d = unit.to_dict()
        json.dumps(d, ensure_ascii=False).encode("utf-8")  # valid text: safe for Prefect's API / JSON
        assert pickle.loads(pickle.dumps(d)) == d
        assert probe(unit.paths[0]).has_video
        assert fs_bytes(unit.paths[0]) in raw
    assert all(u.paths[0].startswith("file://") for u in units)  # the root's \xfe is not UTF-8
    cache = json.loads(Path(store.path("_cache", "sha256.json")).read_text(encoding="utf-8"))
    assert len(cache) == len(NAMES) and all(_valid_utf8(k) for k in cache)


def test_stages_open_a_non_utf8_name_through_the_extraction_task(tmp_path, make_clip, store):
    from tasks.extract import extract_unit
    from tasks.ingest import ingest_root

    root = tmp_path / "v"
    made = make_clip("a.mp4", folder=root, seconds=1.0)
    os.rename(os.fsencode(made), os.fsencode(root) + b"/clip\xff \n#.mp4")
    ingest_root.fn(str(root), str(store.root), "videos")
    (unit,) = work_units(store.read("clips"))
    assert unit.paths[0].startswith("file://") and unit.key == "clip\\xff \\n#"
    # faces and motion decode the video through the task; the mfcc stage's own opener is
    # load_audio (its librosa/numba part does not touch the path, so it is called directly)
    stages = ["faces", "motion"]
    outs = extract_unit.fn(unit.to_dict(), stages, {s: default_config(s).to_dict() for s in stages}, str(store.root))
    assert [o["status"] for o in outs] == ["computed", "computed"], outs
    from emonets.media.audio_io import load_audio

    assert load_audio(unit.paths[0], sr=16000).size > 8000
    assert len(store.read("faces", partitions=[unit.key])) > 0  # sampled frames (no face in a gradient)
    assert len(store.read("motion_blocks", partitions=[unit.key])) > 0
    problems = store.read("problems")
    assert not problems["reason"].str.contains("does not exist|not a readable").any(), problems.to_dict("records")
    assert all(_valid_utf8(p) for p in problems["path"])


def test_cli_ingest_as_users_run_it(tmp_path, make_clip):
    root, raw = _odd_root(tmp_path, make_clip)
    # a problem row to print; its path holds "[/b]", a Rich closing tag when not escaped
    empty = Path(root) / "sub[" / os.fsdecode(b"b]empty \xff[bold].mp4")
    empty.parent.mkdir()
    empty.write_bytes(b"")
    exe = Path(sys.executable).with_name("emonets")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "cli.main"]
    store_dir = tmp_path / "store"
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run([*map(os.fsencode, cmd), b"ingest", os.fsencode(root), b"--store", os.fsencode(store_dir),
                           b"--format", b"videos"], capture_output=True, env=env, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    out = done.stdout.decode("utf-8")  # strict: everything printed is valid UTF-8
    assert done.returncode == 0, out + done.stderr.decode("utf-8", "replace")
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["clips"] == len(NAMES) and summary["problems"] == 1
    assert summary["root"] == display_path(root)
    assert "sub[/b]empty \\xff[bold].mp4" in out and "file is empty" in out  # escaped, markup not interpreted
    clips = Store(store_dir).read("clips")
    assert sorted(clips["path_bytes"]) == sorted(raw)
    for stored in clips["path_bytes"]:
        assert probe(os.fsdecode(stored)).has_video
    problems = Store(store_dir).read("problems")
    assert problems["path"].tolist() == [display_path(empty)]


def test_fingerprint_cache_keeps_odd_names_apart_and_valid(tmp_path, make_clip):
    root, raw = _odd_root(tmp_path, make_clip)
    cache = FingerprintCache(tmp_path / "cache.json")
    first = [cache.sha256(os.fsdecode(r)) for r in raw]
    cache.save()
    text = (tmp_path / "cache.json").read_bytes().decode("utf-8")
    assert "\\udc" not in text
    again = FingerprintCache(tmp_path / "cache.json")
    assert [again.sha256(os.fsdecode(r)) for r in raw] == first and again.hashed == 0


def test_an_image_named_with_a_hash_is_an_image_not_a_csv_row(tmp_path):
    import numpy as np
    from PIL import Image

    for grey, cls in ((90, "happy"), (160, "sad")):
        (tmp_path / "fer" / cls).mkdir(parents=True)
        Image.fromarray(np.full((48, 48), grey, np.uint8)).save(tmp_path / "fer" / cls / f"a#{grey}.jpg")
    odd = os.fsencode(tmp_path / "fer" / "sad") + b"/b\xff.jpg"
    Image.fromarray(np.full((48, 48), 10, np.uint8)).save(os.fsdecode(odd))
    result = ingest(tmp_path / "fer")
    assert result.problems.empty, result.problems.to_dict("records")
    assert set(result.clips["clip_id"]) == {"happy-a#90", "sad-a#160", "sad-b\\xff"}
    (unit,) = [u for u in work_units(result.clips) if "sad" in u.key]
    from emonets.media.images import load_grey_image

    assert [load_grey_image(p).mean() for p in unit.paths] == [160, 10]


def test_an_old_clips_table_without_path_bytes_still_gives_units(tmp_path, make_clip):
    clip = make_clip("x.mp4", folder=tmp_path / "v", seconds=0.2)
    old = pd.DataFrame([{"clip_id": "x", "path": str(clip), "sha256": "0" * 64, "label": "", "split": "test",
                         "speaker": "", "dataset": "videos", "media": "video", "duration": 0.2, "fps": 25.0,
                         "has_audio": True, "has_video": True}])
    (unit,) = work_units(old)
    assert unit.paths == (str(clip),)
    with_nulls = old.assign(path_bytes=[None])
    assert work_units(with_nulls)[0].paths == (str(clip),)


@pytest.mark.parametrize("raw", [b"/a/clip\xff.mp4", b"/a/b c#1.mp4", b"/a/\xc3\xbc\n.mp4", b"/x/file://y",
                                 b"/\x01\x7f\x80\xfe\xff", "/a/é".encode()])
def test_portable_path_round_trips_every_byte(raw):
    text = portable_path(raw)
    text.encode("utf-8")
    try:
        assert text == raw.decode("utf-8")  # a UTF-8 path travels as itself ...
    except UnicodeDecodeError:
        assert text.startswith("file:///")  # ... any other as a URI
    assert fs_bytes(text) == raw and os.fsencode(to_fs(text)) == raw
    assert fs_bytes(portable_path(os.fsdecode(raw))) == raw


def test_display_text_is_one_valid_line():
    assert display_path(b"/a/clip\xff.mp4") == "/a/clip\\xff.mp4"
    assert display_text("a\nb\tc\x1b[31m\u202edd") == "a\\nb\\tc\\x1b[31m\\u202edd"
    assert display_path("/plain/ü path#1.mp4") == "/plain/ü path#1.mp4"
    assert display_path(portable_path(b"/a/\xff")) == "/a/\\xff"
