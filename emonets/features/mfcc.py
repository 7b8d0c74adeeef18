"""Frame-level audio features for the audio specialist: MFCC + Δ + ΔΔ (librosa, numpy in/out).

The paper used 22 MFCC with Δ and ΔΔ (plus ~26 spectral descriptors); the defaults here give
exactly those 66 columns per 10 ms frame. ``extras`` adds optional per-frame descriptors (log
energy, pitch, spectral shape, log-mel bands) which also get Δ and ΔΔ.

Column order of one frame (D = (n_mfcc + n_extra) * (3 if deltas else 1))::

    [static: mfcc_0..mfcc_{n-1}, extras...] [Δ of the same] [ΔΔ of the same]

Silence: the log-mel energies are floored at ``floor_db`` (absolute, not relative to the clip's
loudest frame), so digital silence gives finite, constant frames: mfcc_0 = floor_db·sqrt(n_mels)
(orthonormal DCT of a flat spectrum), all other MFCC 0, Δ and ΔΔ 0; pitch is 0 (unvoiced).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import librosa
import numpy as np
import pandas as pd

from emonets.media.audio_io import load_audio
from emonets.errors import MediaError

EXTRAS = ("energy", "pitch", "spectral", "logmel")
_N_SPECTRAL = 5  # centroid, bandwidth, rolloff, flatness, zero-crossing rate


@dataclass(frozen=True, kw_only=True)
class MfccConfig:
    """How frames are cut and described (stored with the `mfcc` table partitions it produces).

    The defaults are what the pipeline extracts and the audio specialist is tuned on: the paper's
    22 MFCC + Δ + ΔΔ plus log energy, pitch and 5 spectral-shape descriptors (87 columns), with
    copies at 0.9x and 1.1x speed for training. On RAVDESS (benchmarks/bench_audio.py) they beat
    the paper's plain 66 MFCC columns (:data:`PAPER_MFCC`): 64.4% vs 56.7% on actors 15-18.
    """

    sr: int = 16000
    n_mfcc: int = 22
    win_ms: float = 25.0
    hop_ms: float = 10.0
    n_mels: int = 40
    fmin: float = 0.0
    fmax: float | None = None
    deltas: bool = True
    delta_width: int = 9
    floor_db: float = -100.0
    extras: tuple[str, ...] = ("energy", "pitch", "spectral")
    pitch_fmin: float = 60.0
    pitch_fmax: float = 500.0
    # Speed-perturbed copies written beside each clip's own frames (rows with clip_id
    # "<clip>@<speed>"): training augmentation for the audio specialist (see speed_perturb).
    speeds: tuple[float, ...] = (0.9, 1.1)

    def __post_init__(self) -> None:
        unknown = [e for e in self.extras if e not in EXTRAS]
        if unknown:
            raise ValueError(f"unknown extras {unknown}; choose from {EXTRAS}")
        if self.n_mfcc < 1 or self.n_mfcc > self.n_mels:
            raise ValueError("need 1 <= n_mfcc <= n_mels")
        if self.delta_width < 3 or self.delta_width % 2 == 0:
            raise ValueError("delta_width must be odd and >= 3")
        object.__setattr__(self, "extras", tuple(self.extras))
        object.__setattr__(self, "speeds", tuple(float(v) for v in self.speeds))
        if any(not 0.5 <= v <= 2.0 or v == 1.0 for v in self.speeds):
            raise ValueError(f"speeds must lie in [0.5, 2] and differ from 1, got {self.speeds}")

    @property
    def win_length(self) -> int:
        return int(round(self.sr * self.win_ms / 1000))

    @property
    def hop_length(self) -> int:
        return int(round(self.sr * self.hop_ms / 1000))

    @property
    def n_fft(self) -> int:
        return 1 << (self.win_length - 1).bit_length()

    @property
    def n_static(self) -> int:
        sizes = {"energy": 1, "pitch": 1, "spectral": _N_SPECTRAL, "logmel": self.n_mels}
        return self.n_mfcc + sum(sizes[e] for e in self.extras)

    @property
    def n_features(self) -> int:
        """Columns per frame returned by :func:`mfcc_frames`."""
        return self.n_static * (3 if self.deltas else 1)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["extras"], d["speeds"] = list(self.extras), list(self.speeds)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "MfccConfig":
        d = dict(d)
        d["extras"] = tuple(d.get("extras", ()))
        d["speeds"] = tuple(d.get("speeds", ()))
        return cls(**d)


PAPER_MFCC = MfccConfig(extras=(), speeds=())  # the paper's 22 MFCC + Δ + ΔΔ (66 columns), no copies


def view_id(clip_id: str, speed: float) -> str:
    """The clip id of a clip's speed-perturbed copy in the `mfcc` table."""
    return f"{clip_id}@{speed:g}"


