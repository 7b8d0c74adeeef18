"""The face ConvNet recipe's tasks: one lineage (hours on a CPU; continues from its last
checkpoint when run again), and the assembly of the finished lineages into one ConvNet bundle."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from emonets.recipe_training import assemble_recipe, train_lineage


@task(name="train-lineage", task_run_name="lineage:{recipe_name}/{lineage}", cache_policy=NO_CACHE,
      persist_result=False)
def train_lineage_task(store_root: str, recipe_name: str, lineage: str, clip_partitions: list[str] | None = None,
                       threads: int | None = None) -> dict:
    return train_lineage(store_root, recipe_name, lineage, clip_partitions, threads)


@task(name="assemble-recipe", task_run_name="assemble:{recipe_name}", cache_policy=NO_CACHE, persist_result=False)
def assemble_recipe_task(store_root: str, recipe_name: str, lineages: list[dict],
                         clip_partitions: list[str] | None = None) -> dict:
    return assemble_recipe(store_root, recipe_name, lineages, clip_partitions)
