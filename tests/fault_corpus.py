"""A fault corpus the tests build themselves: every kind of bad or odd input a user may hand over.

``build_fault_corpus(root, seed=...)`` writes an AFEW-style tree (``root/<Train|Val|Test>/<Emotion>/
file``) holding one file per fault kind (zero bytes, truncated, not media, no audio, audio only,
no face, two faces, ..., odd names, a symlink loop, a byte-identical copy, an unknown class, other
containers and codecs, odd audio) and returns, per kind, what the pipeline must do with that file
(:class:`Expected`): the ``clips`` row it gets or the ingest ``problems`` row and its reason, the
extraction stages that record a problem for it and why, and whether ``predict`` labels it and
with which specialists. Nothing is copied from ``../shared``: faces come from the two
public-domain portraits emonets.datasets.demo.dataset animates (bundled with scikit-image and matplotlib),
voices from its synthesiser, the rest is generated here.

Everything is small (about a second of 320x240 video; the 4K clip has 3 frames), so extracting
the whole corpus stays fast. ``seed`` varies frame sizes, frame rates, durations, expressions,
identities, voices, truncation points and the random bytes: a second seed is a held-out corpus
with the same expected outcomes and other bytes.

The expectations were found by running ``emonets ingest``/``extract``/``predict`` on the corpus
and checked by hand. Where the pipeline does something else and that is a bug, the expectation
states the correct behaviour and :data:`BUGS` names the kind, the aspect (:data:`ASPECTS`) it gets
wrong and what it does instead; the end-to-end test leaves that aspect out and a strict xfail
test checks it, so fixing the bug turns that xfail into a failure that says to drop the entry.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

SPECIALISTS = ("face_cnn", "audio", "bag_of_mouths", "motion")
ALL = frozenset(SPECIALISTS)
FACES = frozenset({"face_cnn", "bag_of_mouths"})
SR = 16000

# What the test checks per file: its `clips` row and ingest problem; its extraction problems;
# the problems row a fault must get whatever its stage (``Expected.reported``); its prediction.
ASPECTS = ("ingest", "stages", "reported", "predict")

# Reasons (regular expressions, re.search against the problems row or predict's error).
EMPTY = r"file is empty \(0 bytes\)"
UNREADABLE = r"not a readable media file"
NO_AUDIO = r"^video has no audio stream \(audio stages will skip it\)$"
NO_FACE = r"^no face found in any sampled frame$"
SHORT = r"^clip is shorter than one motion block$"
LOOP = r"^not a regular file: symlink loop"
UNKNOWN_LABEL = r"^unknown label 'Boredom'"
NOT_A_FILE = r"^not a file$"

# kind -> {aspect: what the pipeline does instead of the expectation}. Found by this corpus.
BUGS: dict[str, dict[str, str]] = {}


@dataclass(frozen=True)
class Expected:
    """What the pipeline must do with one corpus file.

    ``clip_id``: the id of its ``clips`` row after ingest (None: it gets no row).
    ``ingest_problem``: the reason of its one ingest ``problems`` row (None: no row).
    ``stage_problems``: extraction stage -> reason of that stage's row (other stages: no row).
    ``reported``: a reason some problems row of any stage must give (and may, beyond the above).
    ``scored``: ``predict`` labels it; ``specialists``: those that score it there (the others are
    its ``missing``); ``predict_error``: the error predict gives it when it cannot label it.
    ``bugs``: aspect -> what the pipeline does instead (:data:`BUGS`).
    """

    kind: str
    path: Path
    clip_id: str | None
    ingest_problem: str | None = None
    stage_problems: dict[str, str] = field(default_factory=dict)
    reported: str | None = None
    scored: bool = False
    specialists: frozenset[str] = frozenset()
    predict_error: str | None = None
    bugs: dict[str, str] = field(default_factory=dict)


def build_fault_corpus(root: Path, *, seed: int = 0) -> dict[str, Expected]:
    """Write the corpus under ``root`` (an empty or new folder); return {kind: Expected}."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise FileExistsError(f"fault corpus: {root} is not empty")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xFA17]))
    b = _Builder(root, rng, seed)
    out: dict[str, Expected] = {}
    for make in _KINDS:
        for exp in make(b):
            if exp.kind in out:
                raise AssertionError(f"fault corpus: kind {exp.kind!r} twice")
            out[exp.kind] = Expected(**{**exp.__dict__, "bugs": dict(BUGS.get(exp.kind, {}))})
    unknown = set(BUGS) - set(out)
    if unknown:
        raise AssertionError(f"fault corpus: BUGS names kinds it does not build: {sorted(unknown)}")
    return out


