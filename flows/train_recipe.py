"""The `train-face-recipe` flow: a face ConvNet recipe's lineages side by side (one task each, on
the task runner: a process pool, a Dask cluster), then their ensemble assembled into a ConvNet
bundle under STORE/recipes/NAME/bundles/ (emonets.recipe_training)."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.task_runners import ProcessPoolTaskRunner

from data_catalog import Store
from emonets.recipe_training import lineage_threads
from emonets.specialists.face_cnn.recipes import recipe
from flows.runtime.locking import exclusive_store
from flows.runtime.runners import shared_ephemeral_api
from tasks.recipe import assemble_recipe_task, train_lineage_task


@flow(name="train-face-recipe")
def train_face_recipe(recipe_name: str, store_root: str, clip_partitions: list[str] | None = None) -> dict:
    """Train every lineage of ``recipe_name`` (finished steps reused, an interrupted one continued
    from its last checkpoint), then assemble the ensemble; return its bundle and val-face figures.
    A lineage that fails fails the flow after the others finished (their steps are kept)."""
    from prefect.context import FlowRunContext

    r = recipe(recipe_name)  # an unknown name: ValueError before any work
    store = Store(store_root)
    ctx = FlowRunContext.get()
    runner = ctx.task_runner if ctx is not None else None
    pool = isinstance(runner, ProcessPoolTaskRunner)
    # Lineages run side by side only in processes of their own (a process pool, a Dask cluster at an
    # address): two Lightning fits in threads of one process would share torch's global settings.
    separate = pool or bool(getattr(runner, "address", None))
    threads = lineage_threads(len(r.lineages)) if pool else None
    with exclusive_store(store), shared_ephemeral_api():
        args = [(str(store.root), recipe_name, lineage.name, clip_partitions, threads) for lineage in r.lineages]
        if separate:
            futures = [train_lineage_task.submit(*a) for a in args]
            states = [f.wait() or f.state for f in futures]
        else:
            states = [train_lineage_task(*a, return_state=True) for a in args]
        failed = [(l.name, s.result(raise_on_failure=False)) for l, s in zip(r.lineages, states) if not s.is_completed()]
        if failed:
            message = "; ".join(f"lineage {name}: {err}" for name, err in failed)
            # a user's error (no faces ingested, a stopped step) stays one line on the console
            raise (ValueError if all(isinstance(e, ValueError) for _, e in failed) else RuntimeError)(message)
        results = [s.result() for s in states]
        summary = assemble_recipe_task(str(store.root), recipe_name, results, clip_partitions)
    get_run_logger().info("recipe %s: %s members, val faces %s", recipe_name, summary["members"],
                          (summary["val_faces"] or {}).get("accuracy"))
    return summary
