"""`predict --plot`: one PNG with a block per clip showing why the model said what it said.

A block holds the face specialist's class probabilities on every sampled frame (frames where
no face was found shaded), the audio specialist's on every MFCC frame it scored, and the fused
probabilities as bars (top two highlighted, the label in the title). Drawn on a Figure of its
own with the Agg canvas (no pyplot state), so it is safe from threads and servers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from data_catalog.atomic import atomic_path
from emonets.labels import EMOTIONS
from emonets.pictures.timeline import Timeline, top_classes

MAX_CLIPS = 12
# One colour per class, the same in every panel and figure.
CLASS_COLOURS = dict(zip(EMOTIONS, ("#d62728", "#8c8c00", "#9467bd", "#ff9f0e", "#7f7f7f", "#1f77b4", "#17becf")))
NO_FACE_COLOUR = "#b0b0b0"
SHORT = {"face_cnn": "face", "audio": "voice", "bag_of_mouths": "mouths", "motion": "motion"}


def timeline_png(timelines: Iterable[Timeline] | Mapping[str, Timeline], path: Path | str, *,
                 max_clips: int = MAX_CLIPS, dpi: int = 100) -> Path:
    """Write the clips' timelines as one PNG (atomically); at most ``max_clips`` blocks, and the
    figure says how many were left out."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    items = list(timelines.values()) if isinstance(timelines, Mapping) else list(timelines)
    if not items:
        raise ValueError("no clips to plot")
    shown = items[:max_clips]
    block_in, header_in = 3.6, 0.9
    fig = Figure(figsize=(13, header_in + block_in * len(shown)), dpi=dpi)
    FigureCanvasAgg(fig)
    header, *blocks = fig.subfigures(len(shown) + 1, 1, height_ratios=[header_in] + [block_in] * len(shown))
    heading = "emotion over time: the face per sampled frame, the voice per MFCC frame, the fused result"
    if len(items) > len(shown):
        heading += f"\nshowing the first {len(shown)} of {len(items)} clips"
    header.suptitle(heading, fontsize=12, y=0.95, va="top")
    handles = [Patch(color=CLASS_COLOURS[e], label=e) for e in EMOTIONS] + [
        Patch(color=NO_FACE_COLOUR, alpha=0.5, label="no face found")]
    header.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9, frameon=False)
    for sub, timeline in zip(blocks, shown):
        _block(sub, timeline)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def _block(sub, tl: Timeline) -> None:
    """One clip: face and voice panels sharing the time axis, the fused bars beside them."""
    grid = sub.add_gridspec(2, 2, width_ratios=(4.2, 1.4), hspace=0.55, wspace=0.18,
                            left=0.06, right=0.97, top=0.84, bottom=0.15)
    face_ax = sub.add_subplot(grid[0, 0])
    voice_ax = sub.add_subplot(grid[1, 0], sharex=face_ax)
    bars_ax = sub.add_subplot(grid[:, 1])
    name = Path(tl.path).name or tl.clip_id
    truth = f"   (true: {tl.true_label})" if tl.true_label else ""
    sub.suptitle(f"{name}{truth}", fontsize=11, x=0.06, ha="left", fontweight="bold")
    _face_panel(face_ax, tl)
    _voice_panel(voice_ax, tl)
    _bars_panel(bars_ax, tl)
    end = max([float(a.max()) for a in (tl.face_t, tl.audio_t) if len(a)], default=0.0)
    face_ax.set_xlim(0, max(end, 0.1))
    voice_ax.set_xlabel("seconds", fontsize=9)


def _probability_lines(ax, t: np.ndarray, proba: np.ndarray, *, marker: str | None, width: float) -> None:
    for c, emotion in enumerate(EMOTIONS):
        ax.plot(t, proba[:, c], color=CLASS_COLOURS[emotion], lw=width, marker=marker, ms=2.5)


def _panel_frame(ax, ylabel: str) -> None:
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.25)


