"""`predict --plot` and `--annotate`: the per-frame timelines, the PNG, the annotated MP4.

The models are the real classes with small hand-set weights (no training), the feature tables
are written by hand in the catalog's schemas, and the videos are generated here; every output
is read back (PNG decoded, MP4 demuxed and decoded) and compared with what went in.
"""

from __future__ import annotations

import av
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from emonets.pictures.annotate import annotate_video, annotation_paths
from emonets.fusion.model import FusedModel
from emonets.fusion.fusers import MeanFusion
from emonets.labels import EMOTIONS, LABEL_INDEX
from emonets.pictures.plot import NO_FACE_COLOUR, timeline_png
from emonets.predict import predict_clips
from emonets.specialists.audio.model import AudioConfig, AudioSpecialist
from emonets.specialists.audio.net import FrameMLP
from emonets.specialists.base import ClipSet
from emonets.specialists.face_cnn.model import FaceCNN, FaceCNNConfig
from emonets.specialists.face_cnn.net import FaceNet
from emonets.pictures.timeline import Timeline, clip_timelines
from emonets.training_data import decode_rows
from emonets.media.video import iter_frames
from fault_corpus import write_av

torch.set_num_threads(1)

H, W, FPS = 160, 240, 25
BOX = (130.0, 60.0, 210.0, 140.0)  # x0, y0, x1, y1 of the landmarks, upright pixels
NO_FACE = (4, 5, 6)                 # sampled frames (10 fps) where the face is "not found"
N_MFCC, D = 120, 8                  # MFCC frames (10 ms) and columns
GREY = 90


# ---------------------------------------------------------------- models with hand-set weights
def face_model(favourite: str = "happy") -> FaceCNN:
    """A real FaceCNN with a tiny random ConvNet whose bias prefers ``favourite`` (no SVM)."""
    cfg = FaceCNNConfig(widths=(4, 8), convs=(1, 1), dropout=0.0, head_dropout=0.0)
    torch.manual_seed(0)
    net = FaceNet(widths=cfg.widths, convs=cfg.convs, dropout=0.0, head_dropout=0.0)
    with torch.no_grad():
        net.head[-1].bias.zero_()
        net.head[-1].bias[LABEL_INDEX[favourite]] = 3.0
    model = FaceCNN(cfg)
    model.size_, model.state_, model.svm_ = 48, {k: v.clone() for k, v in net.state_dict().items()}, None
    return model


def audio_net_state(scale: float = 5.0, stride: int = 2) -> dict:
    """FrameMLP weights: class c's frame score is scale·relu(feature c) (features 0..6)."""
    net = FrameMLP(D, 7, hidden=(7,), context=0, stride=stride, dropout=0.0, input_dropout=0.0)
    with torch.no_grad():
        first, last = net.net[1], net.net[4]
        first.weight.zero_()
        first.bias.zero_()
        for c in range(7):
            first.weight[c, c, 0] = 1.0
        last.weight.copy_(scale * torch.eye(7)[:, :, None])
        last.bias.zero_()
    return {k: v.clone() for k, v in net.state_dict().items()}


def audio_model(states: list[dict] | None = None, stride: int = 2) -> AudioSpecialist:
    cfg = AudioConfig(hidden=(7,), context=0, dilation=1, stride=stride, dropout=0.0, input_dropout=0.0,
                      seeds=tuple(range(len(states or [0]))))
    model = AudioSpecialist(cfg)
    model.n_features_, model.mean_, model.std_ = D, np.zeros(D, np.float32), np.ones(D, np.float32)
    model.states_ = states or [audio_net_state(stride=stride)]
    return model


def fused(face=True, audio=True) -> FusedModel:
    members = {**({"face_cnn": face_model()} if face else {}), **({"audio": audio_model()} if audio else {})}
    fuser = MeanFusion()
    fuser.n_specialists_ = len(members)
    return FusedModel(members, fuser, "mean")


