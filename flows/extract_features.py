"""The `extract-features` flow: every stage over every clip in the store's `clips` table."""

from __future__ import annotations

import time
from typing import Any

from prefect import flow
from prefect.futures import as_completed

from data_catalog import Store
from emonets.extraction import STAGES, default_config, work_units
from emonets.isolation import close_guarded_children
from emonets.jit_cache import warm_up
from flows.locking import exclusive_store
from flows.progress import current_progress, reporting_progress
from flows.runners import make_task_runner, shared_ephemeral_api
from emonets.extract_partition import ExtractionTally, reused_summary
from tasks.extract import extract_unit


@flow(name="extract-features", log_prints=True)
def extract_features(
    store_root: str | None = None,
    stages: list[str] | None = None,
    configs: dict[str, dict] | None = None,
    clip_ids: list[str] | None = None,
) -> dict:
    """Extract the requested stages for every clip (or ``clip_ids``); return a small summary.

    ``configs`` overrides stage settings (stage -> dict of fields). Work already in the store with
    the same content fingerprint, config and library version is reused, not recomputed.
    """
    store = Store(store_root)
    stages = list(stages or STAGES)
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise ValueError(f"unknown stages {unknown}; choose from {', '.join(STAGES)}")
    cfgs = {s: {**default_config(s).to_dict(), **((configs or {}).get(s) or {})} for s in stages}
    with exclusive_store(store):
        clips = store.read("clips")
        if clip_ids is not None:
            clips = clips[clips["clip_id"].isin(clip_ids)]
        units = work_units(clips)
        started = time.perf_counter()
        with shared_ephemeral_api():
            try:
                futures, reused = _submit_all(units, stages, cfgs, str(store.root))
                summary = _collect(futures, reused, current_progress())
            finally:
                close_guarded_children()  # the threads runner's children live in this process
        summary.update(clips=int(len(clips)), units=len(units), stages=stages,
                       seconds=round(time.perf_counter() - started, 2))
        summary["problems"] = _count_problems(store, stages, set(clips["clip_id"]))
    return summary


def _submit_all(units, stages, cfgs, store_root) -> tuple[list, list[dict]]:
    """Submit a task for each stale (stage, unit); return the futures and the reused summaries.

    Partitions whose manifest already matches (same content sha256, config, library version)
    are not submitted at all, so a no-change re-run creates no task runs. What is submitted is
    stale by construction, so it always runs (refresh_cache): after a clip changed and changed
    back, Prefect's record of the first version must not stand in for a partition that now holds
    the second.
    """
    store = Store(store_root)
    task = extract_unit.with_options(result_storage=store.path("_prefect", "results"), refresh_cache=True)
    futures, reused = [], []
    jit_ready = False

    def current(stage: str, unit, upstream: dict | None) -> dict | None:
        return reused_summary(store, stage, unit, cfgs[stage], upstream)

    for unit in units:
        u = unit.to_dict()
        faces_up = None  # the faces partition's fingerprint (or the future that will make it)
        if "faces" in stages and unit.can_run("faces"):
            hit = current("faces", unit, None)
            if hit:
                reused.append(hit)
                faces_up = {"fingerprint": hit["fingerprint"]}
            else:
                faces_up = task.submit("faces", u, cfgs["faces"], store_root)
                futures.append(faces_up)
        if "mouths" in stages and unit.can_run("mouths"):
            if faces_up is None:
                manifest = store.manifest("faces", unit.key)
                faces_up = None if manifest is None else {"fingerprint": manifest.fingerprint}
            hit = current("mouths", unit, faces_up) if isinstance(faces_up, dict) else None
            if hit:
                reused.append(hit)
            elif faces_up is not None:
                futures.append(task.submit("mouths", u, cfgs["mouths"], store_root, upstream=faces_up))
        for stage in ("mfcc", "motion"):
            if stage in stages and unit.can_run(stage):
                hit = current(stage, unit, None)
                if hit:
                    reused.append(hit)
                else:
                    if stage == "mfcc" and not jit_ready:
                        warm_up()  # workers then only read numba's cache; a corrupt one is rebuilt
                        jit_ready = True
                    futures.append(task.submit(stage, u, cfgs[stage], store_root))
    return futures, reused


def _collect(futures: list, reused: list[dict], progress: Any) -> dict:
    tally = ExtractionTally()
    for result in reused:
        tally.add(result, True)
    total = len(futures) + len(reused)
    done = len(reused)
    if progress is not None:
        progress(done, total)
    for future in as_completed(futures):
        done += 1
        if progress is not None:
            progress(done, total)
        future.wait()  # sets the future's final state (as_completed only says the run ended)
        state = future.state
        if not state.is_final():  # never ran: the task it needed (faces, for mouths) failed
            tally.fail(f"{state.name}: not run, the stage it needs failed")
            continue
        result = state.result(raise_on_failure=False)
        if not state.is_completed() or not isinstance(result, dict):
            tally.fail(f"{state.name}: {result}")
            continue
        # a unit whose worker crashed twice is counted failed (it is recorded in `problems`)
        tally.add(result, state.name == "Cached" or result["status"] == "reused")
    return tally.summary()


def _count_problems(store: Store, stages: list[str], clip_ids: set[str]) -> int:
    return len(stage_problems(store, stages, clip_ids))


def stage_problems(store: Store, stages: list[str], clip_ids: set[str] | None = None) -> list[dict]:
    """The `problems` rows of these stages (for these clips, default all), for the console."""
    problems = store.read("problems")
    if problems.empty:
        return []
    wanted = problems["stage"].isin(stages)
    if clip_ids is not None:
        wanted &= problems["clip_id"].isin(clip_ids)
    return problems[wanted].sort_values(["stage", "clip_id"]).to_dict("records")


def run_extract_features(store_root: str, *, stages=None, configs=None, clip_ids=None, runner: str = "local",
                         dask_address: str | None = None, progress: Any = None) -> dict:
    """Run the flow with the chosen task runner (the CLI's and train-all's entry point)."""
    task_runner = make_task_runner(runner, dask_address=dask_address)
    with reporting_progress(progress):
        return extract_features.with_options(task_runner=task_runner)(
            store_root=store_root, stages=stages, configs=configs, clip_ids=clip_ids
        )
