"""Face ConvNet specialist: backbone, augmentation, in-memory data, learning a synthetic task,
the time-pooled SVM stage, bundle round trip, and a smoke run on real FER-2013 faces."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from emonets.labels import EMOTIONS
from emonets.specialists.base import ClipSet
from emonets.specialists.face_cnn.model import FaceCNN, FaceCNNConfig
from emonets.specialists.face_cnn.data import FaceDataModule
from emonets.specialists.face_cnn.net import TTA_VIEWS, FaceNet, augment, to_input, tta_views
from emonets.specialists import lightning_utils
from emonets.specialists.lightning_utils import device_settings, resolve_precision
from emonets.train import fit_specialist

torch.set_num_threads(1)

SIZE = 24
TINY = FaceCNNConfig(widths=(8, 16), convs=(1, 1), dropout=0.0, head_dropout=0.0, lr=1e-2, batch_size=32,
                     max_epochs=8, augment=False, svm_C=(0.3, 3.0, 30.0))


def stripes(n: int, horizontal: bool, rng: np.random.Generator) -> np.ndarray:
    """(n, SIZE, SIZE) uint8: noisy sine stripes, horizontal or vertical, random period and phase."""
    pos = np.arange(SIZE, dtype=np.float64)
    period = rng.uniform(4, 8, size=(n, 1, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
    wave = np.sin(2 * np.pi * pos[None, :, None] / period + phase)  # varies down the rows
    wave = np.broadcast_to(wave, (n, SIZE, SIZE))
    if not horizontal:
        wave = wave.transpose(0, 2, 1)
    img = 128 + 80 * wave + rng.normal(0, 20, size=(n, SIZE, SIZE))
    return np.clip(img, 0, 255).astype(np.uint8)


def stripe_set(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = np.empty((n, SIZE, SIZE), np.uint8)
    x[y == 0] = stripes(int((y == 0).sum()), True, rng)
    x[y == 1] = stripes(int((y == 1).sum()), False, rng)
    return x, y


@pytest.fixture(scope="module")
def trained() -> FaceCNN:
    x, y = stripe_set(256, seed=0)
    return FaceCNN(TINY).fit_network(x, y)


def test_backbone_output_shape_and_size_independence():
    net = FaceNet().eval()
    for side in (48, 40):
        assert net(torch.zeros(3, 1, side, side)).shape == (3, 7)
    assert sum(p.numel() for p in net.parameters()) > 100_000
    with pytest.raises(ValueError):
        FaceNet(widths=(8, 16), convs=(1,))


def test_to_input_scales_to_unit_range():
    x = to_input(torch.tensor([[[0, 255]]], dtype=torch.uint8))
    assert x.shape == (1, 1, 1, 2)
    np.testing.assert_allclose(x.flatten().numpy(), [-1.0, 1.0])


def test_augment_keeps_shape_changes_pixels_and_is_seeded():
    x = to_input(torch.from_numpy(stripe_set(8, seed=1)[0]))
    a = augment(x, generator=torch.Generator().manual_seed(3))
    b = augment(x, generator=torch.Generator().manual_seed(3))
    assert a.shape == x.shape
    assert torch.equal(a, b)
    assert not torch.allclose(a, x)
    assert a.min() >= -1.0 - 1e-6 and a.max() <= 1.0 + 1e-6


def test_tta_views_are_the_face_its_mirror_and_small_fixed_warps():
    x = torch.full((2, 1, 48, 48), -1.0)
    x[:, :, 20:28, 10:14] = 1.0  # a bright bar left of centre
    mirror = list(tta_views(x, "mirror"))
    assert len(mirror) == 2 and torch.equal(mirror[0], x) and torch.equal(mirror[1], x.flip(-1))
    views = list(tta_views(x, "affine"))
    assert len(views) == 2 * len(TTA_VIEWS["affine"]) == 18
    assert all(v.shape == x.shape for v in views)
    assert len({v.numpy().tobytes() for v in views}) == 18  # all different
    # the third listed warp shifts by +2 pixels of 48: the bar's centre of mass moves 2 columns
    cols = torch.arange(48.0)

    def centre(img):
        w = (img[0, 0] + 1).sum(0)
        return float((w * cols).sum() / w.sum())

    assert abs(abs(centre(views[4]) - centre(x)) - 2.0) < 0.05
    assert abs(centre(views[5]) - (47 - centre(views[4]))) < 0.05  # its mirrored twin
    with pytest.raises(ValueError, match="unknown test-time views"):
        list(tta_views(x, "ten-crop"))


def test_data_module_gives_whole_uint8_batches_covering_each_face_once():
    x = np.arange(70, dtype=np.uint8)[:, None, None].repeat(4, 1).repeat(4, 2)
    dm = FaceDataModule(x, np.arange(70) % 7, x[:10], np.zeros(10), batch_size=16, val_batch_size=4,
                        on_device=False)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == dm.steps_per_epoch() == 4  # 70 // 16, last partial batch dropped
    seen = torch.cat([b[0][:, 0, 0] for b in batches])
    assert batches[0][0].dtype == torch.uint8 and batches[0][0].shape == (16, 4, 4)
    assert len(set(seen.tolist())) == 64  # no face twice in one epoch
    assert [len(b[0]) for b in dm.val_dataloader()] == [4, 4, 2]


def test_fit_network_learns_a_synthetic_task(trained):
    x, y = stripe_set(100, seed=5)
    probs = trained.predict_frames(x)
    assert probs.shape == (100, 7) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert (probs.argmax(1) == y).mean() >= 0.95
    m = trained.metrics_
    assert m["epochs_trained"] == TINY.max_epochs and m["params"] > 0 and m["device"] in ("cpu", "cuda")
    # deterministic in eval mode
    np.testing.assert_array_equal(probs, trained.predict_frames(x))


def test_fit_network_with_validation_keeps_best_checkpoint(tmp_path):
    x, y = stripe_set(128, seed=2)
    xv, yv = stripe_set(40, seed=3)
    cfg = FaceCNNConfig(**{**TINY.to_dict(), "max_epochs": 3})
    model = FaceCNN(cfg).fit_network(x, y, xv, yv, work_dir=tmp_path)
    assert 0.0 <= model.metrics_["best_val_acc"] <= 1.0
    assert list((tmp_path / "checkpoints").glob("*.ckpt"))
    history = model.metrics_["history"]
    assert len(history) == 3 and all(h.get("val_acc") is not None for h in history)
    best = max(h["val_acc"] for h in history)
    assert model.metrics_["best_val_acc"] == pytest.approx(best)
    # the weights kept are the best epoch's: re-measuring val gives the best accuracy
    acc = float((model.predict_frames(xv).argmax(1) == yv).mean())
    assert acc == pytest.approx(best, abs=1e-6)


def test_swa_keeps_the_average_of_its_epochs_weights(monkeypatch, tmp_path):
    """With swa_epochs the kept net is Lightning's running average, not the best epoch's."""
    from lightning.pytorch.callbacks import StochasticWeightAveraging

    snapshots = []
    original = StochasticWeightAveraging.update_parameters

    def recording(average_model, model, n_averaged, avg_fn):
        snapshots.append({k: v.detach().clone() for k, v in model.net.named_parameters()})
        return original(average_model, model, n_averaged, avg_fn)

    monkeypatch.setattr(StochasticWeightAveraging, "update_parameters", staticmethod(recording))
    x, y = stripe_set(256, seed=0)
    xv, yv = stripe_set(64, seed=1)
    model = FaceCNN(replace(TINY, max_epochs=5, swa_epochs=3)).fit_network(x, y, xv, yv, work_dir=tmp_path)
    assert len(snapshots) == 3 and model.metrics_["swa"]["completed"]
    for name, value in model.state_.items():
        if name in snapshots[0]:
            np.testing.assert_allclose(value, torch.stack([s[name] for s in snapshots]).mean(0), rtol=1e-5, atol=1e-6)
    assert not np.allclose(model.state_["head.2.weight"], snapshots[-1]["head.2.weight"])
    assert model.metrics_["swa"]["val_acc"] is not None
    assert (model.predict_frames(xv).argmax(1) == yv).mean() >= 0.9
    with pytest.raises(ValueError, match="swa_epochs"):
        replace(TINY, swa_epochs=TINY.max_epochs + 1)


def test_warm_start_begins_from_the_given_weights(trained):
    x, y = stripe_set(64, seed=4)
    frozen = FaceCNN(replace(TINY, lr=0.0, max_epochs=1)).fit_network(x, y, init_state=trained.state_)
    params = {name for name, _ in FaceNet(widths=TINY.widths, convs=TINY.convs).named_parameters()}
    for name in params:  # lr 0: the weights are exactly the ones started from (BN statistics still move)
        torch.testing.assert_close(frozen.state_[name], trained.state_[name], rtol=0, atol=0)
    assert frozen.metrics_["warm_started"] and not trained.metrics_["warm_started"]
    tuned = FaceCNN(replace(TINY, lr=1e-3, max_epochs=1)).fit_network(x, y, init_state=trained.state_)
    faces, labels = stripe_set(100, seed=5)
    assert (tuned.predict_frames(faces).argmax(1) == labels).mean() >= 0.9  # one gentle epoch keeps what it knew
    with pytest.raises(RuntimeError, match="size mismatch"):
        FaceCNN(replace(TINY, widths=(8, 8), max_epochs=1)).fit_network(x, y, init_state=trained.state_)


def test_rejects_bad_frames():
    with pytest.raises(ValueError):
        FaceCNN(TINY).fit_network(np.zeros((0, SIZE, SIZE), np.uint8), np.zeros(0))
    with pytest.raises(ValueError):
        FaceCNN(TINY).fit_network(np.zeros((4, SIZE), np.uint8), np.zeros(4))


def order_clips(n: int, seed: int) -> ClipSet:
    """Class 0: all horizontal stripes; 1: all vertical; 2: horizontal then vertical; 3: the reverse.

    Classes 2 and 3 hold the same frames in a different order, so only the time segments tell them apart.
    """
    rng = np.random.default_rng(seed)
    items, labels = [], []
    for i in range(n):
        c, t = i % 4, int(rng.integers(4, 30))  # some clips shorter than 10 frames
        half = t // 2
        first_h = c in (0, 2)
        second_h = c in (0, 3)
        items.append(np.concatenate([stripes(half, first_h, rng), stripes(t - half, second_h, rng)]))
        labels.append(c)
    return ClipSet([f"clip{i}" for i in range(n)], items, np.array(labels))


def test_svm_stage_uses_the_order_in_time(trained):
    model = FaceCNN(TINY)
    model.size_, model.state_ = trained.size_, trained.state_
    train, val, test = order_clips(48, 10), order_clips(24, 11), order_clips(40, 12)
    mean_only = model.predict_proba(test)  # no SVM yet: the frames' mean
    model.fit_video_head(train, val)
    probs = model.predict_proba(test)
    assert probs.shape == (40, 7)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert np.all(probs[:, 4:] == 0)  # classes never seen in training get no probability
    late = test.labels >= 2
    svm_acc = (probs.argmax(1) == test.labels)[late].mean()
    mean_acc = (mean_only.argmax(1) == test.labels)[late].mean()
    assert svm_acc >= 0.9 and mean_acc < 0.5
    assert model.metrics_["svm_C"] in TINY.svm_C


@pytest.mark.parametrize("per_class, platt", [(4, False), (12, True)])
def test_svm_probabilities_agree_with_its_decisions_however_few_videos(trained, per_class, platt):
    """With a few videos per class libsvm's Platt scaling contradicts the SVM (the 28-clip demo:
    43% right by the SVM, 4% by its probabilities); below PLATT_MIN_CLIPS a softmax of the
    scores is used, whose argmax is the SVM's decision."""
    model = FaceCNN(TINY)
    model.size_, model.state_ = trained.size_, trained.state_
    train, test = order_clips(4 * per_class, 20), order_clips(40, 21)
    model.fit_video_head(train)
    assert model.svm_.probability is platt  # from PLATT_MIN_CLIPS per class on, Platt's as before
    if not platt:
        decided = model.svm_.predict(model._clip_vectors(test)[0])
        assert (model.predict_proba(test).argmax(1) == decided).all()


