"""`predict --annotate`: the input video re-encoded (H.264 in MP4) with what the model saw drawn on it.

Every frame gets the tracked face's box (the extent of its 68 landmarks as the `faces` table
holds them; the landmarks themselves on request) and a panel with the running view: the face
specialist's frame probabilities averaged up to that frame, the voice's likewise, and the
clip's fused label. Frames are decoded by emonets.media.video.iter_frames, as the face stage decoded
them (turned upright by the stream's rotation), so the boxes land where the faces were found.
The original audio is copied packet for packet when MP4 can hold its codec, else transcoded to
AAC. The file appears whole or not at all (a temp file beside it, renamed in).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Mapping

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from data_catalog.atomic import atomic_path
from emonets.errors import NoVideoError
from emonets.media.paths import display_path
from emonets.pictures.timeline import Timeline, top_classes
from emonets.media.video import iter_frames, open_container

# Audio codecs MP4 players take as they are; any other track (PCM, FLAC, Vorbis, Nellymoser...) is
# transcoded to AAC.
MP4_AUDIO_CODECS = frozenset({"aac", "mp3", "alac", "ac3", "eac3"})
AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
BOX_COLOUR = (255, 40, 200)  # magenta: stands out on skin, green screens and grey
LANDMARK_COLOUR = (255, 220, 0)


@dataclass(frozen=True)
class Annotated:
    """What annotate_video wrote."""

    path: Path
    frames: int        # video frames written (= the frames the input decodes to)
    audio: str         # "copied <codec>", "transcoded <codec> to aac", or "none"


def annotate_video(timeline: Timeline, out: Path | str, *, source: str | Path | None = None,
                   landmarks: bool = False, crf: int = 20) -> Annotated:
    """Re-encode ``source`` (default: the timeline's clip) to ``out`` with the annotations drawn.

    The output has every frame the input decodes to, at the input's timestamps, and the input's
    first audio track. Raises MediaError / NoVideoError as emonets.media.video does.
    """
    src = str(source) if source is not None else timeline.source
    rate, time_base, start = _video_clock(src)
    frames = iter_frames(src)
    audio = None
    try:
        first = next(frames)
        out = Path(out)
        written = 0
        with atomic_path(out) as tmp, av.open(str(tmp), mode="w", format="mp4") as sink:
            height, width = (first.image.shape[0] // 2) * 2, (first.image.shape[1] // 2) * 2  # yuv420p: even
            video = sink.add_stream("libx264", rate=rate)
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            video.codec_context.time_base = time_base
            video.options = {"crf": str(crf), "preset": "veryfast"}
            audio = _AudioTrack.open(src, sink, start)
            style = _Style.for_height(height)
            last_pts = -1
            for frame in _chain(first, frames):
                if audio is not None:
                    audio.write_until(frame.t - start)
                picture = draw_annotations(frame.image, timeline, frame.t, landmarks=landmarks, style=style)
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture[:height, :width]), format="rgb24")
                last_pts = max(last_pts + 1, int(round((frame.t - start) / time_base)))
                vf.pts, vf.time_base = last_pts, time_base
                for packet in video.encode(vf):
                    sink.mux(packet)
                written += 1
            for packet in video.encode():
                sink.mux(packet)
            if audio is not None:
                audio.write_until(float("inf"))
    finally:
        frames.close()
        if audio is not None:
            audio.close()
    audio_note = audio.note if audio is not None else "none"
    return Annotated(out, written, audio_note)


def annotate_videos(timelines: Mapping[str, Timeline], target: Path | str, *,
                    landmarks: bool = False) -> dict[str, Annotated]:
    """Annotate each clip: one clip -> ``target`` itself, several -> one file each beside it,
    named ``<stem>-<n>-<clip id>.mp4`` in the clips' order (annotation_paths)."""
    paths = annotation_paths(target, list(timelines))
    return {cid: annotate_video(timelines[cid], paths[cid], landmarks=landmarks) for cid in timelines}


def annotation_paths(target: Path | str, clip_ids: list[str]) -> dict[str, Path]:
    """Where annotate_videos writes each clip (see there); clip ids are made file-name safe."""
    target = Path(target)
    if len(clip_ids) == 1:
        return {clip_ids[0]: target}
    width = len(str(len(clip_ids)))
    return {cid: target.with_name(f"{target.stem}-{i:0{width}d}-{_safe(cid)}{target.suffix or '.mp4'}")
            for i, cid in enumerate(clip_ids, 1)}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:60] or "clip"


