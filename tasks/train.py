"""The train-specialist task: fit one specialist on the store's tables, save its bundle, write
its predictions, and say which clips it could not score.

An unchanged re-run reuses the bundle: the task asks emonets.freshness whether the bundle and its
predictions were made from the fingerprints of its input partitions (clips and its feature table),
its config and the library version. Prefect's task cache is off (one freshness record: the store's).
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime, timezone

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from data_catalog import Store
from emonets import registry
from emonets.features.extraction import WorkUnit
from emonets.memory import PeakRss
from emonets.clip_cache import FolderClipCache
from emonets.retraining import Decision, RetrainPolicy, decide, fingerprints
from emonets.freshness import bundle_path, specialist_is_current, training_inputs, training_scope
from emonets.stored_features import StoredFeatures
from emonets.training_data import needed_clip_ids
from emonets.train import fit_specialist


@task(name="train-specialist", task_run_name="train:{specialist}", cache_policy=NO_CACHE, persist_result=False)
def train_specialist_task(specialist: str, store_root: str, config: dict | None = None,
                          max_epochs: int | None = None, clip_partitions: list[str] | None = None,
                          policy: RetrainPolicy = RetrainPolicy()) -> dict:
    return run_training(specialist, store_root, config, max_epochs, clip_partitions, policy)


def run_training(specialist: str, store_root: str, config: dict | None = None,
                 max_epochs: int | None = None, clip_partitions: list[str] | None = None,
                 policy: RetrainPolicy = RetrainPolicy()) -> dict:
    """Train (or reuse, when its inputs are unchanged) one specialist; return a small summary.

    ``clip_partitions`` limits training to those data roots' clips (default: every ingested root).
    ``policy`` (emonets.retraining) says when a changed training set may continue from the previous
    bundle (warm) and when it trains from scratch (full).
    """
    started = time.perf_counter()
    store = Store(store_root)
    inputs = training_inputs(store, specialist, config, max_epochs, clip_partitions)
    current = specialist_is_current(store, specialist, inputs)
    if current and not (policy.full and _warm_started(store, specialist)):
        desc = json.loads((bundle_path(store, specialist) / "bundle.json").read_text())
        return {"specialist": specialist, "status": "reused", "bundle": str(bundle_path(store, specialist)),
                "metrics": desc.get("metrics", {}).get("splits", {}), **_prediction_counts(store, specialist)}
    clip_keys, feature_keys = training_scope(store, specialist, clip_partitions)
    clips = store.read("clips", partitions=clip_keys)
    clip_map, content = fingerprints(store, specialist, clips=clips)
    previous_inputs, previous_clips = _previous_training(store, specialist)
    decision = decide(previous_inputs, inputs, previous_clips, clip_map, policy)
    if decision.mode == "reuse":  # the bundle matches, but a full retrain was asked for or its predictions are stale
        decision = Decision("full", "a full retrain was asked for and the bundle was warm-started" if current
                            else "the bundle is current but its predictions are missing or stale")
    previous = _previous_model(store, specialist) if decision.mode == "warm" else None
    table = registry.specialist(specialist).table
    features = StoredFeatures(store, table, feature_keys,  # read in bounded batches, never the whole table
                              keep=needed_clip_ids(clips, specialist))
    work_dir = store.path("_work", specialist)
    shutil.rmtree(work_dir, ignore_errors=True)  # checkpoints and logs of this training only
    cache = FolderClipCache(store.path("_cache", specialist), content)
    with PeakRss() as peak:
        result = fit_specialist(specialist, clips, features, config=config, max_epochs=max_epochs, work_dir=work_dir,
                                warm_from=previous, clip_cache=cache)
    retraining = {**decision.to_dict(), "clip_cache": cache.counts()}
    if result.warm_start:
        retraining.update(trained="warm", warm_start=result.warm_start,
                          warm_from=str(bundle_path(store, specialist)), warm_from_created=previous.created)
    else:
        retraining["trained"] = "from scratch"
        if decision.mode == "warm":
            retraining["note"] = (f"the rule allows a warm start, but {specialist} has nothing to continue: "
                                  "it trained from scratch")
    path = result.model.save(bundle_path(store, specialist))
    _stamp_bundle(path, inputs, result.metrics, clip_map, retraining)
    cache.prune()  # the intermediates of a network this bundle replaced are of no further use
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
            "seconds": round(time.perf_counter() - started, 1), "peak_rss_mb": round(peak.mb),
            "retraining": retraining}


def _stamp_bundle(path, inputs: dict, metrics: dict, clip_map: dict[str, str], retraining: dict) -> None:
    """Record the training inputs, split metrics, the clips it was trained on (fingerprints,
    emonets.retraining) and how it was trained in the bundle's description, atomically."""
    from data_catalog.atomic import write_json_atomic

    desc_file = path / "bundle.json"
    desc = json.loads(desc_file.read_text())
    desc.setdefault("inputs", {})["training"] = inputs
    desc["inputs"]["clips"] = clip_map
    desc["retraining"] = retraining
    desc.setdefault("metrics", {}).update({"splits": metrics})
    write_json_atomic(desc_file, desc)


def _warm_started(store: Store, specialist: str) -> bool:
    desc = json.loads((bundle_path(store, specialist) / "bundle.json").read_text())
    return desc.get("retraining", {}).get("trained") == "warm"


def _previous_model(store: Store, specialist: str):
    """The bundle on disk as a model to continue from (``created`` set from its description), or
    None when it cannot be read: the run then trains from scratch."""
    path = bundle_path(store, specialist)
    try:
        model = registry.specialist(specialist).model_class().load(path)
        created = json.loads((path / "bundle.json").read_text()).get("meta", {}).get("created")
        model.created = (datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="seconds")
                         if isinstance(created, (int, float)) else None)
    except (OSError, ValueError, KeyError):  # emonets.bundle.BundleError is a ValueError
        return None
    return model


def _previous_training(store: Store, specialist: str) -> tuple[dict | None, dict | None]:
    """(training inputs, clip fingerprints) the bundle on disk records, before it is replaced."""
    desc_file = bundle_path(store, specialist) / "bundle.json"
    if not desc_file.is_file():
        return None, None
    inputs = json.loads(desc_file.read_text()).get("inputs", {})
    return inputs.get("training"), inputs.get("clips")


def _eligible(clips: pd.DataFrame, specialist: str) -> set[str]:
    stage = registry.specialist(specialist).reads
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
                  clip_partitions: list[str] | None = None, policy: RetrainPolicy = RetrainPolicy()):
    """Run the train task in the calling flow; return its final state (the task itself reuses a
    current bundle: emonets.freshness)."""
    task = train_specialist_task  # results are small summaries passed in memory: none persisted
    return task(specialist, str(store.root), config, max_epochs, clip_partitions, policy, return_state=True)
