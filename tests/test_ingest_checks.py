"""Ingest refuses or records what it used to accept silently: copies of the same bytes, manifest
paths outside the manifest's folder, entries that are not regular files, unreadable CSVs."""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import socket
from contextlib import contextmanager

import pytest
from typer.testing import CliRunner

from emonets.datasets import ingest
from emonets.datasets.readers import read_manifest


@contextmanager
def _deadline(seconds: int = 60):
    """Fail instead of hanging (a FIFO opened for reading, a walk that loops)."""
    def _boom(*_):
        raise TimeoutError(f"took over {seconds} s")

    old = signal.signal(signal.SIGALRM, _boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _reasons(result) -> dict[str, str]:
    return dict(zip(result.problems["clip_id"], result.problems["reason"]))


# --- the same bytes under two ids --------------------------------------------------------
def test_a_copy_in_another_class_folder_is_a_problem_not_a_second_clip(tmp_path, make_clip):
    root = tmp_path / "afew"
    x = make_clip("a.mp4", folder=root / "Train" / "Happy", seconds=0.3)
    (root / "Train" / "Sad").mkdir(parents=True)
    shutil.copy(x, root / "Train" / "Sad" / "b.mp4")               # same bytes, other label
    shutil.copy(x, root / "Train" / "Happy" / "c.mp4")             # same bytes, same label
    y = make_clip("d.mp4", folder=root / "Train" / "Happy", seconds=0.4)
    (root / "Val" / "Angry").mkdir(parents=True)
    shutil.copy(y, root / "Val" / "Angry" / "e.mp4")               # same bytes in val
    result = ingest(root)
    assert sorted(result.clips["clip_id"]) == ["a", "e"]
    reasons = _reasons(result)
    assert reasons["b"] == (f"same bytes as a ({root}/Train/Happy/a.mp4); labels conflict: happy vs sad; "
                            "left out, only a is kept")
    assert reasons["c"].startswith("same bytes as a (") and "same label (happy)" in reasons["c"]
    # across splits the evaluation copy stays: training must not see a val clip
    assert reasons["d"].startswith(f"same bytes as e ({root}/Val/Angry/e.mp4); labels conflict: angry vs happy; "
                                   "splits: val vs train")


def test_fer_csv_rows_with_the_same_pixels_are_one_image(tmp_path):
    path = tmp_path / "fer2013.csv"
    pix = " ".join(["7"] * 48 * 48)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        w.writerows([[3, pix, "Training"], [4, "  " + pix.replace(" ", "  "), "Training"],
                     [3, pix.replace("7", "9"), "Training"]])
    result = ingest(path)
    assert list(result.clips["clip_id"]) == ["fer2013-00000", "fer2013-00002"]
    assert "labels conflict: happy vs sad" in _reasons(result)["fer2013-00001"]


# --- manifest paths outside the manifest's folder ------------------------------------------
def _manifest_tree(tmp_path, make_clip):
    m = tmp_path / "m"
    make_clip("inside.mp4", folder=m, seconds=0.2)
    make_clip("deep.mp4", folder=m / "sub", seconds=0.24)
    make_clip("outside.mp4", folder=tmp_path, seconds=0.28)
    make_clip("abs.mp4", folder=tmp_path / "elsewhere", seconds=0.32)
    (m / "link.mp4").symlink_to(tmp_path / "outside.mp4")           # inside, pointing outside
    (tmp_path / "secret.txt").write_text("not yours")
    rows = ["inside.mp4", "sub/../sub/deep.mp4", "../outside.mp4", str(tmp_path / "elsewhere" / "abs.mp4"),
            "link.mp4", "../secret.txt"]
    (m / "manifest.csv").write_text("path,label,split\n" + "".join(f"{r},happy,train\n" for r in rows))
    return m


def test_manifest_paths_leaving_its_folder_are_refused_per_row(tmp_path, make_clip):
    m = _manifest_tree(tmp_path, make_clip)
    result = ingest(m)
    assert sorted(result.clips["clip_id"]) == ["deep", "inside"]
    reasons = _reasons(result)
    for clip_id in ("outside", "abs", "link", "secret"):
        assert "leaves the manifest's folder" in reasons[clip_id] and "--allow-outside" in reasons[clip_id]
    # refused before anything was opened: no probe message, no fingerprint
    assert not any("readable" in r or "empty" in r for r in reasons.values())
    assert result.problems.set_index("clip_id").loc["link", "path"] == str(tmp_path / "outside.mp4")


def test_allow_outside_accepts_them_through_the_task(tmp_path, make_clip, store):
    from tasks.ingest import ingest_root

    m = _manifest_tree(tmp_path, make_clip)
    (m / "manifest.csv").write_text((m / "manifest.csv").read_text().replace("../secret.txt,happy,train\n", ""))
    summary = ingest_root.fn(str(m), str(store.root), "csv", allow_outside=True)
    assert summary["clips"] == 5 - 1 and summary["problems"] == 1  # link.mp4 is the same file as outside.mp4
    assert "same bytes as outside" in summary["problem_rows"][0]["reason"]
    assert store.manifest("clips", summary["partition"]).config["allow_outside"] is True


def test_manifest_uri_names_a_non_utf8_file(tmp_path, make_clip):
    m = tmp_path / "m"
    made = make_clip("a.mp4", folder=m, seconds=0.2)
    os.rename(os.fsencode(made), os.fsencode(m) + b"/clip\xff.mp4")
    (m / "manifest.csv").write_text(f"path,label\nfile://{m}/clip%FF.mp4,sad\n,happy\nnul\x00.mp4,sad\n")
    result = ingest(m)
    assert result.clips["path_bytes"].tolist() == [os.fsencode(m) + b"/clip\xff.mp4"]
    assert result.clips["clip_id"].tolist() == ["clip\\xff"]
    assert result.problems["reason"].tolist() == ["row 3: empty path", "row 4: path contains a NUL character"]


# --- entries that are not regular files ---------------------------------------------------
def _odd_entries(folder, monkeypatch):
    """A FIFO, a socket, a device, a broken symlink, a symlink loop and a folder link to its parent."""
    folder.mkdir(parents=True, exist_ok=True)
    os.mkfifo(folder / "fifo.mp4")
    monkeypatch.chdir(folder)  # AF_UNIX paths are short: bind by relative name
    sock = socket.socket(socket.AF_UNIX)
    sock.bind("sock.mp4")
    (folder / "null.mp4").symlink_to("/dev/null")
    (folder / "broken.mp4").symlink_to(folder / "nowhere.mp4")
    (folder / "loop1.mp4").symlink_to(folder / "loop2.mp4")
    (folder / "loop2.mp4").symlink_to(folder / "loop1.mp4")
    (folder / "up").symlink_to("..")
    os.mkfifo(folder / ".hidden.mp4")  # hidden: skipped without a word
    return sock


EXPECTED = {"fifo": "not a regular file: FIFO", "sock": "not a regular file: socket",
            "null": "not a regular file: character device", "broken": "not a regular file: broken symlink",
            "loop1": "not a regular file: symlink loop", "loop2": "not a regular file: symlink loop",
            "up": "not a regular file: symlink loop"}


@pytest.mark.parametrize("fmt,good,odd_dir", [
    ("afew", "Train/Happy/001.mp4", "Train/Happy"),
    ("ravdess", "Actor_02/03-01-03-01-01-01-02.mp4", "Actor_02"),
    ("cremad", "1001_DFA_ANG_XX.mp4", "."),
    ("videos", "v.mp4", "."),
    ("fer2013", None, "happy"),
])
def test_every_reader_records_what_is_not_a_regular_file(tmp_path, make_clip, monkeypatch, fmt, good, odd_dir):
    root = tmp_path / "root"
    if good:
        make_clip(os.path.basename(good), folder=root / os.path.dirname(good), seconds=0.2)
    else:
        import numpy as np
        from PIL import Image

        (root / "happy").mkdir(parents=True)
        Image.fromarray(np.full((48, 48), 90, np.uint8)).save(root / "happy" / "a.jpg")
    sock = _odd_entries(root / odd_dir, monkeypatch)
    try:
        with _deadline():
            result = ingest(root, fmt=fmt)
    finally:
        sock.close()
    assert len(result.clips) == 1
    reasons = _reasons(result)
    for name, reason in EXPECTED.items():  # a problem's id is the entry's own name
        assert reasons[name].startswith(reason), (name, reasons)
    assert ".hidden" not in reasons and "hidden" not in " ".join(reasons)


def test_a_folder_link_is_recorded_not_followed(tmp_path, make_clip):
    root = tmp_path / "v"
    make_clip("a.mp4", folder=root, seconds=0.2)
    make_clip("b.mp4", folder=tmp_path / "other", seconds=0.24)
    (root / "more").symlink_to(tmp_path / "other")
    result = ingest(root, fmt="videos")
    assert result.clips["clip_id"].tolist() == ["a"]
    assert "symlinked folder not followed" in _reasons(result)["more"]


# --- unreadable CSV files ---------------------------------------------------------------------
@pytest.mark.parametrize("content,message", [
    ("path,label\nb\u00e9b\u00e9.mp4,happy\n".encode("latin-1"), "not UTF-8 text (byte 0xe9"),
    (b"path,label\n" + b"a" * 200_000 + b".mp4,happy\n", "line 2: not a valid CSV file (field larger than"),
    (b"file,label\na.mp4,happy\n", "needs the column(s) 'path'"),
])
def test_an_unreadable_manifest_is_a_clear_error_naming_it(tmp_path, content, message):
    (tmp_path / "manifest.csv").write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        ingest(tmp_path, fmt="csv")
    assert str(err.value).startswith(f"{tmp_path / 'manifest.csv'}: ")


def test_a_manifest_saved_with_a_bom_reads(tmp_path, make_clip):
    make_clip("a.mp4", folder=tmp_path, seconds=0.2)
    (tmp_path / "manifest.csv").write_bytes("path,label\na.mp4,happy\n".encode("utf-8-sig"))
    assert ingest(tmp_path, fmt="csv").clips["label"].tolist() == ["happy"]


def test_missing_unreadable_and_non_utf8_csvs(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.csv: CSV file does not exist"):
        read_manifest(tmp_path / "manifest.csv")
    (tmp_path / "fer2013.csv").write_bytes(b"emotion,pixels,Usage\n3,\xff\xfe,Training\n")
    with pytest.raises(ValueError, match=r"fer2013.csv: not UTF-8 text \(byte 0xff"):
        ingest(tmp_path / "fer2013.csv")
    (tmp_path / "dir" / "manifest.csv").mkdir(parents=True)
    with pytest.raises(ValueError, match="is a folder, not a CSV file"):
        ingest(tmp_path / "dir", fmt="csv")
    if os.geteuid() != 0:  # root reads everything
        locked = tmp_path / "locked" / "manifest.csv"
        locked.parent.mkdir()
        locked.write_text("path\n")
        locked.chmod(0)
        with pytest.raises(ValueError, match="cannot read the CSV file"):
            ingest(locked.parent, fmt="csv")


def test_the_cli_prints_the_csv_error_and_exits_2(tmp_path):
    from cli.main import app

    (tmp_path / "manifest.csv").write_bytes("path\nb\u00e9.mp4\n".encode("latin-1"))
    result = CliRunner().invoke(app, ["ingest", str(tmp_path), "--format", "csv", "--store", str(tmp_path / "s")])
    assert result.exit_code == 2 and "manifest.csv: not UTF-8 text" in " ".join(result.output.split())
    assert "Traceback" not in result.output
