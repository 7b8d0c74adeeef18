"""The face specialist's two-stage training on the store's clips, as in the paper.

Its ConvNet learns from single frames (still images such as FER-2013 when present, else the
frames of the training videos), then an RBF SVM on 10-segment pooled frame probabilities
learns from the training *videos* (skipped when there are none). A ready ConvNet bundle
(``cnn_bundle``) skips the first stage; settings beside it that act on a trained net (``tta``,
``segments``, ``svm_C``) apply to it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from emonets import training_progress as progress
from emonets.specialists.base import ClipSet, labelled
from emonets.training_data import frames_and_labels

# A warm start fine-tunes a ConvNet the pipeline trained this many epochs at this share of its
# learning rate (its own one-cycle schedule); a ready ConvNet (``cnn_bundle``) is never retrained.
WARM_EPOCHS = 3
WARM_LR_SCALE = 0.3


def media_part(clips, sets: dict[str, ClipSet], split: str, images: bool) -> ClipSet | None:
    """The labelled clips of ``split`` that are still images (``images``) or videos, or None."""
    cs = sets.get(split)
    if cs is None:
        return None
    is_image = set(clips.loc[clips["media"] == "image", "clip_id"])
    return labelled(cs.subset(np.array([(c in is_image) == images for c in cs.clip_ids], bool)))


def convnet_faces(clips, sets: dict[str, ClipSet], split: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The faces the ConvNet learns from in ``split``: the still images when there are any (FER-2013),
    else every frame of the videos; each with its label. (None, None) when there are neither."""
    source = media_part(clips, sets, split, True) or media_part(clips, sets, split, False)
    return frames_and_labels(source) if source is not None else (None, None)


def fit_face_cnn(request):
    """The fitted FaceCNN for an ``emonets.train.TrainingRequest``."""
    overrides = dict(request.overrides)
    cnn_bundle = overrides.pop("cnn_bundle", None)
    clips, sets = request.clips, request.sets

    def part(split: str, images: bool) -> ClipSet | None:
        return media_part(clips, sets, split, images)

    warm = None
    if cnn_bundle:
        model = request.model_cls.load(cnn_bundle).with_settings(overrides)  # e.g. {"tta": "affine"} beside it
    else:
        frames, labels = convnet_faces(clips, sets, "train")
        if frames is None:
            raise ValueError("face_cnn: no labelled training faces (images or video frames)")
        val_frames, val_labels = convnet_faces(clips, sets, "val")
        config, init_state = request.config, None
        previous = request.warm_from
        if previous is not None and getattr(previous, "state_", None) is not None and not getattr(previous, "members_", []):
            config = replace(config, max_epochs=WARM_EPOCHS, lr=config.lr * WARM_LR_SCALE, patience=WARM_EPOCHS,
                             swa_epochs=0)
            init_state = previous.state_
            warm = f"ConvNet fine-tuned {WARM_EPOCHS} epochs from the previous model at {WARM_LR_SCALE:g}x its learning rate"
        model = request.model_cls(config).fit_network(frames, labels, val_frames, val_labels,
                                                      work_dir=request.work_dir, init_state=init_state)
        model.config = request.config  # the bundle records the model's own config, not the short schedule
    model.clip_cache = request.clip_cache  # a ready or unchanged ConvNet scores a known clip once
    videos = part("train", False)
    if videos is not None and len(set(videos.labels)) > 1:
        progress.phase("face_cnn", "SVM on the training videos' segments")
        model.fit_video_head(videos, part("val", False))
    if warm:
        model.warm_start_ = warm + "; SVM re-fit"
    return model