def test_clip_without_faces_is_named():
    model = FaceCNN(TINY)
    clips = ClipSet(["ok", "empty-one"], [np.zeros((3, SIZE, SIZE), np.uint8), np.zeros((0, SIZE, SIZE), np.uint8)])
    with pytest.raises(ValueError, match="empty-one"):
        model.predict_proba(clips)


def test_svm_needs_two_classes_and_a_trained_net(trained):
    with pytest.raises(RuntimeError):
        FaceCNN(TINY).fit_video_head(order_clips(8, 0))
    one_class = order_clips(8, 0)
    with pytest.raises(ValueError):
        trained.fit_video_head(one_class.subset(one_class.labels == 1))


def test_fit_trains_the_whole_model_on_clips(tmp_path):
    """scikit-learn's contract: ``fit`` alone gives a usable model (network, then video head)."""
    train, val, test = order_clips(32, 30), order_clips(16, 31), order_clips(40, 32)  # 8 a class: no Platt
    model = FaceCNN(replace(TINY, max_epochs=6)).fit(train, val)
    assert model.state_ and model.svm_ is not None and model.metrics_["svm_C"] in TINY.svm_C
    assert (model.predict_proba(test).argmax(1) == test.labels).mean() >= 0.6
    with pytest.raises(ValueError, match="no labelled clip"):
        FaceCNN(TINY).fit(ClipSet(["a"], [np.zeros((0, SIZE, SIZE), np.uint8)], np.array([1])))