def _chain(first, rest):
    yield first
    yield from rest


def _video_clock(src: str) -> tuple[Fraction, Fraction, float]:
    """(frame rate, time base, start seconds) of the first video stream: output timestamps are the
    input's own, counted from the container's start."""
    with open_container(src) as container:
        if not container.streams.video:
            raise NoVideoError(f"{display_path(src)}: no video stream")
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate or stream.guessed_rate or 25).limit_denominator(100000)
        time_base = Fraction(stream.time_base) if stream.time_base else 1 / rate
        if time_base > 1 / rate:  # coarser than one frame: count in frames
            time_base = 1 / rate
        start = container.start_time / av.time_base if container.start_time is not None else 0.0
    return rate, time_base, float(start)


# -- the drawing ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Style:
    font: ImageFont.ImageFont
    line: int       # panel line height, pixels
    width: int      # box outline width
    dot: int        # landmark radius

    @classmethod
    def for_height(cls, height: int) -> "_Style":
        size = max(10, height // 26)
        try:
            font = ImageFont.load_default(size=size)
        except TypeError:  # Pillow without FreeType: the fixed bitmap font
            font = ImageFont.load_default()
        return cls(font, int(size * 1.25), max(2, height // 200), max(1, height // 300))


def draw_annotations(image: np.ndarray, timeline: Timeline, t: float, *, landmarks: bool = False,
                     style: _Style | None = None) -> np.ndarray:
    """One decoded frame (H x W x 3 RGB, or H x W grey) at ``t`` seconds with the box and panel drawn."""
    picture = Image.fromarray(image if image.ndim == 3 else np.stack([image] * 3, -1)).convert("RGB")
    style = style or _Style.for_height(picture.height)
    draw = ImageDraw.Draw(picture, "RGBA")
    row = timeline.face_row_at(t)
    face_here = row is not None and bool(timeline.face_found[row])
    if face_here:
        box = timeline.face_boxes[row]
        if np.isfinite(box).all():
            _box(draw, [float(v) for v in box], style)
            now = top_classes(timeline.face_proba[row], 1) if np.isfinite(timeline.face_proba[row]).all() else []
            if now:  # this frame's own view, under the chin (the panel holds the top left)
                _label(draw, (float(box[0]), float(box[3]) + style.width + 2), f"{now[0][0]} {now[0][1]:.2f}", style)
        if landmarks:
            r = style.dot
            for x, y in timeline.face_landmarks[row]:
                if np.isfinite(x) and np.isfinite(y):
                    draw.ellipse([x - r, y - r, x + r, y + r], fill=LANDMARK_COLOUR)
    _panel(draw, _panel_lines(timeline, t, face_here, row), style)
    return np.asarray(picture)


def _box(draw: ImageDraw.ImageDraw, box: list[float], style: _Style) -> None:
    """The box in BOX_COLOUR inside a dark rim, visible on any background (a green screen too)."""
    x0, y0, x1, y1 = box
    w = style.width
    draw.rectangle([x0 - w, y0 - w, x1 + w, y1 + w], outline=(0, 0, 0, 170), width=w)
    draw.rectangle(box, outline=BOX_COLOUR, width=w)


def _label(draw: ImageDraw.ImageDraw, at: tuple[float, float], text: str, style: _Style) -> None:
    x, y = at
    pad = max(2, style.line // 6)
    draw.rectangle([x, y, x + draw.textlength(text, font=style.font) + 2 * pad, y + style.line + pad],
                   fill=(0, 0, 0, 150))
    draw.text((x + pad, y + pad // 2), text, fill=BOX_COLOUR, font=style.font)


def _panel_lines(tl: Timeline, t: float, face_here: bool, row: int | None) -> list[str]:
    def shown(pairs: list[tuple[str, float]]) -> str:
        return "  ".join(f"{name} {p:.2f}" for name, p in pairs)

    lines = [f"{t:5.2f} s" + ("" if face_here or not len(tl.face_t) else "   no face")]
    if tl.face_model:
        so_far = tl.face_so_far(t)
        lines.append("face so far: " + (shown(top_classes(so_far, 2)) if so_far is not None else "no face yet"))
    if tl.audio_model:
        so_far = tl.audio_so_far(t)
        lines.append("voice so far: " + (shown(top_classes(so_far, 2)) if so_far is not None else "—"))
    who = "fused" if tl.model == "fused" else tl.model
    if tl.probabilities is not None:
        (best, p), *rest = top_classes(tl.probabilities, 2)
        lines.append(f"{who} (clip): {best.upper()} {p:.2f}  " + shown(rest))
    else:
        lines.append(f"{who} (clip): no prediction")
    return lines


def _panel(draw: ImageDraw.ImageDraw, lines: list[str], style: _Style) -> None:
    pad = max(3, style.line // 4)
    width = max(draw.textlength(line, font=style.font) for line in lines)
    draw.rectangle([0, 0, width + 2 * pad, len(lines) * style.line + 2 * pad], fill=(0, 0, 0, 150))
    for i, line in enumerate(lines):
        draw.text((pad, pad + i * style.line), line, fill=(255, 255, 255), font=style.font)


# -- the audio track ------------------------------------------------------------------------------
class _AudioTrack:
    """The input's first audio track written into the output, interleaved with the video by time:
    packets copied when MP4 takes the codec, else decoded and encoded to AAC."""

    def __init__(self, container, sink, start: float):
        self.container = container
        self.stream = container.streams.audio[0]
        self.start = start
        codec = self.stream.codec_context.codec.canonical_name
        self.copy = codec in MP4_AUDIO_CODECS
        if self.copy:
            self.out = sink.add_stream_from_template(self.stream)
            self.note = f"copied {codec}"
        else:
            ctx = self.stream.codec_context
            self.rate = ctx.sample_rate if ctx.sample_rate in AAC_RATES else 48000
            self.out = sink.add_stream("aac", rate=self.rate)
            self.out.layout = "mono" if ctx.layout.nb_channels == 1 else "stereo"
            self.note = f"transcoded {codec} to aac"
        self.sink = sink
        self.packets = self._packets()
        self.pending = None

    @classmethod
    def open(cls, src: str, sink, start: float) -> "_AudioTrack | None":
        container = open_container(src)
        if not container.streams.audio or container.streams.audio[0].codec_context is None:
            container.close()  # none, or one FFmpeg cannot decode (nor would the mfcc stage)
            return None
        try:
            return cls(container, sink, start)
        except BaseException:
            container.close()
            raise

    def write_until(self, seconds: float) -> None:
        """Mux every packet that starts at or before ``seconds`` (output clock)."""
        while True:
            if self.pending is None:
                self.pending = next(self.packets, None)
                if self.pending is None:
                    return
            packet, at = self.pending
            if at > seconds:
                return
            self.sink.mux(packet)
            self.pending = None

    def close(self) -> None:
        self.container.close()

    def _packets(self) -> Iterator[tuple[av.Packet, float]]:
        try:
            yield from (self._copied() if self.copy else self._transcoded())
        except av.FFmpegError:
            return  # a damaged tail: keep what was read, as the pipeline's decoders do

    def _copied(self) -> Iterator[tuple[av.Packet, float]]:
        tb = self.stream.time_base
        shift = int(round(self.start / tb))
        for packet in self.container.demux(self.stream):
            if packet.dts is None or packet.size == 0:
                continue
            packet.dts -= shift
            packet.pts = packet.pts - shift if packet.pts is not None else packet.dts
            packet.stream = self.out
            yield packet, float(packet.pts * tb)

    def _transcoded(self) -> Iterator[tuple[av.Packet, float]]:
        resampler = av.AudioResampler(format="fltp", layout=self.out.layout, rate=self.rate,
                                      frame_size=self.out.codec_context.frame_size or 1024)
        samples = None  # output clock, in samples
        for frame in self.container.decode(self.stream):
            if samples is None:
                samples = max(0, int(round(((frame.time or 0.0) - self.start) * self.rate)))
            for piece in resampler.resample(frame):
                yield from self._encode(piece, samples)
                samples += piece.samples
        for piece in resampler.resample(None):
            yield from self._encode(piece, samples or 0)
            samples = (samples or 0) + piece.samples
        for packet in self.out.encode(None):
            yield packet, float(packet.pts / self.rate) if packet.pts is not None else float("inf")

    def _encode(self, piece, pts: int) -> Iterator[tuple[av.Packet, float]]:
        piece.pts, piece.time_base = pts, Fraction(1, self.rate)
        for packet in self.out.encode(piece):
            yield packet, float(packet.pts * packet.time_base) if packet.pts is not None else pts / self.rate
