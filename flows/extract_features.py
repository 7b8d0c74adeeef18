"""The `extract-features` flow: every stage over every clip in the store's `clips` table."""

from __future__ import annotations

import time
from typing import Any

from prefect import flow
from prefect.futures import as_completed

from data_catalog import Store
from emonets import registry
from emonets.features.extraction import default_config, work_units
from emonets.features.partition import ExtractionTally, reused_summary, stored_partition
from emonets.workers.isolation import close_guarded_children
from flows.runtime.locking import exclusive_store
from flows.runtime.progress import current_progress, reporting_progress
from flows.runtime.runners import make_task_runner, shared_ephemeral_api
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
    stages = [registry.stage(s).name for s in (stages or registry.stages())]  # an unknown one: ValueError
    cfgs = {s: {**default_config(s).to_dict(), **((configs or {}).get(s) or {})} for s in stages}
    with exclusive_store(store):
        clips = store.read("clips")
        if clip_ids is not None:
            clips = clips[clips["clip_id"].isin(clip_ids)]
        units = work_units(clips)
        started = time.perf_counter()
        with shared_ephemeral_api():
            try:
                jobs, reused = _plan(units, stages, cfgs, str(store.root))
                summary = _run_jobs(jobs, reused, cfgs, str(store.root), current_progress())
            finally:
                close_guarded_children()  # the threads runner's (and an inline unit's) children live in this process
        summary.update(clips=int(len(clips)), units=len(units), stages=stages,
                       seconds=round(time.perf_counter() - started, 2))
        summary["problems"] = _count_problems(store, stages, set(clips["clip_id"]))
    return summary


def _plan(units, stages, cfgs, store_root) -> tuple[list[tuple[Any, list[str]]], list[dict]]:
    """The (unit, stale stages) to compute, in order, and the current partitions' summaries.

    Partitions whose manifest already matches (same content sha256, config, library version)
    are not submitted at all, so a no-change re-run creates no task runs (emonets.freshness: the
    task has no Prefect cache that could disagree with the store).
    """
    store = Store(store_root)
    jobs, reused = [], []
    prepared: set[str] = set()
    for unit in units:
        stale, current = _stale_stages(store, unit, stages, cfgs)
        reused += current
        if not stale:
            continue
        for stage in stale:
            if stage not in prepared:
                registry.stage(stage).prepare_workers(force=True)  # e.g. numba's cache: workers only read it
                prepared.add(stage)
        jobs.append((unit, stale))
    return jobs, reused


def _runs_inline(jobs: list) -> bool:
    """Whether to run the work in this flow's own process instead of the task runner: a single
    unit on the local process pool. A pool worker's start (a new interpreter importing Prefect
    and the library, seconds) buys no parallelism for one unit, whose stages run in order anyway;
    the unit's stages still run in a guarded child (a crash is still retried, then a `problems`
    row), and a Dask cluster keeps its work (the team chose where it runs)."""
    from prefect.context import FlowRunContext
    from prefect.task_runners import ProcessPoolTaskRunner

    ctx = FlowRunContext.get()
    return len(jobs) == 1 and ctx is not None and isinstance(ctx.task_runner, ProcessPoolTaskRunner)


def _run_jobs(jobs: list, reused: list[dict], cfgs: dict, store_root: str, progress: Any) -> dict:
    """Submit one task per unit with stale stages (or run the single one inline) and tally them."""
    planned = sum(len(stale) for _, stale in jobs)
    args = [(unit.to_dict(), stale, {s: cfgs[s] for s in stale}, store_root) for unit, stale in jobs]
    if _runs_inline(jobs):
        states = [(len(stale), extract_unit(*a, return_state=True)) for (_, stale), a in zip(jobs, args)]
        return _collect([], reused, planned, progress, done=states)
    futures = [(len(stale), extract_unit.submit(*a)) for (_, stale), a in zip(jobs, args)]
    return _collect(futures, reused, planned, progress)


def _stale_stages(store: Store, unit, stages: list[str], cfgs: dict) -> tuple[list[str], list[dict]]:
    """The stages this unit must compute, in chain order, and the current ones' summaries.

    A stage after a stale upstream (mouths after faces) is stale too; one whose upstream this run
    does not compute reads the stored partition, and is left out when there is none.
    """
    stale: list[str] = []
    reused: list[dict] = []
    for stage in (s for chain in registry.stage_chains(stages) for s in chain):
        if not unit.can_run(stage):
            continue
        up_name = registry.stage(stage).upstream
        upstream = None
        if up_name is not None:
            if up_name in stale:
                stale.append(stage)
                continue
            upstream = stored_partition(store, up_name, unit)
            if upstream is None:
                continue  # nothing to read: its upstream stage cannot run or never ran
        hit = reused_summary(store, stage, unit, cfgs[stage], upstream)
        if hit:
            reused.append(hit)
        else:
            stale.append(stage)
    return stale, reused


def _collect(futures: list, reused: list[dict], planned: int, progress: Any, done: list | None = None) -> dict:
    """Tally the reused summaries, the final states ``done`` (units run inline) and the futures."""
    tally = ExtractionTally()
    for result in reused:
        tally.add(result, True)
    total = planned + len(reused)
    count = len(reused)
    if progress is not None:
        progress(count, total)
    for size, state in done or []:
        count += size
        if progress is not None:
            progress(count, total)
        _tally_state(tally, state)
    size_of = {id(f): n for n, f in futures}
    for future in as_completed([f for _, f in futures]):
        count += size_of[id(future)]
        if progress is not None:
            progress(count, total)
        future.wait()  # sets the future's final state (as_completed only says the run ended)
        state = future.state
        if not state.is_final():  # never ran: the runner could not run it
            tally.fail(f"{state.name}: {_why_not_run(future)}")
            continue
        _tally_state(tally, state)
    return tally.summary()


def _tally_state(tally: ExtractionTally, state: Any) -> None:
    results = state.result(raise_on_failure=False)
    if not state.is_completed() or not isinstance(results, list):
        tally.fail(f"{state.name}: {results}")
        return
    for result in results:  # a stage whose worker crashed twice is counted failed (and in `problems`)
        tally.add(result, result["status"] == "reused")


def _why_not_run(future: Any) -> str:
    """Why a task never ran: the runner's own error where it has one (a Dask scheduler that
    cannot import the code fails every task the same way)."""
    wrapped = getattr(future, "wrapped_future", None)
    try:
        error = wrapped.exception(timeout=0) if wrapped is not None and hasattr(wrapped, "exception") else None
    except Exception as err:  # noqa: BLE001 - the probe itself failing is also an answer
        error = err
    if error is not None:
        return f"not run: the task runner failed it: {type(error).__name__}: {error}"
    return "not run"


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