def test_svm_C_keyword_overrides_config():
    assert FaceCNN(TINY, svm_C=[5.0]).config.svm_C == (5.0,)
    assert FaceCNN(TINY).config.svm_C == TINY.svm_C


def test_save_load_round_trip_identical(trained, tmp_path):
    model = FaceCNN(TINY)
    model.size_, model.state_, model.metrics_ = trained.size_, trained.state_, dict(trained.metrics_)
    model.fit_video_head(order_clips(48, 20))
    path = model.save(tmp_path / "face_bundle")
    back = FaceCNN.load(path)
    test = order_clips(12, 21)
    np.testing.assert_array_equal(back.predict_proba(test), model.predict_proba(test))
    frames = np.concatenate(test.items)
    np.testing.assert_array_equal(back.predict_frames(frames), model.predict_frames(frames))
    assert back.config == model.config and back.metrics_["svm_C"] == model.metrics_["svm_C"]
    # without an SVM the bundle holds the net only, and predictions are the frame means
    trained.save(tmp_path / "net_only")
    net_only = FaceCNN.load(tmp_path / "net_only")
    assert net_only.svm_ is None
    np.testing.assert_allclose(net_only.predict_proba(test)[0], trained.predict_frames(test.items[0]).mean(0), rtol=1e-6)


