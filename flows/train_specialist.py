"""The `train-specialist` flow: extract what one specialist needs, then fit it on the store's
tables (both incremental: unchanged features and an unchanged model are reused)."""

from __future__ import annotations

from prefect import flow, get_run_logger

from data_catalog import Store
from emonets import registry
from emonets.train import check_specialist, make_config, max_epochs_note
from emonets.errors import raise_if_disk_full
from flows.extract_features import run_extract_features
from flows.runtime.locking import exclusive_store
from flows.runtime.runners import make_task_runner
from flows.train_recipe import train_face_recipe
from emonets.recipe_training import check_recipe
from emonets.retraining import retrain_policy
from tasks.train import train_in_flow


@flow(name="train-specialist")
def train_specialist(specialist: str, store_root: str, config: dict | None = None,
                     max_epochs: int | None = None, clip_partitions: list[str] | None = None,
                     runner: str = "local", dask_address: str | None = None, retrain: str = "auto",
                     withdrawn: list[str] | None = None, recipe: str | None = None) -> dict:
    """Extract ``specialist``'s stages for the ingested clips (only what changed), then train it
    on split train (tuned on val) and write its predictions.

    ``clip_partitions`` limits both to those data roots' clips (default: every ingested root);
    ``runner`` is the extraction's task runner (flows.runtime.runners). Training runs in this flow's
    process (a direct task call), whatever the runner. ``notes`` in the summary say what was
    asked but does not apply (``max_epochs`` for a specialist without epochs). ``retrain`` and
    ``withdrawn``: as for train-all (emonets.retraining.retrain_policy). ``recipe`` (face_cnn
    only): its ConvNet comes from that recipe (flows.train_recipe, lineages on the runner), then
    the specialist's video head learns from the training videos as usual.
    """
    check_specialist(specialist)
    if recipe is not None:
        check_recipe(specialist, recipe, config, max_epochs)
    policy = retrain_policy(retrain, withdrawn)
    make_config(specialist, config, max_epochs=max_epochs)  # unknown config fields: refused before any work
    note = max_epochs_note(specialist, max_epochs, config)
    if note:
        get_run_logger().info(note)
    store = Store(store_root)
    with exclusive_store(store):
        if not store.partitions("clips"):
            raise ValueError(f"nothing ingested in the store {store.root}; "
                             f"run `emonets ingest DATA_ROOT --store {store.root}` first")
        clip_ids = (None if clip_partitions is None
                    else store.read("clips", partitions=clip_partitions)["clip_id"].tolist())
        extraction = run_extract_features(str(store.root), stages=registry.stages_for([specialist]), clip_ids=clip_ids,
                                          runner=runner, dask_address=dask_address)
        raise_if_disk_full(extraction["errors"])
        if extraction["failed"]:
            get_run_logger().warning("extraction: %s task(s) failed, e.g. %s", extraction["failed"],
                                     extraction["errors"][:1])
        made = None
        if recipe is not None:
            made = train_face_recipe.with_options(task_runner=make_task_runner(runner, dask_address=dask_address))(
                recipe, str(store.root), clip_partitions)
            config = {**(config or {}), "cnn_bundle": made["bundle"]}
        summary = train_in_flow(store, specialist, config, max_epochs, clip_partitions, policy).result()
    return {**summary, **({"notes": [note]} if note else {}), **({"recipe": made} if made else {}),
            "extraction": {k: extraction[k] for k in ("computed", "cached", "failed")}}