def predict_arguments(expected: dict[str, Expected]) -> list[Path]:
    """What ``predict`` is handed: every corpus entry, the symlink loop (a folder) too."""
    return [e.path for e in expected.values()]


# -- media helpers ----------------------------------------------------------------------------
class _Builder:
    def __init__(self, root: Path, rng: np.random.Generator, seed: int) -> None:
        self.root, self.rng, self.seed = root, rng, seed
        # a held-out seed changes frame size, duration and frame rate of the ordinary clips
        self.size = [(240, 320), (256, 336), (240, 352)][seed % 3]
        self.fps = [15, 12, 20][seed % 3]
        self.seconds = float(rng.uniform(1.0, 1.4))
        self._emotions = iter(rng.permutation(np.repeat(np.arange(7), 40)))
        self._takes: dict[tuple, list[np.ndarray]] = {}

    def path(self, split: str, label: str, name: str) -> Path:
        folder = self.root / split / label
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    def face_frames(self, *, seconds: float | None = None, fps: int | None = None, size=None,
                    identity: int | None = None, n: int | None = None) -> list[np.ndarray]:
        """Frames of an animated portrait (emonets.datasets.demo.dataset), ``size`` = (H, W).

        Cut at a random offset from a longer rendered take (one per identity, size and rate:
        rendering is the corpus's main cost) and given a per-clip gain, so no two clips share
        their bytes.
        """
        size = tuple(size or self.size)
        fps = fps or self.fps
        seconds = seconds if seconds is not None else self.seconds
        n = n if n is not None else max(1, int(round(seconds * fps)))
        ident = int(self.rng.integers(4)) if identity is None else identity
        take = self._take(size, fps, ident, n)
        start = int(self.rng.integers(0, len(take) - n + 1))
        gain = float(self.rng.uniform(0.92, 1.08))
        return [np.clip(f * gain, 0, 255).astype(np.uint8) for f in take[start:start + n]]

    def _take(self, size, fps: int, identity: int, n: int) -> list[np.ndarray]:
        from emonets.datasets.demo.dataset import EMOTIONS, DemoConfig, render_clip

        key = (size, fps, identity)
        take = self._takes.get(key, [])
        if len(take) < n:
            h, w = size
            cfg = DemoConfig(seconds=(n + 4 + n // 3) / fps, fps=fps, width=w, height=h, seed=self.seed)
            emotion = EMOTIONS[int(self.rng.integers(len(EMOTIONS)))]
            frames, _ = render_clip(emotion, self.sub_rng(), cfg, identity=identity)
            take = self._takes[key] = list(frames)
        return take

    def voice(self, seconds: float | None = None, sr: int = SR) -> np.ndarray:
        from emonets.datasets.demo.dataset import EMOTIONS, synth_voice

        emotion = EMOTIONS[int(next(self._emotions))]
        audio, _ = synth_voice(emotion, self.sub_rng(), seconds=seconds or self.seconds, sr=sr)
        return audio

    def sub_rng(self) -> np.random.Generator:
        return np.random.default_rng(int(self.rng.integers(2**63)))

    def gradient_frames(self, n: int, size=None) -> list[np.ndarray]:
        """Moving colour gradients with a drifting blob: motion, but no face."""
        h, w = size or self.size
        yy, xx = np.mgrid[0:h, 0:w]
        phase = int(self.rng.integers(256))
        out = []
        for i in range(n):
            cy, cx = h / 2 + 20 * np.sin(i / 3), w / 2 + 30 * np.cos(i / 4)
            blob = 90 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 600.0)
            r = (xx * 255 // w + 5 * i + phase) % 256
            g = (yy * 255 // h + 3 * i) % 256
            out.append(np.clip(np.stack([r, g, 128 + 0 * xx], -1) + blob[..., None], 0, 255).astype(np.uint8))
        return out


def _write(path: Path, frames, *, fps: int, audio=None, sr: int = SR, **kw) -> Path:
    from emonets.media.writer import write_video

    return write_video(path, frames, fps=fps, audio=audio, sr=sr, **kw)


def write_av(path: Path, frames: list[np.ndarray] | None, *, fps: int, vcodec: str = "libx264",
             pix_fmt: str = "yuv420p", fmt: str | None = None, audio: np.ndarray | None = None, sr: int = SR,
             acodec: str = "aac", layout: str = "mono", options: dict | None = None,
             vopts: dict | None = None, aopts: dict | None = None, rotation: int | None = None) -> Path:
    """Encode with any container and codecs PyAV has (not atomic: the tests' own files).

    ``frames``: RGB uint8 (None: audio only); ``audio``: (n,) mono or (channels, n) float32;
    ``rotation``: a display matrix, counter-clockwise degrees as VideoFrame.rotation reads back.
    """
    import av

    container_opts = dict(options or {})
    with av.open(str(path), mode="w", format=fmt, options=container_opts) as out:
        vstream = astream = None
        if frames:
            h, w = frames[0].shape[:2]
            vstream = out.add_stream(vcodec, rate=fps)
            vstream.width, vstream.height = w, h
            vstream.pix_fmt = pix_fmt
            if vopts:
                vstream.options = vopts
            if rotation:
                vstream.set_display_rotation(rotation)
        if audio is not None:
            astream = out.add_stream(acodec, rate=sr, options=dict(aopts or {}))
            astream.layout = layout
        if vstream is not None:
            for i, frame in enumerate(frames):
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                vf.pts = i
                vf.time_base = Fraction(1, fps)
                for packet in vstream.encode(vf):
                    out.mux(packet)
            for packet in vstream.encode():
                out.mux(packet)
        if astream is not None:
            samples = np.asarray(audio, np.float32)
            samples = samples.reshape(1, -1) if samples.ndim == 1 else samples
            pts, chunk = 0, 1024
            for start in range(0, samples.shape[1], chunk):
                piece = np.ascontiguousarray(samples[:, start:start + chunk])
                # packed "flt": one row, channels interleaved
                packed = np.ascontiguousarray(piece.T.reshape(1, -1))
                af = av.AudioFrame.from_ndarray(packed, format="flt", layout=layout)
                af.sample_rate = sr
                af.pts = pts
                af.time_base = Fraction(1, sr)
                pts += piece.shape[1]
                for packet in astream.encode(af):
                    out.mux(packet)
            for packet in astream.encode(None):
                out.mux(packet)
    return path


def _resize(frame: np.ndarray, w: int, h: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(frame).resize((w, h), Image.BILINEAR))


def _even(x: float) -> int:
    return max(2, int(round(x / 2)) * 2)


# -- the kinds --------------------------------------------------------------------------------
# Each maker writes its file(s) and returns their expectations. File stems (clip ids) are unique
# over the corpus: two files with one stem would be a fault of their own ("duplicate clip id").

def _scored(kind: str, path: Path, *, specialists=ALL, stage_problems=None, ingest_problem=None,
            clip_id: str | None = None, reported: str | None = None) -> Expected:
    return Expected(kind, path, clip_id if clip_id is not None else Path(path).stem, ingest_problem,
                    dict(stage_problems or {}), reported, True, frozenset(specialists))


def _refused(kind: str, path: Path, reason: str, *, predict_error: str | None = None) -> Expected:
    """Left out at ingest (no clips row); predict gives the same reason as its error."""
    return Expected(kind, path, None, reason, predict_error=predict_error or reason)


def _no_face(kind: str, path: Path) -> Expected:
    return _scored(kind, path, specialists=ALL - FACES, stage_problems={"faces": NO_FACE})


def k_control(b: _Builder) -> Iterator[Expected]:
    p = _write(b.path("Train", "Happy", "control_face_voice.mp4"), b.face_frames(), fps=b.fps, audio=b.voice())
    yield _scored("control", p)


def k_broken_files(b: _Builder) -> Iterator[Expected]:
    p = b.path("Train", "Sad", "zero_bytes.mp4")
    p.write_bytes(b"")
    yield _refused("zero_bytes", p, EMPTY)

    # the index (moov) at the end, where muxers put it by default: half a file has none
    p = _write(b.path("Train", "Angry", "truncated_index_at_end.mp4"), b.face_frames(), fps=b.fps,
               audio=b.voice())
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * b.rng.uniform(0.4, 0.6))])
    yield _refused("truncated_index_at_end", p, UNREADABLE)

    # the index at the start (faststart): it survives, the last part of the data does not. What
    # is left (>= 1.2 s of 3 s) decodes, so every specialist scores it, as players play it
    p = b.path("Train", "Fear", "truncated_index_at_start.mp4")
    write_av(p, b.face_frames(seconds=3.0), fps=b.fps, audio=b.voice(3.0), options={"movflags": "faststart"})
    data = p.read_bytes()
    assert data[4:8] == b"ftyp" and b"moov" in data[:4096], "faststart did not put the index first"
    p.write_bytes(data[: int(len(data) * b.rng.uniform(0.62, 0.75))])
    yield _scored("truncated_index_at_start", p, reported=r"(?i)truncat")

    p = b.path("Val", "Happy", "not_media.mp4")
    p.write_text("This is a text file, not a video.\n" * int(b.rng.integers(3, 30)))
    yield _refused("not_media", p, UNREADABLE)

    p = b.path("Val", "Sad", "random_bytes.mp4")
    p.write_bytes(b.rng.integers(0, 256, int(b.rng.integers(2000, 20000)), dtype=np.uint8).tobytes())
    yield _refused("random_bytes", p, UNREADABLE)