def test_ensemble_averages_its_members_and_round_trips(trained, tmp_path):
    x, y = stripe_set(256, seed=1)
    other = FaceCNN(replace(TINY, widths=(8, 8), seed=1)).fit_network(x, y)
    both = FaceCNN.ensemble([trained, other])
    faces, labels = stripe_set(64, seed=2)
    np.testing.assert_allclose(both.predict_frames(faces),
                               (trained.predict_frames(faces) + other.predict_frames(faces)) / 2, rtol=1e-5, atol=1e-6)
    assert (both.predict_frames(faces).argmax(1) == labels).mean() >= 0.9
    assert both.metrics_["params"] == trained.metrics_["params"] + other.metrics_["params"]
    both.fit_video_head(order_clips(48, 20))  # the SVM stage works on the ensemble's frame probabilities
    back = FaceCNN.load(both.save(tmp_path / "ensemble"))
    assert [c.widths for c, _ in back.members_] == [(8, 8)]
    test = order_clips(12, 21)
    np.testing.assert_array_equal(back.predict_proba(test), both.predict_proba(test))
    nested = FaceCNN.ensemble([back, trained])  # members of members are kept, flat
    assert len(nested.members_) == 2
    big = FaceCNN(replace(TINY, max_epochs=1)).fit_network(np.zeros((32, 32, 32), np.uint8), np.arange(32) % 2)
    with pytest.raises(ValueError, match="same face size"):
        FaceCNN.ensemble([trained, big])
    with pytest.raises(ValueError):
        FaceCNN.ensemble([])


def test_tta_setting_is_used_by_predict_and_kept_in_the_bundle(trained, tmp_path):
    faces, labels = stripe_set(64, seed=3)
    affine = FaceCNN(replace(trained.config, tta="affine"))
    affine.size_, affine.state_, affine.metrics_ = trained.size_, trained.state_, {}
    probs = affine.predict_frames(faces)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert not np.allclose(probs, trained.predict_frames(faces))  # 18 views, not 2
    np.testing.assert_array_equal(probs, trained.predict_frames(faces, tta="affine"))
    assert (probs.argmax(1) == labels).mean() >= 0.9
    back = FaceCNN.load(affine.save(tmp_path / "affine"))
    assert back.config.tta == "affine"
    np.testing.assert_array_equal(back.predict_frames(faces), probs)
    with pytest.raises(ValueError, match="unknown tta"):
        replace(TINY, tta="ten-crop")


