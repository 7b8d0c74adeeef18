"""Training progress: real tiny fits report their epochs (in order, with totals and a validation
figure) to an active reporter, from this process and from a spawned one; with none active,
nothing is reported; the CLI's Rich view shows where each specialist stands."""

from __future__ import annotations

import io
import multiprocessing
import os
import threading

import numpy as np
import pytest
import torch

from emonets import training_progress as progress
from emonets.specialists.audio.model import AudioConfig, AudioSpecialist
from emonets.specialists.audio.data import Augment
from emonets.specialists.base import ClipSet
from emonets.specialists.lightning_utils import ProgressReport, progress_callbacks
from emonets.train import max_epochs_note


@pytest.fixture(autouse=True)
def _one_thread_no_reporter(monkeypatch):
    """Tiny models run faster on one thread; no reporter leaks in from the environment."""
    monkeypatch.delenv(progress.ENV, raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def burst_clips(n: int, seed: int, d: int = 8) -> ClipSet:
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        x = rng.normal(size=(int(rng.integers(20, 40)), d)).astype(np.float32)
        x[:5, i % 7] += 4.0
        items.append(x)
    return ClipSet([f"c{i}" for i in range(n)], items, np.arange(n) % 7)


TINY_AUDIO = AudioConfig(hidden=(16,), context=1, dilation=1, stride=1, dropout=0.0, input_dropout=0.0,
                         batch_size=16, patience=50, augment=Augment(), max_epochs=3, seeds=(0, 1))


def _events(path) -> list[dict]:
    return progress.EventReader(path).read()


def test_an_ensemble_fit_reports_every_epoch_of_every_seed(tmp_path):
    sink = tmp_path / "progress.jsonl"
    sink.touch()
    with progress.reporting_to(sink):
        assert [type(c) for c in progress_callbacks("audio")] == [ProgressReport]
        with progress.training("audio", fits=2):
            AudioSpecialist(TINY_AUDIO).fit(burst_clips(14, 0), burst_clips(7, 1))
    assert progress.ENV not in os.environ  # the reporter ends with its block

    events = _events(sink)
    assert [e["kind"] for e in events] == ["begin", *(["fit", "epoch", "epoch", "epoch", "fit_end"] * 2), "end"]
    epochs = [e for e in events if e["kind"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 1, 2, 3]
    assert {e["max_epochs"] for e in epochs} == {3}
    assert {e["metric"] for e in epochs} == {"val_loss"}  # the figure early stopping watches
    assert all(np.isfinite(e["value"]) and e["seconds"] > 0 for e in epochs)

    board = progress.TrainingBoard()
    for event in events[:events.index(epochs[4]) + 1]:  # up to seed 2, epoch 2
        mid = board.apply(event)
    assert (mid.fit, mid.fits, mid.epoch, mid.epochs_done_and_total()) == (2, 2, 2, (5, 6))
    assert mid.seconds_left(now=epochs[4]["t"]) == pytest.approx(mid.seconds_per_epoch)  # one epoch to go
    for event in events[events.index(epochs[4]) + 1:]:
        end = board.apply(event)
    assert end.status == "done" and end.epochs_done_and_total() == (6, 6) and end.seconds_left() is None


def test_without_a_reporter_nothing_is_reported_and_training_works(tmp_path):
    from emonets.specialists.motion.autoencoder import train_autoencoder

    sink = tmp_path / "progress.jsonl"
    sink.touch()  # a file exists, but nobody made it the reporter
    assert progress_callbacks("motion") == []
    x = np.random.default_rng(0).normal(size=(120, 16)).astype(np.float32)
    result = train_autoencoder(x, x[:40], n_hidden=8, max_epochs=2, batch_size=40)
    progress.emit("epoch", "motion", epoch=1)
    assert len(result.epoch_seconds) == 2 and sink.read_bytes() == b""


def test_a_failed_fit_ends_its_row_as_failed(tmp_path):
    sink = tmp_path / "progress.jsonl"
    sink.touch()
    with progress.reporting_to(sink), pytest.raises(ValueError):
        with progress.training("audio", fits=3):
            raise ValueError("no training clips")
    board = progress.TrainingBoard()
    for event in _events(sink):
        board.apply(event)
    assert board.specialists["audio"].status == "failed"


def _fit_motion_in_child(n_epochs: int) -> None:
    from emonets.specialists.motion.autoencoder import train_autoencoder

    torch.set_num_threads(1)
    x = np.random.default_rng(1).normal(size=(80, 16)).astype(np.float32)
    train_autoencoder(x, x[:20], n_hidden=8, max_epochs=n_epochs, batch_size=40)


def test_reports_cross_from_a_spawned_process(tmp_path):
    """As from a process-pool worker or a DDP spawn: the child inherits only the environment."""
    sink = tmp_path / "progress.jsonl"
    sink.touch()
    with progress.reporting_to(sink):
        child = multiprocessing.get_context("spawn").Process(target=_fit_motion_in_child, args=(2,))
        child.start()
        child.join(timeout=180)
    assert child.exitcode == 0
    events = _events(sink)
    assert [(e["kind"], e.get("epoch")) for e in events] == [
        ("fit", None), ("epoch", 1), ("epoch", 2), ("fit_end", None)]
    assert {e["specialist"] for e in events} == {"motion"} and events[1]["metric"] == "val_loss"
    assert events[0]["max_epochs"] == 2


def test_reader_waits_for_a_whole_line(tmp_path):
    sink = tmp_path / "progress.jsonl"
    sink.write_text('{"kind": "phase", "specialist": "audio"}\n{"kind": "ep')
    reader = progress.EventReader(sink)
    assert [e["kind"] for e in reader.read()] == ["phase"]
    with open(sink, "a") as f:
        f.write('och", "specialist": "audio", "epoch": 1}\n')
    assert [e.get("epoch") for e in reader.read()] == [1] and reader.read() == []


def test_emit_after_the_reporter_left_creates_nothing(tmp_path, monkeypatch):
    gone = tmp_path / "gone.jsonl"
    monkeypatch.setenv(progress.ENV, str(gone))
    progress.emit("epoch", "audio", epoch=1)  # no error, and no file left behind
    assert not gone.exists()


def test_max_epochs_note_names_the_specialists_it_does_not_apply_to():
    assert "bag_of_mouths" in max_epochs_note("bag_of_mouths", 5)
    assert max_epochs_note("bag_of_mouths", None) is None
    for name in ("face_cnn", "audio", "motion"):
        assert max_epochs_note(name, 5) is None
    assert "cnn_bundle" in max_epochs_note("face_cnn", 5, {"cnn_bundle": "/some/bundle"})


@pytest.mark.parametrize("terminal", [True, False])
def test_the_rich_view_shows_each_specialist(monkeypatch, terminal):
    from rich.console import Console

    import cli.progress as view

    out = io.StringIO()
    monkeypatch.setattr(view, "console", Console(file=out, width=200, force_terminal=terminal, color_system=None))
    with view.training_progress(poll_seconds=0.05):
        assert os.environ.get(progress.ENV)

        def train() -> None:  # a task runner's thread
            progress.emit("begin", "audio", fits=3)
            progress.emit("fit", "audio", max_epochs=20)
            progress.emit("epoch", "audio", epoch=1, max_epochs=20, metric="val_loss", value=1.25, seconds=2.0)
            progress.emit("begin", "bag_of_mouths", fits=0, phase="k-means dictionaries + logistic regression")

        worker = threading.Thread(target=train)
        worker.start()
        worker.join()
        from flows.runtime.progress import current_progress

        current_progress()(3, 8)  # extraction's callback, as the extract flow finds it
    assert progress.ENV not in os.environ
    text = out.getvalue()
    if not terminal:  # a pipe or a log: the rows are not left in it (the command's lines say the outcome)
        assert text.strip() == ""
        return
    assert "fit 1/3 · epoch 1/20 · val_loss 1.25 · 2.0 s/epoch" in text
    assert "k-means dictionaries + logistic regression" in text and "3/8 tasks" in text


def test_training_detail_and_time_left():
    from cli.progress import training_detail

    state = progress.SpecialistProgress("face_cnn", fits=1, fit=1, epoch=4, max_epochs=30, metric="val_acc",
                                        value=0.5123, seconds=[60.0] * 4, fitting=True, last_t=1000.0)
    assert training_detail(state) == "epoch 4/30 · val_acc 0.5123 · 60.0 s/epoch"
    assert state.seconds_left(now=1030.0) == pytest.approx(26 * 60 - 30)
    state.time_cap_left = 100.0  # a max_minutes cap ends it first
    assert state.seconds_left(now=1030.0) == 100.0


def test_a_max_epochs_that_does_not_apply_does_not_retrain(tmp_path):
    """It is left out of the training inputs (what decides whether the bundle is current): bag_of_mouths would retrain for nothing."""
    from data_catalog import Store
    from emonets.media.writer import write_video
    from tasks.ingest import ingest_root
    from emonets.freshness import training_inputs

    for i, label in enumerate(("Happy", "Sad")):
        folder = tmp_path / "data" / "Train" / label
        folder.mkdir(parents=True)
        frames = (np.full((32, 32, 3), 40 * i + j, np.uint8) for j in range(10))
        write_video(folder / f"clip{i}.mp4", frames, fps=10)
    store = Store(tmp_path / "store")
    ingest_root.fn(str(tmp_path / "data"), str(store.root))
    assert training_inputs(store, "bag_of_mouths", None, 5) == training_inputs(store, "bag_of_mouths", None, None)
    assert training_inputs(store, "audio", None, 5) != training_inputs(store, "audio", None, None)


@pytest.mark.slow
def test_a_data_parallel_fit_reports_once_per_epoch_from_its_spawned_ranks(tmp_path):
    """face_cnn on 2 CPU processes (ddp_spawn): only rank 0 reports, from a spawned process."""
    from emonets.specialists.face_cnn.model import FaceCNN, FaceCNNConfig

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 255, size=(128, 48, 48), dtype=np.uint8), np.arange(128) % 2
    cfg = FaceCNNConfig(widths=(8, 16), convs=(1, 1), batch_size=32, max_epochs=2, augment=False, devices=2)
    sink = tmp_path / "progress.jsonl"
    sink.touch()
    with progress.reporting_to(sink):
        FaceCNN(cfg).fit_network(x, y, x[:32], y[:32], work_dir=tmp_path / "work")
    events = _events(sink)
    assert [(e["kind"], e.get("epoch")) for e in events] == [
        ("fit", None), ("epoch", 1), ("epoch", 2), ("fit_end", None)]
    assert events[1]["metric"] == "val_acc" and 0.0 <= events[1]["value"] <= 1.0