def k_streams(b: _Builder) -> Iterator[Expected]:
    p = _write(b.path("Train", "Neutral", "no_audio_stream.mp4"), b.face_frames(), fps=b.fps)
    yield _scored("no_audio_stream", p, specialists=ALL - {"audio"}, ingest_problem=NO_AUDIO)

    p = b.path("Train", "Surprise", "audio_only_wav.wav")
    write_av(p, None, fps=b.fps, audio=b.voice(), acodec="pcm_s16le", fmt="wav")
    yield _scored("audio_only_wav", p, specialists={"audio"})

    p = b.path("Val", "Angry", "audio_only_m4a.m4a")
    write_av(p, None, fps=b.fps, audio=b.voice(), acodec="aac", fmt="ipod")
    yield _scored("audio_only_m4a", p, specialists={"audio"})

    # digital silence: a valid track, scored like any other (nothing in it to flag as broken)
    p = _write(b.path("Train", "Disgust", "silent_audio.mp4"), b.face_frames(), fps=b.fps,
               audio=np.zeros(int(b.seconds * SR), np.float32))
    yield _scored("silent_audio", p)


def k_faces(b: _Builder) -> Iterator[Expected]:
    n = int(round(b.seconds * b.fps))
    p = _write(b.path("Test", "Neutral", "no_face.mp4"), b.gradient_frames(n), fps=b.fps, audio=b.voice())
    yield _no_face("no_face", p)

    left, right = b.face_frames(identity=0), b.face_frames(identity=1)
    frames = [np.concatenate([x, y], axis=1) for x, y in zip(left, right)]
    p = _write(b.path("Test", "Happy", "two_faces.mp4"), frames, fps=b.fps, audio=b.voice())
    yield _scored("two_faces", p)

    # 3 % of the light: pixel values 0..7. The HOG detector finds nothing (a limitation, reported)
    dark = [np.rint(f * 0.03).astype(np.uint8) for f in b.face_frames()]
    p = _write(b.path("Test", "Sad", "very_dark.mp4"), dark, fps=b.fps, audio=b.voice())
    yield _no_face("very_dark", p)

    h, w = b.size
    tiny = []
    for f in b.face_frames():  # the face (~125 px) scaled to ~20 px, in a plain frame
        s = _resize(f, _even(w * 0.16), _even(h * 0.16))
        canvas = np.full_like(f, 110)
        y0, x0 = (h - s.shape[0]) // 2, (w - s.shape[1]) // 3
        canvas[y0:y0 + s.shape[0], x0:x0 + s.shape[1]] = s
        tiny.append(canvas)
    p = _write(b.path("Test", "Angry", "tiny_face.mp4"), tiny, fps=b.fps, audio=b.voice())
    yield _no_face("tiny_face", p)

    # a person lying on their side: the pixels are sideways and nothing says otherwise
    side = [np.ascontiguousarray(np.rot90(f)) for f in b.face_frames()]
    p = _write(b.path("Test", "Fear", "sideways_face.mp4"), side, fps=b.fps, audio=b.voice())
    yield _no_face("sideways_face", p)

    # a phone's portrait video: pixels stored turned a quarter to the left, and a display matrix
    # (rotation -90: a quarter clockwise) that players apply to show the face upright
    upright = b.face_frames()
    p = b.path("Val", "Neutral", "rotated_by_metadata.mp4")
    write_av(p, [np.ascontiguousarray(np.rot90(f)) for f in upright], fps=b.fps, audio=b.voice(), rotation=-90)
    yield _scored("rotated_by_metadata", p)

    luma = np.array([0.299, 0.587, 0.114])
    grey = [np.repeat(np.rint(f @ luma)[..., None], 3, -1).astype(np.uint8) for f in b.face_frames()]
    p = b.path("Test", "Surprise", "grey_h264_monochrome.mp4")
    write_av(p, grey, fps=b.fps, pix_fmt="gray", audio=b.voice())  # x264 4:0:0: no chroma planes
    yield _scored("grey_h264_monochrome", p)

    grey = [np.repeat(np.rint(f @ luma)[..., None], 3, -1).astype(np.uint8) for f in b.face_frames()]
    p = b.path("Train", "Sad", "grey_single_channel.mkv")
    write_av(p, grey, fps=b.fps, vcodec="ffv1", pix_fmt="gray", fmt="matroska", audio=b.voice())
    yield _scored("grey_single_channel", p)


