"""Faces: alignment geometry, main-face tracking (synthetic detector), the video and image paths."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from emonets.errors import MediaError, NoVideoError
from emonets.features.faces import FaceConfig, extract_faces, faces_from_images
from emonets.features.faces.align import (
    align_face,
    alignment_matrix,
    anchor_points,
    apply_matrix,
    fit_similarity,
    template_points,
)
from emonets.features.faces.track import Box, BoxModel, FaceTracker, match, pick_main
from emonets.features.rows import clip_array

FACE_COLUMNS = ["clip_id", "frame", "t", "found", "face", "size", "landmarks"]


def similarity(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([[scale * math.cos(a), -scale * math.sin(a), tx],
                     [scale * math.sin(a), scale * math.cos(a), ty]])


def landmarks_with_anchors(anchors: np.ndarray, rng=None) -> np.ndarray:
    """68 points whose eye centres, nose tip and mouth centre are ``anchors`` (4, 2)."""
    rng = rng or np.random.default_rng(0)
    pts = np.tile(anchors.mean(0), (68, 1)) + rng.normal(0, 3, (68, 2))
    for idx, a in ((range(36, 42), anchors[0]), (range(42, 48), anchors[1]), ([30], anchors[2]),
                   (range(48, 68), anchors[3])):
        idx = list(idx)
        offs = rng.normal(0, 2, (len(idx), 2)) if len(idx) > 1 else np.zeros((1, 2))
        pts[idx] = a + offs - offs.mean(0)
    return pts


# -- alignment geometry ----------------------------------------------------------------------
@pytest.mark.parametrize("scale,angle,tx,ty",
                         [(1.0, 0, 0, 0), (0.25, 17, 40, -12), (3.0, -35, -5, 90), (0.6, 180, 10, 10)])
def test_fit_similarity_recovers_a_known_transform(scale, angle, tx, ty):
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 300, (6, 2))
    m = similarity(scale, angle, tx, ty)
    dst = apply_matrix(m, src)
    np.testing.assert_allclose(fit_similarity(src, dst), m, atol=1e-9)


def test_fit_similarity_never_reflects_and_rejects_degenerate_points():
    src = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    mirrored = src * [-1, 1]
    m = fit_similarity(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0
    with pytest.raises(ValueError):
        fit_similarity(np.ones((4, 2)), np.zeros((4, 2)))


def test_template_is_fer_framing_and_scales_with_size():
    t48, t96 = template_points(48), template_points(96)
    eye_l, eye_r, nose, mouth = t48
    assert eye_l[0] < nose[0] < eye_r[0] and eye_l[1] < nose[1] < mouth[1]  # upright face
    assert 20 < nose[0] < 28 and 14 < np.linalg.norm(eye_r - eye_l) < 20    # centred, FER-sized
    np.testing.assert_allclose(t96 + 0.5, (t48 + 0.5) * 2)                  # pixel-corner scaling


@pytest.mark.parametrize("scale,angle", [(0.2, 40.0), (0.25, 15.0), (0.5, -10.0), (1.0, 0.0), (1.5, -20.0)])
def test_align_face_puts_the_anchors_on_the_template(scale, angle):
    """Bright squares at the source anchors land (intensity centroid) on the template points."""
    size = 48
    template = template_points(size)
    to_face = similarity(scale, angle, 7.0, -3.0)  # source -> face, deliberately arbitrary
    inv = np.linalg.inv(np.vstack([to_face, [0, 0, 1]]))[:2]
    src = apply_matrix(inv, template) + [200.0, 150.0]
    image = np.zeros((500, 600), np.uint8)
    half = max(1, int(round(1.5 / scale)))  # a square ~3 output pixels wide
    for x, y in np.rint(src).astype(int):
        image[y - half:y + half + 1, x - half:x + half + 1] = 255
    centres = np.rint(src)
    landmarks = landmarks_with_anchors(centres)
    face = align_face(image, landmarks, size=size)
    assert face.shape == (size, size) and face.dtype == np.uint8
    expected = apply_matrix(alignment_matrix(landmarks, size=size), centres)
    np.testing.assert_allclose(expected, template, atol=0.5 * scale + 1e-9)  # only rounding moved them
    yy, xx = np.mgrid[0:size, 0:size]
    for tx, ty in expected:
        win = (np.abs(xx - tx) <= 3) & (np.abs(yy - ty) <= 3)
        w = face * win
        assert w.sum() > 0
        cx, cy = (w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()
        assert abs(cx - tx) < 0.2 and abs(cy - ty) < 0.2, (scale, angle, (cx, cy), (tx, ty))


def test_alignment_matrix_of_template_landmarks_is_identity():
    pts = landmarks_with_anchors(template_points(48))
    np.testing.assert_allclose(alignment_matrix(pts, size=48), [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    np.testing.assert_allclose(anchor_points(pts), template_points(48), atol=1e-9)


# -- tracking on synthetic faces --------------------------------------------------------------
BASE_ANCHORS = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.5, 0.78]])


def face_points(box: Box) -> np.ndarray:
    """The 68 'landmarks' of a synthetic face filling ``box``."""
    anchors = BASE_ANCHORS * [box.width, box.height] + [box.left, box.top]
    return landmarks_with_anchors(anchors, np.random.default_rng(7))


def square(cx: float, cy: float, w: float) -> Box:
    return Box(cy - w / 2, cx + w / 2, cy + w / 2, cx - w / 2)


class FakeDetector:
    """Detections from a script: ``scenes[i]`` lists the true faces of frame i (encoded in the
    image's first two pixels). Landmarks snap to the true face the box overlaps most (as dlib's
    predictor converges on a face), else they fill the box (a predictor shown no face)."""

    def __init__(self, scenes: list[list[Box]], margin: float = 0.5):
        self.scenes, self.margin = scenes, margin
        self.near_calls = self.search_calls = 0

    @staticmethod
    def image(i: int) -> np.ndarray:
        img = np.zeros((480, 640), np.uint8)
        img[0, 0], img[0, 1] = i % 256, i // 256
        return img

    def _faces(self, grey):
        return self.scenes[int(grey[0, 0]) + 256 * int(grey[0, 1])]

    def search(self, grey):
        self.search_calls += 1
        return list(self._faces(grey))

    def near(self, grey, box):
        self.near_calls += 1
        m = self.margin * box.width
        return [f for f in self._faces(grey)
                if box.left - m <= f.centre[0] <= box.right + m and box.top - m <= f.centre[1] <= box.bottom + m]

    def landmarks(self, grey, box):
        faces = self._faces(grey)
        overlap = [_iou(box, f) for f in faces]
        if faces and max(overlap) > 0.2:
            return face_points(faces[int(np.argmax(overlap))])
        return face_points(box)


def _iou(a: Box, b: Box) -> float:
    w = max(0.0, min(a.right, b.right) - max(a.left, b.left))
    h = max(0.0, min(a.bottom, b.bottom) - max(a.top, b.top))
    return w * h / (a.area + b.area - w * h)


def run_tracker(scenes, **kw):
    det = FakeDetector(scenes)
    tracker = FaceTracker(det, **kw)
    out = []
    for i in range(len(scenes)):
        out += tracker.push(i, i * 0.1, FakeDetector.image(i))
    out += tracker.finish()
    assert [f.index for f in out] == list(range(len(scenes)))  # every frame once, in order
    return out, tracker, det


def is_face(points, box: Box) -> bool:
    return np.linalg.norm(anchor_points(points).mean(0) - anchor_points(face_points(box)).mean(0)) < 2


@pytest.mark.parametrize("detect_every", [1, 3, 4])
def test_tracker_keeps_the_main_face_when_a_bigger_second_face_appears(detect_every):
    mains = [square(150 + 4 * i, 160 + i, 100) for i in range(31)]
    intruder = square(470, 300, 160)
    scenes = [[m] + ([intruder] if i >= 5 else []) for i, m in enumerate(mains)]
    out, tracker, det = run_tracker(scenes, detect_every=detect_every)
    assert all(f.points is not None for f in out)
    assert all(is_face(f.points, mains[f.index]) for f in out)
    assert tracker.stats.searches == 1  # never lost, never re-chosen
    if detect_every > 1:  # sparse detection really skips detections
        assert det.near_calls < len(scenes) - 10


def test_tracker_never_jumps_to_a_second_face_while_the_main_one_is_away():
    main, other = square(200, 200, 120), square(500, 250, 90)
    present = [not (10 <= i < 15) for i in range(30)]
    scenes = [([main] if p else []) + [other] for p in present]
    out, tracker, _ = run_tracker(scenes, detect_every=3, reacquire_after=2.0)
    assert [f.points is not None for f in out] == present  # found exactly where the main face is
    assert all(is_face(f.points, main) for f in out if f.points is not None)
    assert tracker.stats.lost >= 1


def test_tracker_without_reacquire_stays_with_the_lost_face_forever():
    main, other = square(200, 200, 120), square(500, 250, 100)
    scenes = [([main] if i < 8 else []) + [other] for i in range(25)]
    out, _, _ = run_tracker(scenes, detect_every=3, reacquire_after=None)
    assert [f.points is not None for f in out] == [i < 8 for i in range(25)]
    out, _, _ = run_tracker(scenes, detect_every=3, reacquire_after=0.5)  # a new track after 0.5 s
    late = [f for f in out if f.index >= 8 + 6]
    assert late and all(f.points is not None and is_face(f.points, other) for f in late)


def test_tracked_frames_are_checked_when_the_face_vanishes_between_detections():
    main = square(300, 200, 110)
    scenes = [[main] if i < 8 else [] for i in range(16)]
    out, _, _ = run_tracker(scenes, detect_every=4)
    assert [f.points is not None for f in out] == [i < 8 for i in range(16)]


def test_pick_main_and_match():
    small, big = square(100, 100, 50), square(300, 100, 120)
    assert pick_main([small, big]) is big and pick_main([]) is None
    expected = square(105, 102, 52)
    assert match(expected, [big, small]) is small
    assert match(expected, [big]) is None                   # too far and too big
    assert match(expected, [square(105, 102, 100)]) is None  # right place, wrong size


def test_box_model_reproduces_the_detector_framing():
    box = Box(100, 260, 270, 90)
    pts = face_points(square(170, 180, 150))
    model = BoxModel()
    model.update(box, pts)
    got = model.box(pts)
    assert np.allclose([got.top, got.right, got.bottom, got.left], [box.top, box.right, box.bottom, box.left])
    shifted = model.box(pts + [10, -5])
    assert np.isclose(shifted.left, box.left + 10) and np.isclose(shifted.top, box.top - 5)


# -- the video path ---------------------------------------------------------------------------
def check_faces_table(df: pd.DataFrame, size: int = 48, *, landmarks: bool = True) -> None:
    """Catalog columns and dtypes; face bytes and 68 landmarks exactly on found rows."""
    assert list(df.columns) == FACE_COLUMNS
    assert df["frame"].dtype == np.int32 and df["size"].dtype == np.int32 and df["found"].dtype == bool
    assert (df["size"] == size).all()
    for row in df.itertuples(index=False):
        assert len(row.face) == (size * size if row.found else 0)
        assert len(row.landmarks) == (136 if row.found and landmarks else 0)


def test_clip_without_a_face_gives_only_not_found_rows(make_clip, store):
    path = make_clip("noface.mp4", seconds=1.0, fps=25, size=(96, 128))
    result = extract_faces(path, clip_id="noface", config=FaceConfig(fps=10))
    df = result.faces
    assert len(df) == 10 and not df["found"].any()
    assert df["frame"].tolist() == list(range(10)) and df["t"].is_monotonic_increasing
    assert result.stats["found_rate"] == 0.0 and result.stats["frames"] == 10
    assert clip_array("faces", df).shape == (0,)  # no found face: nothing to decode
    check_faces_table(df)
    store.write("faces", df, partition="noface")
    assert len(store.read("faces")) == 10


def test_real_cremad_clip_faces(shared, store):
    path = shared("crema-d", "1001_DFA_HAP_XX.flv")
    result = extract_faces(path, clip_id="cremad-hap", config=FaceConfig())
    df = result.faces
    assert len(df) == result.stats["frames"] >= 15  # ~1.9 s at 10 fps
    assert df["found"].mean() >= 0.9
    check_faces_table(df)
    faces = clip_array("faces", df)
    assert faces.shape == (int(df["found"].sum()), 48, 48) and faces.dtype == np.uint8
    assert faces.std() > 10  # a picture, not a flat fill
    pts = np.asarray(df[df["found"]]["landmarks"].iloc[0]).reshape(68, 2)
    assert (pts[:, 0] > 0).all() and (pts[:, 0] < 480).all() and (pts[:, 1] < 360).all()
    # The aligned faces are steady: the actor barely moves, so frames agree closely.
    assert np.abs(faces.astype(float) - faces.mean(0)).mean() < 25
    manifest = store.write("faces", df, partition="cremad-hap", config=FaceConfig().to_dict(), stats=result.stats)
    assert manifest.rows == len(df)
    back = store.read("faces", partitions=["cremad-hap"])
    np.testing.assert_array_equal(clip_array("faces", back), faces)


def test_threads_get_the_same_faces_as_one_thread(shared):
    """dlib's detectors are not thread-safe: each thread must use its own (a thread runner)."""
    from concurrent.futures import ThreadPoolExecutor

    path = shared("crema-d", "1001_DFA_FEA_XX.flv")
    config = FaceConfig(max_frames=10)
    alone = extract_faces(path, clip_id="fea", config=config).faces
    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda _: extract_faces(path, clip_id="fea", config=config).faces, range(2)))
    for df in both:
        np.testing.assert_array_equal(clip_array("faces", df), clip_array("faces", alone))
        assert df["landmarks"].map(list).tolist() == alone["landmarks"].map(list).tolist()


