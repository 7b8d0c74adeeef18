"""The report's readable outputs: the self-contained HTML page, the chance flags, per-clip rows
in report.json, what the fusion trusts, the confusion plot's class names and the 80-column
console view."""

from __future__ import annotations

import base64
import io
import json
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from emonets.report.confusion_plot import draw_confusion
from emonets.fusion.fusers import LearnedFusion, LogLinearFusion, MeanFusion, RandomSearchFusion
from emonets.labels import EMOTIONS, PROB_COLUMNS
from emonets.report.build import PNG_SIGNATURE, build_report, chance_level, per_class
from emonets.report.models import describe_fuser

PROB = 0.9


def _rows(clip_ids, preds, key, name):
    """Prediction rows putting PROB on the predicted class (NaN rows for None)."""
    out = []
    for c, p in zip(clip_ids, preds):
        probs = [np.nan] * 7 if p is None else list(np.where(np.arange(7) == p, PROB, (1 - PROB) / 6))
        out.append({"clip_id": c, key: name, "split": "", "label": "", **dict(zip(PROB_COLUMNS, probs))})
    return out


# val: 4 clips, one per class 0..3 (chance 0.25); test: classes 0, 0, 0, 1 (chance 0.75).
IDS = [f"c{i}" for i in range(12)]
LABELS = [0, 1, 2, 3] + [0, 1, 2, 3] + [0, 0, 0, 1]
SPLIT = ["train"] * 4 + ["val"] * 4 + ["test"] * 4
PRED = {
    "face_cnn": [0, 1, 2, 3, 0, 1, 2, 0, 0, 0, 0, 1],        # val 3/4, test 4/4
    "audio": [0, 1, 2, 3, 0, 0, 0, 0, None, 0, 0, 0],        # val 1/4 = chance; test 2/3 = chance of its 3 clips
    "random_search": [0, 1, 2, 3, 0, 1, 2, 3, 0, 0, 0, 0],   # val 4/4; test 3/4 = chance 0.75
}
SPECIALISTS = ("audio", "face_cnn")


@pytest.fixture
def tables():
    clips = pd.DataFrame({"clip_id": IDS, "label": [EMOTIONS[k] for k in LABELS], "split": SPLIT, "dataset": "afew",
                          "path": [f"/data/{s}/{EMOTIONS[k]}/{c}.mp4" for c, s, k in zip(IDS, SPLIT, LABELS)]})
    predictions = pd.DataFrame([r for n in SPECIALISTS for r in _rows(IDS, PRED[n], "specialist", n)])
    fused = pd.DataFrame(_rows(IDS, PRED["random_search"], "method", "random_search"))
    return predictions, fused, clips


def _trust():
    fuser = RandomSearchFusion()
    fuser.weights_ = np.array([[0.8, 0.3, 0.5, 0.1, 0.6, 0.2, 0.9],
                               [0.2, 0.7, 0.5, 0.9, 0.4, 0.8, 0.1]])  # rows: audio, face_cnn
    return describe_fuser(fuser, "random_search", list(SPECIALISTS))


@pytest.fixture
def built(tables, tmp_path):
    predictions, fused, clips = tables
    bundles = {"fused": {"kind": "fused", "method": "random_search", "fingerprint": "f" * 64,
                         "trained_on": "d" * 64, "created": "2024-05-01 10:00:00",
                         "versions": {"emonets": "0.1.0", "torch": "2.3.0"}}}
    fingerprints = {"clips": "a" * 64, "clips/afew-0123456789": "b" * 64, "features/mfcc": "e" * 64}
    out = tmp_path / "r"
    report = build_report(predictions, fused, clips, out, fingerprints=fingerprints, fusion=_trust(),
                          bundles=bundles)
    return report, out


class _Page(HTMLParser):
    """Every tag with its attributes, and the page's text."""

    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def test_chance_is_the_majority_share_and_models_at_or_below_it_are_flagged(built):
    report, out = built
    assert chance_level(np.array([0, 1, 2, 3])) == 0.25 and chance_level(np.array([0, 0, 0, 1])) == 0.75
    assert chance_level(np.array([], np.int64)) == 0.0
    flagged = {(b["model"], b["split"]): b for b in report["below_chance"]}
    # audio: val 1/4 at chance 0.25; test 2/3 on the 3 clips it scored (angry, angry, disgust: chance 2/3,
    # not the split's 3/4); the fusion: test 3/4 at chance 0.75 (it is 75% right yet no better than "angry").
    assert set(flagged) == {("audio", "val"), ("audio", "test"), ("random_search", "test")}
    assert flagged["audio", "val"] == {"model": "audio", "kind": "specialist", "split": "val",
                                       "accuracy": 0.25, "chance": 0.25, "n": 4}
    assert flagged["audio", "test"]["chance"] == pytest.approx(2 / 3, abs=1e-4) and flagged["audio", "test"]["n"] == 3
    assert flagged["random_search", "test"]["accuracy"] == flagged["random_search", "test"]["chance"] == 0.75
    assert not any(m == "face_cnn" for m, _ in flagged)  # val 3/4 > 0.25 and test 4/4 > 0.75
    assert report["summary"]["below_chance"] == report["below_chance"]
    assert json.loads((out / "report.json").read_text())["below_chance"] == report["below_chance"]
    md = (out / "report.md").read_text()
    assert "| audio | specialist | 4/4 | 3/4 | 0.250 | " in md and md.count("| val, test |") == 1
    assert "| face_cnn | specialist | 4/4 | 4/4 | 0.750 | 0.667 | 1.000 | 1.000 | — |" in md
    assert "**At or below chance:** audio on val (0.250 ≤ chance 0.250, n=4)" in md
    assert "random_search on test (0.750 ≤ chance 0.750, n=4)" in md and "most common true class" in md