def mfcc_frames(samples: np.ndarray, *, sr: int, config: MfccConfig = MfccConfig()) -> np.ndarray:
    """(T, config.n_features) float32 features of a mono signal, one row per ``hop_ms`` frame.

    ``samples`` is resampled to ``config.sr`` if ``sr`` differs. Frames are centred (frame t
    covers time t·hop), so T = 1 + len // hop. Signals shorter than one FFT are zero-padded.
    """
    y = np.asarray(samples, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(y)):
        raise ValueError("audio samples contain NaN or inf")
    if sr != config.sr:
        y = librosa.resample(y, orig_sr=sr, target_sr=config.sr, res_type="soxr_hq").astype(np.float32)
    if y.size < config.n_fft:
        y = np.pad(y, (0, config.n_fft - y.size))
    stft = dict(n_fft=config.n_fft, hop_length=config.hop_length, win_length=config.win_length, center=True)
    power = np.abs(librosa.stft(y, **stft)) ** 2
    mel = librosa.feature.melspectrogram(
        S=power, sr=config.sr, n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax
    )
    log_mel = 10.0 * np.log10(np.maximum(mel, 10.0 ** (config.floor_db / 10.0)))
    parts = [librosa.feature.mfcc(S=log_mel, n_mfcc=config.n_mfcc, dct_type=2, norm="ortho")]
    for extra in config.extras:
        parts.append(_extra(extra, y, power, log_mel, config))
    static = np.concatenate(parts, axis=0)  # (n_static, T)
    if config.deltas:
        static = np.concatenate([static, _delta(static, 1, config), _delta(static, 2, config)], axis=0)
    return np.ascontiguousarray(static.T, dtype=np.float32)


def _extra(name: str, y: np.ndarray, power: np.ndarray, log_mel: np.ndarray, config: MfccConfig) -> np.ndarray:
    """One optional descriptor block, shape (k, T), aligned with the STFT frames."""
    floor = config.floor_db
    if name == "logmel":
        return log_mel
    if name == "energy":
        energy = power.sum(axis=0, keepdims=True) / config.n_fft
        return 10.0 * np.log10(np.maximum(energy, 10.0 ** (floor / 10.0)))
    if name == "spectral":
        sr, eps = config.sr, 1e-10
        feats = [
            librosa.feature.spectral_centroid(S=np.sqrt(power), sr=sr) / (sr / 2),
            librosa.feature.spectral_bandwidth(S=np.sqrt(power), sr=sr) / (sr / 2),
            librosa.feature.spectral_rolloff(S=np.sqrt(power), sr=sr) / (sr / 2),
            np.log10(librosa.feature.spectral_flatness(S=np.sqrt(power) + eps)),
            librosa.feature.zero_crossing_rate(
                y, frame_length=config.win_length, hop_length=config.hop_length, center=True
            ),
        ]
        t = power.shape[1]
        return np.concatenate([f[:, :t] for f in feats], axis=0)
    # pitch: log2 f0 relative to 100 Hz on voiced-looking frames (energy within 40 dB of the
    # clip's peak), 0 elsewhere, so silence stays 0 and the value is finite everywhere.
    frame_length = max(config.n_fft, 2 * int(np.ceil(config.sr / config.pitch_fmin)))
    f0 = librosa.yin(
        np.pad(y, (0, max(0, frame_length - y.size))), fmin=config.pitch_fmin, fmax=config.pitch_fmax,
        sr=config.sr, frame_length=frame_length, hop_length=config.hop_length, center=True,
    )
    t = power.shape[1]
    f0 = np.pad(f0, (0, max(0, t - f0.size)), mode="edge")[:t]
    energy_db = 10.0 * np.log10(np.maximum(power.sum(axis=0), 1e-20))
    voiced = (energy_db > energy_db.max() - 40.0) & (energy_db > floor + 40.0)
    return np.where(voiced, np.log2(f0 / 100.0), 0.0)[None, :]