def _say(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=11, color="#555555")


def _face_panel(ax, tl: Timeline) -> None:
    _panel_frame(ax, "face p")
    _shade_missing_faces(ax, tl)
    clip_view = _clip_view(tl, "face_cnn")
    if not tl.face_model:
        ax.set_title("face", fontsize=9, loc="left")
        _say(ax, "no face model")
        return
    found = int(tl.face_found.sum())
    ax.set_title(f"face specialist, per sampled frame ({found} of {len(tl.face_t)} frames with a face)"
                 f"{clip_view}", fontsize=9, loc="left")
    if found == 0:
        _say(ax, "no face found" if len(tl.face_t) else "no face rows for this clip")
        return
    _probability_lines(ax, tl.face_t, tl.face_proba, marker=".", width=1.2)


def _shade_missing_faces(ax, tl: Timeline) -> None:
    """Grey spans over runs of sampled frames without the face (half a step either side)."""
    if len(tl.face_t) == 0:
        return
    half = (float(np.median(np.diff(tl.face_t))) if len(tl.face_t) > 1 else 0.1) / 2
    missing = ~tl.face_found
    edges = np.flatnonzero(np.diff(np.r_[0, missing.astype(np.int8), 0]))
    for start, stop in zip(edges[::2], edges[1::2]):
        ax.axvspan(tl.face_t[start] - half, tl.face_t[stop - 1] + half, color=NO_FACE_COLOUR, alpha=0.5, lw=0)


def _voice_panel(ax, tl: Timeline) -> None:
    _panel_frame(ax, "voice p")
    if not tl.audio_model:
        ax.set_title("voice", fontsize=9, loc="left")
        _say(ax, "no audio model")
        return
    step = f", every {1000 * float(np.median(np.diff(tl.audio_t))):.0f} ms" if len(tl.audio_t) > 1 else ""
    ax.set_title(f"audio specialist, per MFCC frame{step}{_clip_view(tl, 'audio')}", fontsize=9, loc="left")
    if len(tl.audio_t) == 0:
        _say(ax, "no audio")
        return
    _probability_lines(ax, tl.audio_t, tl.audio_proba, marker=None, width=0.8)


def _clip_view(tl: Timeline, specialist: str) -> str:
    view = tl.specialists.get(specialist)
    if not view:
        return ""
    best = top_classes(np.array([view["probabilities"][e] for e in EMOTIONS]), 1)[0]
    return f" — clip: {best[0]} {best[1]:.2f}"


def _bars_panel(ax, tl: Timeline) -> None:
    ax.tick_params(labelsize=8)
    ax.set_xlim(0, 1)
    ax.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    ax.invert_yaxis()
    who = "fused" if tl.model == "fused" else tl.model
    if tl.probabilities is None:
        ax.set_title(f"{who}: no prediction", fontsize=10)
        _say(ax, "nothing the model\ncould score")
        return
    p = tl.probabilities
    top = top_classes(p, 2)
    leaders = {name for name, _ in top}
    for i, emotion in enumerate(EMOTIONS):
        ax.barh(i, p[i], color=CLASS_COLOURS[emotion], alpha=1.0 if emotion in leaders else 0.3)
        if emotion in leaders:
            ax.text(min(p[i] + 0.02, 0.8), i, f"{p[i]:.2f}", va="center", fontsize=8, fontweight="bold")
    ax.set_title(f"{who}: {top[0][0].upper()} {top[0][1]:.2f}\n(2nd: {top[1][0]} {top[1][1]:.2f})", fontsize=10)
    notes = [f"{SHORT.get(n, n)} {v['label']}" for n, v in tl.specialists.items()] + [
        f"{SHORT.get(n, n)} missing" for n in tl.missing]
    if notes:  # two per line: four specialists fit under the bars
        ax.set_xlabel("\n".join(" · ".join(notes[i:i + 2]) for i in range(0, len(notes), 2)), fontsize=8)
