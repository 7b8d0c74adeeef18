"""MFCC + Δ + ΔΔ frames: shapes, finiteness, silence, deltas, real files, catalog schema, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emonets.errors import MediaError, NoAudioError
from emonets.features.mfcc import EXTRAS, PAPER_MFCC, MfccConfig, extract_mfcc, mfcc_frames
from emonets.features.rows import clip_array

SR = 16000


def tone(freq: float, seconds: float = 1.0, sr: int = SR, amp: float = 0.3) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


@pytest.mark.parametrize("seconds", [0.01, 0.1, 1.0, 2.37])
@pytest.mark.parametrize("config", [MfccConfig(), MfccConfig(n_mfcc=13, deltas=False),
                                    MfccConfig(extras=EXTRAS), MfccConfig(win_ms=40, hop_ms=20)])
def test_shape_dtype_and_finite(seconds, config):
    y = tone(440, seconds)
    feats = mfcc_frames(y, sr=SR, config=config)
    assert feats.dtype == np.float32
    assert feats.shape == (1 + max(len(y), config.n_fft) // config.hop_length, config.n_features)
    assert np.isfinite(feats).all()


def test_paper_mfcc_is_22_mfcc_with_deltas_and_the_default_adds_descriptors():
    config = PAPER_MFCC
    assert (config.n_mfcc, config.sr, config.win_length, config.hop_length) == (22, 16000, 400, 160)
    assert mfcc_frames(tone(300), sr=SR, config=config).shape[1] == 66
    assert mfcc_frames(tone(300), sr=SR).shape[1] == MfccConfig().n_features == 87


def test_silence_gives_finite_constant_frames():
    config = MfccConfig(extras=EXTRAS)
    feats = mfcc_frames(np.zeros(SR, np.float32), sr=SR, config=config)
    assert np.isfinite(feats).all()
    # flat spectrum at the floor: c0 = floor_db * sqrt(n_mels), other MFCC and every delta ~0
    np.testing.assert_allclose(feats[:, 0], config.floor_db * np.sqrt(config.n_mels), rtol=1e-5)
    np.testing.assert_allclose(feats[:, 1:config.n_mfcc], 0.0, atol=1e-3)
    np.testing.assert_allclose(feats[:, config.n_static:], 0.0, atol=1e-3)
    pitch = feats[:, config.n_mfcc + 1]
    assert np.all(pitch == 0.0)


def test_deltas_are_time_derivatives_of_the_statics():
    config = PAPER_MFCC
    n = config.n_mfcc
    # a steady tone: statics constant in the middle, so Δ and ΔΔ vanish there
    steady = mfcc_frames(tone(500, 1.0), sr=SR, config=config)
    assert np.abs(steady[20:-20, n:]).max() < 1e-2 * np.abs(steady[20:-20, :n]).max()
    # a tone whose loudness rises: c0 rises frame to frame, so its Δ is positive
    y = tone(500, 1.0) * np.linspace(0.01, 1.0, SR, dtype=np.float32)
    feats = mfcc_frames(y, sr=SR, config=config)
    middle = slice(20, -20)
    assert np.all(feats[middle, n] > 0)
    assert np.all(np.diff(feats[middle, 0]) > 0)


def test_different_tones_give_different_features_and_resampling_is_applied():
    a = mfcc_frames(tone(200), sr=SR)
    b = mfcc_frames(tone(2000), sr=SR)
    assert np.abs(a[10:-10, :22].mean(0) - b[10:-10, :22].mean(0)).max() > 1.0
    # the same tone given at 44.1 kHz is resampled to 16 kHz: same frame count, near-equal features
    c = mfcc_frames(tone(200, sr=44100), sr=44100)
    assert c.shape == a.shape
    np.testing.assert_allclose(c[10:-10, :22], a[10:-10, :22], atol=2.0)


def test_non_finite_samples_are_refused():
    y = tone(300)
    y[100] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        mfcc_frames(y, sr=SR)


def test_config_validates_and_round_trips():
    with pytest.raises(ValueError):
        MfccConfig(extras=("nonsense",))
    with pytest.raises(TypeError):
        MfccConfig(16000)  # keyword-only
    config = MfccConfig(n_mfcc=13, extras=("energy", "pitch"))
    assert MfccConfig.from_dict(config.to_dict()) == config


def test_extract_mfcc_on_real_cremad_flv(shared, store):
    path = shared("crema-d", "1001_DFA_ANG_XX.flv")
    df = extract_mfcc(path, clip_id="cremad/1001_DFA_ANG_XX", config=PAPER_MFCC)
    feats = clip_array("mfcc", df)
    duration = df["duration"].iloc[0]
    assert 1.5 < duration < 4.0
    assert feats.shape == (len(df), 66) and abs(len(df) - duration * 100) <= 2
    assert np.isfinite(feats).all()
    assert list(df["frame"]) == list(range(len(df)))
    np.testing.assert_allclose(df["t"].to_numpy(), np.arange(len(df)) * 0.01)
    # speech: the loudness (c0) varies a lot over the clip
    assert feats[:, 0].std() > 10
    manifest = store.write("mfcc", df, partition=df["clip_id"].iloc[0], config=PAPER_MFCC.to_dict())
    assert manifest.rows == len(df)
    back = store.read("mfcc")
    np.testing.assert_array_equal(clip_array("mfcc", back), feats)


def test_extract_mfcc_on_generated_mp4(make_clip, store):
    path = make_clip("tone.mp4", seconds=1.0)
    df = extract_mfcc(path, clip_id="tone", config=PAPER_MFCC)
    feats = clip_array("mfcc", df)
    assert feats.shape[1] == 66 and 95 <= len(df) <= 110 and np.isfinite(feats).all()
    # the 220 Hz tone is steady: its MFCC move little (relative to their size) in mid-clip
    middle = feats[20:-20, :22]
    assert middle.std(axis=0).mean() < 0.1 * np.abs(middle.mean(axis=0)).mean()
    store.write("mfcc", df, partition="tone")
    assert store.partitions("mfcc") == ["tone"]


def test_mfcc_array_restores_frame_order():
    feats = mfcc_frames(tone(300, 0.3), sr=SR)
    rows = pd.DataFrame({"frame": np.arange(len(feats))[::-1], "coeffs": list(feats[::-1])})
    np.testing.assert_array_equal(clip_array("mfcc", rows), feats)


def test_clip_without_audio_raises_no_audio_error(make_clip):
    path = make_clip("mute.mp4", audio=False)
    with pytest.raises(NoAudioError, match="mute.mp4"):
        extract_mfcc(path, clip_id="mute")


def test_unreadable_file_raises_media_error(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a media file at all" * 10)
    with pytest.raises(MediaError):
        extract_mfcc(bad, clip_id="broken")


def test_speed_perturbation_shortens_and_raises_pitch():
    from emonets.features.mfcc import speed_perturb

    y = tone(400, 1.0)
    fast = speed_perturb(y, factor=1.25, sr=SR)
    assert abs(len(fast) - SR / 1.25) <= 2
    spectrum = np.abs(np.fft.rfft(fast))
    peak_hz = np.argmax(spectrum) * SR / len(fast)
    assert abs(peak_hz - 500) < 5
    np.testing.assert_array_equal(speed_perturb(y, factor=1.0, sr=SR), y)


def test_audio_specialist_features_are_the_mfcc_plus_descriptors():
    rich = MfccConfig()
    y = tone(300)
    plain, more = mfcc_frames(y, sr=SR, config=PAPER_MFCC), mfcc_frames(y, sr=SR, config=rich)
    assert more.shape == (len(plain), 87)
    # the MFCC block and its deltas are the same columns, just spread over a wider layout
    n, s = 22, rich.n_static
    for block in range(3):
        np.testing.assert_allclose(more[:, block * s:block * s + n], plain[:, block * n:(block + 1) * n],
                                   rtol=1e-5, atol=1e-3)


def test_pipeline_extracts_the_audio_specialist_features_and_partial_configs_keep_them():
    from emonets.features.extraction import config_from_dict, default_config

    assert default_config("mfcc") == MfccConfig() and MfccConfig().extras == ("energy", "pitch", "spectral")
    changed = config_from_dict("mfcc", {"hop_ms": 20.0})
    assert changed.extras == MfccConfig().extras and changed.hop_ms == 20.0


def test_speed_copies_are_written_beside_the_clip_and_widen_only_training_sets(make_clip):
    from emonets.specialists.base import ClipSet
    from emonets.training_data import clip_set, with_views

    path = make_clip("tone.mp4", seconds=1.0)
    rows = extract_mfcc(path, clip_id="c1", config=MfccConfig(speeds=(0.9, 1.1)))  # the default
    assert sorted(set(rows["clip_id"])) == ["c1", "c1@0.9", "c1@1.1"]
    own = rows[rows["clip_id"] == "c1"]
    np.testing.assert_array_equal(clip_array("mfcc", own), clip_array("mfcc", extract_mfcc(path, clip_id="c1", config=MfccConfig(speeds=()))))
    n = rows["clip_id"].value_counts()
    assert n["c1@0.9"] > n["c1"] * 1.08 and n["c1"] > n["c1@1.1"] * 1.05  # slower copy: more frames
    duration = rows.groupby("clip_id")["duration"].first()
    assert duration["c1@0.9"] > duration["c1"] > duration["c1@1.1"]

    clips = pd.DataFrame({"clip_id": ["c1", "c2"], "label": ["sad", "happy"]})
    base = clip_set(clips, rows, "mfcc", "frame")
    assert base.clip_ids == ["c1"]  # copies are never clips of their own
    wide = with_views(base, rows, "mfcc", "frame")
    assert wide.clip_ids == ["c1", "c1@0.9", "c1@1.1"] and (wide.labels == base.labels[0]).all()
    assert with_views(ClipSet([], [], np.zeros(0, np.int64)), rows, "mfcc", "frame").clip_ids == []
    # a real clip named like a copy ("c1@0.9", say in another split) stays a clip, not c1's copy
    assert with_views(base, rows, "mfcc", "frame", real_clip_ids={"c1", "c1@0.9"}).clip_ids == ["c1", "c1@1.1"]
    with pytest.raises(ValueError):
        MfccConfig(speeds=(1.0,))
    assert MfccConfig.from_dict(MfccConfig(speeds=(0.9,)).to_dict()).speeds == (0.9,)
