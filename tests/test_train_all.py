"""train-all end to end on a tiny generated dataset: trains, fuses, reports; a second run reuses
everything; an added clip recomputes only that clip's features and retrains; removing it again
retrains (the store holds the third run's models, whatever the first run's inputs were)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from data_catalog import Store
from emonets.datasets.demo.dataset import make_demo_dataset
from flows.train_all import train_all

# Tiny models: CI checks the plumbing, not accuracy (benchmarks/ measure that).
TINY = {
    "face_cnn": {"widths": [8, 16], "convs": [1, 1], "max_epochs": 1, "batch_size": 32, "svm_C": [1.0]},
    "audio": {"hidden": [32, 32], "max_epochs": 2, "patience": 2},
    "bag_of_mouths": {"n_centroids": 8, "kmeans_iter": 10, "max_iter": 100},
    "motion": {"n_hidden": 16, "n_words": 8, "max_epochs": 1, "kmeans_iter": 10, "max_pca_components": 32},
}


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    make_demo_dataset(root, per_class=2, seconds=1.5)
    return root


def report_splits(store: Store) -> dict[str, str]:
    clips = store.read("clips")
    return dict(zip(clips["clip_id"], clips["split"]))


def _run(root, store):
    return train_all(data_roots=[str(root)], store_root=str(store.root), runner="threads",
                     configs=TINY, fusion_draws=2000)


@pytest.mark.slow
def test_train_all_then_nothing_to_redo_then_one_clip_added(prefect_api, demo_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(demo_root, root)
    store = Store(tmp_path / "store")

    first = _run(root, store)
    assert first["clips"] == 28 and first["extraction"]["failed"] == 0
    assert {n: s["status"] for n, s in first["specialists"].items()} == {
        "face_cnn": "trained", "audio": "trained", "bag_of_mouths": "trained", "motion": "trained"}
    assert first["fusion"]["status"] == "fitted"
    assert {s["retraining"]["reason"] for s in first["specialists"].values()} == {"no previous model"}
    assert set(first["test_accuracy"]) >= {"face_cnn", "audio", "mean", "random_search", "learned"}
    report = json.loads((store.path("reports", "latest", "report.json")).read_text())
    assert report["entries"]["random_search"]["metrics"]["test"]["n"] == 7
    assert any(p.suffix == ".png" for p in store.path("reports", "latest").iterdir())
    val_ids = sorted(c for c, sp in report_splits(store).items() if sp == "val")[:3]
    assert [t["caption"].split(" ")[0] for t in report["timelines"]] == val_ids  # first three val clips
    page = store.path("reports", "latest", "report.html").read_text()
    assert page.count("data:image/png;base64,") >= len(val_ids) + 1
    assert (store.path("models", "fused", "specialists", "audio", "bundle.json")).is_file()

    second = _run(root, store)
    assert second["extraction"]["computed"] == 0 and second["extraction"]["cached"] == first["extraction"]["computed"]
    assert {s["status"] for s in second["specialists"].values()} == {"reused"}
    assert second["fusion"]["status"] == "reused"

    extra = root / "Train" / "Happy" / "added_clip.mp4"  # a new clip (a copy's bytes would be a duplicate)
    other = make_demo_dataset(tmp_path / "other", per_class=1, seconds=1.5, seed=7)["root"]
    shutil.copy(next((Path(other) / "Train" / "Happy").iterdir()), extra)
    third = _run(root, store)
    # one new clip: faces, mouths, mfcc, motion for it and nothing else
    assert third["extraction"]["computed"] == 4 and third["clips"] == 29
    assert {s["status"] for s in third["specialists"].values()} == {"trained"}
    assert third["fusion"]["status"] == "fitted"
    for name, s in third["specialists"].items():  # the change is known clip for clip, and what it allows
        assert (s["retraining"]["changes"]["added"], s["retraining"]["changes"]["removed"]) == (1, 0), name
        assert s["retraining"]["mode"] == "warm", name
    trained = {n: s["retraining"]["trained"] for n, s in third["specialists"].items()}
    assert trained == {"face_cnn": "warm", "audio": "warm", "motion": "warm", "bag_of_mouths": "warm"}
    # motion kept its representation: every known clip's bag of words came from the clip cache
    assert third["specialists"]["motion"]["retraining"]["clip_cache"]["misses"] == 1
    audio_bundle = json.loads(store.path("models", "audio", "bundle.json").read_text())
    assert audio_bundle["retraining"]["trained"] == "warm" and audio_bundle["metrics"]["warm_epochs"] == 3
    assert len(audio_bundle["inputs"]["clips"]) == 22  # the train and val clips: the 21 before and the added one
    page = store.path("reports", "latest", "report.md").read_text()
    assert "bundle audio:" in page and "warm from the previous bundle" in page
    assert "rule: warm, 1 added, 0 removed, 0 changed of 21 training clips" in page

    # a full retrain asked for: the warm-started models train from scratch although nothing changed
    full = train_all(data_roots=[str(root)], store_root=str(store.root), runner="threads", configs=TINY,
                     fusion_draws=2000, retrain="full")
    assert full["extraction"]["computed"] == 0
    assert {s["status"] for s in full["specialists"].values()} == {"trained"}
    assert full["specialists"]["audio"]["retraining"] == {
        **full["specialists"]["audio"]["retraining"], "mode": "full", "trained": "from scratch",
        "reason": "a full retrain was asked for and the bundle was warm-started"}

    # and removed again: the inputs are those of the first run, but the store's models are the
    # third run's, so they must be retrained, not "reused" (emonets.freshness asks the store)
    extra.unlink()
    fourth = _run(root, store)
    assert fourth["clips"] == 28 and fourth["extraction"]["computed"] == 0
    assert {s["status"] for s in fourth["specialists"].values()} == {"trained"}
    assert fourth["fusion"]["status"] == "fitted"
    removal = fourth["specialists"]["audio"]["retraining"]
    assert removal["mode"] == "full" and "un-learn" in removal["reason"] and removal["changes"]["removed"] == 1
    assert fourth["specialists"]["audio"]["scored"] == first["specialists"]["audio"]["scored"]


def test_train_all_rejects_unknown_specialist(tmp_path):
    """Checked before anything runs: the flow's body alone (no Prefect API, no flow run, no run
    logger) raises, and the store is never touched (no lock, no ingest)."""
    with pytest.raises(ValueError, match="unknown specialist .smell."):
        train_all.fn(data_roots=[str(tmp_path)], store_root=str(tmp_path / "s"), specialists=["smell"])
    assert not (tmp_path / "s").exists()


def test_shared_path_skips_when_absent_and_fails_under_ci(monkeypatch, tmp_path):
    import conftest

    def outcome(*parts):
        """What shared_path raised; caught as BaseException, so a skip where a failure is due
        fails this test instead of skipping it."""
        with pytest.raises(BaseException) as caught:
            conftest.shared_path(*parts)
        return caught

    monkeypatch.setattr(conftest, "SHARED", tmp_path)
    (tmp_path / "fer2013").mkdir()
    for flag in (None, "1", "0"):
        if flag is None:
            monkeypatch.delenv(conftest.REQUIRE_SHARED_DATA, raising=False)
        else:
            monkeypatch.setenv(conftest.REQUIRE_SHARED_DATA, flag)
        assert conftest.shared_path("fer2013") == tmp_path / "fer2013"  # present: the path, either way
    missing = f"shared data not found at {tmp_path / 'ravdess-speech'} (set EMONETS_SHARED_DATA)"
    monkeypatch.delenv(conftest.REQUIRE_SHARED_DATA)
    skipped = outcome("ravdess-speech")
    assert skipped.type is pytest.skip.Exception and str(skipped.value) == missing
    monkeypatch.setenv(conftest.REQUIRE_SHARED_DATA, "1")
    failed = outcome("ravdess-speech")
    assert failed.type is pytest.fail.Exception
    assert str(failed.value) == f"{missing}; EMONETS_REQUIRE_SHARED_DATA=1 requires it"
