"""The report: metrics per specialist and fusion method and split, coverage, files written."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from emonets.labels import EMOTIONS, PROB_COLUMNS
from emonets.report.build import build_report, render_markdown


def _rows(clip_ids, preds, key, name):
    """Prediction rows putting 0.9 on the predicted class (NaN rows for None)."""
    out = []
    for c, p in zip(clip_ids, preds):
        probs = [np.nan] * 7 if p is None else list(np.where(np.arange(7) == p, 0.9, 0.1 / 6))
        out.append({"clip_id": c, key: name, "split": "", "label": "", **dict(zip(PROB_COLUMNS, probs))})
    return out


@pytest.fixture
def tables():
    ids = [f"c{i}" for i in range(12)]
    labels = [0, 1, 2, 3] * 3
    split = ["train"] * 4 + ["val"] * 4 + ["test"] * 4
    clips = pd.DataFrame({"clip_id": ids, "label": [EMOTIONS[k] for k in labels], "split": split,
                          "dataset": "afew", "path": [f"/data/{s}/{EMOTIONS[k]}/{c}.mp4" for c, s, k in
                                                      zip(ids, split, labels)]})
    face = [0, 1, 2, 3, 0, 1, 0, None, 0, 1, 0, 0]        # test: 2/4 right
    audio = [0, 1, 2, 3, 0, 0, 2, 3, None, None, 2, 3]    # test: 2/2 right, scored 2 of 4
    mean = [0, 1, 2, 3, 0, 1, 2, 2, 0, 1, 2, 0]           # val 3/4, test 3/4
    rs = [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 2]             # val 4/4, test 3/4
    predictions = pd.DataFrame(_rows(ids, face, "specialist", "face_cnn") + _rows(ids, audio, "specialist", "audio"))
    fused = pd.DataFrame(_rows(ids, mean, "method", "mean") + _rows(ids, rs, "method", "random_search"))
    return predictions, fused, clips


def test_report_metrics_coverage_and_summary(tables, tmp_path):
    predictions, fused, clips = tables
    report = build_report(predictions, fused, clips, tmp_path / "r", fingerprints={"clips": "abc"}, notes=["n1"])
    assert report["test_accuracy"] == pytest.approx({"face_cnn": 0.5, "audio": 1.0, "mean": 0.75,
                                                     "random_search": 0.75})
    assert report["val_accuracy"] == pytest.approx({"face_cnn": 2 / 3, "audio": 0.75, "mean": 0.75,
                                                    "random_search": 1.0})
    assert report["entries"]["audio"]["scored"] == {"train": 4, "val": 4, "test": 2}  # NaN rows are not scored
    assert report["entries"]["audio"]["coverage"]["test"] == 0.5
    assert report["entries"]["face_cnn"]["metrics"]["val"]["n"] == 3
    assert report["unscored_by_every_specialist"] == {}
    s = report["summary"]
    assert s["best_specialist"] == "audio" and s["selected_fusion"] == "random_search"
    assert s["fusion_gain_points"] == pytest.approx(-25.0)
    assert s["gain_points_by_fusion"] == pytest.approx({"mean": -25.0, "random_search": -25.0})
    chosen = build_report(predictions, fused, clips, tmp_path / "r2", fingerprints={}, primary_fusion="mean")
    assert chosen["summary"]["selected_fusion"] == "mean"
    with pytest.raises(ValueError, match="primary fusion"):
        build_report(predictions, fused, clips, tmp_path / "r3", fingerprints={}, primary_fusion="learned")
    assert report["test_macro_f1"]["audio"] == pytest.approx(1.0)


def test_report_files(tables, tmp_path):
    predictions, fused, clips = tables
    out = tmp_path / "r"
    report = build_report(predictions, fused, clips, out, fingerprints={"clips": "abc"})
    assert json.loads((out / "report.json").read_text())["test_accuracy"] == report["test_accuracy"]
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["report.json", "report.md", "report.html"] + [f"confusion_{m}_{s}.png" for m in
                                                             ("audio", "face_cnn", "mean", "random_search")
                                                             for s in ("val", "test")])
    md = (out / "report.md").read_text()
    assert md == render_markdown(report)
    assert "| audio | specialist | 4/4 | 2/4 | 0.750 |" in md
    assert "confusion_random_search_test.png" in md and "clips: abc" in md
    assert "(-25.0 points; mean -25.0)" in md and "in-sample" in md


def test_clips_no_specialist_scored_and_composed_data(tables, tmp_path):
    predictions, fused, clips = tables
    root = tmp_path / "data"
    root.mkdir()
    (root / "compose.json").write_text(json.dumps({"name": "composed"}))
    clips = clips.assign(path=[str(root / "Test" / "Angry" / f"{c}.mp4") for c in clips["clip_id"]])
    extra = pd.DataFrame([{"clip_id": "lonely", "label": "sad", "split": "test", "dataset": "afew",
                           "path": str(root / "Test" / "Sad" / "lonely.mp4")}])
    report = build_report(predictions, fused, pd.concat([clips, extra]), tmp_path / "r", fingerprints={})
    assert report["unscored_by_every_specialist"] == {"test": 1}
    assert report["data"]["name"].startswith("composed")
    assert "Data: **composed" in (tmp_path / "r" / "report.md").read_text()


def test_no_fused_predictions_yet(tables, tmp_path):
    predictions, _, clips = tables
    report = build_report(predictions, pd.DataFrame(), clips, tmp_path / "r", fingerprints={})
    assert set(report["test_accuracy"]) == {"face_cnn", "audio"}
    assert report["summary"]["selected_fusion"] is None
