"""Synthetic voiced speech for the demo data, with per-class pitch, energy, tempo and timbre."""

from __future__ import annotations

import math

import numpy as np

# Per class: head-motion gain, f0 (Hz), contour, f0 excursion (semitones), voiced RMS, syllables/s,
# spectral tilt (dB/octave), breath noise, vibrato depth (semitones) and rate (Hz).
VOICE = {
    "angry":    dict(head=1.4, f0=210, contour="fall", st=4.0, rms=0.16, rate=4.8, tilt=-6, breath=0.05, vib=(0.0, 0)),
    "disgust":  dict(head=0.9, f0=150, contour="fall", st=3.0, rms=0.07, rate=2.8, tilt=-10, breath=0.15, vib=(0.0, 0)),
    "fear":     dict(head=1.1, f0=255, contour="flat", st=2.0, rms=0.06, rate=5.6, tilt=-9, breath=0.30, vib=(0.6, 7)),
    "happy":    dict(head=1.2, f0=235, contour="risefall", st=6.0, rms=0.12, rate=4.4, tilt=-7, breath=0.08, vib=(0.0, 0)),
    "neutral":  dict(head=0.6, f0=165, contour="flat", st=1.5, rms=0.07, rate=3.8, tilt=-11, breath=0.08, vib=(0.0, 0)),
    "sad":      dict(head=0.5, f0=135, contour="fall", st=1.5, rms=0.035, rate=2.4, tilt=-14, breath=0.25, vib=(0.2, 5)),
    "surprise": dict(head=1.2, f0=270, contour="rise", st=8.0, rms=0.13, rate=3.2, tilt=-8, breath=0.10, vib=(0.0, 0)),
}
_VOWELS = np.array([[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480], [570, 840, 2410]], float)


def synth_voice(emotion: str, rng: np.random.Generator, *, seconds: float = 2.0, sr: int = 16000,
                f0_scale: float = 1.0) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Voiced synthetic speech for ``emotion``: (float32 mono audio, [(start, end) s syllables]).

    A harmonic source (1/k tilt, pitch contour, vibrato, jitter) shaped by three formants of a
    vowel per syllable, gated by raised-cosine syllable envelopes, plus breath and room noise.
    """
    v = VOICE[emotion]
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    f0 = v["f0"] * f0_scale * math.exp(rng.normal(0, 0.06))
    rate = v["rate"] * rng.uniform(0.85, 1.15)
    # Syllables: voiced stretches with gaps, each with its own vowel.
    margin = min(0.15, 0.2 * seconds)
    syllables, start = [], min(rng.uniform(0.05, 0.25), 0.2 * seconds)
    while start < seconds - margin:
        length = min(rng.uniform(0.55, 0.85) / rate, seconds - margin / 3 - start)
        syllables.append((start, start + length))
        start += length + rng.uniform(0.25, 0.5) / rate
    env = envelope_at(syllables, t)
    vowel = np.zeros((n, 3))
    for (s0, s1) in syllables:
        vowel[int(s0 * sr): int(s1 * sr) + 1] = _VOWELS[rng.integers(len(_VOWELS))] * rng.uniform(0.95, 1.05)
    # Pitch: contour over the utterance, declination per syllable, vibrato, slow jitter.
    u = t / seconds
    shape = {"fall": 0.5 - u, "rise": u - 0.3, "flat": 0 * u,
             "risefall": np.sin(np.pi * u) - 0.5}[v["contour"]]
    semis = v["st"] * rng.uniform(0.8, 1.2) * shape
    depth, vib_hz = v["vib"]
    semis = semis + depth * np.sin(2 * np.pi * vib_hz * t) + np.interp(t, np.linspace(0, seconds, 12),
                                                                       rng.normal(0, 0.25, 12))
    pitch = f0 * 2 ** (semis / 12)
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    # Harmonics with formant gains, computed every 5 ms and interpolated.
    hop = sr // 200
    idx = np.arange(0, n, hop)
    k = np.arange(1, int(7000 / pitch.max()) + 1)[:, None]
    freqs = k * pitch[idx]
    tilt = 10 ** ((v["tilt"] + rng.uniform(-1.5, 1.5)) * np.log2(k) / 20)
    formant = sum(1.0 / (1 + ((freqs - vowel[idx, j]) / (60 + 40 * j)) ** 2) * (1.0, 0.6, 0.3)[j] for j in range(3))
    amps = tilt * (0.15 + formant) * (freqs < sr / 2 - 500)
    amps = np.stack([np.interp(np.arange(n), idx, row) for row in amps])
    voiced = (amps * np.sin(k * phase)).sum(0)
    breath = _highpassed(rng.normal(0, 1, n)) * v["breath"] * rng.uniform(0.8, 1.2)
    speech = (voiced / (np.std(voiced[env > 0.5]) + 1e-9) + breath) * env
    rms = v["rms"] * rng.uniform(0.8, 1.2)
    audio = speech * rms / (np.sqrt(np.mean(speech[env > 0.5] ** 2)) + 1e-9)
    audio += rng.normal(0, 10 ** (rng.uniform(-58, -48) / 20), n)
    return np.clip(audio, -0.98, 0.98).astype(np.float32), syllables


def envelope_at(syllables: list[tuple[float, float]], t: np.ndarray) -> np.ndarray:
    """0..1 syllable envelope at times ``t`` (s): raised-cosine attack and release of 40 ms."""
    env = np.zeros_like(t, dtype=np.float64)
    for s0, s1 in syllables:
        ramp = min(0.04, (s1 - s0) / 3)
        up = np.clip((t - s0) / ramp, 0, 1)
        down = np.clip((s1 - t) / ramp, 0, 1)
        env = np.maximum(env, 0.5 - 0.5 * np.cos(np.pi * np.minimum(up, down)))
    return env


def _highpassed(x: np.ndarray) -> np.ndarray:
    """First difference: a cheap tilt towards high frequencies for breath noise."""
    return np.diff(x, prepend=x[0]) / 2
