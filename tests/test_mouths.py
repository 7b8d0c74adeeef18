"""Mouth patches cut from aligned faces: shapes, the fixed region, landmark following, schema."""

from __future__ import annotations

import numpy as np
import pytest

from emonets.features.faces import FaceConfig, extract_faces, faces_from_images
from emonets.features.faces.align import apply_matrix, template_points
from emonets.features.mouths import MOUTH_COLUMNS, MouthConfig, mouths_from_faces
from emonets.features.rows import clip_array


def random_faces(n: int, size: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size), dtype=np.uint8)


def test_default_patch_is_the_fixed_region_of_each_face():
    images = random_faces(4)
    faces = faces_from_images(images, ["a", "b", "c", "d"]).faces
    mouths = mouths_from_faces(faces)
    assert list(mouths.columns) == MOUTH_COLUMNS and len(mouths) == 4
    assert mouths["height"].dtype == np.int32 and mouths["frame"].dtype == np.int32
    assert mouths["clip_id"].tolist() == ["a", "b", "c", "d"]
    patches = np.stack([clip_array("mouths", mouths.iloc[[i]])[0] for i in range(4)])
    assert patches.shape == (4, 16, 28)
    np.testing.assert_array_equal(patches, images[:, 30:46, 10:38])


def test_the_region_holds_the_template_mouth():
    top, bottom, left, right = MouthConfig().box(48)
    mx, my = template_points(48)[3]
    assert top < my < bottom - 1 and left < mx < right - 1


@pytest.mark.parametrize("size,shape", [(48, (16, 28)), (96, (32, 56)), (64, (21, 37))])
def test_region_scales_with_face_size_and_keeps_one_shape(size, shape):
    faces = faces_from_images(random_faces(3, size), ["a", "b", "c"], config=FaceConfig(size=size)).faces
    assert clip_array("mouths", mouths_from_faces(faces)).shape == (3, *shape)


def test_not_found_frames_have_no_patch_and_empty_input_is_a_typed_empty_table(store):
    faces = faces_from_images(random_faces(3), ["v", "v", "v"]).faces
    faces["frame"] = np.array([0, 1, 2], np.int32)
    faces.loc[1, "found"] = False
    faces.loc[1, "face"] = b""
    mouths = mouths_from_faces(faces)
    assert mouths["frame"].tolist() == [0, 2]
    store.write("mouths", mouths, partition="v")
    assert len(store.read("mouths")) == 2
    empty = mouths_from_faces(faces[~faces["found"]])
    assert list(empty.columns) == MOUTH_COLUMNS and len(empty) == 0
    store.write("mouths", empty, partition="none")
    assert clip_array("mouths", empty).shape[0] == 0


def test_bad_region_is_rejected():
    with pytest.raises(ValueError):
        MouthConfig(top=40, bottom=60).box(48)


def _face_row_with_mouth_offset(dx: float, dy: float):
    """A 48x48 'aligned' face whose landmarks put the mouth (dx, dy) off the template's."""
    anchors = template_points(48)
    pts = np.tile(anchors.mean(0), (68, 1))
    pts[36:42], pts[42:48], pts[30] = anchors[0], anchors[1], anchors[2]
    pts[48:68] = anchors[3] + np.random.default_rng(5).normal(0, 1.5, (20, 2))
    pts[48:68] += [dx, dy] - (pts[48:68].mean(0) - anchors[3])
    faces = faces_from_images(random_faces(1, seed=3), ["x"]).faces
    faces.at[0, "landmarks"] = pts.reshape(-1).tolist()
    return faces


def test_follow_landmarks_centres_the_box_on_the_face_own_mouth():
    faces = _face_row_with_mouth_offset(0.0, 3.0)  # an open mouth: lips lower than FER's mean
    image = np.frombuffer(faces.at[0, "face"], np.uint8).reshape(48, 48)
    fixed = clip_array("mouths", mouths_from_faces(faces))[0]
    moved = clip_array("mouths", mouths_from_faces(faces, config=MouthConfig(follow_landmarks=True)))[0]
    np.testing.assert_array_equal(fixed, image[30:46, 10:38])
    assert moved.shape == fixed.shape
    # The least-squares alignment absorbs part of the offset; the box follows what is left.
    matches = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)
               if np.array_equal(moved, image[30 + dy:46 + dy, 10 + dx:38 + dx])]
    assert matches and matches[0][0] >= 1 and matches[0][1] == 0
    far = clip_array("mouths", mouths_from_faces(_face_row_with_mouth_offset(0.0, 30.0),
                                        config=MouthConfig(follow_landmarks=True, max_shift=2)))[0]
    image_far = np.frombuffer(_face_row_with_mouth_offset(0.0, 30.0).at[0, "face"], np.uint8).reshape(48, 48)
    np.testing.assert_array_equal(far, image_far[32:48, 10:38])  # capped at max_shift (and the edge)


def test_follow_landmarks_leaves_faces_without_landmarks_alone():
    images = random_faces(2)
    faces = faces_from_images(images, ["a", "b"]).faces
    got = clip_array("mouths", mouths_from_faces(faces, config=MouthConfig(follow_landmarks=True)))
    np.testing.assert_array_equal(got, images[:, 30:46, 10:38])


def test_mouths_of_a_real_clip(shared, store):
    path = shared("crema-d", "1001_DFA_SAD_XX.flv")
    faces = extract_faces(path, clip_id="sad", config=FaceConfig(max_frames=8)).faces
    mouths = mouths_from_faces(faces)
    assert len(mouths) == int(faces["found"].sum()) >= 6
    patches = clip_array("mouths", mouths)
    assert patches.shape == (len(mouths), 16, 28) and patches.dtype == np.uint8
    followed = mouths_from_faces(faces, config=MouthConfig(follow_landmarks=True))
    assert clip_array("mouths", followed).shape == patches.shape
    store.write("mouths", mouths, partition="sad", config=MouthConfig().to_dict())
    np.testing.assert_array_equal(clip_array("mouths", store.read("mouths", partitions=["sad"])), patches)
    # The aligned mouth really is where the box is: its landmarks map inside the region.
    from emonets.features.faces.align import alignment_matrix

    row = faces[faces["found"]].iloc[0]
    pts = np.asarray(row["landmarks"]).reshape(68, 2)
    mouth = apply_matrix(alignment_matrix(pts, size=48), pts[48:68])
    assert (mouth[:, 1] > 30).all() and (mouth[:, 1] < 46).all()
    assert (mouth[:, 0] > 10).all() and (mouth[:, 0] < 38).all()
