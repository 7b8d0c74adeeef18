"""Video and audio decoding with PyAV: sampling rate, bounded streaming, clear errors."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from emonets.media.audio_io import load_audio
from emonets.errors import MediaError, NoAudioError
from emonets.media.video import iter_frames, probe


def test_every_cremad_clip_decodes_to_frames_and_audio(shared):
    clips = sorted(shared("crema-d").glob("*.flv"))
    assert len(clips) == 6
    for path in clips:
        info = probe(path)
        frames = list(iter_frames(path, fps=10))
        assert 15 <= len(frames) <= 25, path  # ~2 s at 10 fps
        assert frames[0].image.shape == (info.height, info.width, 3) == (360, 480, 3)
        samples = load_audio(path, sr=16000)
        assert samples.dtype == np.float32 and abs(len(samples) / 16000 - info.duration) < 0.3
        assert np.abs(samples).max() > 0.01  # real speech, not silence


def test_sampling_rate_and_timestamps(make_clip):
    path = make_clip(seconds=2.0, fps=25)
    all_frames = list(iter_frames(path))
    sampled = list(iter_frames(path, fps=5))
    assert len(all_frames) == 50 and 9 <= len(sampled) <= 11
    times = np.array([f.t for f in sampled])
    assert np.allclose(np.diff(times), 0.2, atol=0.05)
    assert [f.index for f in sampled] == list(range(len(sampled)))
    grey = next(iter_frames(path, gray=True))
    assert grey.image.ndim == 2


def test_frames_are_streamed_not_collected(make_clip):
    assert inspect.isgeneratorfunction(iter_frames)
    frames = iter_frames(make_clip(seconds=2.0), max_frames=3)
    assert sum(1 for _ in frames) == 3


def test_audio_resampled_and_mono(make_clip):
    samples = load_audio(make_clip(seconds=1.0), sr=8000)
    assert samples.ndim == 1 and 7500 < len(samples) < 9000
    spectrum = np.abs(np.fft.rfft(samples[:8000]))
    assert abs(np.argmax(spectrum) * 8000 / 8000 - 220) < 5  # the 220 Hz tone survives


def test_clip_without_audio_raises(make_clip):
    path = make_clip(audio=False)
    assert not probe(path).has_audio
    with pytest.raises(NoAudioError, match="no audio stream"):
        load_audio(path)


@pytest.mark.parametrize("content, reason", [(b"", "empty"), (b"not media" * 10, "not a readable media")])
def test_bad_files_raise_media_error(tmp_path, content, reason):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(MediaError, match=reason):
        probe(path)
    with pytest.raises(MediaError):
        list(iter_frames(path))


def test_missing_and_truncated_files(tmp_path, make_clip):
    with pytest.raises(MediaError, match="does not exist"):
        probe(tmp_path / "nope.mp4")
    good = make_clip(seconds=1.0).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good[:200])
    with pytest.raises(MediaError):
        probe(cut)