def k_lengths(b: _Builder) -> Iterator[Expected]:
    p = _write(b.path("Val", "Neutral", "one_frame.mp4"), b.face_frames(n=1), fps=b.fps, audio=b.voice(0.5))
    yield _scored("one_frame", p, specialists=ALL - {"motion"}, stage_problems={"motion": SHORT})

    p = _write(b.path("Val", "Fear", "five_frames.mp4"), b.face_frames(n=5), fps=b.fps, audio=b.voice(0.5))
    yield _scored("five_frames", p, specialists=ALL - {"motion"}, stage_problems={"motion": SHORT})

    # 3840x2160, three frames (too few for a motion block): the portrait scaled up 12x
    big = [_resize(f, 3840, 2160) for f in b.face_frames(n=3, size=(180, 320))]
    p = _write(b.path("Val", "Surprise", "very_high_resolution.mp4"), big, fps=b.fps, audio=b.voice(0.5))
    yield _scored("very_high_resolution", p, specialists=ALL - {"motion"}, stage_problems={"motion": SHORT})

    p = _write(b.path("Val", "Disgust", "low_frame_rate_5fps.mp4"), b.face_frames(seconds=2.2, fps=5),
               fps=5, audio=b.voice(2.2))
    yield _scored("low_frame_rate", p)

    p = _write(b.path("Test", "Disgust", "high_frame_rate_60fps.mp4"), b.face_frames(seconds=0.9, fps=60),
               fps=60, audio=b.voice(0.9))
    yield _scored("high_frame_rate", p)


