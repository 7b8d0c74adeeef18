"""Compute one stage's partition for one work unit and write it (with its problems) to the store.

This is what an extraction task runs, kept free of Prefect so it can run in a guarded child
process (:mod:`emonets.workers.isolation`). A clip unusable for a stage (:class:`ClipError`) gets an
empty partition, so an unchanged re-run does not retry it, and a problems row saying why.
A unit whose worker crashed gets only the problems row (:func:`record_crash`): the crash
may have been passing (memory), so the next run tries it again.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from data_catalog import Store
from emonets.errors import ClipError
from emonets import registry
from emonets.features.extraction import WorkUnit, config_from_dict
from emonets.workers.fault_injection import maybe_crash
from emonets.freshness import current_partition
from emonets.media.paths import display_path

PROBLEM_COLUMNS = ["clip_id", "path", "stage", "reason"]


def unit_inputs(unit: WorkUnit, upstream: dict | None) -> dict[str, Any]:
    """What a partition is made from, as its manifest records it."""
    inputs = {"sha256": unit.sha256, "clips": len(unit.clip_ids)}
    if upstream:
        inputs["upstream"] = upstream.get("fingerprint", "")
    return inputs


def reused_summary(store: Store, stage: str, unit: WorkUnit, config: dict, upstream: dict | None = None) -> dict | None:
    """The summary of a partition whose manifest is current (same inputs, config, version), else None.

    Extraction's use of :mod:`emonets.freshness`: the flow asks it before submitting a unit,
    the in-process extractor before starting one, and the unit itself before computing.
    """
    existing = current_partition(store, registry.stage(stage).table, unit.key, unit_inputs(unit, upstream), config)
    if existing is not None:
        return unit_summary(stage, unit, existing.rows, existing.fingerprint, "reused", existing.stats)
    return None


def stored_partition(store: Store, stage: str, unit: WorkUnit) -> dict | None:
    """The stored partition of ``stage`` for ``unit`` (its fingerprint), whether current or not:
    what a dependent stage reads when this run does not compute its upstream; None if absent."""
    manifest = store.manifest(registry.stage(stage).table, unit.key)
    return None if manifest is None else {"fingerprint": manifest.fingerprint}


def extract_partition(stage: str, unit: dict, config: dict, store_root: str, upstream: dict | None = None) -> dict:
    """Compute (or reuse, when its manifest is current) one partition; return a small summary."""
    store = Store(store_root)
    work = WorkUnit.from_dict(unit)
    spec = registry.stage(stage)
    table = spec.table
    inputs = unit_inputs(work, upstream)
    reused = reused_summary(store, stage, work, config, upstream)
    if reused is not None:
        return reused
    maybe_crash(stage, work.key)
    cfg = config_from_dict(stage, config)
    try:
        upstream_rows = (store.read(registry.stage(spec.upstream).table, partitions=[work.key])
                         if spec.upstream else None)
        out = spec.compute(work, cfg, upstream_rows)
        frame, problems, stats = out.table, out.problems, out.stats
    except ClipError as err:
        frame = store.catalog[table].schema.empty_table()
        problems = [{"clip_id": work.clip_ids[0], "path": work.paths[0], "stage": stage, "reason": str(err)}]
        stats = {}
    stats = {**stats, "problems": len(problems)}
    problems = [{**p, "path": display_path(p["path"])} for p in problems]  # text, as ingest's rows
    store.write("problems", pd.DataFrame(problems, columns=PROBLEM_COLUMNS),
                partition=f"{stage}-{work.key}", inputs=inputs)
    manifest = store.write(table, frame, partition=work.key, inputs=inputs, config=config, stats=stats)
    return unit_summary(stage, work, manifest.rows, manifest.fingerprint, "computed", stats)


def record_crash(stage: str, unit: dict, store_root: str, reason: str, upstream: dict | None = None) -> dict:
    """A problems row per clip of a unit whose worker died; the feature partition is not written."""
    work = WorkUnit.from_dict(unit)
    rows = [{"clip_id": c, "path": display_path(p), "stage": stage, "reason": reason}
            for c, p in zip(work.clip_ids, work.paths)]
    Store(store_root).write("problems", pd.DataFrame(rows, columns=PROBLEM_COLUMNS),
                            partition=f"{stage}-{work.key}", inputs=unit_inputs(work, upstream))
    summary = unit_summary(stage, work, 0, "", "failed", {"problems": len(rows)})
    summary["reason"] = reason
    return summary


def unit_summary(stage: str, unit: WorkUnit, rows: int, fingerprint: str, status: str, stats: dict) -> dict:
    return {"stage": stage, "key": unit.key, "clips": len(unit.clip_ids), "rows": rows,
            "fingerprint": fingerprint, "status": status, "stats": stats}


class ExtractionTally:
    """The run summary both extractors give (the flow's and the in-process one): units computed,
    reused and failed, per stage, and the faces found among the sampled frames."""

    def __init__(self) -> None:
        self.computed = self.cached = self.failed = self.frames = self.found = 0
        self.by_stage: dict[str, dict[str, int]] = {}
        self.errors: list[str] = []

    def fail(self, reason: str) -> None:
        self.failed += 1
        self.errors.append(reason)

    def add(self, result: dict, reused: bool) -> None:
        """One unit's summary; a failed one (its worker crashed twice) counts as failed."""
        if result.get("status") == "failed":
            self.fail(f"{result['stage']}:{result['key']}: {result.get('reason')}")
            return
        counts = self.by_stage.setdefault(result["stage"], {"computed": 0, "cached": 0})
        counts["cached" if reused else "computed"] += 1
        self.cached += reused
        self.computed += not reused
        if result["stage"] == "faces":
            self.frames += int(result["stats"].get("frames", 0))
            self.found += int(result["stats"].get("found", 0))

    def summary(self) -> dict:
        return {"computed": self.computed, "cached": self.cached, "failed": self.failed, "by_stage": self.by_stage,
                "face_frames": self.frames, "face_found": self.found,
                "face_found_rate": round(self.found / self.frames, 4) if self.frames else None,
                "errors": self.errors[:20]}