def test_ready_cnn_bundle_takes_prediction_settings_beside_it_and_refuses_training_ones(trained, tmp_path):
    faces, labels = stripe_set(8, seed=4)
    bundle = trained.save(tmp_path / "net")
    clips = pd.DataFrame({"clip_id": [f"img{i}" for i in range(8)], "split": "test",
                          "label": [EMOTIONS[y] for y in labels], "media": "image"})
    features = pd.DataFrame({"clip_id": clips["clip_id"], "frame": 0, "found": True, "size": SIZE,
                             "face": [f.tobytes() for f in faces]})
    result = fit_specialist("face_cnn", clips, features, config={"cnn_bundle": str(bundle), "tta": "affine"})
    assert result.model.config.tta == "affine"
    probs = result.predictions[[f"p_{e}" for e in EMOTIONS]].to_numpy()
    np.testing.assert_allclose(probs, trained.predict_frames(faces, tta="affine"), rtol=1e-5, atol=1e-6)
    assert result.metrics["test"]["accuracy"] >= 0.75
    with pytest.raises(ValueError, match="lr"):  # would train nothing: say so instead of ignoring it
        fit_specialist("face_cnn", clips, features, config={"cnn_bundle": str(bundle), "lr": 0.1})
    with pytest.raises(ValueError, match="unknown tta"):
        FaceCNN.load(bundle).with_settings({"tta": "ten-crop"})


@pytest.mark.parametrize("fast_bf16, expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_precision_auto_uses_bf16_only_where_the_cpu_runs_it(monkeypatch, fast_bf16, expected):
    """The rule, stated here: "auto" is bf16 mixed on a GPU whatever the CPU, and on a CPU only
    where it runs bf16 natively; any other value is passed through. The CPU probe is pinned each
    way, so the expectation does not come from the code under test."""
    monkeypatch.setattr(lightning_utils, "cpu_has_fast_bf16", lambda: fast_bf16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_precision("auto", gpu=False) == expected
    assert resolve_precision("auto") == expected  # no GPU found
    assert device_settings()["precision"] == expected and device_settings()["accelerator"] == "cpu"
    assert resolve_precision("auto", gpu=True) == "bf16-mixed"
    assert resolve_precision("32-true", gpu=True) == "32-true"
    assert resolve_precision("16-mixed", gpu=False) == "16-mixed"
    # and a fit uses (and records) the precision the rule chose
    x, y = stripe_set(32, seed=5)
    fit = FaceCNN(replace(TINY, max_epochs=1, svm_C=(1.0,))).fit_network(x, y)
    assert fit.metrics_["precision"] == expected and fit.metrics_["device"] == "cpu"


def test_real_fer_faces_smoke(shared):
    from emonets.media.images import load_grey_images

    root = shared("fer2013", "val")
    paths, labels = [], []
    for i, cls in enumerate(EMOTIONS):
        files = sorted((root / cls).glob("*.jpg"))[:5]
        paths += files
        labels += [i] * len(files)
    x, y = load_grey_images(paths, size=48), np.array(labels)
    assert x.shape == (len(paths), 48, 48) and len(paths) >= 30
    cfg = FaceCNNConfig(widths=(8, 16, 32), convs=(1, 1, 1), batch_size=16, max_epochs=1)
    model = FaceCNN(cfg).fit_network(x, y, x[:10], y[:10])
    probs = model.predict_frames(x)
    assert probs.shape == (len(x), 7) and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert model.size_ == 48


def test_sharded_batches_split_each_epoch_between_ranks_without_overlap():
    from emonets.specialists.lightning_utils import ShardedBatches

    shards = [ShardedBatches(103, 10, shuffle=True, drop_last=True, seed=4, rank=r, world_size=2) for r in (0, 1)]
    rows = [[i for batch in s for i in batch] for s in shards]
    assert len(shards[0]) == len(shards[1]) == 5  # 51 rows each, whole batches only
    assert not set(rows[0]) & set(rows[1])
    first = rows[0]
    for s in shards:
        s.set_epoch(1)
    assert [i for batch in shards[0] for i in batch] != first  # a new order each epoch
    val = [ShardedBatches(7, 4, shuffle=False, drop_last=False, rank=r, world_size=2) for r in (0, 1)]
    assert sorted(i for s in val for b in s for i in b) == list(range(7))  # validation sees every row


def test_data_parallel_training_on_two_cpu_processes(tmp_path):
    """Lightning DDP (ddp_spawn, gloo) with 2 CPU processes: the shards train one model whose
    best checkpoint comes back to this process."""
    x, y = stripe_set(256, seed=0)
    xv, yv = stripe_set(64, seed=3)
    cfg = FaceCNNConfig(**{**TINY.to_dict(), "max_epochs": 4, "devices": 2})
    model = FaceCNN(cfg).fit_network(x, y, xv, yv, work_dir=tmp_path)
    m = model.metrics_
    assert m["devices"] == 2 and m["strategy"] == "ddp_spawn"
    assert m["epochs_trained"] == 4 and all(h["seconds"] for h in m["history"])
    acc = float((model.predict_frames(xv).argmax(1) == yv).mean())
    assert acc >= 0.9
    assert acc == pytest.approx(m["best_val_acc"], abs=1e-6)
