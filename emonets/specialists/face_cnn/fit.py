"""The face specialist's two-stage training on the store's clips, as in the paper.

Its ConvNet learns from single frames (still images such as FER-2013 when present, else the
frames of the training videos), then an RBF SVM on 10-segment pooled frame probabilities
learns from the training *videos* (skipped when there are none). A ready ConvNet bundle
(``cnn_bundle``) skips the first stage; settings beside it that act on a trained net (``tta``,
``segments``, ``svm_C``) apply to it.
"""

from __future__ import annotations

import numpy as np

from emonets import training_progress as progress
from emonets.specialists.base import ClipSet, labelled
from emonets.training_data import frames_and_labels


def fit_face_cnn(request):
    """The fitted FaceCNN for an ``emonets.train.TrainingRequest``."""
    overrides = dict(request.overrides)
    cnn_bundle = overrides.pop("cnn_bundle", None)
    clips, sets = request.clips, request.sets
    is_image = set(clips.loc[clips["media"] == "image", "clip_id"])

    def part(split: str, images: bool) -> ClipSet | None:
        cs = sets.get(split)
        if cs is None:
            return None
        return labelled(cs.subset(np.array([(c in is_image) == images for c in cs.clip_ids], bool)))

    if cnn_bundle:
        model = request.model_cls.load(cnn_bundle).with_settings(overrides)  # e.g. {"tta": "affine"} beside it
    else:
        source = part("train", True) or part("train", False)
        if source is None:
            raise ValueError("face_cnn: no labelled training faces (images or video frames)")
        frames, labels = frames_and_labels(source)
        val_source = part("val", True) or part("val", False)
        val_frames, val_labels = frames_and_labels(val_source) if val_source else (None, None)
        model = request.model_cls(request.config).fit_network(frames, labels, val_frames, val_labels,
                                                             work_dir=request.work_dir)
    videos = part("train", False)
    if videos is not None and len(set(videos.labels)) > 1:
        progress.phase("face_cnn", "SVM on the training videos' segments")
        model.fit_video_head(videos, part("val", False))
    return model
