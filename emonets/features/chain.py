"""Run one work unit's stages in order (faces before mouths, which reads its partition).

Both extractors run units through here: the `extract-features` flow submits one task per unit
with all its stale stages (one Prefect task run per clip, not one per stage: a task run costs
~0.3 worker-seconds of orchestration, about as much as a clip's whole extraction), and the
in-process extractor one chain per thread. Each stage runs in this process's guarded child
(:mod:`emonets.workers.isolation`), so a native crash costs one (stage, unit) and the rest of
the unit still runs; a stage whose upstream failed is reported as not run.
"""

from __future__ import annotations

from typing import Callable

from data_catalog import Store
from emonets import registry
from emonets.features.extraction import WorkUnit
from emonets.features.partition import (extract_partition, record_crash, reused_summary, stored_partition,
                                       unit_summary)
from emonets.workers.isolation import WorkerCrashed, run_guarded


def extract_stages(store_root: str, unit: dict, stages: list[str], configs: dict[str, dict],
                   tick: Callable[[], None] | None = None) -> list[dict]:
    """Each stage's partition for this unit (computed, reused or failed), in ``stages`` order.

    A stage whose upstream is not among ``stages`` reads the store's partition of it.
    """
    store = Store(store_root)
    work = WorkUnit.from_dict(unit)
    out: list[dict] = []
    done: dict[str, dict] = {}
    for stage in stages:
        up_name = registry.stage(stage).upstream
        upstream = None
        if up_name is not None:
            up = done.get(up_name) or stored_partition(store, up_name, work)
            if up is None or up.get("status") == "failed":
                out.append(_failed(stage, work, f"not run: its {up_name} partition failed"))
                if tick is not None:
                    tick()
                continue
            upstream = {"fingerprint": up["fingerprint"]}
        result = extract_stage(store, stage, work, configs[stage], upstream)
        out.append(result)
        done[stage] = result
        if tick is not None:
            tick()
    return out


def extract_stage(store: Store, stage: str, unit: WorkUnit, config: dict, upstream: dict | None = None) -> dict:
    """One stage's partition, computed in the guarded child unless current.

    A unit whose child dies twice (after repairing the stage's set-up, e.g. a corrupted JIT cache)
    gets a `problems` row; one whose stage raises twice (a full disk, an unreadable store) is
    summarised as failed with the error, and the unit's other stages still run.
    """
    reused = reused_summary(store, stage, unit, config, upstream)
    if reused is not None:
        return reused
    args = (stage, unit.to_dict(), config, str(store.root), upstream)
    try:
        return _twice(args)
    except WorkerCrashed as crash:
        reason = crash.reason
    except Exception as err:  # noqa: BLE001 - reported in the run's summary, the run goes on
        return _failed(stage, unit, f"{type(err).__name__}: {err}")
    if registry.stage(stage).prepare:  # e.g. a JIT cache corrupted since its last warm-up: repair, once more
        registry.stage(stage).prepare_workers(force=True)
        try:
            return _twice(args)
        except WorkerCrashed as again:
            reason = again.reason
        except Exception as err:  # noqa: BLE001
            return _failed(stage, unit, f"{type(err).__name__}: {err}")
    return record_crash(stage, unit.to_dict(), str(store.root), reason, upstream)


def _failed(stage: str, unit: WorkUnit, reason: str) -> dict:
    return {**unit_summary(stage, unit, 0, "", "failed", {}), "reason": reason}


def _twice(args: tuple) -> dict:
    """The partition; an error raised in the child (not a crash) gets one more try, as a passing
    error would (a crash is retried by run_guarded itself)."""
    try:
        return run_guarded(extract_partition, *args)
    except WorkerCrashed:
        raise
    except Exception:  # noqa: BLE001 - once more; a second error is the caller's to report
        return run_guarded(extract_partition, *args)