def k_names(b: _Builder) -> Iterator[Expected]:
    name = "it's a \"clip\" #1 with spaces ü.mp4"
    p = _write(b.path("Train", "Fear", name), b.face_frames(), fps=b.fps, audio=b.voice())
    yield _scored("name_spaces_quotes_hash_umlaut", p)

    # Latin-1 bytes: 0xE9 (é) and 0xFF, not UTF-8; the id shows them escaped
    p = _write(b.path("Train", "Angry", os.fsdecode(b"latin1 caf\xe9 \xff.mp4")), b.face_frames(), fps=b.fps,
               audio=b.voice())
    yield _scored("name_byte_ff", p, clip_id="latin1 caf\\xe9 \\xff")


def k_tree(b: _Builder) -> Iterator[Expected]:
    folder = b.root / "Train" / "Happy"
    folder.mkdir(parents=True, exist_ok=True)
    loop = folder / "loop_to_parent"
    os.symlink("..", loop, target_is_directory=True)
    yield Expected("symlink_loop", loop, None, LOOP, predict_error=NOT_A_FILE)

    # the same bytes in another class folder: the evaluation split's copy is kept (Test before
    # Val before Train), the other is a problem naming both, with the conflicting labels
    original = _write(b.path("Test", "Happy", "duplicate_original.mp4"), b.face_frames(), fps=b.fps,
                      audio=b.voice())
    copy = b.path("Train", "Sad", "duplicate_copy.mp4")
    shutil.copyfile(original, copy)
    yield _scored("duplicate_original", original)
    # to predict, a copy is a video like any other: it gets the label its twin gets
    yield Expected("duplicate_copy", copy, None,
                   r"^same bytes as duplicate_original \(.*duplicate_original\.mp4\); labels conflict: happy vs sad; "
                   r"splits: test vs train; left out, only duplicate_original is kept$",
                   scored=True, specialists=ALL)

    # not one of the seven classes: no clip for training; an unlabelled video to predict
    p = _write(b.path("Train", "Boredom", "unknown_class.mp4"), b.face_frames(), fps=b.fps, audio=b.voice())
    yield Expected("unknown_class_folder", p, None, UNKNOWN_LABEL, scored=True, specialists=ALL)


