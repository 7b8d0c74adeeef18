"""The report task on a hand-made store: fingerprints of the data and bundles, the fused
bundle's weights, report.html beside report.md (also in `latest`), the chance flags in what it
returns, and the Prefect artifacts that lead to the page."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from emonets.bundle import Bundle, save_bundle
from emonets.fusion.model import FusedModel
from emonets.fusion.fusers import RandomSearchFusion
from emonets.labels import EMOTIONS, PROB_COLUMNS

IDS = [f"c{i}" for i in range(8)]
LABELS = [0, 1, 2, 3, 0, 1, 2, 3]
SPLIT = ["val"] * 4 + ["test"] * 4
PRED = {"audio": [0, 1, 2, 3, 0, 0, 0, 0], "face_cnn": [0, 1, 2, 3, 0, 1, 2, 3]}  # audio: test 1/4 = chance


def _probs(preds):
    return [dict(zip(PROB_COLUMNS, np.where(np.arange(7) == p, 0.9, 0.1 / 6).astype(np.float32))) for p in preds]


def _fill(store, tmp_path):
    clips = pd.DataFrame({"clip_id": IDS, "path": [str(tmp_path / f"{c}.mp4") for c in IDS],
                          "path_bytes": [str(tmp_path / f"{c}.mp4").encode() for c in IDS],
                          "sha256": [f"{i:064x}" for i in range(8)], "label": [EMOTIONS[k] for k in LABELS],
                          "split": SPLIT, "speaker": "", "dataset": "afew", "media": "video", "duration": 1.0,
                          "fps": 25.0, "has_audio": True, "has_video": True})
    store.write("clips", clips, partition="afew-0123456789")
    for c in IDS[:2]:  # mfcc for two clips: the audio specialist's feature partitions
        store.write("mfcc", pd.DataFrame({"clip_id": [c], "frame": [0], "t": [0.0], "coeffs": [[0.1, 0.2]],
                                          "duration": [1.0]}), partition=c)
    for name, preds in PRED.items():
        rows = pd.DataFrame([{"clip_id": c, "specialist": name, "split": s, "label": EMOTIONS[k], **p}
                             for c, s, k, p in zip(IDS, SPLIT, LABELS, _probs(preds))])
        store.write("predictions", rows, partition=name)
        save_bundle(store.path("models", name), Bundle(kind=name, arrays={"w": np.arange(3.0)},
                                                       inputs={"training": {"data": f"data-of-{name}"}}))
    fused = pd.DataFrame([{"clip_id": c, "method": "random_search", "split": s, "label": EMOTIONS[k], **p}
                          for c, s, k, p in zip(IDS, SPLIT, LABELS, _probs(PRED["face_cnn"]))])
    store.write("fused_predictions", fused, partition="random_search")
    fuser = RandomSearchFusion()
    fuser.weights_ = np.array([[0.9, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2], [0.1, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]])
    fuser.score_ = 1.0
    FusedModel({"audio": None, "face_cnn": None}, fuser, "random_search").save(
        store.path("models", "fused"), specialist_bundles={n: store.path("models", n) for n in PRED},
        inputs={"data": "fused-data"})


def test_report_task_writes_the_page_and_flags_chance(prefect_api, store, tmp_path):
    from prefect import flow
    from prefect.artifacts import Artifact

    from tasks.report import report_task

    @flow
    def report_only():
        return report_task(str(store.root), ["afew-0123456789"], ["audio", "face_cnn"])

    _fill(store, tmp_path)
    out = report_only()
    assert out["below_chance"] == [{"model": "audio", "kind": "specialist", "split": "test", "accuracy": 0.25,
                                    "chance": 0.25, "n": 4}]
    for folder in (store.path("reports", "latest"), store.path(out["report_dir"])):
        assert (folder / "report.html").is_file() and (folder / "report.md").is_file()
    assert out["report_html"] == str(store.path(out["report_dir"], "report.html"))
    report = json.loads((store.path("reports", "latest", "report.json")).read_text())
    fps = report["fingerprints"]
    assert fps["clips/afew-0123456789"] == store.manifest("clips", "afew-0123456789").fingerprint
    assert fps["predictions/audio"] == store.manifest("predictions", "audio").fingerprint
    assert len(fps["features/mfcc"]) == 64 and "features/faces" in fps
    bundles = report["bundles"]
    assert set(bundles) == {"fused", "audio", "face_cnn"}
    assert bundles["audio"]["trained_on"] == "data-of-audio" and bundles["fused"]["trained_on"] == "fused-data"
    assert bundles["fused"]["method"] == "random_search" and len(bundles["fused"]["fingerprint"]) == 64
    trust = report["fusion_weights"]
    assert trust["trusted"]["angry"] == ["audio"] and trust["trusted"]["disgust"] == ["face_cnn"]
    page = (store.path("reports", "latest", "report.html")).read_text()
    assert fps["clips/afew-0123456789"] in page and "0.250" in page
    link = Artifact.get("emonets-report-page")
    assert link is not None and f"({Path(out['report_html']).as_uri()})" in link.data  # a link to the page
    markdown = Artifact.get("emonets-report")
    assert out["report_html"] in markdown.data and "At or below chance" in markdown.data
