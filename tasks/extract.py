"""The extraction task: one work unit's stale stages, each in a guarded child, written to the store.

One task run per unit (its faces → mouths, mfcc and motion in order), not one per stage: a task
run costs about as much orchestration as a clip's whole extraction. Whether a partition is
current is decided by its manifest alone (emonets.freshness: the unit's content sha256, the
upstream partition's fingerprint for mouths, the stage config, the library version): the flow
submits only units with stale stages and each stage checks again before computing. Prefect's
task cache is off, so a Prefect database reset costs nothing and no cached state can stand in
for a partition the store no longer holds.

Each stage runs in this worker's guarded child process (emonets.workers.isolation): a native
crash there is retried once in a fresh child, then becomes a `problems` row for that stage and
unit, and the task still completes, so one bad clip never breaks the pool or the run.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from emonets.features.chain import extract_stages


def _run_name() -> str:
    """"faces+mouths+mfcc:<unit>": the stages this run computes, as the UI lists it."""
    from prefect.runtime import task_run

    params = task_run.parameters
    return f"{'+'.join(params['stages'])}:{params['unit']['key']}"


@task(
    name="extract",
    task_run_name=_run_name,
    cache_policy=NO_CACHE,
    persist_result=False,
    retries=1,
    retry_delay_seconds=1,
)
def extract_unit(unit: dict, stages: list[str], configs: dict[str, dict], store_root: str) -> list[dict]:
    """Compute (or reuse) each of ``stages`` for one unit, in order; a small summary per stage."""
    return extract_stages(store_root, unit, stages, configs)
