"""The fuse task: fit the fusion methods on the validation predictions, write
`fused_predictions`, save the fused bundle. Re-fits only when a prediction changed (the task asks
emonets.freshness; Prefect's task cache is off)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from data_catalog import Store
from emonets.freshness import bundle_path, fused_description_if_current, fused_path, fusion_inputs
from emonets.fusion.model import SELECTION_RULE, FusedModel, fit_fusion


@task(name="fuse", cache_policy=NO_CACHE, persist_result=False)
def fuse_task(store_root: str, specialists: list[str], clip_partitions: list[str], n_draws: int = 400_000) -> dict:
    return run_fusion(store_root, specialists, clip_partitions, n_draws)


def run_fusion(store_root: str, specialists: list[str], clip_partitions: list[str], n_draws: int = 400_000) -> dict:
    """Fit (or reuse) the fusion; return a small summary with each method's metrics."""
    store = Store(store_root)
    inputs = fusion_inputs(store, specialists, clip_partitions, n_draws)
    path = fused_path(store)
    desc = fused_description_if_current(store, inputs)
    if desc is not None:
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
    """Run the fuse task in the calling flow; return its final state (the task itself reuses a
    current fused bundle: emonets.freshness)."""
    task = fuse_task  # results are small summaries passed in memory: none persisted
    return task(str(store.root), specialists, clip_partitions, n_draws, return_state=True)