def test_size_is_a_config_value(shared):
    path = shared("crema-d", "1001_DFA_NEU_XX.flv")
    df = extract_faces(path, clip_id="neu", config=FaceConfig(size=64, max_frames=4)).faces
    assert len(df) == 4 and clip_array("faces", df).shape[1:] == (64, 64)
    check_faces_table(df, size=64)


def test_unreadable_files_raise_media_errors(tmp_path, shared):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.flv"
    empty.write_bytes(b"")
    for path in (junk, empty, tmp_path / "missing.mp4"):
        with pytest.raises(MediaError, match=path.name):
            extract_faces(path, clip_id="bad")
    audio = next(shared("ravdess-speech", "Actor_01").glob("*.flac"))
    with pytest.raises(NoVideoError):
        extract_faces(audio, clip_id="audio-only")


def test_truncated_clip_keeps_the_frames_that_decode(shared, tmp_path):
    data = shared("crema-d", "1001_DFA_ANG_XX.flv").read_bytes()
    cut = tmp_path / "cut.flv"
    cut.write_bytes(data[: len(data) * 2 // 5])
    df = extract_faces(cut, clip_id="cut").faces
    assert 3 <= len(df) < 20 and df["found"].all()  # the whole clip has ~23 sampled frames


def test_config_round_trip_and_validation():
    from emonets.features.extraction import config_from_dict

    cfg = FaceConfig(fps=5.0, detect_every=2, reacquire_after=None)
    assert config_from_dict("faces", cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="detector"):
        extract_faces("whatever.mp4", clip_id="x", config=FaceConfig(detector="sift"))


def test_cnn_detector_finds_the_face_near_a_hog_box(shared):
    from emonets.features.faces.detect import FaceDetector
    from emonets.media.video import iter_frames

    frame = next(iter_frames(shared("crema-d", "1001_DFA_ANG_XX.flv"), gray=True)).image
    hog = FaceDetector("hog").search(frame)
    assert len(hog) == 1
    cnn = FaceDetector("cnn").near(frame, hog[0])
    assert len(cnn) == 1 and match(hog[0], cnn, max_shift=0.3) is not None


# -- the image path ---------------------------------------------------------------------------
def test_fer_images_are_faces_as_they_are(shared):
    from emonets.media.images import load_grey_images

    paths = sorted(shared("fer2013", "val", "happy").glob("*.jpg"))[:5]
    images = load_grey_images(paths)
    result = faces_from_images(images, [p.stem for p in paths])
    df = result.faces
    check_faces_table(df, landmarks=False)
    assert df["found"].all() and (df["frame"] == 0).all() and result.stats["found_rate"] == 1.0
    assert all(len(lm) == 0 for lm in df["landmarks"])
    np.testing.assert_array_equal(clip_array("faces", df.iloc[[2]]), images[2:3])


def test_images_are_resized_to_the_configured_size_and_checked():
    images = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    df = faces_from_images(images, ["a", "b", "c"], config=FaceConfig(size=32)).faces
    assert clip_array("faces", df.iloc[[0]]).shape == (1, 32, 32)
    assert len(faces_from_images(np.zeros((0, 48, 48), np.uint8), []).faces) == 0
    with pytest.raises(ValueError):
        faces_from_images(images, ["a", "b"])
