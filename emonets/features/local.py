"""Extract a few clips' stale partitions in this process's guarded children, without Prefect.

The interactive commands (`predict`, `evaluate` on a small root) would spend most of their time
starting a Prefect server for a handful of units. This runs the same units (the same
:func:`emonets.features.partition.extract_partition`, in the same guarded children, so a crash
still costs one unit) on a small thread pool: each thread keeps one child, so a clip's faces
(then mouths) run beside its MFCC and motion blocks on two cores. What is current in the store
is not started at all (:func:`emonets.features.partition.reused_summary`, the flow's test too).
The summary has the flow's shape, so callers treat both alike.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pandas as pd

from data_catalog import Store
from emonets import registry
from emonets.features.chain import extract_stages
from emonets.features.extraction import WorkUnit, default_config, work_units
from emonets.features.partition import ExtractionTally
from emonets.workers.isolation import close_guarded_children

Progress = Callable[[int, int], None]


def extract_clips(store: Store, clips: pd.DataFrame, stages: list[str], *, configs: dict[str, dict] | None = None,
                  workers: int = 2, progress: Progress | None = None) -> dict[str, Any]:
    """Compute every stale (stage, unit) of ``clips``; return the flow's summary shape."""
    started = time.perf_counter()
    cfgs = {s: {**default_config(s).to_dict(), **((configs or {}).get(s) or {})} for s in stages}
    units = work_units(clips)
    results: list[dict] = []  # one summary per (stage, unit)
    plans: list[tuple[WorkUnit, list[str]]] = []
    for unit in units:
        for chain in registry.stage_chains(stages):
            group = [s for s in chain if unit.can_run(s)]
            if group:
                plans.append((unit, group))
    total = sum(len(g) for _, g in plans)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    for stage in sorted({s for _, g in plans for s in g}):
        registry.stage(stage).prepare_workers(force=False)
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="emonets-extract") as pool:
            futures = [pool.submit(extract_stages, str(store.root), unit.to_dict(), group, cfgs, tick)
                       for unit, group in plans]
            for future in futures:
                results += future.result()
    finally:
        close_guarded_children()
    tally = ExtractionTally()
    for result in results:
        tally.add(result, result["status"] == "reused")
    summary = tally.summary()
    summary.update(clips=int(len(clips)), units=len(units), stages=list(stages),
                   seconds=round(time.perf_counter() - started, 2))
    return summary