def test_per_class_figures(built):
    report, _ = built
    val = report["entries"]["audio"]["metrics"]["val"]["per_class"]  # predicted angry for all four
    assert val["angry"] == {"precision": 0.25, "recall": 1.0, "f1": pytest.approx(0.4), "support": 1}
    assert val["disgust"] == {"precision": None, "recall": 0.0, "f1": 0.0, "support": 1}
    assert val["sad"] == {"precision": None, "recall": None, "f1": None, "support": 0}
    cm = np.zeros((7, 7), int)
    cm[0, 0], cm[0, 1], cm[1, 1] = 2, 1, 3
    assert per_class(cm)["disgust"] == {"precision": 0.75, "recall": 1.0, "f1": pytest.approx(6 / 7), "support": 3}


def test_report_json_has_a_row_per_clip_matching_the_predictions(built):
    report, out = built
    rows = json.loads((out / "report.json").read_text())["per_clip"]
    assert rows == report["per_clip"]
    order = {"train": 0, "val": 1, "test": 2}
    assert [r["clip_id"] for r in rows] == sorted(IDS, key=lambda c: (order[SPLIT[IDS.index(c)]], c))
    for r in rows:
        i = IDS.index(r["clip_id"])
        assert (r["split"], r["label"]) == (SPLIT[i], EMOTIONS[LABELS[i]])
        for name in SPECIALISTS:
            want = None if PRED[name][i] is None else {"label": EMOTIONS[PRED[name][i]], "p": PROB}
            assert r["specialists"][name] == (pytest.approx(want) if want else None)
        assert r["fused"] == {"method": "random_search", "label": EMOTIONS[PRED["random_search"][i]],
                              "p": pytest.approx(PROB)}


def test_html_page_is_self_contained_and_shows_the_reported_numbers(built):
    report, out = built
    page = _parse(out / "report.html")
    images = [a["src"] for t, a in page.tags if t == "img"]
    pngs = [png for e in report["entries"].values() for png in e["confusion_png"].values()]
    assert len(pngs) == 6 and len(images) == len(pngs)
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_SIGNATURE)
    for tag, attrs in page.tags:
        for key in ("src", "href", "action", "data"):
            value = attrs.get(key) or ""
            assert not value.lower().startswith(("http:", "https:", "//", "file:")), (tag, attrs)
    assert not [t for t, _ in page.tags if t in ("script", "link", "iframe", "object", "embed")]
    raw = (out / "report.html").read_text()
    assert "@import" not in raw and "url(" not in raw
    text = " ".join(page.text)
    for name, e in report["entries"].items():
        for split in ("val", "test"):
            m = e["metrics"][split]
            assert f"{m['accuracy']:.3f}" in text and f"{m['macro_f1']:.3f}" in text and f"{m['chance']:.3f}" in text
    assert "0.400" in text  # audio's val F1 for angry (per-class table)
    assert "At or below chance" in text and "most common true class" in text
    for s in report["fingerprints"].values():
        assert s in text
    assert "f" * 64 in text and "0.1.0" in text  # the fused bundle's fingerprint and version
    assert "3/4 (75%)" in text  # audio scored 3 of 4 test clips


def test_html_flags_only_the_models_at_or_below_chance(built):
    _, out = built
    page = (out / "report.html").read_text()
    models = page.split('<h2 id="models">', 1)[1].split("</table>", 1)[0]
    rows = {r.split("</td>", 1)[0].rsplit(">", 1)[1]: r for r in models.split("<tr>")[2:]}
    assert set(rows) == {"audio", "face_cnn", "random_search"}
    assert rows["audio"].count('class="flag"') == 3  # val acc, test acc, the flag column
    assert rows["random_search"].count('class="flag"') == 2 and "val, test" not in rows["random_search"]
    assert 'class="flag"' not in rows["face_cnn"]


