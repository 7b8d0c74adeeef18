"""The extraction task: run one stage on one work unit, in a guarded child, and write its partition.

Cache key = stage + the unit's content sha256 (+ the upstream partition's fingerprint for
mouths) + the stage config + the library version + the store. Prefect's default key includes
the run id and hashes paths as strings, so it could not give incremental re-runs; this one
does. The store's partition manifest is checked as well, so a Prefect database reset costs a
stat per partition, not a recomputation.

The work itself runs in this worker's guarded child process (emonets.isolation): a native
crash there is retried once in a fresh child, then becomes a `problems` row for this unit,
and the task still completes, so one bad clip never breaks the pool or the run.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import CacheKeyFnPolicy

from emonets import __version__
from emonets.extract_partition import extract_partition, record_crash, unit_inputs  # noqa: F401 (re-export)
from emonets.extraction import config_fingerprint
from emonets.isolation import WorkerCrashed, run_guarded


def extraction_cache_key(context: Any, parameters: dict[str, Any]) -> str:
    unit = parameters["unit"]
    upstream = (parameters.get("upstream") or {}).get("fingerprint", "")
    return "|".join([
        "extract", parameters["stage"], unit["key"], unit["sha256"], upstream,
        config_fingerprint(parameters["config"]), __version__, parameters["store_root"],
    ])


@task(
    name="extract",
    task_run_name="{stage}:{unit[key]}",
    cache_policy=CacheKeyFnPolicy(cache_key_fn=extraction_cache_key),
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