def k_containers(b: _Builder) -> Iterator[Expected]:
    """Other containers and codecs than MP4 with H.264 + AAC."""
    realtime = {"deadline": "realtime", "cpu-used": "8"}
    cases = [
        ("avi_mpeg4_mp3", "Train", "Neutral", "mpeg4_in.avi", dict(vcodec="mpeg4", acodec="libmp3lame", fmt="avi")),
        ("mkv_mjpeg_flac", "Train", "Surprise", "mjpeg_in_mkv.mkv",
         dict(vcodec="mjpeg", pix_fmt="yuvj420p", acodec="flac", fmt="matroska")),
        ("mov_mjpeg_pcm", "Val", "Happy", "mjpeg_in_mov.mov",
         dict(vcodec="mjpeg", pix_fmt="yuvj420p", acodec="pcm_s16le", fmt="mov")),
        ("webm_vp8_vorbis", "Val", "Sad", "vp8_in.webm",
         dict(vcodec="libvpx", acodec="vorbis", fmt="webm", layout="stereo", aopts={"strict": "-2"}, vopts=realtime)),
        ("webm_vp9_opus", "Test", "Angry", "vp9_in.webm",
         dict(vcodec="libvpx-vp9", acodec="libopus", fmt="webm", sr=48000, vopts=realtime)),
        ("mkv_hevc_aac", "Test", "Fear", "hevc_in.mkv",
         dict(vcodec="libx265", acodec="aac", fmt="matroska",
              vopts={"preset": "ultrafast", "x265-params": "log-level=error"})),
        ("mpg_mpeg2_mp2", "Train", "Disgust", "mpeg2_in.mpg",
         dict(vcodec="mpeg2video", acodec="mp2", fmt="mpeg", sr=44100)),
    ]
    for kind, split, label, name, kw in cases:
        sr = kw.pop("sr", SR)
        audio = b.voice(sr=sr)
        if kw.get("layout") == "stereo":
            audio = np.stack([audio, audio])
        p = b.path(split, label, name)
        write_av(p, b.face_frames(), fps=b.fps, audio=audio, sr=sr, **kw)
        yield _scored(kind, p)


def k_audio(b: _Builder) -> Iterator[Expected]:
    for kind, label, name, sr in (("audio_44k1", "Happy", "audio_44100hz.mp4", 44100),
                                  ("audio_8k", "Sad", "audio_8000hz.mp4", 8000)):
        p = _write(b.path("Val", label, name), b.face_frames(), fps=b.fps, audio=b.voice(sr=sr), sr=sr)
        yield _scored(kind, p)

    voice = b.voice()
    p = b.path("Val", "Angry", "audio_stereo.mp4")
    write_av(p, b.face_frames(), fps=b.fps, audio=np.stack([voice, np.roll(voice, 40) * 0.5]), layout="stereo")
    yield _scored("audio_stereo", p)

    p = _write(b.path("Test", "Neutral", "audio_longer_than_video.mp4"), b.face_frames(), fps=b.fps,
               audio=b.voice(b.seconds + 3.0))
    yield _scored("audio_longer_than_video", p)


_KINDS: tuple[Callable[[_Builder], Iterator[Expected]], ...] = (
    k_control, k_broken_files, k_streams, k_faces, k_lengths, k_names, k_tree, k_containers, k_audio)
