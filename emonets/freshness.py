"""Whether what the store holds is current: the one freshness model of the pipeline.

Every output records what it was made from (its *inputs*): a feature partition in its manifest,
a specialist's bundle and its predictions partition under ``inputs.training``, the fused bundle
under ``inputs``. An output is current when the inputs recorded equal the inputs computed now
from the store (content fingerprints of the partitions it reads, its config, the library
version). The extraction and training code, the tasks and the flows all ask this module; Prefect's
own task cache is off for these tasks, so no second record can disagree with the store.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from data_catalog import PartitionManifest, Store
from data_catalog.store import jsonable
from emonets import registry
from emonets.version import __version__


# -- feature partitions --------------------------------------------------------------------
def current_partition(store: Store, table: str, key: str, inputs: dict, config: dict) -> PartitionManifest | None:
    """The partition's manifest when it was made from these inputs, this config and this library
    version, else None."""
    manifest = store.manifest(table, key)
    if manifest is None:
        return None
    same = (manifest.inputs == jsonable(inputs) and manifest.config == jsonable(config)
            and manifest.library_version == __version__)
    return manifest if same else None


def partitions_fingerprint(store: Store, table: str, keys: list[str]) -> str:
    """One hash over the content fingerprints of the given complete partitions of a table."""
    digest = hashlib.sha256()
    for key in sorted(keys):
        manifest = store.manifest(table, key)
        if manifest is not None:
            digest.update(f"{table}/{key}={manifest.fingerprint};".encode())
    return digest.hexdigest()


# -- specialists -----------------------------------------------------------------------------
def bundle_path(store: Store, specialist: str) -> Path:
    return store.path("models", specialist)


def training_scope(store: Store, specialist: str, clip_partitions: list[str] | None) -> tuple[list[str], list[str]]:
    """(clips partitions, feature partitions) a specialist trains on: the given data roots'."""
    from emonets.features.extraction import work_units

    clip_keys = store.partitions("clips") if clip_partitions is None else list(clip_partitions)
    clips = store.read("clips", partitions=clip_keys)
    present = set(store.partitions(registry.specialist(specialist).table))
    return clip_keys, [u.key for u in work_units(clips) if u.key in present]


def training_inputs(store: Store, specialist: str, config: dict | None, max_epochs: int | None,
                    clip_partitions: list[str] | None = None) -> dict:
    """What a specialist's model depends on; equal inputs mean the saved bundle is current.

    A ``max_epochs`` that does not apply to it (bag_of_mouths has no epochs) is left out, so
    changing it does not retrain a model it cannot change.
    """
    from emonets.train import max_epochs_note

    table = registry.specialist(specialist).table
    if max_epochs_note(specialist, max_epochs, config):
        max_epochs = None
    clip_keys, feature_keys = training_scope(store, specialist, clip_partitions)
    data = partitions_fingerprint(store, "clips", clip_keys) + partitions_fingerprint(store, table, feature_keys)
    return {
        "specialist": specialist,
        "data": hashlib.sha256(data.encode()).hexdigest(),
        "config": json.loads(json.dumps(config or {}, sort_keys=True, default=str)),
        "max_epochs": max_epochs,
        "library_version": __version__,
    }


def recorded_training_inputs(store: Store, specialist: str) -> dict | None:
    path = bundle_path(store, specialist) / "bundle.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("inputs", {}).get("training")


def specialist_is_current(store: Store, specialist: str, inputs: dict) -> bool:
    """The saved bundle and its predictions were both made from exactly these inputs."""
    predictions = store.manifest("predictions", specialist)
    return (recorded_training_inputs(store, specialist) == inputs
            and predictions is not None and predictions.inputs == inputs)


# -- the fusion ------------------------------------------------------------------------------
def fused_path(store: Store) -> Path:
    return store.path("models", "fused")


def fusion_inputs(store: Store, specialists: list[str], clip_partitions: list[str], n_draws: int) -> dict:
    """What the fused model depends on: the specialists' predictions, the clips, its settings."""
    from emonets.fusion.model import SELECTION_RULE
    from emonets.fusion.fusers import FUSERS

    data = partitions_fingerprint(store, "predictions", specialists) + partitions_fingerprint(store, "clips", clip_partitions)
    return {"data": hashlib.sha256(data.encode()).hexdigest(), "specialists": list(specialists),
            "n_draws": n_draws, "library_version": __version__,
            "methods": list(FUSERS), "selection": SELECTION_RULE}  # a new fuser or rule re-fits


def fused_description_if_current(store: Store, inputs: dict) -> dict | None:
    """The fused bundle's description when it was fitted on exactly these inputs, else None."""
    desc_file = fused_path(store) / "bundle.json"
    if not desc_file.is_file():
        return None
    desc = json.loads(desc_file.read_text())
    return desc if desc.get("inputs") == json.loads(json.dumps(inputs)) else None


__all__ = ["bundle_path", "current_partition", "fused_description_if_current", "fused_path", "fusion_inputs",
           "partitions_fingerprint", "recorded_training_inputs", "specialist_is_current", "training_inputs",
           "training_scope"]
