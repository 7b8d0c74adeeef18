"""`emonets ingest`: writes the tables, prints counts and problems, ends with one JSON line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from data_catalog import Store
from flows.cli import app

runner = CliRunner()


def test_ingest_cremad_writes_clips_and_json_line(shared, tmp_path):
    store_dir = tmp_path / "store"
    result = runner.invoke(app, ["ingest", str(shared("crema-d")), "--store", str(store_dir)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["clips"] == 6 and summary["problems"] == 0 and summary["by_label"]["angry"] == 1
    clips = Store(store_dir).read("clips")
    assert len(clips) == 6 and set(clips["dataset"]) == {"cremad"}
    # a re-run reuses the fingerprint cache: no file is read again
    again = json.loads(runner.invoke(app, ["ingest", str(shared("crema-d")), "--store", str(store_dir)])
                       .output.strip().splitlines()[-1])
    assert again["hashed_files"] == 0 and len(Store(store_dir).read("clips")) == 6


def test_ingest_reports_problems_per_clip(tmp_path, make_clip):
    root = tmp_path / "afew"
    make_clip("ok.mp4", folder=root / "Train" / "Happy", seconds=0.3)
    (root / "Train" / "Sad").mkdir(parents=True)
    (root / "Train" / "Sad" / "broken.mp4").write_bytes(b"")
    result = runner.invoke(app, ["ingest", str(root), "--store", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert "broken.mp4" in result.output and "empty" in result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["clips"] == 1 and summary["problems"] == 1
    problems = Store(tmp_path / "s").read("problems")
    assert problems["path"].str.endswith("broken.mp4").any()


def test_ingest_bad_root_and_format(tmp_path):
    missing = runner.invoke(app, ["ingest", str(tmp_path / "nope"), "--store", str(tmp_path / "s")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    bad = runner.invoke(app, ["ingest", str(tmp_path), "--format", "wav"])
    assert bad.exit_code != 0 and "unknown format" in bad.output