def _delta(x: np.ndarray, order: int, config: MfccConfig) -> np.ndarray:
    """librosa delta with the window shrunk for short clips (0 when fewer than 3 frames)."""
    t = x.shape[1]
    width = min(config.delta_width, t if t % 2 else t - 1)
    if width < 3:
        return np.zeros_like(x)
    return librosa.feature.delta(x, width=width, order=order, axis=-1, mode="interp")


def speed_perturb(samples: np.ndarray, *, factor: float, sr: int) -> np.ndarray:
    """The signal played ``factor`` times faster (tempo and pitch/formants both scale by factor).

    Kaldi-style speed perturbation: resampling from sr·factor to sr. It mimics other speakers'
    vocal tracts and speaking rates, a training augmentation that helps speaker-independence.
    """
    if factor <= 0:
        raise ValueError("factor must be positive")
    if factor == 1.0:
        return np.asarray(samples, dtype=np.float32)
    return librosa.resample(np.asarray(samples, dtype=np.float32), orig_sr=int(round(sr * factor)), target_sr=sr,
                            res_type="soxr_hq").astype(np.float32)


def extract_mfcc(path: Path | str, *, clip_id: str, config: MfccConfig = MfccConfig()) -> pd.DataFrame:
    """The catalog `mfcc` rows of one clip: clip_id, frame, t (s), coeffs (list of float32), duration (s).

    The rows of the speed-perturbed copies (``config.speeds``) follow the clip's own, under
    ``view_id(clip_id, s)``.
    Raises NoAudioError when the file has no audio track and MediaError when it cannot be decoded
    (both name the file); a silent track gives finite features (see the module docstring).
    """
    samples = load_audio(path, sr=config.sr)
    if not np.all(np.isfinite(samples)):
        raise MediaError(f"{path}: decoded audio contains NaN or inf")
    views = [_mfcc_rows(samples, clip_id, config)]
    views += [_mfcc_rows(speed_perturb(samples, factor=s, sr=config.sr), view_id(clip_id, s), config)
              for s in config.speeds]
    return pd.concat(views, ignore_index=True) if len(views) > 1 else views[0]


def _mfcc_rows(samples: np.ndarray, clip_id: str, config: MfccConfig) -> pd.DataFrame:
    feats = mfcc_frames(samples, sr=config.sr, config=config)
    n = feats.shape[0]
    return pd.DataFrame(
        {
            "clip_id": [clip_id] * n,
            "frame": np.arange(n, dtype=np.int32),
            "t": np.arange(n, dtype=np.float64) * (config.hop_length / config.sr),
            "coeffs": list(feats),
            "duration": np.full(n, samples.size / config.sr, dtype=np.float64),
        }
    )


def decode_mfcc(rows: pd.DataFrame) -> np.ndarray:
    """`mfcc` rows as (N, D) float32 features, in the rows' order."""
    return np.stack([np.asarray(c, dtype=np.float32) for c in rows["coeffs"]])
