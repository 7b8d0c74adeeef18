"""The extraction task: run one stage on one work unit and write its partition.

Cache key = stage + the unit's content sha256 (+ the upstream partition's fingerprint for
mouths) + the stage config + the library version + the store. Prefect's default key includes
the run id and hashes paths as strings, so it could not give incremental re-runs; this one
does. The store's partition manifest is checked as well, so a Prefect database reset costs a
stat per partition, not a recomputation.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import CacheKeyFnPolicy

from data_catalog import Store
from emonets import __version__
from emonets.errors import ClipError
from emonets.extraction import (
    STAGE_TABLE,
    WorkUnit,
    config_fingerprint,
    config_from_dict,
    run_faces,
    run_mfcc,
    run_motion,
    run_mouths,
)


def extraction_cache_key(context: Any, parameters: dict[str, Any]) -> str:
    unit = parameters["unit"]
    upstream = (parameters.get("upstream") or {}).get("fingerprint", "")
    return "|".join([
        "extract", parameters["stage"], unit["key"], unit["sha256"], upstream,
        config_fingerprint(parameters["config"]), __version__, parameters["store_root"],
    ])


def unit_inputs(unit: WorkUnit, upstream: dict | None) -> dict[str, Any]:
    inputs = {"sha256": unit.sha256, "clips": len(unit.clip_ids)}
    if upstream:
        inputs["upstream"] = upstream.get("fingerprint", "")
    return inputs


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
    store = Store(store_root)
    work = WorkUnit.from_dict(unit)
    table = STAGE_TABLE[stage]
    inputs = unit_inputs(work, upstream)
    existing = store.manifest(table, work.key)
    if existing is not None and existing.is_current(inputs, config):
        return _summary(stage, work, existing.rows, existing.fingerprint, "reused", existing.stats)
    cfg = config_from_dict(stage, config)
    try:
        if stage == "faces":
            out = run_faces(work, cfg)
        elif stage == "mouths":
            out = run_mouths(store.read("faces", partitions=[work.key]), cfg)
        elif stage == "mfcc":
            out = run_mfcc(work, cfg)
        else:
            out = run_motion(work, cfg)
        frame, problems, stats = out.table, out.problems, out.stats
    except ClipError as err:
        # Unusable for this stage: an empty partition (so an unchanged re-run does not retry)
        # and a problem row that says which clip and why.
        frame = store.catalog[table].schema.empty_table()
        problems = [{"clip_id": work.clip_ids[0], "path": work.paths[0], "stage": stage, "reason": str(err)}]
        stats = {}
    stats = {**stats, "problems": len(problems)}
    import pandas as pd

    store.write("problems", pd.DataFrame(problems, columns=["clip_id", "path", "stage", "reason"]),
                partition=f"{stage}-{work.key}", inputs=inputs)
    manifest = store.write(table, frame, partition=work.key, inputs=inputs, config=config, stats=stats)
    return _summary(stage, work, manifest.rows, manifest.fingerprint, "computed", stats)


def _summary(stage: str, unit: WorkUnit, rows: int, fingerprint: str, status: str, stats: dict) -> dict:
    return {"stage": stage, "key": unit.key, "clips": len(unit.clip_ids), "rows": rows,
            "fingerprint": fingerprint, "status": status, "stats": stats}
