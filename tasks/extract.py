"""The extraction task: run one stage on one work unit, in a guarded child, and write its partition.

Whether a partition is current is decided by its manifest alone (emonets.freshness: the unit's
content sha256, the upstream partition's fingerprint for mouths, the stage config, the library
version): the flow submits only stale units and the unit checks again before computing. Prefect's
task cache is off, so a Prefect database reset costs nothing and no cached state can stand in
for a partition the store no longer holds.

The work itself runs in this worker's guarded child process (emonets.workers.isolation): a native
crash there is retried once in a fresh child, then becomes a `problems` row for this unit,
and the task still completes, so one bad clip never breaks the pool or the run.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from emonets.features.partition import extract_partition, record_crash
from emonets.workers.isolation import WorkerCrashed, run_guarded


@task(
    name="extract",
    task_run_name="{stage}:{unit[key]}",
    cache_policy=NO_CACHE,
    persist_result=False,
    retries=1,
    retry_delay_seconds=1,
)
def extract_unit(stage: str, unit: dict, config: dict, store_root: str, upstream: dict | None = None) -> dict:
    """Compute (or reuse) one stage's partition for one unit; return a small manifest."""
    return run_extraction(stage, unit, config, store_root, upstream)


def run_extraction(stage: str, unit: dict, config: dict, store_root: str, upstream: dict | None = None) -> dict:
    """The partition, computed in a guarded child; a unit whose child dies twice is recorded as failed."""
    try:
        return run_guarded(extract_partition, stage, unit, config, store_root, upstream)
    except WorkerCrashed as crash:
        return record_crash(stage, unit, store_root, crash.reason, upstream)