# ---------------------------------------------------------------- clips, tables, videos
def landmarks(box=BOX, seed=0) -> list[float]:
    """68 points inside ``box`` whose extent is exactly the box."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = box
    pts = np.column_stack([rng.uniform(x0, x1, 68), rng.uniform(y0, y1, 68)])
    pts[:4] = [(x0, y0), (x1, y0), (x0, y1), (x1, y1)]
    return pts.astype(np.float32).reshape(-1).tolist()


def faces_table(clip_id: str, times: list[float], box=BOX, missing=NO_FACE) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for i, t in enumerate(times):
        found = i not in missing
        face = rng.integers(0, 256, (48, 48), dtype=np.uint8).tobytes() if found else b""
        rows.append((clip_id, i, t, found, face, 48, landmarks(box, i) if found else []))
    return pd.DataFrame(rows, columns=["clip_id", "frame", "t", "found", "face", "size", "landmarks"])


def mfcc_table(clip_id: str) -> pd.DataFrame:
    """First half of the frames say happy (feature 3), the second half sad (feature 5)."""
    coeffs = np.zeros((N_MFCC, D), np.float32)
    coeffs[: N_MFCC // 2, LABEL_INDEX["happy"]] = 1.0
    coeffs[N_MFCC // 2:, LABEL_INDEX["sad"]] = 1.0
    return pd.DataFrame({"clip_id": clip_id, "frame": np.arange(N_MFCC, dtype=np.int32),
                         "t": np.arange(N_MFCC) * 0.01, "coeffs": list(coeffs), "duration": N_MFCC * 0.01})


def clips_table(paths: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({"clip_id": list(paths), "path": list(paths.values()),
                         "path_bytes": [p.encode() for p in paths.values()], "label": "happy", "split": "test"})


def frames(n: int = 30, h: int = H, w: int = W) -> list[np.ndarray]:
    """Flat grey frames with a faint moving ramp (so the encoder has something to do)."""
    yy, xx = np.mgrid[0:h, 0:w]
    return [np.stack([np.full((h, w), GREY), np.full((h, w), GREY), (xx + 2 * i) % 40 + GREY], -1).astype(np.uint8)
            for i in range(n)]


def tone(seconds: float, sr: int = 16000) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


@pytest.fixture
def video(tmp_path):
    """A 1.2 s 240x160 mp4 with AAC audio, its faces (sampled as the face stage samples) and mfcc."""
    path = write_av(tmp_path / "clip.mp4", frames(), fps=FPS, audio=tone(1.2))
    times = [f.t for f in iter_frames(path, fps=10.0)]
    tables = {"faces": faces_table("clip", times), "mfcc": mfcc_table("clip")}
    return path, clips_table({"clip": str(path)}), tables


def decoded(path) -> list[np.ndarray]:
    return [f.image for f in iter_frames(path)]


# ---------------------------------------------------------------- the audio specialist's frames
def test_frame_proba_scores_every_strided_frame_before_pooling():
    model = audio_model(stride=2)
    x = np.zeros((11, D), np.float32)
    x[:6, LABEL_INDEX["angry"]] = 1.0
    x[6:, LABEL_INDEX["fear"]] = 1.0
    one = np.zeros((1, D), np.float32)
    one[0, LABEL_INDEX["sad"]] = 2.0
    cs = ClipSet(["a", "b", "empty"], [x, one, np.zeros((0, D), np.float32)])
    probs = model.frame_proba(cs)
    assert [p.shape for p in probs] == [(6, 7), (1, 7), (0, 7)]  # ceil(11 / 2) scored frames
    np.testing.assert_allclose(probs[0].sum(1), 1.0, rtol=1e-5)
    # row j scores MFCC frame 2j: frames 0, 2, 4 are angry, 6, 8, 10 fear
    assert [EMOTIONS[k] for k in probs[0].argmax(1)] == ["angry"] * 3 + ["fear"] * 3
    # one frame: the clip's top-k pooling is that frame, so the clip's probabilities are its row
    np.testing.assert_allclose(model.predict_proba(ClipSet(["b"], [one]))[0], probs[1][0], rtol=1e-5)


def test_frame_proba_averages_the_seed_ensemble():
    a, b = audio_net_state(scale=5.0), audio_net_state(scale=1.0)
    x = np.eye(7, D, dtype=np.float32)
    cs = ClipSet(["x"], [x])
    both = audio_model([a, b]).frame_proba(cs)[0]
    alone = [audio_model([s]).frame_proba(cs)[0] for s in (a, b)]
    np.testing.assert_allclose(both, (alone[0] + alone[1]) / 2, rtol=1e-5)
    assert not np.allclose(alone[0], alone[1])


# ---------------------------------------------------------------- the timelines
def test_timelines_show_what_the_model_was_given(video):
    path, clips, tables = video
    model = fused()
    predictions = predict_clips(model, clips, tables)
    tl = clip_timelines(model, clips, tables)["clip"]
    assert tl.face_model and tl.audio_model and tl.source == str(path)
    # faces: every sampled frame, found or not; the face specialist's own frame probabilities
    faces = tables["faces"]
    np.testing.assert_array_equal(tl.face_found, faces["found"].to_numpy())
    np.testing.assert_allclose(tl.face_t, faces["t"].to_numpy())
    expected = model.specialists["face_cnn"].predict_frames(decode_rows("faces", faces[faces["found"]]))
    np.testing.assert_allclose(tl.face_proba[tl.face_found], expected, rtol=1e-5)
    assert np.isnan(tl.face_proba[list(NO_FACE)]).all()
    np.testing.assert_allclose(tl.face_boxes[0], BOX, atol=1e-4)
    assert np.isnan(tl.face_boxes[list(NO_FACE)]).all()
    # audio: every other MFCC frame (stride 2), happy in the first half, sad in the second
    np.testing.assert_allclose(tl.audio_t, np.arange(0, N_MFCC, 2) * 0.01)
    labels = [EMOTIONS[k] for k in tl.audio_proba.argmax(1)]
    assert labels == ["happy"] * (N_MFCC // 4) + ["sad"] * (N_MFCC // 4)
    # the fused result is predict_clips' (given or computed)
    assert tl.label == predictions[0]["label"]
    np.testing.assert_allclose(tl.probabilities, [predictions[0]["probabilities"][e] for e in EMOTIONS], atol=1e-4)
    again = clip_timelines(model, clips, tables, predictions=predictions)["clip"]
    assert again.label == tl.label and set(again.specialists) == {"face_cnn", "audio"}
    # the running views: nothing before the first frame, the face's found frames averaged
    assert tl.face_so_far(-1.0) is None
    np.testing.assert_allclose(tl.face_so_far(tl.face_t[7]), expected[:5].mean(0), rtol=1e-5)
    assert EMOTIONS[int(np.argmax(tl.audio_so_far(0.3)))] == "happy"


def test_a_model_without_a_specialist_says_so(video):
    _, clips, tables = video
    tl = clip_timelines(audio_model(), clips, tables)["clip"]
    assert tl.model == "audio" and not tl.face_model and tl.audio_model
    assert tl.face_found.sum() == len(tables["faces"]) - len(NO_FACE)  # the tracked face is still known
    assert np.isnan(tl.face_proba).all() and tl.face_so_far(10.0) is None
    tl = clip_timelines(fused(audio=False), clips, {"faces": tables["faces"]})["clip"]
    assert not tl.audio_model and len(tl.audio_t) == 0 and tl.label == "happy"


def test_face_row_holds_a_sample_between_samples_but_not_past_the_clip():
    tl = Timeline("c", "c.mp4", "c.mp4", face_t=np.array([0.0, 0.1, 0.2]), face_found=np.array([True, False, True]))
    assert [tl.face_row_at(t) for t in (-0.05, 0.0, 0.08, 0.12, 0.29, 0.5)] == [None, 0, 0, 1, 2, None]


# ---------------------------------------------------------------- the PNG
def _no_face_pixels(png) -> int:
    """Pixels of the no-face shading (NO_FACE_COLOUR at alpha 0.5 over white)."""
    grey = int(NO_FACE_COLOUR[1:3], 16)
    shade = round((grey + 255) / 2)
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    return int((np.abs(img - shade) <= 1).all(-1).sum())


def test_timeline_png_decodes_with_a_block_per_clip_and_shades_missing_faces(video, tmp_path):
    _, clips, tables = video
    tl = clip_timelines(fused(), clips, tables)
    png = timeline_png(tl, tmp_path / "one.png", dpi=50)
    with Image.open(png) as img:
        assert img.format == "PNG" and img.size == (650, round(50 * (0.9 + 3.6)))
        assert np.asarray(img.convert("L")).std() > 10  # not blank
    faces = faces_table("clip", tables["faces"]["t"].tolist(), missing=())
    all_found = timeline_png(clip_timelines(fused(), clips, {**tables, "faces": faces}), tmp_path / "found.png",
                             dpi=50)
    assert _no_face_pixels(png) > _no_face_pixels(all_found) + 200  # the legend's patch is in both


def test_timeline_png_caps_the_clips_and_draws_models_without_specialists(video, tmp_path):
    _, clips, tables = video
    one = clip_timelines(audio_model(), clips, tables)["clip"]
    many = {f"c{i}": one for i in range(14)}
    png = timeline_png(many, tmp_path / "many.png", max_clips=12, dpi=30)
    with Image.open(png) as img:
        assert img.size == (390, round(30 * (0.9 + 3.6 * 12)))
    nothing = Timeline("x", "x.mp4", "x.mp4")  # no model views, no rows, no prediction
    with Image.open(timeline_png([nothing], tmp_path / "nothing.png", dpi=30)) as img:
        assert img.size == (390, round(30 * 4.5))
    with pytest.raises(ValueError):
        timeline_png([], tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()


# ---------------------------------------------------------------- the annotated MP4
def _streams(path):
    with av.open(str(path)) as c:
        return {s.type: s.codec_context.codec.canonical_name for s in c.streams if s.type in ("video", "audio")}, \
            (float(c.streams.audio[0].duration * c.streams.audio[0].time_base) if c.streams.audio else None)


def _box_edge_changed(src: np.ndarray, out: np.ndarray, box=BOX) -> bool:
    x0, y0, x1, y1 = (int(v) for v in box)
    y = (y0 + y1) // 2
    edge = out[y, x0 + 1].astype(int) - src[y, x0 + 1].astype(int)
    return bool(np.abs(edge).max() > 60)


def test_annotated_video_keeps_frames_and_audio_and_draws_the_box_where_the_faces_are(video, tmp_path):
    path, clips, tables = video
    tl = clip_timelines(fused(), clips, tables)["clip"]
    result = annotate_video(tl, tmp_path / "out.mp4", landmarks=True)
    src, out = decoded(path), decoded(result.path)
    assert result.frames == len(out) == len(src) == 30
    streams, _ = _streams(result.path)
    assert streams == {"video": "h264", "audio": "aac"} and result.audio == "copied aac"
    assert out[0].shape == src[0].shape
    times = [f.t for f in iter_frames(path)]
    for i, t in enumerate(times):
        row = tl.face_row_at(t)
        assert _box_edge_changed(src[i], out[i]) == bool(row is not None and tl.face_found[row]), f"frame {i}"
    # the panel (top left) is drawn on every frame; far from box and panel, the picture is the input's
    assert all(np.abs(o[5:25, 5:60].astype(int) - s[5:25, 5:60]).mean() > 20 for s, o in zip(src, out))
    assert np.abs(out[15][150, 20].astype(int) - src[15][150, 20]).max() < 12
    assert not list(tmp_path.glob(".tmp-*"))


def test_audio_mp4_cannot_hold_is_transcoded_to_aac(tmp_path):
    path = write_av(tmp_path / "pcm.mkv", frames(20), fps=FPS, fmt="matroska", audio=tone(0.8),
                    acodec="pcm_s16le")
    tl = Timeline("pcm", str(path), str(path), face_t=np.zeros(0))
    result = annotate_video(tl, tmp_path / "pcm.mp4")
    streams, seconds = _streams(result.path)
    assert result.audio == "transcoded pcm_s16le to aac" and streams["audio"] == "aac"
    assert seconds == pytest.approx(0.8, abs=0.1)
    assert result.frames == len(decoded(result.path)) == 20


def test_a_video_without_audio_stays_without_and_a_rotated_one_is_annotated_upright(tmp_path):
    upright = frames(15, h=W, w=H)  # portrait 160 wide, 240 high, stored sideways with a rotation
    path = write_av(tmp_path / "rot.mp4", [np.ascontiguousarray(np.rot90(f)) for f in upright], fps=FPS,
                    rotation=-90)
    assert decoded(path)[0].shape == (W, H, 3)  # the pipeline's decoder turns it upright
    box = (40.0, 120.0, 120.0, 200.0)  # upright pixels, as the face stage stores landmarks
    times = [f.t for f in iter_frames(path, fps=10.0)]
    faces = faces_table("rot", times, box=box, missing=())
    tl = clip_timelines(fused(audio=False), clips_table({"rot": str(path)}), {"faces": faces})["rot"]
    result = annotate_video(tl, tmp_path / "rot-out.mp4")
    src, out = decoded(path), decoded(result.path)
    assert result.audio == "none" and _streams(result.path)[0] == {"video": "h264"}
    assert len(out) == len(src) == 15 and out[0].shape == (W, H, 3)
    assert all(_box_edge_changed(s, o, box) for s, o in zip(src, out))


def test_a_failed_annotation_leaves_no_file(video, tmp_path, monkeypatch):
    import emonets.pictures.annotate as annotate

    path, clips, tables = video
    tl = clip_timelines(fused(), clips, tables)["clip"]
    calls = []

    def breaks(*args, **kwargs):
        calls.append(1)
        if len(calls) == 10:
            raise RuntimeError("disk gone")
        return args[0]

    monkeypatch.setattr(annotate, "draw_annotations", breaks)
    with pytest.raises(RuntimeError):
        annotate.annotate_video(tl, tmp_path / "half.mp4")
    assert not (tmp_path / "half.mp4").exists() and not list(tmp_path.glob(".tmp-*"))


def test_annotation_paths_one_file_for_one_clip_one_each_for_several(tmp_path):
    assert annotation_paths(tmp_path / "a.mp4", ["x"]) == {"x": tmp_path / "a.mp4"}
    paths = annotation_paths(tmp_path / "a.mp4", [f"c/{i}" for i in range(11)])
    assert len(set(paths.values())) == 11
    assert paths["c/0"] == tmp_path / "a-01-c_0.mp4" and all(p.parent == tmp_path for p in paths.values())