def test_html_shows_what_the_fusion_trusts(built):
    report, out = built
    trust = report["fusion_weights"]
    assert trust["per_class"] and trust["trusted"]["angry"] == ["audio"] and trust["trusted"]["happy"] == ["face_cnn"]
    assert trust["trusted"]["fear"] == ["audio", "face_cnn"]  # a tie names both
    section = (out / "report.html").read_text().split('<h2 id="fusion">', 1)[1].split("</table>", 1)[0]
    assert "<td class=best>0.90</td>" in section and "random_search" in section
    assert "| happy | face_cnn | 0.10 | 0.90 |" in (out / "report.md").read_text()


def test_timelines_of_val_clips_are_copied_and_embedded(tables, tmp_path, built):
    predictions, fused, clips = tables
    _, first = built
    png = (first / "confusion_face_cnn_val.png").read_bytes()
    other = tmp_path / "tl_c5.png"
    other.write_bytes((first / "confusion_audio_val.png").read_bytes())
    out = tmp_path / "t"
    report = build_report(predictions, fused, clips, out, val_timelines={"c4 (angry)": png, "c5": other})
    assert [t["caption"] for t in report["timelines"]] == ["c4 (angry)", "c5"]
    assert all((out / t["png"]).read_bytes().startswith(PNG_SIGNATURE) for t in report["timelines"])
    page = _parse(out / "report.html")
    assert len([1 for t, _ in page.tags if t == "img"]) == 6 + 2 and "Timelines of val clips" in " ".join(page.text)
    assert report["timelines"][0]["png"] in (out / "report.md").read_text()
    assert build_report(predictions, fused, clips, tmp_path / "u", val_timelines=[other])["timelines"][0]["caption"] \
        == "tl_c5"
    with pytest.raises(ValueError, match="not a PNG"):
        build_report(predictions, fused, clips, tmp_path / "v", val_timelines=[b"GIF89a..."])


def test_fusers_without_per_class_weights_say_so():
    specs = ["audio", "face_cnn"]
    mean = describe_fuser(MeanFusion(), "mean", specs)
    assert not mean["per_class"] and mean["weights"] == {"every class": {"audio": 0.5, "face_cnn": 0.5}}
    assert mean["trusted"]["every class"] == specs
    loglin = LogLinearFusion()
    loglin.weights_, loglin.bias_ = np.array([0.2, 1.3]), np.zeros(7)
    d = describe_fuser(loglin, "log_linear", specs)
    assert not d["per_class"] and d["trusted"] == {"every class": ["face_cnn"]} and "same for every class" in d["how"]


def test_learned_fusion_weight_is_the_coefficient_on_the_class_own_log_probability():
    rng = np.random.default_rng(0)
    fuser = LearnedFusion()
    fuser.coef_, fuser.intercept_, fuser.n_specialists_ = rng.normal(size=(7, 7 * 2 + 2)), np.zeros(7), 2
    d = describe_fuser(fuser, "learned", ["audio", "face_cnn"])
    P = np.full((1, 2, 7), 0.05)
    M = np.ones((1, 2), bool)
    base = LearnedFusion._features(P, M) @ fuser.coef_.T
    for s, name in enumerate(["audio", "face_cnn"]):
        for c, cls in enumerate(EMOTIONS):
            bumped = P.copy()
            bumped[0, s, c] *= np.e  # log p_{s,c} + 1
            gain = (LearnedFusion._features(bumped, M) @ fuser.coef_.T - base)[0, c]
            assert d["weights"][cls][name] == pytest.approx(gain, abs=1e-4)


def test_confusion_plot_names_classes_in_full():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    try:
        draw_confusion(ax, np.eye(7, dtype=int), "t")
        assert [t.get_text() for t in ax.get_xticklabels()] == list(EMOTIONS)
        assert [t.get_text() for t in ax.get_yticklabels()] == list(EMOTIONS)
    finally:
        plt.close(fig)


def test_console_view_fits_80_columns_and_shows_no_markdown_images(built):
    from rich.console import Console

    from cli.report_view import render_report

    report, out = built
    console = Console(width=80, record=True, file=io.StringIO(), color_system=None)
    render_report(out, console)
    text = console.export_text()
    lines = text.splitlines()
    assert lines and max(len(line) for line in lines) <= 80
    assert "![" not in text and "!(" not in text and "```" not in text and "| --- |" not in text
    assert "a" * 13 not in text and "a" * 12 + "…" in text  # hashes cut short
    assert "0.250!" in text and "1.000!" not in text  # audio's val accuracy flagged; face_cnn's test not
    flagged = text.split("At or below chance", 1)[1].split("Chance for a model", 1)[0]
    assert "audio" in flagged and "random_search" in flagged and "face_cnn" not in flagged
    assert str(out / "report.html") in text.replace("\n", "")
    for name, e in report["entries"].items():
        assert f"{e['metrics']['test']['accuracy']:.3f}" in text
