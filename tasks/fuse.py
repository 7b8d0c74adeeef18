"""The fuse task: fit the fusion methods on the validation predictions, write
`fused_predictions`, save the fused bundle. Re-fits only when a prediction changed."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from prefect import task
from prefect.cache_policies import CacheKeyFnPolicy

from data_catalog import Store
from emonets import __version__
from emonets.fused_model import SELECTION_RULE, FusedModel, fit_fusion
from emonets.fusion import FUSERS
from tasks.train import bundle_path, partitions_fingerprint


def fusion_inputs(store: Store, specialists: list[str], clip_partitions: list[str], n_draws: int) -> dict:
    data = partitions_fingerprint(store, "predictions", specialists) + partitions_fingerprint(store, "clips", clip_partitions)
    return {"data": hashlib.sha256(data.encode()).hexdigest(), "specialists": list(specialists),
            "n_draws": n_draws, "library_version": __version__,
            "methods": list(FUSERS), "selection": SELECTION_RULE}  # a new fuser or rule re-fits


def fused_path(store: Store):
    return store.path("models", "fused")


def fuse_cache_key(context: Any, parameters: dict[str, Any]) -> str:
    store = Store(parameters["store_root"])
    inputs = fusion_inputs(store, parameters["specialists"], parameters["clip_partitions"], parameters["n_draws"])
    return "fuse|" + hashlib.sha256(json.dumps([inputs, parameters["store_root"]], sort_keys=True).encode()).hexdigest()


@task(name="fuse", cache_policy=CacheKeyFnPolicy(cache_key_fn=fuse_cache_key))
def fuse_task(store_root: str, specialists: list[str], clip_partitions: list[str], n_draws: int = 400_000) -> dict:
    return run_fusion(store_root, specialists, clip_partitions, n_draws)


def run_fusion(store_root: str, specialists: list[str], clip_partitions: list[str], n_draws: int = 400_000) -> dict:
    """Fit (or reuse) the fusion; return a small summary with each method's metrics."""
    store = Store(store_root)
    inputs = fusion_inputs(store, specialists, clip_partitions, n_draws)
    path = fused_path(store)
    desc_file = path / "bundle.json"
    if desc_file.is_file():
        desc = json.loads(desc_file.read_text())
        if desc.get("inputs") == json.loads(json.dumps(inputs)):
            return {"status": "reused", "bundle": str(path), "best_method": desc["config"]["method"],
                    "metrics": desc["metrics"]}
    if not specialists:
        raise ValueError("no trained specialist to fuse")
    clips = store.read("clips", partitions=clip_partitions)
    predictions = store.read("predictions", partitions=[s for s in specialists if s in store.partitions("predictions")])
    predictions = predictions[predictions["clip_id"].isin(set(clips["clip_id"]))]
    fit = fit_fusion(predictions, clips, specialists, n_draws=n_draws)
    for method in fit.fusers:
        store.write("fused_predictions", fit.fused[fit.fused["method"] == method], partition=method, inputs=inputs)
    metrics = {"fit_split": fit.fit_split, "methods": fit.metrics, "specialists": fit.specialist_metrics,
               "cv_accuracy": fit.cv_accuracy, "chosen_by": SELECTION_RULE}
    model = FusedModel({s: None for s in specialists}, fit.fusers[fit.best_method], fit.best_method)
    model.save(path, specialist_bundles={s: bundle_path(store, s) for s in specialists}, metrics=metrics, inputs=inputs)
    return {"status": "fitted", "bundle": str(path), "best_method": fit.best_method, "metrics": metrics}


def fuse_in_flow(store: Store, specialists: list[str], clip_partitions: list[str], n_draws: int = 400_000):
    """Run the fuse task in the calling flow; return its final state. A cache hit is trusted only
    while the fused bundle in the store was fitted on these inputs (see tasks.train.train_in_flow)."""
    task = fuse_task.with_options(result_storage=store.path("_prefect", "results"))
    args = (str(store.root), specialists, clip_partitions, n_draws)
    state = task(*args, return_state=True)
    if state.name == "Cached" and not _fused_bundle_matches(store, specialists, clip_partitions, n_draws):
        state = task.with_options(refresh_cache=True)(*args, return_state=True)
    return state


def _fused_bundle_matches(store: Store, specialists: list[str], clip_partitions: list[str], n_draws: int) -> bool:
    desc_file = fused_path(store) / "bundle.json"
    if not desc_file.is_file():
        return False
    inputs = json.loads(json.dumps(fusion_inputs(store, specialists, clip_partitions, n_draws)))
    return json.loads(desc_file.read_text()).get("inputs") == inputs
