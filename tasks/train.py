"""The train-specialist task: fit one specialist on the store's tables, save its bundle, write
its predictions, and say which clips it could not score.

Cache key = the specialist + the fingerprints of its input partitions (clips and its feature
table) + its config + the library version: an unchanged re-run reuses the bundle.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import CacheKeyFnPolicy

from data_catalog import Store
from emonets import __version__
from emonets.extraction import WorkUnit, work_units
from emonets.train import check_specialist, max_epochs_note
from emonets.train import train_specialist as fit_specialist
from emonets.training_data import SPECIALIST_TABLE

SPECIALIST_STAGE = {"face_cnn": "faces", "audio": "mfcc", "bag_of_mouths": "mouths", "motion": "motion"}


def partitions_fingerprint(store: Store, table: str, keys: list[str]) -> str:
    """One hash over the content fingerprints of the given complete partitions of a table."""
    digest = hashlib.sha256()
    for key in sorted(keys):
        manifest = store.manifest(table, key)
        if manifest is not None:
            digest.update(f"{table}/{key}={manifest.fingerprint};".encode())
    return digest.hexdigest()


def training_scope(store: Store, specialist: str, clip_partitions: list[str] | None) -> tuple[list[str], list[str]]:
    """(clips partitions, feature partitions) a specialist trains on: the given data roots'."""
    clip_keys = store.partitions("clips") if clip_partitions is None else list(clip_partitions)
    clips = store.read("clips", partitions=clip_keys)
    table, _ = SPECIALIST_TABLE[specialist]
    present = set(store.partitions(table))
    return clip_keys, [u.key for u in work_units(clips) if u.key in present]


def training_inputs(store: Store, specialist: str, config: dict | None, max_epochs: int | None,
                    clip_partitions: list[str] | None = None) -> dict:
    """What a specialist's model depends on; equal inputs mean the saved bundle is current.

    A ``max_epochs`` that does not apply to it (bag_of_mouths has no epochs) is left out, so
    changing it does not retrain a model it cannot change.
    """
    table, _ = SPECIALIST_TABLE[check_specialist(specialist)]
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


def bundle_path(store: Store, specialist: str):
    return store.path("models", specialist)


def current_bundle_inputs(store: Store, specialist: str) -> dict | None:
    path = bundle_path(store, specialist) / "bundle.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("inputs", {}).get("training")


def is_current(store: Store, specialist: str, inputs: dict) -> bool:
    """The saved bundle and its predictions were both made from exactly these inputs."""
    predictions = store.manifest("predictions", specialist)
    return (current_bundle_inputs(store, specialist) == inputs
            and predictions is not None and predictions.inputs == inputs)


def train_cache_key(context: Any, parameters: dict[str, Any]) -> str:
    inputs = training_inputs(Store(parameters["store_root"]), parameters["specialist"],
                             parameters.get("config"), parameters.get("max_epochs"),
                             parameters.get("clip_partitions"))
    return "train|" + hashlib.sha256(json.dumps([inputs, parameters["store_root"]], sort_keys=True).encode()).hexdigest()


@task(name="train-specialist", task_run_name="train:{specialist}",
      cache_policy=CacheKeyFnPolicy(cache_key_fn=train_cache_key))
def train_specialist_task(specialist: str, store_root: str, config: dict | None = None,
                          max_epochs: int | None = None, clip_partitions: list[str] | None = None) -> dict:
    return run_training(specialist, store_root, config, max_epochs, clip_partitions)


def run_training(specialist: str, store_root: str, config: dict | None = None,
                 max_epochs: int | None = None, clip_partitions: list[str] | None = None) -> dict:
    """Train (or reuse, when its inputs are unchanged) one specialist; return a small summary.

    ``clip_partitions`` limits training to those data roots' clips (default: every ingested root).
    """
    started = time.perf_counter()
    store = Store(store_root)
    inputs = training_inputs(store, specialist, config, max_epochs, clip_partitions)
    if is_current(store, specialist, inputs):
        desc = json.loads((bundle_path(store, specialist) / "bundle.json").read_text())
        return {"specialist": specialist, "status": "reused", "bundle": str(bundle_path(store, specialist)),
                "metrics": desc.get("metrics", {}).get("splits", {}), **_prediction_counts(store, specialist)}
    clip_keys, feature_keys = training_scope(store, specialist, clip_partitions)
    clips = store.read("clips", partitions=clip_keys)
    table, _ = SPECIALIST_TABLE[specialist]
    features = store.read(table, partitions=feature_keys)
    work_dir = store.path("_work", specialist)
    shutil.rmtree(work_dir, ignore_errors=True)  # checkpoints and logs of this training only
    result = fit_specialist(specialist, clips, features, config=config, max_epochs=max_epochs, work_dir=work_dir)
    path = result.model.save(bundle_path(store, specialist))
    _stamp_bundle(path, inputs, result.metrics)
    eligible = _eligible(clips, specialist)
    unscored = [c for c in result.unscored if c in eligible]
    problems = pd.DataFrame(
        [{"clip_id": c, "path": p, "stage": f"score.{specialist}",
          "reason": f"no usable {table} rows: {specialist} could not score this clip"}
         for c, p in clips.set_index("clip_id").loc[unscored, "path"].items()],
        columns=["clip_id", "path", "stage", "reason"])
    store.write("problems", problems, partition=f"score-{specialist}", inputs={"training": inputs["data"]})
    store.write("predictions", result.predictions, partition=specialist, inputs=inputs)
    return {"specialist": specialist, "status": "trained", "bundle": str(path), "metrics": result.metrics,
            "scored": int(len(result.predictions)), "unscored": len(unscored),
            "seconds": round(time.perf_counter() - started, 1)}


def _stamp_bundle(path, inputs: dict, metrics: dict) -> None:
    """Record the training inputs (and split metrics) in the bundle's description, atomically."""
    from data_catalog.atomic import write_json_atomic

    desc_file = path / "bundle.json"
    desc = json.loads(desc_file.read_text())
    desc.setdefault("inputs", {})["training"] = inputs
    desc.setdefault("metrics", {}).update({"splits": metrics})
    write_json_atomic(desc_file, desc)


def _eligible(clips: pd.DataFrame, specialist: str) -> set[str]:
    stage = SPECIALIST_STAGE[specialist]
    out = set()
    for row in clips.itertuples(index=False):
        unit = WorkUnit(row.clip_id, (row.clip_id,), (row.path,), row.media, row.sha256,
                        bool(row.has_audio), bool(row.has_video))
        if unit.can_run(stage):
            out.add(row.clip_id)
    return out


def _prediction_counts(store: Store, specialist: str) -> dict:
    manifest = store.manifest("predictions", specialist)
    return {"scored": manifest.rows if manifest else 0}


def train_in_flow(store: Store, specialist: str, config: dict | None = None, max_epochs: int | None = None,
                  clip_partitions: list[str] | None = None):
    """Run the train task in the calling flow; return its final state.

    A Prefect cache hit is trusted only while the store still holds the bundle made from these
    inputs: after inputs A -> B -> A the cache remembers A's run, but the store holds B's model,
    so the task is run again (refresh_cache).
    """
    task = train_specialist_task.with_options(result_storage=store.path("_prefect", "results"))
    args = (specialist, str(store.root), config, max_epochs, clip_partitions)
    state = task(*args, return_state=True)
    if state.name == "Cached" and not is_current(
            store, specialist, training_inputs(store, specialist, config, max_epochs, clip_partitions)):
        state = task.with_options(refresh_cache=True)(*args, return_state=True)
    return state
