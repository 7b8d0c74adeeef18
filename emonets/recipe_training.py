"""A face ConvNet recipe (emonets.specialists.face_cnn.recipes) on the store's faces: one lineage
at a time (the flow runs them side by side), then the ensemble assembled into a ConvNet bundle
that the face specialist starts from (``cnn_bundle``).

Everything lives under ``STORE/recipes/NAME/``: ``work/TRAIN-FACES/`` the lineages' steps and
checkpoints (what a second run continues from), ``bundles/FACES-RECIPE/`` the assembled ensemble,
named by what it was made from so a face specialist started from it retrains when it changes.
A finished step is reused only for the same step definition and the same training faces (a
digest of the face pixels and labels, so an added *video* clip, which the ConvNet does not learn
from when still images are present, or a new val face, does not restart hours of training).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from data_catalog import Store
from emonets.specialists.face_cnn.recipes import Recipe, assemble, recipe, run_lineage


def recipe_home(store: Store, name: str) -> Path:
    return store.path("recipes", name)


def recipe_bundle_path(store: Store, name: str, faces: dict[str, tuple]) -> Path:
    return recipe_home(store, name) / "bundles" / f"{faces_digest(faces)}-{recipe(name).fingerprint()}"


def convnet_training_faces(store: Store, clip_partitions: list[str] | None = None) -> dict[str, tuple]:
    """{"train": (faces, labels), "val": (faces, labels) or (None, None)}: what the face ConvNet
    learns from in the store (still images when there are any, else video frames)."""
    from emonets.freshness import training_scope
    from emonets.specialists.face_cnn.fit import convnet_faces
    from emonets.stored_features import StoredFeatures
    from emonets.training_data import needed_clip_ids, split_sets

    clip_keys, feature_keys = training_scope(store, "face_cnn", clip_partitions)
    clips = store.read("clips", partitions=clip_keys)
    features = StoredFeatures(store, "faces", feature_keys, keep=needed_clip_ids(clips, "face_cnn"))
    sets = split_sets(clips, features, "face_cnn")
    out = {split: convnet_faces(clips, sets, split) for split in ("train", "val")}
    if out["train"][0] is None:
        raise ValueError(f"no labelled training faces in the store {store.root}: ingest FER-2013 "
                         "(--format fer2013) or labelled videos, and extract their faces, first")
    return out


def faces_digest(faces: dict[str, tuple], splits: tuple[str, ...] = ("train", "val")) -> str:
    """A digest of the faces and labels of ``splits``: the training ones name the lineages' work
    (val is only logged there), both name the assembled bundle (its figures are val's)."""
    h = hashlib.sha256()
    for split in splits:
        x, y = faces[split]
        h.update(split.encode())
        if x is not None:
            h.update(np.ascontiguousarray(x).tobytes())
            h.update(np.asarray(y, np.int64).tobytes())
    return h.hexdigest()[:16]


def train_lineage(store_root: str, recipe_name: str, lineage: str, clip_partitions: list[str] | None = None,
                  threads: int | None = None) -> dict:
    """Train (or continue, or read back) one lineage of ``recipe_name`` on the store's faces."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    store = Store(store_root)
    r = recipe(recipe_name)
    faces = convnet_training_faces(store, clip_partitions)
    (x, y), (xv, yv) = faces["train"], faces["val"]
    work = recipe_home(store, recipe_name) / "work" / faces_digest(faces, ("train",))
    return run_lineage(r, lineage, x, y, xv, yv, work)


def assemble_recipe(store_root: str, recipe_name: str, lineages: list[dict],
                    clip_partitions: list[str] | None = None) -> dict:
    """Assemble the lineages into the recipe's ensemble, save it as a ConvNet bundle, and measure
    it on the val faces (reported, never used to choose anything)."""
    from emonets.evaluation import metrics_dict

    store = Store(store_root)
    r: Recipe = recipe(recipe_name)
    faces = convnet_training_faces(store, clip_partitions)
    path = recipe_bundle_path(store, recipe_name, faces)
    summary = {"recipe": recipe_name, "bundle": str(path), "members": len(r.lineages), "tta": r.tta,
               "lineages": [{"lineage": l["lineage"], "steps": l["steps"]} for l in lineages]}
    if (path / "bundle.json").is_file():  # assembled from these lineages before: its figures as recorded
        return {**summary, "val_faces": json.loads((path / "bundle.json").read_text())["metrics"].get("val_faces")}
    model = assemble(r, lineages)
    xv, yv = faces["val"]
    figures = None
    if xv is not None and len(xv):
        figures = metrics_dict(np.asarray(yv), model.predict_frames(xv).argmax(1))
        model.metrics_["val_faces"] = figures
    model.metrics_["training_faces"] = {"train": int(len(faces["train"][0])), "val": int(len(xv) if xv is not None else 0),
                                        "digest": faces_digest(faces)}
    model.save(path)
    return {**summary, "val_faces": figures}


def lineage_threads(n_parallel: int) -> int:
    """CPU threads for each of ``n_parallel`` lineages trained side by side on this machine."""
    return max(1, (os.cpu_count() or 1) // max(1, n_parallel))


def check_recipe(specialist: str, name: str, config: dict | None, max_epochs: int | None = None) -> None:
    """A recipe is for face_cnn, names a known recipe and leaves the ConvNet's training to it."""
    from emonets.specialists.face_cnn.model import SETTINGS_OF_A_TRAINED_NET

    if specialist != "face_cnn":
        raise ValueError(f"a recipe trains the face ConvNet: it is for face_cnn, not {specialist}")
    recipe(name)
    if max_epochs is not None:
        raise ValueError("--max-epochs cannot go with a recipe: its steps fix their epochs (see the recipe)")
    clash = sorted(set(config or {}) - SETTINGS_OF_A_TRAINED_NET)
    if clash:
        raise ValueError(f"face_cnn: {clash} cannot go with a recipe, which sets how the ConvNet trains; "
                         f"only {sorted(SETTINGS_OF_A_TRAINED_NET)} apply beside it")
